/*
 * libc.c -- memcpy and memset for the freestanding peer images (include/string.h maps fixed-size
 * calls to builtins; these serve the rest, e.g. CMSIS-NN's LSTM gate clearing its int16 output).
 * Word at a time once both pointers are aligned, as a C library's versions are, so a peer is not
 * charged for a byte loop that its real build would not run.
 *
 * gcc recognises the byte loops below as memcpy/memset and would call them from themselves:
 * the attribute keeps them loops.
 */
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) && !defined(__clang__)
#define PEER_NOT_A_CALL __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define PEER_NOT_A_CALL
#endif

PEER_NOT_A_CALL void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    if ((((uintptr_t)d | (uintptr_t)s) & 3u) == 0) {
        for (; n >= 4; n -= 4, d += 4, s += 4) {
            *(uint32_t *)(void *)d = *(const uint32_t *)(const void *)s;
        }
    }
    for (; n; --n) {
        *d++ = *s++;
    }
    return dst;
}

PEER_NOT_A_CALL void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint32_t word = 0x01010101u * (uint8_t)c;
    if (((uintptr_t)d & 3u) == 0) {
        for (; n >= 4; n -= 4, d += 4) {
            *(uint32_t *)(void *)d = word;
        }
    }
    for (; n; --n) {
        *d++ = (uint8_t)c;
    }
    return dst;
}
