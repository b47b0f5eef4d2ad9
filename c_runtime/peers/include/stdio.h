/*
 * stdio.h for the freestanding peer images: NNoM's port header includes it for its log macro,
 * which the kernels measured here never expand. Nothing is declared, so a call would fail the build.
 */
#ifndef EDGERNN_PEER_STDIO_H
#define EDGERNN_PEER_STDIO_H

#endif /* EDGERNN_PEER_STDIO_H */
