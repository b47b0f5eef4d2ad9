/*
 * fuzz_rnn.c -- libFuzzer target: one generated model.h under attack, checked against an
 * independent reference implementation of the integer contract.
 *
 * edgernn.backends.c.fuzz (python -m edgernn.backends.c.fuzz --seconds N) builds one binary per
 * model through edgernn.backends.c.build, e.g.
 *
 *   clang -g -O1 -std=c99 -Wall -Wextra -Werror -pedantic -Wconversion -Wshadow -ffp-contract=off \
 *     -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all \
 *     -fsanitize=fuzzer '-DEDGERNN_MODEL_HEADER="model.h"' -DEDGERNN_MODEL=fz_model \
 *     '-DFUZZ_REF_HEADER="ref.h"' -I<dir of both> fuzz_rnn.c -o fuzz_model
 *
 * The code under test is reached only through the prefix-free edgernn_* API on &EDGERNN_MODEL,
 * the descriptor model.h defines (no PREFIX_* wrapper, no token pasting): every size the calls
 * see comes from the descriptor. model.h is the header users get. ref.h holds the same
 * QuantizedModel as plain arrays, written by edgernn.backends.c.fuzz straight from Python (not
 * copied out of model.h), so the oracle also catches a wrong table or descriptor field in the
 * header; its REF_* macros give the compile-time sizes of the reference's arrays, and
 * LLVMFuzzerInitialize checks the descriptor's fields against them before the first input.
 * The reference below is naive on purpose: int64 arithmetic, one loop per formula, floor
 * division by C's truncating '/' corrected by hand (the runtime instead adds an unsigned offset
 * and shifts), a division where the sampler's runtime loops by subtraction.
 *
 * Each fuzz input is a small program: a start state, then up to MAX_OPS calls -- edgernn_step and
 * edgernn_step_token (any int32 token), edgernn_run and edgernn_run_tokens (any length: 0, within
 * MAX_STEPS, or far beyond anything a buffer holds; any buffer size; NULL state, input, buffer
 * and logits), edgernn_logits / edgernn_classify / edgernn_dequantize_logit, edgernn_generate (any
 * start token, length and seed), edgernn_quantize_input (any float bit pattern) -- whose
 * arguments come from the input bytes. Now and then a call is of the other input kind (a token
 * call on a feature model or the reverse) or a step of a bidirectional model: that must return
 * EDGERNN_ERR_MODEL (generate: 0 tokens) and touch nothing. After every call it checks:
 *   - the return code is exactly the documented one for those arguments;
 *   - on an error the state, the run buffer and the logits are untouched;
 *   - on success the state, every recorded state in the buffer and the logits equal the
 *     reference's, the state is in [-127, 127], every logit is within the head's worst case, and
 *     buffer bytes past edgernn_run_buf_bytes(m, steps) are untouched;
 *   - nothing is read or written out of bounds: the state, every buffer and the caller's int32
 *     scratch (EDGERNN_SCRATCH_WORDS / EDGERNN_GENERATE_SCRATCH_WORDS of the descriptor's sizes,
 *     filled with a fuzzed byte: its old contents must not matter) are malloc'ed at exactly the
 *     size the call is told (ASan), and no undefined behaviour happens (UBSan; any report aborts).
 * A failed check abort()s, which libFuzzer records as a crash together with the input.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if !defined(EDGERNN_MODEL_HEADER) || !defined(FUZZ_REF_HEADER) || !defined(EDGERNN_MODEL)
#error "define EDGERNN_MODEL_HEADER, FUZZ_REF_HEADER (quoted paths) and EDGERNN_MODEL (the descriptor)"
#endif
#define EDGERNN_IMPLEMENTATION
#include EDGERNN_MODEL_HEADER
#include FUZZ_REF_HEADER

#define MODEL (&EDGERNN_MODEL)

/* Compile-time sizes of the reference's arrays: ref.h's, never model.h's. */
#define L REF_LAYERS
#define D REF_DIRS
#define H REF_HIDDEN
#define C REF_CLASSES
#define ROWS (L * D)
#define WIDTH (D * H) /* one layer's output per step */
#define MAX_STEPS 40  /* per run: every code path, yet thousands of runs a second */
#define MAX_OPS 12
#define CANARY 0x5A /* bytes the code under test must not touch */

#define PER_STEP (REF_TASK != EDGERNN_TASK_MANY_TO_ONE)
#define HAS_STEP (D == 1)                     /* edgernn_step / _step_token apply */
#define HAS_GENERATE (REF_TOKENS && D == 1)   /* edgernn_generate feeds tokens through a step */

#if REF_TOKENS
typedef int32_t in_t;
#define IN_WIDTH 1
#else
typedef int8_t in_t;
#define IN_WIDTH REF_INPUT
#endif

typedef struct {
    int8_t h[ROWS][H];
} ref_state_t;

/* ------------------------------------------------------------------------------------------ */

static void fail(const char *what, int line)
{
    fprintf(stderr, "fuzz_rnn: check failed (line %d): %s\n", line, what);
    abort();
}
#define CHECK(cond, what)           \
    do {                            \
        if (!(cond)) {              \
            fail((what), __LINE__); \
        }                           \
    } while (0)

/* The fuzz input as a stream of arguments; past its end every byte reads as 0. */
typedef struct {
    const uint8_t *p;
    size_t n;
} reader_t;

static uint8_t take_u8(reader_t *r)
{
    if (r->n == 0) {
        return 0;
    }
    r->n--;
    return *r->p++;
}

static uint32_t take_u32(reader_t *r)
{
    uint32_t v = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        v = (v << 8) | take_u8(r);
    }
    return v;
}

static void take_bytes(reader_t *r, void *dst, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    size_t i;
    for (i = 0; i < n; ++i) {
        d[i] = take_u8(r);
    }
}

/* Exactly n bytes (at least 1: malloc(0) may return NULL), so ASan flags any access past n. */
static void *alloc_exact(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    CHECK(p != NULL, "out of memory");
    return p;
}

static int all_bytes(const void *p, size_t n, uint8_t value)
{
    const uint8_t *b = (const uint8_t *)p;
    size_t i;
    for (i = 0; i < n; ++i) {
        if (b[i] != value) {
            return 0;
        }
    }
    return 1;
}

/* The caller's scratch for one call: exactly `words` int32 (the documented size for the
 * descriptor's shape), every byte a fuzzed value -- the runtime may not depend on it. */
static int32_t *take_scratch(reader_t *r, size_t words)
{
    int32_t *s = (int32_t *)alloc_exact(words * sizeof(int32_t));
    memset(s, take_u8(r), words * sizeof(int32_t));
    return s;
}

static size_t step_words(void)
{
    return (size_t)EDGERNN_SCRATCH_WORDS(MODEL->hidden_size);
}

/* 1 time in 8 a call is of the other input kind (generate: a call on a model it does not fit). */
static int take_wrong_kind(reader_t *r)
{
    return (take_u8(r) & 7) == 0;
}

/* ------------------------------------------------------------------------------------------
 * The reference (docs/integer-contract.md), from ref.h's arrays
 */

static int64_t ref_int32(int64_t v)
{
    CHECK(v >= INT32_MIN && v <= INT32_MAX, "an accumulator left int32: the converter's bound is wrong");
    return v;
}

/* z = clamp(floor((acc_x M_x + acc_h M_h + 2^(n-1)) / 2^n), -512, 511). */
static int32_t ref_z(int64_t acc_x, int64_t m_x, int64_t acc_h, int64_t m_h, int32_t n)
{
    const int64_t v = acc_x * m_x + acc_h * m_h; /* |acc| < 2^31, M < 2^30: |v| < 2^62 */
    const int64_t num = v + ((int64_t)1 << (n - 1));
    const int64_t den = (int64_t)1 << n;
    int64_t z = num / den; /* C truncates toward zero ... */
    if (num % den != 0 && num < 0) {
        z -= 1; /* ... so a negative inexact quotient is one above the floor */
    }
    return (int32_t)(z < -512 ? -512 : (z > 511 ? 511 : z));
}

/* One cell: h_new from the cell's input (x, or token for a token cell) and h_old. */
static void ref_cell(const ref_cell_t *c, const int8_t *x, int32_t token, const int8_t *h_old, int8_t *h_new)
{
    int32_t j, k;
    for (j = 0; j < H; ++j) {
        int64_t acc_x = 0;
        int64_t acc_h = 0;
        if (c->table != NULL) {
            acc_x = c->table[(size_t)token * H + (size_t)j];
        } else {
            acc_x = c->bias[j];
            for (k = 0; k < c->in; ++k) {
                acc_x += (int64_t)c->w_ih[(size_t)j * (size_t)c->in + (size_t)k] * x[k];
            }
        }
        for (k = 0; k < H; ++k) {
            acc_h += (int64_t)c->w_hh[j * H + k] * h_old[k];
        }
        h_new[j] = ref_lut[ref_z(ref_int32(acc_x), c->m_x[j], ref_int32(acc_h), c->m_h[j], c->shift) + 512];
    }
}

static void ref_head(const int8_t *top, int32_t *out)
{
    int32_t c, j;
    for (c = 0; c < C; ++c) {
        int64_t acc = ref_head_b[c];
        for (j = 0; j < WIDTH; ++j) {
            acc += (int64_t)ref_head_w[c * WIDTH + j] * top[j];
        }
        out[c] = (int32_t)ref_int32(acc);
    }
}

#if D == 1
/* A unidirectional run: rec (NULL or [L][steps][H]) and logits ([steps][C] or [C], or NULL). */
static void ref_run(ref_state_t *st, const in_t *x, size_t steps, int8_t *rec, int32_t *logits)
{
    size_t t;
    int32_t l;
    for (t = 0; t < steps; ++t) {
        const int8_t *in = NULL;
        int32_t token = 0;
#if REF_TOKENS
        token = x[t];
#else
        in = x + t * IN_WIDTH;
#endif
        for (l = 0; l < L; ++l) {
            int8_t h_new[H];
            ref_cell(&ref_cells[l], in, token, st->h[l], h_new);
            memcpy(st->h[l], h_new, sizeof h_new);
            if (rec != NULL) {
                memcpy(rec + ((size_t)l * steps + t) * H, h_new, sizeof h_new);
            }
            in = st->h[l];
        }
        if (PER_STEP && logits != NULL) {
            ref_head(st->h[L - 1], logits + t * C);
        }
    }
    if (!PER_STEP && logits != NULL) {
        ref_head(st->h[L - 1], logits);
    }
}
#else
/* A bidirectional run: out [L][steps][forward | backward][H] (required), logits as above. */
static void ref_run(ref_state_t *st, const in_t *x, size_t steps, int8_t *out, int32_t *logits)
{
    int32_t l;
    size_t t;
    for (l = 0; l < L; ++l) {
        int8_t *o = out + (size_t)l * steps * WIDTH;
        const int8_t *below = (l > 0) ? o - steps * WIDTH : NULL;
        int32_t dir;
        for (dir = 0; dir < 2; ++dir) {
            for (t = 0; t < steps; ++t) {
                const size_t s = (dir == 0) ? t : steps - 1 - t; /* backward reads from the end */
                const int8_t *in = NULL;
                int32_t token = 0;
                int8_t h_new[H];
                if (l > 0) {
                    in = below + s * WIDTH;
                } else {
#if REF_TOKENS
                    token = x[s];
#else
                    in = x + s * IN_WIDTH;
#endif
                }
                ref_cell(&ref_cells[2 * l + dir], in, token, st->h[2 * l + dir], h_new);
                memcpy(st->h[2 * l + dir], h_new, sizeof h_new);
                memcpy(o + s * WIDTH + (size_t)dir * H, h_new, sizeof h_new);
            }
        }
    }
    if (logits != NULL) {
#if PER_STEP
        for (t = 0; t < steps; ++t) {
            ref_head(out + ((size_t)(L - 1) * steps + t) * WIDTH, logits + t * C);
        }
#else
        ref_head(st->h[2 * (L - 1)], logits); /* rows 2(L-1) and 2(L-1)+1 are adjacent */
#endif
    }
}
#endif

static int32_t ref_argmax(const int32_t *v)
{
    int32_t best = 0, c;
    for (c = 1; c < C; ++c) {
        if (v[c] > v[best]) {
            best = c;
        }
    }
    return best;
}

/* |logit| can be at most sum |w| * 128 + |b| (states are in [-128, 127]). */
static void check_logit_bounds(const int32_t *logits, size_t rows)
{
    size_t r;
    int32_t c, j;
    for (r = 0; r < rows; ++r) {
        for (c = 0; c < C; ++c) {
            int64_t bound = ref_head_b[c] < 0 ? -(int64_t)ref_head_b[c] : ref_head_b[c];
            int64_t v = logits[r * C + (size_t)c];
            for (j = 0; j < WIDTH; ++j) {
                const int64_t w = ref_head_w[c * WIDTH + j];
                bound += (w < 0 ? -w : w) * 128;
            }
            CHECK((v < 0 ? -v : v) <= bound, "a logit is beyond the head's worst case");
        }
    }
}

/* The state equals the reference's; if `stepped` (every row was just computed, not taken from
 * the fuzz input, whose start state may hold -128), it is also inside [-127, 127]. */
static void check_state(const int8_t *st, const ref_state_t *ref, int stepped)
{
    size_t i;
    CHECK(memcmp(st, ref->h, sizeof ref->h) == 0, "state differs from the reference");
    for (i = 0; stepped && i < sizeof ref->h; ++i) {
        CHECK(st[i] >= -127 && st[i] <= 127, "state outside [-127, 127]");
    }
}

/* ------------------------------------------------------------------------------------------
 * Operations
 */

static const size_t kRunBufPerStep = (size_t)L * (size_t)D * (size_t)H;

/* The code edgernn_run / edgernn_run_tokens must return, checked in the documented order (the
 * input kind first: a call of the other kind never applies, whatever its arguments). */
static int expected_run_rc(int wrong_kind, int st_null, int x_null, size_t steps, const int8_t *buf,
                           size_t buf_bytes, const in_t *x)
{
    size_t t;
    if (wrong_kind) {
        return EDGERNN_ERR_MODEL;
    }
    if (steps == 0) {
        return EDGERNN_OK;
    }
    if (st_null || x_null) {
        return EDGERNN_ERR_NULL;
    }
    if (D == 2 && buf == NULL) {
        return EDGERNN_ERR_BUFFER;
    }
    if (buf != NULL && (steps > SIZE_MAX / kRunBufPerStep || buf_bytes < steps * kRunBufPerStep)) {
        return EDGERNN_ERR_BUFFER;
    }
    for (t = 0; REF_TOKENS && t < steps; ++t) {
        const int64_t tok = (int64_t)x[t];
        if (tok < 0 || tok >= REF_VOCAB) {
            return EDGERNN_ERR_TOKEN;
        }
    }
    return EDGERNN_OK;
}

/* A token: mostly valid ids, sometimes anything at all (negative, VOCAB, INT32_MAX...). For a
 * feature model (vocabulary 0) any int32: the call must refuse it by its kind alone. */
static int32_t take_token(reader_t *r)
{
    const uint8_t kind = take_u8(r);
    if (kind < 200 && REF_VOCAB > 0) {
        return (int32_t)(kind % (REF_VOCAB > 0 ? REF_VOCAB : 1));
    }
    return (int32_t)take_u32(r);
}

/* Inputs for `steps` steps. Token sequences are all valid ids 3 times in 4: with one bad id in
 * 5 per step a long valid sequence (a run that succeeds) would almost never be drawn. */
static void take_inputs(reader_t *r, in_t *x, size_t steps)
{
    size_t t;
#if REF_TOKENS
    const int all_valid = (take_u8(r) & 3) != 0;
    for (t = 0; t < steps; ++t) {
        x[t] = all_valid ? (int32_t)(take_u8(r) % REF_VOCAB) : take_token(r);
    }
#else
    for (t = 0; t < steps; ++t) {
        take_bytes(r, x + t * IN_WIDTH, IN_WIDTH); /* any int8, -128 included */
    }
#endif
}

static uint32_t xorshift(uint32_t s)
{
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    return s;
}

/* The start state: zero, pseudo-random in [-127, 127] or over all of int8 from a 4-byte seed, or
 * raw bytes of the input. Few bytes buy a full state, so short inputs already reach the calls.
 * Returns 1 for the zero state. */
static int take_state(reader_t *r, ref_state_t *ref)
{
    const uint8_t mode = take_u8(r) % 4;
    uint32_t s = take_u32(r) | 1u;
    size_t i;
    int8_t *h = &ref->h[0][0];
    for (i = 0; i < sizeof ref->h; ++i) {
        s = xorshift(s);
        if (mode == 0) {
            h[i] = 0;
        } else if (mode == 1) {
            h[i] = (int8_t)((int32_t)(s % 255u) - 127);
        } else if (mode == 2) {
            h[i] = (int8_t)(s & 0xFFu);
        } else {
            h[i] = (int8_t)take_u8(r);
        }
    }
    return mode == 0;
}

/* The call under test: edgernn_run for a feature model, edgernn_run_tokens for a token model,
 * or (wrong_kind) the other one, given an input of one element of the other kind. */
static int call_run(int wrong_kind, int8_t *st, const void *x, size_t steps, int8_t *buf, size_t buf_bytes,
                    int32_t *logits, int32_t *scratch)
{
    if (REF_TOKENS != wrong_kind) {
        return edgernn_run_tokens(MODEL, st, (const int32_t *)x, steps, buf, buf_bytes, logits, scratch);
    }
    return edgernn_run(MODEL, st, (const int8_t *)x, steps, buf, buf_bytes, logits, scratch);
}

static void op_run(reader_t *r, int8_t *st, ref_state_t *ref)
{
    const uint8_t flags = take_u8(r);
    const uint8_t len_kind = take_u8(r);
    const int wrong_kind = take_wrong_kind(r);
    const int st_null = (flags & 0x07) == 0;  /* 1 in 8 */
    const int x_null = (flags & 0x38) == 0;   /* 1 in 8 */
    const int buf_null = (flags & 0x40) != 0; /* 1 in 2 */
    const int logits_null = (flags & 0x80) != 0;
    size_t steps = take_u8(r) % (MAX_STEPS + 1);
    size_t x_len = steps;
    size_t need, buf_bytes, n_logits;
    void *x;
    int8_t *buf = NULL;
    int32_t *logits = NULL;
    int32_t *scratch;
    int8_t *ref_buf;
    int32_t *ref_logits;
    ref_state_t before = *ref;
    int rc, want;

    if (len_kind >= 224) {
        /* Lengths no buffer can hold (and whose run buffer size wraps size_t): the call must fail
         * before it reads an input, so x is one element long and ASan sees any read past it. */
        const size_t huge[4] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX / kRunBufPerStep + 1,
                                SIZE_MAX / kRunBufPerStep}; /* the last: the product fits, no buffer does */
        steps = huge[len_kind % 4];
        x_len = 1;
        if (!(wrong_kind || st_null || x_null || D == 2 || !buf_null)) {
            steps = 0; /* a unidirectional run without a buffer would read all of x: not a test */
        }
    }
    if (wrong_kind) {
        /* One element of the other kind: the call must not read it (nor anything past it). */
        const size_t size = REF_TOKENS ? sizeof(int8_t) : sizeof(int32_t);
        x = alloc_exact(size);
        take_bytes(r, x, size);
    } else {
        x = alloc_exact(x_len * IN_WIDTH * sizeof(in_t));
        take_inputs(r, (in_t *)x, x_len);
    }

    need = (steps <= MAX_STEPS) ? steps * kRunBufPerStep : 0;
    switch (take_u8(r) % 5) { /* the buffer size the call is told, and gets */
    case 0:
        buf_bytes = need;
        break;
    case 1:
        buf_bytes = need > 0 ? need - 1 : 0;
        break;
    case 2:
        buf_bytes = need + 1 + take_u8(r) % 64;
        break;
    case 3:
        buf_bytes = take_u8(r) % (MAX_STEPS * kRunBufPerStep + 1);
        break;
    default:
        buf_bytes = 0;
        break;
    }
    if (!buf_null) {
        buf = (int8_t *)alloc_exact(buf_bytes);
        memset(buf, CANARY, buf_bytes);
    }
    n_logits = PER_STEP ? ((steps <= MAX_STEPS) ? steps : 1) * C : C;
    if (!logits_null) {
        logits = (int32_t *)alloc_exact(n_logits * sizeof(int32_t));
        memset(logits, CANARY, n_logits * sizeof(int32_t));
    }
    scratch = take_scratch(r, step_words());

    want = expected_run_rc(wrong_kind, st_null, x_null, steps, buf, buf_bytes, (const in_t *)x);
    rc = call_run(wrong_kind, st_null ? NULL : st, x_null ? NULL : x, steps, buf, buf_bytes, logits, scratch);
    CHECK(rc == want, "edgernn_run returned another code than documented");

    if (rc != EDGERNN_OK || steps == 0) {
        /* Nothing may change: not the state, the buffer or the logits. */
        check_state(st, &before, 0);
        CHECK(buf == NULL || all_bytes(buf, buf_bytes, CANARY), "an error or empty run wrote the buffer");
        CHECK(logits == NULL || all_bytes(logits, n_logits * sizeof(int32_t), CANARY),
              "an error or empty run wrote the logits");
    } else {
        ref_buf = (int8_t *)alloc_exact(steps * kRunBufPerStep);
        ref_logits = (int32_t *)alloc_exact(n_logits * sizeof(int32_t));
        ref_run(ref, (const in_t *)x, steps, (D == 2 || buf != NULL) ? ref_buf : NULL, ref_logits);
        check_state(st, ref, 1);
        if (buf != NULL) {
            CHECK(memcmp(buf, ref_buf, need) == 0, "the run buffer differs from the reference");
            CHECK(all_bytes(buf + need, buf_bytes - need, CANARY), "run wrote past edgernn_run_buf_bytes");
        }
        if (logits != NULL) {
            CHECK(memcmp(logits, ref_logits, n_logits * sizeof(int32_t)) == 0, "logits differ from the reference");
            check_logit_bounds(logits, n_logits / C);
        }
        free(ref_buf);
        free(ref_logits);
    }
    free(x);
    free(buf);
    free(logits);
    free(scratch);
}

/* edgernn_step (an int8 vector) or edgernn_step_token (any int32 token): the model's own kind,
 * or 1 time in 8 the other one. A bidirectional model has no step: EDGERNN_ERR_MODEL. */
static void op_step(reader_t *r, int8_t *st, ref_state_t *ref)
{
    const int wrong_kind = take_wrong_kind(r);
    const int tokens = REF_TOKENS != wrong_kind;
    const ref_state_t before = *ref;
    int32_t *scratch = take_scratch(r, step_words());
    int rc;
    if (tokens) {
        const int32_t token = take_token(r);
        const int valid = token >= 0 && token < REF_VOCAB;
        rc = edgernn_step_token(MODEL, st, token, scratch);
        if (!HAS_STEP || wrong_kind) {
            CHECK(rc == EDGERNN_ERR_MODEL, "edgernn_step_token on a model it does not fit did not refuse");
        } else {
            CHECK(rc == (valid ? EDGERNN_OK : EDGERNN_ERR_TOKEN), "edgernn_step_token returned a wrong code");
#if HAS_STEP && REF_TOKENS
            if (valid) {
                ref_run(ref, &token, 1, NULL, NULL);
            }
#endif
        }
    } else {
        /* A feature vector of input_size values; on a token model one byte, never to be read. */
        const size_t n = REF_TOKENS ? 1u : (size_t)REF_INPUT;
        int8_t *x = (int8_t *)alloc_exact(n);
        take_bytes(r, x, n); /* any int8, -128 included */
        rc = edgernn_step(MODEL, st, x, scratch);
        if (!HAS_STEP || wrong_kind) {
            CHECK(rc == EDGERNN_ERR_MODEL, "edgernn_step on a model it does not fit did not refuse");
        } else {
            CHECK(rc == EDGERNN_OK, "edgernn_step returned a wrong code");
#if HAS_STEP && !REF_TOKENS
            ref_run(ref, x, 1, NULL, NULL);
#endif
        }
        free(x);
    }
    if (rc == EDGERNN_OK) {
        check_state(st, ref, 1);
    } else {
        check_state(st, &before, 0);
    }
    free(scratch);
}

/* edgernn_logits / edgernn_classify on the top layer's rows of the state (forward then backward;
 * for any model, a bidirectional per-step one included), and edgernn_dequantize_logit of each. */
static void op_logits(int8_t *st)
{
    int32_t *out = (int32_t *)alloc_exact(C * sizeof(int32_t));
    int32_t want[C];
    int32_t cls, c;
    ref_head(st + (size_t)(ROWS - D) * H, want);
    memset(out, CANARY, C * sizeof(int32_t));
    cls = edgernn_classify(MODEL, st, out);
    CHECK(memcmp(out, want, sizeof want) == 0, "edgernn_classify logits differ from the reference");
    CHECK(cls == ref_argmax(want), "edgernn_classify is not the lowest-index argmax");
    memset(out, CANARY, C * sizeof(int32_t));
    edgernn_logits(MODEL, st, out);
    CHECK(memcmp(out, want, sizeof want) == 0, "edgernn_logits differ from the reference");
    check_logit_bounds(out, 1);
    for (c = 0; c < C; ++c) {
        /* one float32 multiply each side (-ffp-contract=off): equal bit for bit */
        CHECK(edgernn_dequantize_logit(MODEL, want[c]) == (float)want[c] * REF_HEAD_SCALE,
              "edgernn_dequantize_logit is not logit_q * head_scale");
    }
    free(out);
}

#if HAS_GENERATE
/* The documented sampling rule, with a division where the runtime subtracts in a loop. */
static int32_t ref_sample(const int32_t *logits, uint32_t *rng)
{
    static const uint32_t octave[4] = {32768u, 27554u, 23170u, 19484u};
    const int64_t top = logits[ref_argmax(logits)];
    const int64_t unit = REF_SAMPLE_STEP > 0 ? REF_SAMPLE_STEP : 1;
    uint32_t w[C];
    uint64_t total = 0, running = 0, pick;
    int32_t c;
    for (c = 0; c < C; ++c) {
        int64_t k = (top - logits[c]) / unit;
        k = k > 64 ? 64 : k;
        w[c] = octave[k % 4] >> (k / 4);
        total += w[c];
    }
    *rng = xorshift(*rng);
    pick = ((uint64_t)*rng * total) >> 32;
    for (c = 0; c < C; ++c) {
        running += w[c];
        if (pick < running) {
            return c;
        }
    }
    fail("sampling fell off the end", __LINE__);
    return -1;
}

static size_t ref_generate(ref_state_t *st, int32_t token, int32_t *out, size_t max_len, uint32_t seed)
{
    uint32_t rng = seed;
    size_t written = 0;
    int32_t logits[C];
    while (written < max_len && token >= 0 && token < REF_VOCAB) {
        ref_run(st, &token, 1, NULL, NULL);
        ref_head(st->h[L - 1], logits);
        token = (seed == 0u) ? ref_argmax(logits) : ref_sample(logits, &rng);
        if (token == REF_END_TOKEN) {
            break;
        }
        out[written++] = token;
    }
    return written;
}
#endif

/* edgernn_generate with any start token, length and seed. On a model it does not fit (feature
 * input, or bidirectional: no step) it writes nothing and returns 0. */
static void op_generate(reader_t *r, int8_t *st, ref_state_t *ref)
{
    const int32_t start = take_token(r);
    const size_t max_len = take_u8(r) % (MAX_STEPS + 1);
    const uint32_t seed = (take_u8(r) & 1) ? take_u32(r) : 0u;
    const size_t words = (size_t)EDGERNN_GENERATE_SCRATCH_WORDS(MODEL->hidden_size, MODEL->num_classes);
    int32_t *scratch = take_scratch(r, words);
    int32_t *out = max_len > 0 ? (int32_t *)alloc_exact(max_len * sizeof(int32_t)) : NULL;
    size_t n;
    if (out != NULL) {
        memset(out, CANARY, max_len * sizeof(int32_t));
    }
#if HAS_GENERATE
    {
        int32_t *want = (int32_t *)alloc_exact((max_len + 1) * sizeof(int32_t));
        const size_t n_ref = ref_generate(ref, start, want, max_len, seed);
        size_t i;
        n = edgernn_generate(MODEL, st, start, out, max_len, seed, scratch);
        CHECK(n == n_ref, "edgernn_generate wrote another number of tokens than the reference");
        for (i = 0; i < n; ++i) {
            CHECK(out[i] == want[i], "edgernn_generate produced another token than the reference");
            CHECK(out[i] >= 0 && out[i] < REF_VOCAB && out[i] != REF_END_TOKEN, "generated an invalid token");
        }
        CHECK(out == NULL || all_bytes(out + n, (max_len - n) * sizeof(int32_t), CANARY),
              "edgernn_generate wrote past the tokens it returned");
        check_state(st, ref, n_ref > 0);
        free(want);
    }
#else
    {
        const ref_state_t before = *ref;
        n = edgernn_generate(MODEL, st, start, out, max_len, seed, scratch);
        CHECK(n == 0, "edgernn_generate on a model without a token step wrote tokens");
        CHECK(out == NULL || all_bytes(out, max_len * sizeof(int32_t), CANARY), "edgernn_generate wrote out");
        check_state(st, &before, 0);
    }
#endif
    free(out);
    free(scratch);
}

#if !REF_TOKENS
/* The documented float rule: (raw - mean) / std in float32, t = value * (1 / s_x) in float32,
 * round half away from zero, saturate to +-127, NaN -> 0 -- here with libm's floor in double
 * (exact for a float plus 0.5) where the runtime compares against halves. */
static int8_t ref_quantize(float raw, int32_t i)
{
#if REF_NORM
    const float centred = raw - ref_norm_mean[i];
    const float value = centred / ref_norm_std[i];
#else
    const float value = raw;
#endif
    const float t = value * ref_inv_scale[i];
    double q;
    if (isnan(t)) {
        return 0;
    }
    q = floor(fabs((double)t) + 0.5);
    q = q > 127.0 ? 127.0 : q;
    return (int8_t)(t < 0.0f ? -q : q);
}
#endif

/* edgernn_quantize_input on input_size floats, any bit pattern. A token model has no float
 * input: the call must read and write nothing (one float and one byte, the byte a canary). */
static void op_quantize(reader_t *r)
{
    const size_t n = REF_TOKENS ? 1u : (size_t)REF_INPUT;
    float *raw = (float *)alloc_exact(n * sizeof(float));
    int8_t *q = (int8_t *)alloc_exact(n);
    size_t i;
    memset(q, CANARY, n);
    for (i = 0; i < n; ++i) {
        const uint8_t kind = take_u8(r);
        if (kind < 128) { /* a plausible sample: small, with exact .5 ties now and then */
            raw[i] = (float)((int32_t)take_u8(r) - 128) / (float)(1 + (kind & 7));
        } else { /* any bit pattern: NaN, +-Inf, denormals, huge */
            const uint32_t bits = take_u32(r);
            memcpy(&raw[i], &bits, sizeof bits);
        }
    }
    edgernn_quantize_input(MODEL, raw, q);
#if REF_TOKENS
    CHECK(all_bytes(q, n, CANARY), "edgernn_quantize_input wrote the output of a token model");
#else
    for (i = 0; i < n; ++i) {
        CHECK(q[i] >= -127 && q[i] <= 127, "quantize_input left [-127, 127]");
        CHECK(q[i] == ref_quantize(raw[i], (int32_t)i), "quantize_input differs from the documented rule");
    }
#endif
    free(raw);
    free(q);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The descriptor and ref.h describe the same model: checked once, before the first input. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const size_t beyond = SIZE_MAX / kRunBufPerStep + 1;
    int32_t k;
    (void)argc;
    (void)argv;
    CHECK(MODEL->hidden_size == H && MODEL->num_layers == L && MODEL->num_directions == D &&
              MODEL->num_classes == C && MODEL->task == REF_TASK,
          "the descriptor's shape differs from ref.h's");
    CHECK(MODEL->input_size == REF_INPUT && MODEL->vocab_size == REF_VOCAB,
          "the descriptor's input kind or size differs from ref.h's");
    CHECK(MODEL->end_token == REF_END_TOKEN && MODEL->sample_step == (uint32_t)REF_SAMPLE_STEP,
          "the descriptor's generation fields differ from ref.h's");
    CHECK(MODEL->head_scale == REF_HEAD_SCALE, "the descriptor's head_scale differs from ref.h's");
    CHECK(MODEL->readout == EDGERNN_READOUT_FINAL_STATE, "the fuzz reference reads the final state only");
    CHECK((MODEL->input_inv_scale != NULL) == !REF_TOKENS, "input_inv_scale is NULL iff a token model");
    CHECK((MODEL->norm_mean != NULL) == REF_NORM && (MODEL->norm_std != NULL) == REF_NORM,
          "the descriptor's normalisation differs from ref.h's");
    CHECK(edgernn_state_bytes(MODEL) == sizeof(ref_state_t), "edgernn_state_bytes is not layers x dirs x hidden");
    CHECK(edgernn_run_buf_bytes(MODEL, 1) == kRunBufPerStep, "edgernn_run_buf_bytes(m, 1) is not the state");
    CHECK(edgernn_run_buf_bytes(MODEL, MAX_STEPS) == MAX_STEPS * kRunBufPerStep, "edgernn_run_buf_bytes(m, T)");
    CHECK(edgernn_run_buf_bytes(MODEL, beyond - 1) == (beyond - 1) * kRunBufPerStep &&
              edgernn_run_buf_bytes(MODEL, beyond) == 0 && edgernn_run_buf_bytes(MODEL, SIZE_MAX) == 0,
          "edgernn_run_buf_bytes is not 0 exactly where the size overflows size_t");
    for (k = 0; k < 1024; ++k) {
        CHECK(ref_lut[k] >= -127 && ref_lut[k] <= 127, "the reference LUT leaves [-127, 127]");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r;
    int8_t *st = (int8_t *)alloc_exact(edgernn_state_bytes(MODEL)); /* exactly: ASan sees overreach */
    ref_state_t ref;
    int op;
    r.p = data;
    r.n = size;
    if (take_state(&r, &ref)) { /* any start state, -128 included */
        memset(st, CANARY, sizeof ref.h);
        edgernn_init(MODEL, st); /* the zero state as a caller makes it */
        check_state(st, &ref, 1);
    } else {
        memcpy(st, ref.h, sizeof ref.h);
    }
    for (op = 0; op < MAX_OPS && r.n > 0; ++op) {
        switch (take_u8(&r) % 8) {
        case 0:
        case 1:
            op_step(&r, st, &ref);
            break;
        case 2:
            op_logits(st);
            break;
        case 3:
            op_generate(&r, st, &ref);
            break;
        case 4:
            op_quantize(&r);
            break;
        default:
            op_run(&r, st, &ref);
            break;
        }
    }
    free(st);
    return 0;
}
