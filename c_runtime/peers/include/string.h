/*
 * string.h for the freestanding peer images: the peer libraries include it for memcpy and memset
 * only. Both map to the compiler's builtins, so a fixed-size copy (CMSIS-NN reads four int8 at a
 * time with a 4-byte memcpy) becomes a load, as it does in an application built against a C
 * library; zig's freestanding target would otherwise call a byte loop for it. A copy whose size is
 * known only at run time still calls the functions, defined in libc.c.
 */
#ifndef EDGERNN_PEER_STRING_H
#define EDGERNN_PEER_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);

#define memcpy(dst, src, n) __builtin_memcpy((dst), (src), (n))
#define memset(dst, c, n) __builtin_memset((dst), (c), (n))

#endif /* EDGERNN_PEER_STRING_H */
