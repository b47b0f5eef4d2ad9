/*
 * run_vectors.c -- a standalone program around harness.c's entry points, for sanitizer builds.
 *
 * The ctypes path (edgernn.backends.c.host) loads the model into Python, where an ASan-instrumented
 * library needs the ASan runtime preloaded into the interpreter (and then reports Python's own
 * allocations). A program needs nothing: edgernn.backends.c.sanitized builds this file with
 * harness.c and a model.h under -fsanitize=address,undefined (through edgernn.backends.c.build),
 * feeds it vectors through files and compares its outputs with the torch integer reference. This
 * file includes harness.c, which is written against the prefix-free edgernn_* API: build it
 * alone, with the same two macros as the harness, e.g.
 *
 *   gcc -std=c99 -g -O1 -Wall -Wextra -fno-omit-frame-pointer -fsanitize=address,undefined \
 *     -fno-sanitize-recover=all '-DEDGERNN_MODEL_HEADER="model.h"' -DEDGERNN_MODEL=jv_model \
 *     -I<dir of model.h> run_vectors.c -o run_vectors
 *
 *   run_vectors info                   eh_info's fields, one per line
 *   run_vectors batch B T H0 IN OUT    IN: x (B,T,I) int8 or (B,T) int32, lengths (B) int32,
 *                                      h0 (L*D,B,H) int8 if H0 is 1
 *                                      OUT: hidden (L,B,T,D*H) int8, h_n (L*D,B,H) int8,
 *                                      logits (B,C) or (B,T,C) int32
 *   run_vectors stream T IN OUT        IN: x (T,I) int8 or (T) int32
 *                                      OUT: states (T,L*D,H) int8, logits (T,C) int32
 * Every size comes from the descriptor EDGERNN_MODEL. Arrays are raw little-endian C order, as
 * numpy's tobytes(). Every buffer is allocated at exactly its size, so ASan reports any access
 * past it. Exit status 0, or 1 with a message on stderr.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One translation unit with the harness (and through it the model header, chosen by the same
 * macros: EDGERNN_MODEL_HEADER and EDGERNN_MODEL), so every call below goes through the
 * harness's own prototypes. */
#include "../harness.c"

#define RV_M (&EDGERNN_MODEL)
#define RV_MAX_INFO 64

static void die(const char *what)
{
    fprintf(stderr, "run_vectors: %s\n", what);
    exit(1);
}

static void *alloc(size_t n)
{
    void *p = calloc(n > 0 ? n : 1, 1);
    if (p == NULL) {
        die("out of memory");
    }
    return p;
}

static void read_exact(FILE *f, void *dst, size_t n)
{
    if (n > 0 && fread(dst, 1, n, f) != n) {
        die("input file too short");
    }
}

static void write_exact(FILE *f, const void *src, size_t n)
{
    if (n > 0 && fwrite(src, 1, n, f) != n) {
        die("cannot write the output file");
    }
}

/* Bytes of `steps` steps of input: token ids (int32) or input_size int8 features each. */
static size_t input_bytes(size_t steps)
{
    return RV_M->vocab_size != 0 ? steps * sizeof(int32_t) : steps * (size_t)RV_M->input_size;
}

static int batch(size_t b, size_t t, int has_h0, const char *in_path, const char *out_path)
{
    const size_t layers = (size_t)RV_M->num_layers;
    const size_t rows = layers * (size_t)RV_M->num_directions;
    const size_t hidden = (size_t)RV_M->hidden_size;
    const size_t width = (size_t)RV_M->num_directions * hidden;
    const size_t classes = (size_t)RV_M->num_classes;
    const size_t n_logits = b * classes * (RV_M->task == EDGERNN_TASK_MANY_TO_ONE ? 1u : t);
    const size_t buf_bytes = edgernn_run_buf_bytes(RV_M, t);
    void *x = alloc(b * input_bytes(t));
    int32_t *lengths = (int32_t *)alloc(b * sizeof(int32_t));
    int8_t *h0 = has_h0 ? (int8_t *)alloc(rows * b * hidden) : NULL;
    int8_t *buf = (int8_t *)alloc(buf_bytes);
    int8_t *hid = (int8_t *)alloc(layers * b * t * width);
    int8_t *h_n = (int8_t *)alloc(rows * b * hidden);
    int32_t *logits = (int32_t *)alloc(n_logits * sizeof(int32_t));
    FILE *f = fopen(in_path, "rb");
    int32_t rc;
    if (f == NULL) {
        die("cannot open the input file");
    }
    read_exact(f, x, b * input_bytes(t));
    read_exact(f, lengths, b * sizeof(int32_t));
    if (h0 != NULL) {
        read_exact(f, h0, rows * b * hidden);
    }
    fclose(f);
    rc = eh_run_batch(x, lengths, (int32_t)b, (int32_t)t, h0, buf, buf_bytes, hid, h_n, logits);
    if (rc != 0) {
        fprintf(stderr, "run_vectors: run returned %d\n", (int)rc);
        return 1;
    }
    f = fopen(out_path, "wb");
    if (f == NULL) {
        die("cannot open the output file");
    }
    write_exact(f, hid, layers * b * t * width);
    write_exact(f, h_n, rows * b * hidden);
    write_exact(f, logits, n_logits * sizeof(int32_t));
    fclose(f);
    free(x);
    free(lengths);
    free(h0);
    free(buf);
    free(hid);
    free(h_n);
    free(logits);
    return 0;
}

static int stream(size_t t, const char *in_path, const char *out_path)
{
    const size_t state_bytes = edgernn_state_bytes(RV_M);
    const size_t n_logits = t * (size_t)RV_M->num_classes;
    void *x = alloc(input_bytes(t));
    int8_t *states = (int8_t *)alloc(t * state_bytes);
    int32_t *logits = (int32_t *)alloc(n_logits * sizeof(int32_t));
    FILE *f = fopen(in_path, "rb");
    int32_t rc;
    if (f == NULL) {
        die("cannot open the input file");
    }
    read_exact(f, x, input_bytes(t));
    fclose(f);
    rc = eh_stream(x, (int64_t)t, states, logits);
    if (rc != 0) {
        fprintf(stderr, "run_vectors: stream returned %d\n", (int)rc);
        return 1;
    }
    f = fopen(out_path, "wb");
    if (f == NULL) {
        die("cannot open the output file");
    }
    write_exact(f, states, t * state_bytes);
    write_exact(f, logits, n_logits * sizeof(int32_t));
    fclose(f);
    free(x);
    free(states);
    free(logits);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "info") == 0) {
        int64_t info[RV_MAX_INFO];
        const int32_t n = eh_info(info, RV_MAX_INFO);
        int32_t i;
        if (n < 0 || n > RV_MAX_INFO) {
            die("harness.c reports more info fields than this program holds");
        }
        for (i = 0; i < n; ++i) {
            printf("%lld\n", (long long)info[i]);
        }
        return 0;
    }
    if (argc == 7 && strcmp(argv[1], "batch") == 0) {
        return batch(strtoul(argv[2], NULL, 10), strtoul(argv[3], NULL, 10), atoi(argv[4]), argv[5], argv[6]);
    }
    if (argc == 5 && strcmp(argv[1], "stream") == 0) {
        return stream(strtoul(argv[2], NULL, 10), argv[3], argv[4]);
    }
    die("usage: run_vectors info | batch B T H0 IN OUT | stream T IN OUT");
    return 1;
}
