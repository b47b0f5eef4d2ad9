/*
 * harness.c -- host-side test and benchmark shim for one generated model header.
 *
 * Compiled together with a model.h into a shared library that edgernn.backends.c.host drives through
 * ctypes; it never ships to a microcontroller. The entry points have fixed names (eh_...) and
 * plain C types whatever the model's prefix, which arrives by macros:
 *
 *   cc -O2 -std=c99 -fPIC -shared -DEDGERNN_H_PREFIX=jv -DEDGERNN_H_PREFIX_UPPER=JV \
 *      '-DEDGERNN_MODEL_HEADER="model.h"' harness.c -o model.so
 *
 * Array layouts follow edgernn.contract.quant.int_forward (C order): x (B, T, I) int8 or tokens (B, T)
 * int32, h0 and h_n (L*D, B, H), hidden (L, B, T, D*H), logits (B, C) or (B, T, C).
 * Functions a model kind does not have return EH_UNSUPPORTED.
 */
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_H_PREFIX) || !defined(EDGERNN_H_PREFIX_UPPER)
#error "define EDGERNN_MODEL_HEADER (quoted path), EDGERNN_H_PREFIX and EDGERNN_H_PREFIX_UPPER"
#endif
#include EDGERNN_MODEL_HEADER

#define EH_CAT_(a, b) a##b
#define EH_CAT(a, b) EH_CAT_(a, b)
#define M(name) EH_CAT(EDGERNN_H_PREFIX, name)       /* M(_run) -> jv_run */
#define U(name) EH_CAT(EDGERNN_H_PREFIX_UPPER, name) /* U(_HIDDEN_SIZE) -> JV_HIDDEN_SIZE */

#define EH_UNSUPPORTED (-100)

#define EH_LAYERS U(_NUM_LAYERS)
#define EH_DIRS U(_NUM_DIRECTIONS)
#define EH_HIDDEN U(_HIDDEN_SIZE)
#define EH_CLASSES U(_NUM_CLASSES)
#define EH_ROWS (EH_LAYERS * EH_DIRS)      /* state rows */
#define EH_WIDTH (EH_DIRS * EH_HIDDEN)     /* one layer's output per step */
#define EH_PER_STEP (U(_TASK) != EDGERNN_TASK_MANY_TO_ONE)

#if U(_TOKEN_INPUT)
typedef int32_t eh_input_t;
#define EH_INPUT_WIDTH 1 /* one token id per step */
#define EH_INPUT_SIZE U(_VOCAB_SIZE)
#else
typedef int8_t eh_input_t;
#define EH_INPUT_WIDTH U(_INPUT_SIZE)
#define EH_INPUT_SIZE U(_INPUT_SIZE)
#endif

typedef M(_state_t) eh_state_t;

/* The entry points (exported; edgernn.backends.c.host declares the same signatures for ctypes). */
int32_t eh_info(int64_t *out, int32_t n);
int32_t eh_run_batch(const eh_input_t *x, const int32_t *lengths, int32_t batch, int32_t steps,
                     const int8_t *h0, int8_t *buf, size_t buf_bytes, int8_t *hidden, int8_t *h_n,
                     int32_t *logits);
int32_t eh_run_raw(int8_t *state, const eh_input_t *x, size_t steps, int8_t *buf, size_t buf_bytes,
                   int32_t *logits);
int32_t eh_stream(const eh_input_t *x, int64_t steps, int8_t *states, int32_t *logits);
int32_t eh_classify(const int8_t *state, int32_t *logits);
int64_t eh_generate(int32_t start_token, int32_t *out, int64_t max_len, uint32_t seed);
int32_t eh_quantize(const float *raw, int8_t *xq, int64_t rows);
float eh_dequantize_logit(int32_t logit_q);
int32_t eh_argmax(const int32_t *v, int32_t n);
int32_t eh_sample(const int32_t *logits, int32_t n, uint32_t step, uint32_t *rng);
void eh_lut(int8_t *out);
double eh_bench_step_ns(int64_t n);

/* Copies between the state struct and torch's (L*D, B, H) layout. */
static void eh_load_state(eh_state_t *st, const int8_t *h0, size_t batch, size_t b)
{
    size_t r, j;
    for (r = 0; r < (size_t)EH_ROWS; ++r) {
        for (j = 0; j < (size_t)EH_HIDDEN; ++j) {
            int8_t v = 0; /* no h0: the zero state, as torch */
            if (h0 != NULL) {
                v = h0[(r * batch + b) * EH_HIDDEN + j];
            }
            st->h[r][j] = v;
        }
    }
}

static void eh_store_state(const eh_state_t *st, int8_t *h_n, size_t batch, size_t b)
{
    size_t r, j;
    for (r = 0; r < (size_t)EH_ROWS; ++r) {
        for (j = 0; j < (size_t)EH_HIDDEN; ++j) {
            h_n[(r * batch + b) * EH_HIDDEN + j] = st->h[r][j];
        }
    }
}

/* Model facts, in the order edgernn.backends.c.host.INFO_FIELDS names them. Returns how many. */
int32_t eh_info(int64_t *out, int32_t n)
{
    const int64_t info[] = {
        EDGERNN_RUNTIME_VERSION,
        EH_INPUT_SIZE,
        U(_TOKEN_INPUT),
        EH_HIDDEN,
        EH_LAYERS,
        EH_DIRS,
        EH_CLASSES,
        U(_TASK),
        U(_STATE_BYTES),
        U(_WEIGHT_BYTES),
        U(_LUT_BYTES),
        U(_FLASH_BYTES),
        U(_SCRATCH_BYTES),
        U(_MACS_PER_STEP),
        U(_HEAD_MACS),
        (int64_t)U(_RUN_BUF_BYTES(1)),
        (int64_t)sizeof(eh_state_t),
#if U(_TASK) == EDGERNN_TASK_ONE_TO_MANY
        U(_END_TOKEN),
        (int64_t)U(_SAMPLE_STEP),
#else
        -1,
        0,
#endif
    };
    const int32_t count = (int32_t)(sizeof info / sizeof info[0]);
    int32_t i;
    for (i = 0; i < n && i < count; ++i) {
        out[i] = info[i];
    }
    return count;
}

/* A padded batch through PREFIX_run, one sequence at a time. buf: RUN_BUF_BYTES(steps) bytes,
 * or NULL (unidirectional only; then hidden is not written). Returns the first error code. */
int32_t eh_run_batch(const eh_input_t *x, const int32_t *lengths, int32_t batch, int32_t steps,
                     const int8_t *h0, int8_t *buf, size_t buf_bytes, int8_t *hidden, int8_t *h_n,
                     int32_t *logits)
{
    const size_t nb = (size_t)batch;
    const size_t nt = (size_t)steps;
    size_t b;
    for (b = 0; b < nb; ++b) {
        eh_state_t st;
        const size_t len = (size_t)lengths[b];
        int32_t *out = NULL;
        int rc;
        if (logits != NULL) {
            out = logits + b * (EH_PER_STEP ? nt * EH_CLASSES : (size_t)EH_CLASSES);
        }
        eh_load_state(&st, h0, nb, b);
        rc = M(_run)(&st, x + b * nt * EH_INPUT_WIDTH, len, buf, buf_bytes, out);
        if (rc != EDGERNN_OK) {
            return rc;
        }
        eh_store_state(&st, h_n, nb, b);
        if (buf != NULL && hidden != NULL) {
            size_t l, t, j;
            for (l = 0; l < (size_t)EH_LAYERS; ++l) {
                for (t = 0; t < len; ++t) {
                    for (j = 0; j < (size_t)EH_WIDTH; ++j) {
                        hidden[((l * nb + b) * nt + t) * EH_WIDTH + j] = buf[(l * len + t) * EH_WIDTH + j];
                    }
                }
            }
        }
    }
    return EDGERNN_OK;
}

/* PREFIX_run on one sequence with the state passed in and out as (L*D, H) bytes: for the error
 * paths (NULL pointers, short buffers, steps == 0, bad tokens). */
int32_t eh_run_raw(int8_t *state, const eh_input_t *x, size_t steps, int8_t *buf, size_t buf_bytes,
                   int32_t *logits)
{
    eh_state_t st;
    int rc;
    eh_load_state(&st, state, 1, 0);
    rc = M(_run)(&st, x, steps, buf, buf_bytes, logits);
    eh_store_state(&st, state, 1, 0);
    return rc;
}

/* One long stream from the zero state through PREFIX_step (or _step_token): the full state
 * after every step into states (steps, L*D*H) and, if logits is not NULL, PREFIX_logits after
 * every step into (steps, C). Unidirectional models only. */
int32_t eh_stream(const eh_input_t *x, int64_t steps, int8_t *states, int32_t *logits)
{
#if EH_DIRS == 1
    eh_state_t st;
    size_t t;
    M(_init)(&st);
    for (t = 0; t < (size_t)steps; ++t) {
        size_t r, j;
#if U(_TOKEN_INPUT)
        if (M(_step_token)(&st, x[t]) != EDGERNN_OK) {
            return EDGERNN_ERR_TOKEN;
        }
#else
        M(_step)(&st, x + t * EH_INPUT_WIDTH);
#endif
        for (r = 0; r < (size_t)EH_ROWS; ++r) {
            for (j = 0; j < (size_t)EH_HIDDEN; ++j) {
                states[(t * EH_ROWS + r) * EH_HIDDEN + j] = st.h[r][j];
            }
        }
        if (logits != NULL) {
            M(_logits)(&st, logits + t * EH_CLASSES);
        }
    }
    return EDGERNN_OK;
#else
    (void)x;
    (void)steps;
    (void)states;
    (void)logits;
    return EH_UNSUPPORTED;
#endif
}

/* PREFIX_classify on a state given as (L*D, H) bytes; returns the class, logits filled. */
int32_t eh_classify(const int8_t *state, int32_t *logits)
{
#if EH_DIRS == 1 || U(_TASK) == EDGERNN_TASK_MANY_TO_ONE
    eh_state_t st;
    eh_load_state(&st, state, 1, 0);
    return M(_classify)(&st, logits);
#else
    (void)state;
    (void)logits;
    return EH_UNSUPPORTED;
#endif
}

/* PREFIX_generate from the zero state; returns the number of tokens written. */
int64_t eh_generate(int32_t start_token, int32_t *out, int64_t max_len, uint32_t seed)
{
#if U(_TASK) == EDGERNN_TASK_ONE_TO_MANY
    eh_state_t st;
    M(_init)(&st);
    return (int64_t)M(_generate)(&st, start_token, out, (size_t)max_len, seed);
#else
    (void)start_token;
    (void)out;
    (void)max_len;
    (void)seed;
    return EH_UNSUPPORTED;
#endif
}

/* PREFIX_quantize_input on `rows` float vectors of INPUT_SIZE. */
int32_t eh_quantize(const float *raw, int8_t *xq, int64_t rows)
{
#if U(_TOKEN_INPUT)
    (void)raw;
    (void)xq;
    (void)rows;
    return EH_UNSUPPORTED;
#else
    size_t r;
    for (r = 0; r < (size_t)rows; ++r) {
        M(_quantize_input)(raw + r * EH_INPUT_WIDTH, xq + r * EH_INPUT_WIDTH);
    }
    return EDGERNN_OK;
#endif
}

float eh_dequantize_logit(int32_t logit_q)
{
    return M(_dequantize_logit)(logit_q);
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

/* Host nanoseconds per PREFIX_step (or _step_token), over n steps of a fixed pseudo-random
 * input; CPU time from clock(). Unidirectional models only (else a negative value). */
double eh_bench_step_ns(int64_t n)
{
#if EH_DIRS == 1
    static volatile int8_t sink; /* keeps the work observable */
    eh_state_t st;
    eh_input_t x[16][EH_INPUT_WIDTH];
    uint32_t rng = 0x2545F491u;
    size_t i, j;
    clock_t start;
    clock_t stop;
    for (i = 0; i < 16; ++i) {
        for (j = 0; j < (size_t)EH_INPUT_WIDTH; ++j) {
#if U(_TOKEN_INPUT)
            x[i][j] = (int32_t)(edgernn_xorshift32(&rng) % (uint32_t)EH_INPUT_SIZE);
#else
            x[i][j] = (int8_t)((int32_t)(edgernn_xorshift32(&rng) % 255u) - EDGERNN_Q_MAX);
#endif
        }
    }
    M(_init)(&st);
    start = clock();
    for (i = 0; i < (size_t)n; ++i) {
#if U(_TOKEN_INPUT)
        (void)M(_step_token)(&st, x[i % 16][0]);
#else
        M(_step)(&st, x[i % 16]);
#endif
    }
    stop = clock();
    sink = st.h[0][0];
    (void)sink;
    return (n > 0) ? (double)(stop - start) * 1e9 / (double)CLOCKS_PER_SEC / (double)n : 0.0;
#else
    (void)n;
    return -1.0;
#endif
}
