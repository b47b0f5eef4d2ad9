/*
 * bench_driver.c -- a standalone host program that runs one generated model.h, for `edgernn bench`.
 *
 * Two uses, both without Python or any FFI in the measured code:
 *   - instruction counts under `valgrind --tool=callgrind`. Callgrind counts the whole process
 *     (dynamic loader, libc start-up, input set-up), so edgernn.bench.run runs two step counts and
 *     takes the difference: what remains is exactly the per-step cost of the model code plus the
 *     few instructions of this file's loop (an index increment and a modulo).
 *   - native wall-clock timing of whole-sequence runs (clock_gettime, monotonic clock).
 *
 *   cc -O2 -std=c99 -D_POSIX_C_SOURCE=199309L -DEDGERNN_H_PREFIX=jv -DEDGERNN_H_PREFIX_UPPER=JV \
 *      '-DEDGERNN_MODEL_HEADER="model.h"' bench_driver.c -o bench_driver
 *
 * Usage: bench_driver MODE N [REPS [K]]
 *   step N           N x PREFIX_step (or _step_token) from the zero state
 *   head N           N x (PREFIX_step + PREFIX_logits): the step with the head, as ORT's step model
 *   prep N           everything `run N` does except calling PREFIX_run (its callgrind baseline)
 *   run N            one PREFIX_run over N steps (run buffer only for bidirectional models)
 *   time-step N R    R blocks of N steps; prints each block's nanoseconds per step
 *   time-run N R K   R blocks of K runs of N steps each; prints each block's nanoseconds per step
 * Prints a checksum of the final state last, so no step can be optimised away. Exit status 0;
 * 2 on bad usage; 3 when the model has no such function (a bidirectional model has no step).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_H_PREFIX) || !defined(EDGERNN_H_PREFIX_UPPER)
#error "define EDGERNN_MODEL_HEADER (quoted path), EDGERNN_H_PREFIX and EDGERNN_H_PREFIX_UPPER"
#endif
#include EDGERNN_MODEL_HEADER

#define EB_CAT_(a, b) a##b
#define EB_CAT(a, b) EB_CAT_(a, b)
#define M(name) EB_CAT(EDGERNN_H_PREFIX, name)       /* M(_run) -> jv_run */
#define U(name) EB_CAT(EDGERNN_H_PREFIX_UPPER, name) /* U(_HIDDEN_SIZE) -> JV_HIDDEN_SIZE */

#define EB_DIRS U(_NUM_DIRECTIONS)
#define EB_POOL 64 /* distinct pseudo-random inputs, cycled: every step reads fresh-looking data */

#if U(_TOKEN_INPUT)
typedef int32_t eb_input_t;
#define EB_WIDTH 1
#else
typedef int8_t eb_input_t;
#define EB_WIDTH U(_INPUT_SIZE)
#endif

static eb_input_t eb_pool[EB_POOL][EB_WIDTH];
static volatile int32_t eb_sink; /* written by `head` mode; printed at the end */

static void eb_fill(eb_input_t *x, size_t rows)
{
    uint32_t rng = 0x2545F491u;
    size_t i;
    for (i = 0; i < rows * (size_t)EB_WIDTH; ++i) {
#if U(_TOKEN_INPUT)
        x[i] = (int32_t)(edgernn_xorshift32(&rng) % (uint32_t)U(_VOCAB_SIZE));
#else
        x[i] = (int8_t)((int32_t)(edgernn_xorshift32(&rng) % 255u) - EDGERNN_Q_MAX);
#endif
    }
}

static uint32_t eb_checksum(const M(_state_t) * st)
{
    const int8_t *p = &st->h[0][0];
    uint32_t sum = 0;
    size_t i;
    for (i = 0; i < sizeof st->h; ++i) {
        sum = sum * 31u + (uint32_t)(uint8_t)p[i];
    }
    return sum;
}

static double eb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#if EB_DIRS == 1
/* One streaming step; with_head also evaluates the head, as a classifier polling every step would. */
static void eb_step(M(_state_t) * st, const eb_input_t *x, int with_head)
{
#if U(_TOKEN_INPUT)
    (void)M(_step_token)(st, x[0]);
#else
    M(_step)(st, x);
#endif
    if (with_head) {
        int32_t logits[U(_NUM_CLASSES)];
        M(_logits)(st, logits);
        eb_sink = logits[0]; /* keeps the head's work observable */
    }
}

static uint32_t eb_steps(size_t n, int with_head)
{
    M(_state_t) st;
    size_t i;
    M(_init)(&st);
    for (i = 0; i < n; ++i) {
        eb_step(&st, eb_pool[i % EB_POOL], with_head);
    }
    return eb_checksum(&st);
}

static uint32_t eb_time_steps(size_t n, long reps)
{
    M(_state_t) st;
    long r;
    size_t i;
    M(_init)(&st);
    for (r = 0; r < reps; ++r) {
        const double start = eb_now_ns();
        for (i = 0; i < n; ++i) {
            eb_step(&st, eb_pool[i % EB_POOL], 0);
        }
        printf("%.3f\n", (eb_now_ns() - start) / (double)n);
    }
    return eb_checksum(&st);
}
#endif

/* Inputs and run buffer for `run N`, allocated and filled identically by `prep N`. */
typedef struct {
    eb_input_t *x;
    int8_t *buf;
    size_t buf_bytes;
} eb_run_t;

static int eb_run_alloc(eb_run_t *r, size_t n)
{
    r->x = (eb_input_t *)malloc((n > 0 ? n : 1) * sizeof(eb_input_t) * (size_t)EB_WIDTH);
    /* A unidirectional run needs no buffer; a bidirectional one needs every state. */
    r->buf_bytes = (EB_DIRS == 2) ? U(_RUN_BUF_BYTES)(n) : 0;
    r->buf = (r->buf_bytes > 0) ? (int8_t *)malloc(r->buf_bytes) : NULL;
    if (r->x == NULL || (r->buf_bytes > 0 && r->buf == NULL)) {
        return 0;
    }
    eb_fill(r->x, n);
    return 1;
}

static uint32_t eb_runs(const eb_run_t *r, size_t n, long count)
{
    M(_state_t) st;
    long k;
    M(_init)(&st);
    for (k = 0; k < count; ++k) {
        M(_init)(&st); /* every run is a fresh sequence, as in a batch of independent ones */
        (void)M(_run)(&st, r->x, n, r->buf, r->buf_bytes, NULL);
    }
    return eb_checksum(&st);
}

static int eb_usage(void)
{
    fputs("usage: bench_driver step|head|prep|run N | time-step N REPS | time-run N REPS K\n", stderr);
    return 2;
}

int main(int argc, char **argv)
{
    const char *mode;
    long n_arg;
    size_t n;
    uint32_t check = 0;
    if (argc < 3) {
        return eb_usage();
    }
    mode = argv[1];
    n_arg = strtol(argv[2], NULL, 10);
    if (n_arg < 0) {
        return eb_usage();
    }
    n = (size_t)n_arg;
    eb_fill(&eb_pool[0][0], EB_POOL);
    if (strcmp(mode, "step") == 0 || strcmp(mode, "head") == 0 || strcmp(mode, "time-step") == 0) {
#if EB_DIRS == 1
        if (strcmp(mode, "time-step") == 0) {
            if (argc < 4 || n == 0) {
                return eb_usage();
            }
            check = eb_time_steps(n, strtol(argv[3], NULL, 10));
        } else {
            check = eb_steps(n, strcmp(mode, "head") == 0);
        }
#else
        fputs("a bidirectional model has no streaming step\n", stderr);
        return 3;
#endif
    } else if (strcmp(mode, "prep") == 0 || strcmp(mode, "run") == 0 || strcmp(mode, "time-run") == 0) {
        eb_run_t r;
        if (!eb_run_alloc(&r, n)) {
            fputs("out of memory\n", stderr);
            return 2;
        }
        if (strcmp(mode, "run") == 0) {
            check = eb_runs(&r, n, 1);
        } else if (strcmp(mode, "time-run") == 0) {
            long reps, count, i;
            if (argc < 5 || n == 0) {
                return eb_usage();
            }
            reps = strtol(argv[3], NULL, 10);
            count = strtol(argv[4], NULL, 10);
            for (i = 0; i < reps && count > 0; ++i) {
                const double start = eb_now_ns();
                check ^= eb_runs(&r, n, count);
                printf("%.3f\n", (eb_now_ns() - start) / ((double)n * (double)count));
            }
        }
        free(r.x);
        free(r.buf);
    } else {
        return eb_usage();
    }
    printf("checksum %lu %ld\n", (unsigned long)check, (long)eb_sink);
    return 0;
}
