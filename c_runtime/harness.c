/*
 * harness.c -- host-side test and benchmark entry points for one generated model header.
 *
 * Compiled together with a model.h into a shared library that edgernn.backends.c.host drives
 * through ctypes; it never ships to a microcontroller. It is written against the prefix-free
 * edgernn_* API only: the model arrives as its header and the name of its descriptor,
 *
 *   cc -O2 -std=c99 -fPIC -shared '-DEDGERNN_MODEL_HEADER="model.h"' -DEDGERNN_MODEL=jv_model \
 *      harness.c -o model.so
 *
 * and every size is read from the descriptor. Array layouts follow
 * edgernn.contract.reference.int_forward (C order): x (B, T, I) int8 or tokens (B, T) int32, h0 and
 * h_n (L*D, B, H), hidden (L, B, T, D*H), logits (B, C) or (B, T, C). Calls that do not apply to
 * the model return the runtime's EDGERNN_ERR_MODEL.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_MODEL)
#error "define EDGERNN_MODEL_HEADER (quoted path) and EDGERNN_MODEL (the descriptor, e.g. jv_model)"
#endif
#define EDGERNN_IMPLEMENTATION
#include EDGERNN_MODEL_HEADER

#define EH_M (&EDGERNN_MODEL)
#define EH_ERR_ALLOC (-100) /* the host ran out of memory for a scratch or state buffer */

/* The entry points (exported; edgernn.backends.c.host declares the same signatures for ctypes). */
int32_t eh_info(int64_t *out, int32_t n);
int32_t eh_run_batch(const void *x, const int32_t *lengths, int32_t batch, int32_t steps, const int8_t *h0,
                     int8_t *buf, size_t buf_bytes, int8_t *hidden, int8_t *h_n, int32_t *logits);
int32_t eh_run_raw(int8_t *state, const void *x, size_t steps, int8_t *buf, size_t buf_bytes, int32_t *logits);
int32_t eh_stream(const void *x, int64_t steps, int8_t *states, int32_t *logits);
int32_t eh_classify(const int8_t *state, int32_t *logits);
int64_t eh_generate(int32_t start_token, int32_t *out, int64_t max_len, uint32_t seed);
int32_t eh_quantize(const float *raw, int8_t *xq, int64_t rows);
float eh_dequantize_logit(int32_t logit_q);
int32_t eh_argmax(const int32_t *v, int32_t n);
int32_t eh_sample(const int32_t *logits, int32_t n, uint32_t step, uint32_t *rng);
void eh_lut(int8_t *out);
double eh_bench_step_ns(int64_t n);

static int eh_tokens(void)
{
    return EH_M->vocab_size != 0;
}

/* Values per step in x: one token id, or input_size int8 features. */
static size_t eh_input_width(void)
{
    return eh_tokens() ? 1u : (size_t)EH_M->input_size;
}

static size_t eh_rows(void)
{
    return (size_t)EH_M->num_layers * (size_t)EH_M->num_directions;
}

/* Step t of an input array whose kind the model decides. */
static const int8_t *eh_x(const void *x, size_t t)
{
    return eh_tokens() ? NULL : (const int8_t *)x + t * eh_input_width();
}

static int eh_run(int8_t *state, const void *x, size_t steps, int8_t *buf, size_t buf_bytes, int32_t *logits,
                  int32_t *scratch)
{
    if (eh_tokens()) {
        return edgernn_run_tokens(EH_M, state, (const int32_t *)x, steps, buf, buf_bytes, logits, scratch);
    }
    return edgernn_run(EH_M, state, (const int8_t *)x, steps, buf, buf_bytes, logits, scratch);
}

static int eh_step(int8_t *state, const void *x, size_t t, int32_t *scratch)
{
    if (eh_tokens()) {
        return edgernn_step_token(EH_M, state, ((const int32_t *)x)[t], scratch);
    }
    return edgernn_step(EH_M, state, eh_x(x, t), scratch);
}

static int32_t *eh_scratch(void)
{
    return (int32_t *)malloc(sizeof(int32_t) *
                             (size_t)EDGERNN_GENERATE_SCRATCH_WORDS(EH_M->hidden_size, EH_M->num_classes));
}

/* Copies between a state and torch's (L*D, B, H) layout. */
static void eh_load_state(int8_t *st, const int8_t *h0, size_t batch, size_t b)
{
    const size_t hidden = (size_t)EH_M->hidden_size;
    size_t r, j;
    for (r = 0; r < eh_rows(); ++r) {
        for (j = 0; j < hidden; ++j) {
            st[r * hidden + j] = (h0 != NULL) ? h0[(r * batch + b) * hidden + j] : 0; /* no h0: zero */
        }
    }
}

static void eh_store_state(const int8_t *st, int8_t *h_n, size_t batch, size_t b)
{
    const size_t hidden = (size_t)EH_M->hidden_size;
    size_t r, j;
    for (r = 0; r < eh_rows(); ++r) {
        for (j = 0; j < hidden; ++j) {
            h_n[(r * batch + b) * hidden + j] = st[r * hidden + j];
        }
    }
}

/* Model facts from the descriptor, in the order edgernn.backends.c.host.INFO_FIELDS names them.
 * Returns how many. */
int32_t eh_info(int64_t *out, int32_t n)
{
    const int64_t info[] = {
        EDGERNN_RUNTIME_VERSION,
        eh_tokens() ? EH_M->vocab_size : EH_M->input_size,
        eh_tokens(),
        EH_M->hidden_size,
        EH_M->num_layers,
        EH_M->num_directions,
        EH_M->num_classes,
        EH_M->task,
        (int64_t)edgernn_state_bytes(EH_M),
        (int64_t)edgernn_run_buf_bytes(EH_M, 1),
        EH_M->end_token,
        (int64_t)EH_M->sample_step,
    };
    const int32_t count = (int32_t)(sizeof info / sizeof info[0]);
    int32_t i;
    for (i = 0; i < n && i < count; ++i) {
        out[i] = info[i];
    }
    return count;
}

/* A padded batch through edgernn_run, one sequence at a time. buf: run_buf_bytes(steps) bytes,
 * or NULL (unidirectional only; then hidden is not written). Returns the first error code. */
int32_t eh_run_batch(const void *x, const int32_t *lengths, int32_t batch, int32_t steps, const int8_t *h0,
                     int8_t *buf, size_t buf_bytes, int8_t *hidden, int8_t *h_n, int32_t *logits)
{
    const size_t nb = (size_t)batch;
    const size_t nt = (size_t)steps;
    const size_t width = (size_t)EH_M->num_directions * (size_t)EH_M->hidden_size;
    const size_t classes = (size_t)EH_M->num_classes;
    const size_t x_step = eh_tokens() ? sizeof(int32_t) : (size_t)EH_M->input_size;
    int8_t *st = (int8_t *)malloc(edgernn_state_bytes(EH_M));
    int32_t *scratch = eh_scratch();
    int32_t rc = EDGERNN_OK;
    size_t b;
    for (b = 0; b < nb && st != NULL && scratch != NULL; ++b) {
        const size_t len = (size_t)lengths[b];
        int32_t *out = NULL;
        if (logits != NULL) {
            out = logits + b * ((EH_M->task != EDGERNN_TASK_MANY_TO_ONE) ? nt * classes : classes);
        }
        eh_load_state(st, h0, nb, b);
        rc = eh_run(st, (const char *)x + b * nt * x_step, len, buf, buf_bytes, out, scratch);
        if (rc != EDGERNN_OK) {
            break;
        }
        eh_store_state(st, h_n, nb, b);
        if (buf != NULL && hidden != NULL) {
            size_t l, t, j;
            for (l = 0; l < (size_t)EH_M->num_layers; ++l) {
                for (t = 0; t < len; ++t) {
                    for (j = 0; j < width; ++j) {
                        hidden[((l * nb + b) * nt + t) * width + j] = buf[(l * len + t) * width + j];
                    }
                }
            }
        }
    }
    if (st == NULL || scratch == NULL) {
        rc = EH_ERR_ALLOC;
    }
    free(st);
    free(scratch);
    return rc;
}

/* edgernn_run on one sequence with the state passed in and out as (L*D, H) bytes, as given: for
 * the error paths (NULL pointers, short buffers, steps == 0, bad tokens). */
int32_t eh_run_raw(int8_t *state, const void *x, size_t steps, int8_t *buf, size_t buf_bytes, int32_t *logits)
{
    int32_t *scratch = eh_scratch();
    int32_t rc = EH_ERR_ALLOC;
    if (scratch != NULL) {
        rc = eh_run(state, x, steps, buf, buf_bytes, logits, scratch);
    }
    free(scratch);
    return rc;
}

/* One long stream from the zero state through edgernn_step (or _step_token): the full state after
 * every step into states (steps, L*D*H) and, if logits is not NULL, the head after every step
 * into (steps, C). Unidirectional models only. */
int32_t eh_stream(const void *x, int64_t steps, int8_t *states, int32_t *logits)
{
    const size_t state_bytes = edgernn_state_bytes(EH_M);
    int32_t *scratch = eh_scratch();
    int32_t rc = EH_ERR_ALLOC;
    size_t t;
    if (scratch != NULL && states != NULL) {
        rc = EDGERNN_OK;
        edgernn_init(EH_M, states);
        for (t = 0; t < (size_t)steps && rc == EDGERNN_OK; ++t) {
            int8_t *st = states + t * state_bytes;
            if (t > 0) {
                size_t k;
                for (k = 0; k < state_bytes; ++k) {
                    st[k] = st[k - state_bytes];
                }
            }
            rc = eh_step(st, x, t, scratch);
            if (rc == EDGERNN_OK && logits != NULL) {
                edgernn_logits(EH_M, st, logits + t * (size_t)EH_M->num_classes);
            }
        }
    }
    free(scratch);
    return rc;
}

/* edgernn_classify on a state given as (L*D, H) bytes; returns the class, logits filled. */
int32_t eh_classify(const int8_t *state, int32_t *logits)
{
    if (EH_M->num_directions == 2 &&
        (EH_M->task != EDGERNN_TASK_MANY_TO_ONE || EH_M->readout == EDGERNN_READOUT_LAST_OUTPUT)) {
        return EDGERNN_ERR_MODEL; /* what the head reads exists only inside a run */
    }
    return edgernn_classify(EH_M, state, logits);
}

/* edgernn_generate from the zero state; returns the number of tokens written. */
int64_t eh_generate(int32_t start_token, int32_t *out, int64_t max_len, uint32_t seed)
{
    int8_t *st = (int8_t *)malloc(edgernn_state_bytes(EH_M));
    int32_t *scratch = eh_scratch();
    int64_t written = EH_ERR_ALLOC;
    if (EH_M->task != EDGERNN_TASK_ONE_TO_MANY) {
        written = EDGERNN_ERR_MODEL;
    } else if (st != NULL && scratch != NULL) {
        edgernn_init(EH_M, st);
        written = (int64_t)edgernn_generate(EH_M, st, start_token, out, (size_t)max_len, seed, scratch);
    }
    free(st);
    free(scratch);
    return written;
}

/* edgernn_quantize_input on `rows` float vectors of input_size. */
int32_t eh_quantize(const float *raw, int8_t *xq, int64_t rows)
{
    const size_t width = (size_t)EH_M->input_size;
    size_t r;
    if (eh_tokens()) {
        return EDGERNN_ERR_MODEL;
    }
    for (r = 0; r < (size_t)rows; ++r) {
        edgernn_quantize_input(EH_M, raw + r * width, xq + r * width);
    }
    return EDGERNN_OK;
}

float eh_dequantize_logit(int32_t logit_q)
{
    return edgernn_dequantize_logit(EH_M, logit_q);
}

/* The runtime's building blocks, for tests that pin them down directly. */
int32_t eh_argmax(const int32_t *v, int32_t n)
{
    return edgernn_argmax_s32(v, n);
}

int32_t eh_sample(const int32_t *logits, int32_t n, uint32_t step, uint32_t *rng)
{
    return edgernn_sample_s32(logits, n, step, rng);
}

void eh_lut(int8_t *out)
{
    size_t k;
    for (k = 0; k < (size_t)EDGERNN_LUT_SIZE; ++k) {
        out[k] = edgernn_tanh_lut[k];
    }
}

/* Host nanoseconds per edgernn_step (or _step_token), over n steps of a fixed pseudo-random
 * input; CPU time from clock(). Unidirectional models only (else a negative value). */
double eh_bench_step_ns(int64_t n)
{
    enum { POOL = 16 };
    static volatile int8_t sink; /* keeps the work observable */
    const size_t width = eh_input_width();
    int8_t *st = (int8_t *)malloc(edgernn_state_bytes(EH_M));
    int32_t *scratch = eh_scratch();
    int32_t *tokens = (int32_t *)malloc(sizeof(int32_t) * POOL);
    int8_t *x = (int8_t *)malloc(POOL * width);
    uint32_t rng = 0x2545F491u;
    double ns = -1.0;
    size_t i, j;
    if (EH_M->num_directions == 1 && st != NULL && scratch != NULL && tokens != NULL && x != NULL) {
        clock_t start, stop;
        for (i = 0; i < POOL; ++i) {
            tokens[i] = (int32_t)(edgernn_xorshift32(&rng) % (uint32_t)(EH_M->vocab_size + 1));
            for (j = 0; j < width; ++j) {
                x[i * width + j] = (int8_t)((int32_t)(edgernn_xorshift32(&rng) % 255u) - EDGERNN_Q_MAX);
            }
        }
        edgernn_init(EH_M, st);
        start = clock();
        for (i = 0; i < (size_t)n; ++i) {
            if (eh_tokens()) {
                (void)edgernn_step_token(EH_M, st, tokens[i % POOL] % EH_M->vocab_size, scratch);
            } else {
                (void)edgernn_step(EH_M, st, x + (i % POOL) * width, scratch);
            }
        }
        stop = clock();
        sink = st[0];
        (void)sink;
        ns = (n > 0) ? (double)(stop - start) * 1e9 / (double)CLOCKS_PER_SEC / (double)n : 0.0;
    }
    free(st);
    free(scratch);
    free(tokens);
    free(x);
    return ns;
}
