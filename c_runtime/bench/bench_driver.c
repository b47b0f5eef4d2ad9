/*
 * bench_driver.c -- a standalone host program that runs one generated model.h, for `edgernn bench`.
 *
 * Two uses, both without Python or any FFI in the measured code:
 *   - instruction counts under `valgrind --tool=callgrind`. Callgrind counts the whole process
 *     (dynamic loader, libc start-up, input set-up), so edgernn.bench.native (driven by
 *     edgernn.bench.suites) runs two step counts and takes the difference: what remains is
 *     exactly the per-step cost of the model code plus the few instructions of this file's loop
 *     (an index increment, a modulo and an address computation).
 *   - native wall-clock timing of whole-sequence runs (clock_gettime, monotonic clock).
 *
 * It is written against the prefix-free edgernn_* API only, like c_runtime/harness.c: the model
 * arrives as its header and the name of its descriptor, and every size is read from the
 * descriptor (buffers come from malloc, once, outside the measured loops).
 *
 *   cc -O2 -std=c99 -D_POSIX_C_SOURCE=199309L '-DEDGERNN_MODEL_HEADER="model.h"' \
 *      -DEDGERNN_MODEL=jv_model bench_driver.c -o bench_driver
 *
 * Usage: bench_driver MODE N [REPS [K]]
 *   step N           N x edgernn_step (or _step_token) from the zero state
 *   head N           N x (edgernn_step + edgernn_logits): the step with the head, as ORT's step model
 *   prep N           everything `run N` does except calling edgernn_run (its callgrind baseline)
 *   run N            one edgernn_run over N steps (run buffer only for bidirectional models)
 *   time-step N R    R blocks of N steps; prints each block's nanoseconds per step
 *   time-run N R K   R blocks of K runs of N steps each; prints each block's nanoseconds per step
 * Prints a checksum of the final state last, so no step can be optimised away. Exit status 0;
 * 2 on bad usage (or out of memory); 3 when the model has no such function (a bidirectional
 * model has no step).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_MODEL)
#error "define EDGERNN_MODEL_HEADER (quoted path) and EDGERNN_MODEL (the descriptor, e.g. jv_model)"
#endif
#define EDGERNN_IMPLEMENTATION
#include EDGERNN_MODEL_HEADER

#define EB_M (&EDGERNN_MODEL)
#define EB_POOL 64 /* distinct pseudo-random inputs, cycled: every step reads fresh-looking data */

/* Inputs of one kind, as the model reads them: int8 feature vectors or token ids. */
typedef struct {
    int8_t *x;       /* feature model: rows x input_size; else NULL */
    int32_t *tokens; /* token model: rows ids; else NULL */
} eb_inputs_t;

/* The caller-owned buffers of every call: allocated once, before anything is measured. */
typedef struct {
    int8_t *state;    /* edgernn_state_bytes */
    int32_t *scratch; /* EDGERNN_SCRATCH_WORDS(hidden_size) */
    int32_t *logits;  /* num_classes, for `head` */
} eb_buffers_t;

static volatile int32_t eb_sink; /* written by `head` mode; printed at the end */

static int eb_tokens(void)
{
    return EB_M->vocab_size != 0;
}

/* Allocates and fills `rows` steps of inputs (at least one row); 0 when out of memory. */
static int eb_inputs_alloc(eb_inputs_t *in, size_t rows)
{
    uint32_t rng = 0x2545F491u;
    const size_t n = (rows > 0) ? rows : 1u;
    size_t i;
    in->x = NULL;
    in->tokens = NULL;
    if (eb_tokens()) {
        in->tokens = (int32_t *)malloc(n * sizeof(int32_t));
        if (in->tokens == NULL) {
            return 0;
        }
        for (i = 0; i < rows; ++i) {
            in->tokens[i] = (int32_t)(edgernn_xorshift32(&rng) % (uint32_t)EB_M->vocab_size);
        }
    } else {
        const size_t count = rows * (size_t)EB_M->input_size;
        in->x = (int8_t *)malloc(n * (size_t)EB_M->input_size);
        if (in->x == NULL) {
            return 0;
        }
        for (i = 0; i < count; ++i) {
            in->x[i] = (int8_t)((int32_t)(edgernn_xorshift32(&rng) % 255u) - EDGERNN_Q_MAX);
        }
    }
    return 1;
}

static void eb_inputs_free(eb_inputs_t *in)
{
    free(in->x);
    free(in->tokens);
}

static uint32_t eb_checksum(const int8_t *state)
{
    const size_t bytes = edgernn_state_bytes(EB_M);
    uint32_t sum = 0;
    size_t i;
    for (i = 0; i < bytes; ++i) {
        sum = sum * 31u + (uint32_t)(uint8_t)state[i];
    }
    return sum;
}

static double eb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* n streaming steps of a unidirectional model on b->state, cycling through the pool; with_head
 * also evaluates the head after every step, as a classifier polling every step would. The
 * input kind is decided once, outside the loop, so the loop holds only the model calls. */
static void eb_advance(const eb_buffers_t *b, const eb_inputs_t *pool, size_t n, int with_head)
{
    int8_t *const st = b->state;
    int32_t *const scratch = b->scratch;
    int32_t *const logits = b->logits;
    size_t i;
    if (pool->tokens != NULL) {
        const int32_t *const tokens = pool->tokens;
        for (i = 0; i < n; ++i) {
            (void)edgernn_step_token(EB_M, st, tokens[i % EB_POOL], scratch);
            if (with_head) {
                edgernn_logits(EB_M, st, logits);
                eb_sink = logits[0]; /* keeps the head's work observable */
            }
        }
    } else {
        const int8_t *const x = pool->x;
        const size_t width = (size_t)EB_M->input_size;
        for (i = 0; i < n; ++i) {
            (void)edgernn_step(EB_M, st, x + (i % EB_POOL) * width, scratch);
            if (with_head) {
                edgernn_logits(EB_M, st, logits);
                eb_sink = logits[0];
            }
        }
    }
}

static uint32_t eb_steps(const eb_buffers_t *b, const eb_inputs_t *pool, size_t n, int with_head)
{
    edgernn_init(EB_M, b->state);
    eb_advance(b, pool, n, with_head);
    return eb_checksum(b->state);
}

static uint32_t eb_time_steps(const eb_buffers_t *b, const eb_inputs_t *pool, size_t n, long reps)
{
    long r;
    edgernn_init(EB_M, b->state);
    for (r = 0; r < reps; ++r) {
        const double start = eb_now_ns();
        eb_advance(b, pool, n, 0);
        printf("%.3f\n", (eb_now_ns() - start) / (double)n);
    }
    return eb_checksum(b->state);
}

/* Inputs and run buffer for `run N`, allocated and filled identically by `prep N`. */
typedef struct {
    eb_inputs_t in;
    int8_t *buf;
    size_t buf_bytes;
} eb_run_t;

static int eb_run_alloc(eb_run_t *r, size_t n)
{
    /* A unidirectional run needs no buffer; a bidirectional one needs every state. */
    r->buf_bytes = (EB_M->num_directions == 2) ? edgernn_run_buf_bytes(EB_M, n) : 0;
    r->buf = (r->buf_bytes > 0) ? (int8_t *)malloc(r->buf_bytes) : NULL;
    if (!eb_inputs_alloc(&r->in, n) || (r->buf_bytes > 0 && r->buf == NULL)) {
        return 0;
    }
    return 1;
}

static uint32_t eb_runs(const eb_buffers_t *b, const eb_run_t *r, size_t n, long count)
{
    long k;
    edgernn_init(EB_M, b->state);
    for (k = 0; k < count; ++k) {
        edgernn_init(EB_M, b->state); /* every run is a fresh sequence, as in a batch of independent ones */
        if (r->in.tokens != NULL) {
            (void)edgernn_run_tokens(EB_M, b->state, r->in.tokens, n, r->buf, r->buf_bytes, NULL, b->scratch);
        } else {
            (void)edgernn_run(EB_M, b->state, r->in.x, n, r->buf, r->buf_bytes, NULL, b->scratch);
        }
    }
    return eb_checksum(b->state);
}

static int eb_usage(void)
{
    fputs("usage: bench_driver step|head|prep|run N | time-step N REPS | time-run N REPS K\n", stderr);
    return 2;
}

static int eb_out_of_memory(void)
{
    fputs("out of memory\n", stderr);
    return 2;
}

/* The modes on allocated buffers; returns the exit status and sets *check. */
static int eb_main(const eb_buffers_t *b, int argc, char **argv, size_t n, uint32_t *check)
{
    const char *mode = argv[1];
    if (strcmp(mode, "step") == 0 || strcmp(mode, "head") == 0 || strcmp(mode, "time-step") == 0) {
        eb_inputs_t pool;
        if (EB_M->num_directions != 1) {
            fputs("a bidirectional model has no streaming step\n", stderr);
            return 3;
        }
        if (strcmp(mode, "time-step") == 0 && (argc < 4 || n == 0)) {
            return eb_usage();
        }
        if (!eb_inputs_alloc(&pool, EB_POOL)) {
            eb_inputs_free(&pool);
            return eb_out_of_memory();
        }
        if (strcmp(mode, "time-step") == 0) {
            *check = eb_time_steps(b, &pool, n, strtol(argv[3], NULL, 10));
        } else {
            *check = eb_steps(b, &pool, n, strcmp(mode, "head") == 0);
        }
        eb_inputs_free(&pool);
    } else if (strcmp(mode, "prep") == 0 || strcmp(mode, "run") == 0 || strcmp(mode, "time-run") == 0) {
        eb_run_t r;
        long reps = 0, count = 0, i;
        if (strcmp(mode, "time-run") == 0) {
            if (argc < 5 || n == 0) {
                return eb_usage();
            }
            reps = strtol(argv[3], NULL, 10);
            count = strtol(argv[4], NULL, 10);
        }
        if (!eb_run_alloc(&r, n)) {
            eb_inputs_free(&r.in);
            free(r.buf);
            return eb_out_of_memory();
        }
        if (strcmp(mode, "run") == 0) {
            *check = eb_runs(b, &r, n, 1);
        } else if (strcmp(mode, "time-run") == 0) {
            for (i = 0; i < reps && count > 0; ++i) {
                const double start = eb_now_ns();
                *check ^= eb_runs(b, &r, n, count);
                printf("%.3f\n", (eb_now_ns() - start) / ((double)n * (double)count));
            }
        }
        eb_inputs_free(&r.in);
        free(r.buf);
    } else {
        return eb_usage();
    }
    return 0;
}

int main(int argc, char **argv)
{
    eb_buffers_t b;
    long n_arg;
    uint32_t check = 0;
    int status;
    if (argc < 3) {
        return eb_usage();
    }
    n_arg = strtol(argv[2], NULL, 10);
    if (n_arg < 0) {
        return eb_usage();
    }
    b.state = (int8_t *)malloc(edgernn_state_bytes(EB_M));
    b.scratch = (int32_t *)malloc(sizeof(int32_t) * (size_t)EDGERNN_SCRATCH_WORDS(EB_M->hidden_size));
    b.logits = (int32_t *)malloc(sizeof(int32_t) * (size_t)EB_M->num_classes);
    if (b.state == NULL || b.scratch == NULL || b.logits == NULL) {
        status = eb_out_of_memory();
    } else {
        status = eb_main(&b, argc, argv, (size_t)n_arg, &check);
    }
    free(b.state);
    free(b.scratch);
    free(b.logits);
    if (status != 0) {
        return status;
    }
    printf("checksum %lu %ld\n", (unsigned long)check, (long)eb_sink);
    return 0;
}
