/*
 * stdlib.h for the freestanding peer images: NNoM's port header includes it for malloc and free,
 * which the kernels measured here never call. Nothing is declared, so a call would fail the build.
 */
#ifndef EDGERNN_PEER_STDLIB_H
#define EDGERNN_PEER_STDLIB_H

#include <stddef.h>

#endif /* EDGERNN_PEER_STDLIB_H */
