/*
 * edgernn_runtime.h -- the integer kernels shared by every model header that edgernn generates.
 *
 * Hand-written C99. A generated model.h embeds this file verbatim, so a user still includes one
 * header and links nothing. The file is include-guarded: any number of model headers (each with
 * its own prefix) can share one translation unit, and these kernels and the tanh table exist once.
 *
 * What it implements is edgernn's integer contract (DESIGN.md, "Integer contract"); the torch
 * reference edgernn.quant.int_forward is the oracle and the tests require identical integers.
 * Per layer, direction and step, for every hidden unit j:
 *
 *     acc_x[j] = sum_i W_ih[j][i] * x[i] + b[j]     int32 (token input: acc_x = table[token][j])
 *     acc_h[j] = sum_k W_hh[j][k] * h[k]             int32
 *     v[j]     = acc_x[j] * M_x[j] + acc_h[j] * M_h[j]          int64, a single rounding below
 *     z[j]     = clamp(floor((v[j] + 2^(n-1)) / 2^n), -512, 511)
 *     h[j]     = LUT[z[j] + 512]                     LUT[k] = round(127 tanh((k - 512) / 128))
 *
 * Freestanding: only <stddef.h> and <stdint.h>. No malloc, no stdio, no libm, and no calls to
 * memset/memcpy -- compilers turn plain zeroing or copy loops into such calls, which a bare-metal
 * image may not provide, so the one zeroing loop here writes through a volatile pointer.
 * Build the float wrappers without -ffast-math: they rely on IEEE float32 arithmetic.
 */
#ifndef EDGERNN_RUNTIME_H
#define EDGERNN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* Bumped whenever a kernel's behaviour or signature changes; model headers check it. */
#define EDGERNN_RUNTIME_VERSION 1

/* Return codes. Plain macros, not an enum: arm-none-eabi-gcc defaults to short enums and
 * clang does not, so enums in an API change its ABI between compilers. */
#define EDGERNN_OK 0
#define EDGERNN_ERR_BUFFER (-1) /* run: buf is NULL or smaller than PREFIX_RUN_BUF_BYTES(T) */
#define EDGERNN_ERR_TOKEN (-2)  /* a token id outside [0, PREFIX_VOCAB_SIZE) */
#define EDGERNN_ERR_NULL (-3)   /* a required pointer is NULL */

/* Values of PREFIX_TASK. */
#define EDGERNN_TASK_MANY_TO_ONE 1  /* one output after the whole sequence */
#define EDGERNN_TASK_MANY_TO_MANY 2 /* one output per step */
#define EDGERNN_TASK_ONE_TO_MANY 3  /* generative: each output token is the next input */

/* The contract's constants. */
#define EDGERNN_Q_MAX 127          /* int8 operands are symmetric: -128 never occurs */
#define EDGERNN_Z_MIN (-512)       /* z (scale 2^-7) is clamped to [-512, 511]: tanh on [-4, 4) */
#define EDGERNN_LUT_SIZE 1024      /* one int8 entry per clamped z */
#define EDGERNN_OFFSET_BITS 62     /* |v| < 2^61, so v + 2^62 + 2^(n-1) is positive and < 2^64 */

/* int32 words of stack scratch that one cell step needs: acc_h and acc_x, one per hidden unit. */
#define EDGERNN_SCRATCH_WORDS(hidden) (2 * (hidden))

/* One layer and direction of the RNN, as the generated header lays it out in flash. */
typedef struct {
    const int8_t *w_ih;   /* [hidden][input], row j at its own scale; NULL for a token cell */
    const int8_t *w_hh;   /* [hidden][hidden], row j at its own scale */
    const int32_t *bias;  /* [hidden], b_ih + b_hh at the scale of acc_x; NULL for a token cell */
    const int32_t *table; /* [vocab][hidden], W_ih E[token] + b at the scale of acc_x; else NULL */
    const int32_t *m_x;   /* [hidden], M_x = round(s_acc_x / s_z * 2^n) < 2^30 */
    const int32_t *m_h;   /* [hidden], M_h = round(s_whh / (127 s_z) * 2^n) < 2^30 */
    int32_t input;        /* int8 features read per step (0 for a token cell) */
    int32_t hidden;       /* hidden units */
    int32_t shift;        /* n, 1..40: v is scaled by 2^-n */
} edgernn_cell_t;

/* LUT[k] = round_half_away(127 * tanh((k - 512) / 128)), k = z + 512. The same for every
 * model (edgernn.quant.tanh_lut). The full table is kept rather than half of it (tanh is odd):
 * it costs 512 bytes of flash and saves a branch and a negation per hidden unit and step. */
static const int8_t edgernn_tanh_lut[EDGERNN_LUT_SIZE] = {
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127, -127,
    -127, -127, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126,
    -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126,
    -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126,
    -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126, -126,
    -126, -126, -126, -126, -126, -126, -126, -126, -125, -125, -125, -125, -125, -125, -125, -125,
    -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125, -125,
    -125, -125, -125, -125, -125, -125, -125, -125, -125, -124, -124, -124, -124, -124, -124, -124,
    -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -124, -123,
    -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123, -123,
    -122, -122, -122, -122, -122, -122, -122, -122, -122, -122, -122, -122, -122, -121, -121, -121,
    -121, -121, -121, -121, -121, -121, -121, -121, -120, -120, -120, -120, -120, -120, -120, -120,
    -120, -119, -119, -119, -119, -119, -119, -119, -119, -118, -118, -118, -118, -118, -118, -118,
    -118, -117, -117, -117, -117, -117, -117, -116, -116, -116, -116, -116, -116, -115, -115, -115,
    -115, -115, -115, -114, -114, -114, -114, -114, -113, -113, -113, -113, -113, -112, -112, -112,
    -112, -112, -111, -111, -111, -111, -110, -110, -110, -110, -109, -109, -109, -109, -108, -108,
    -108, -107, -107, -107, -107, -106, -106, -106, -105, -105, -105, -104, -104, -104, -103, -103,
    -103, -102, -102, -102, -101, -101, -101, -100, -100, -100,  -99,  -99,  -98,  -98,  -98,  -97,
     -97,  -96,  -96,  -95,  -95,  -95,  -94,  -94,  -93,  -93,  -92,  -92,  -91,  -91,  -90,  -90,
     -89,  -89,  -88,  -88,  -87,  -87,  -86,  -86,  -85,  -85,  -84,  -84,  -83,  -82,  -82,  -81,
     -81,  -80,  -79,  -79,  -78,  -78,  -77,  -76,  -76,  -75,  -74,  -74,  -73,  -72,  -72,  -71,
     -70,  -70,  -69,  -68,  -68,  -67,  -66,  -65,  -65,  -64,  -63,  -63,  -62,  -61,  -60,  -59,
     -59,  -58,  -57,  -56,  -56,  -55,  -54,  -53,  -52,  -51,  -51,  -50,  -49,  -48,  -47,  -46,
     -46,  -45,  -44,  -43,  -42,  -41,  -40,  -39,  -38,  -38,  -37,  -36,  -35,  -34,  -33,  -32,
     -31,  -30,  -29,  -28,  -27,  -26,  -25,  -24,  -24,  -23,  -22,  -21,  -20,  -19,  -18,  -17,
     -16,  -15,  -14,  -13,  -12,  -11,  -10,   -9,   -8,   -7,   -6,   -5,   -4,   -3,   -2,   -1,
       0,    1,    2,    3,    4,    5,    6,    7,    8,    9,   10,   11,   12,   13,   14,   15,
      16,   17,   18,   19,   20,   21,   22,   23,   24,   24,   25,   26,   27,   28,   29,   30,
      31,   32,   33,   34,   35,   36,   37,   38,   38,   39,   40,   41,   42,   43,   44,   45,
      46,   46,   47,   48,   49,   50,   51,   51,   52,   53,   54,   55,   56,   56,   57,   58,
      59,   59,   60,   61,   62,   63,   63,   64,   65,   65,   66,   67,   68,   68,   69,   70,
      70,   71,   72,   72,   73,   74,   74,   75,   76,   76,   77,   78,   78,   79,   79,   80,
      81,   81,   82,   82,   83,   84,   84,   85,   85,   86,   86,   87,   87,   88,   88,   89,
      89,   90,   90,   91,   91,   92,   92,   93,   93,   94,   94,   95,   95,   95,   96,   96,
      97,   97,   98,   98,   98,   99,   99,  100,  100,  100,  101,  101,  101,  102,  102,  102,
     103,  103,  103,  104,  104,  104,  105,  105,  105,  106,  106,  106,  107,  107,  107,  107,
     108,  108,  108,  109,  109,  109,  109,  110,  110,  110,  110,  111,  111,  111,  111,  112,
     112,  112,  112,  112,  113,  113,  113,  113,  113,  114,  114,  114,  114,  114,  115,  115,
     115,  115,  115,  115,  116,  116,  116,  116,  116,  116,  117,  117,  117,  117,  117,  117,
     118,  118,  118,  118,  118,  118,  118,  118,  119,  119,  119,  119,  119,  119,  119,  119,
     120,  120,  120,  120,  120,  120,  120,  120,  120,  121,  121,  121,  121,  121,  121,  121,
     121,  121,  121,  121,  122,  122,  122,  122,  122,  122,  122,  122,  122,  122,  122,  122,
     122,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,  123,
     123,  123,  124,  124,  124,  124,  124,  124,  124,  124,  124,  124,  124,  124,  124,  124,
     124,  124,  124,  124,  124,  124,  124,  124,  125,  125,  125,  125,  125,  125,  125,  125,
     125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,  125,
     125,  125,  125,  125,  125,  125,  125,  125,  125,  126,  126,  126,  126,  126,  126,  126,
     126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,
     126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,
     126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,
     126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  126,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
     127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,  127,
};

/* ---------------------------------------------------------------------------------------------
 * State handling
 */

/* Zero n bytes. The store goes through a volatile pointer so that no compiler turns the loop
 * into a call to memset (GCC and clang both do that for plain loops, even with -ffreestanding).
 * Only PREFIX_init uses it, once per stream, where a byte loop costs nothing that matters. */
static inline void edgernn_zero_s8(int8_t *p, size_t n)
{
    volatile int8_t *q = p;
    while (n-- > 0) {
        *q++ = 0;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Matrix-vector product
 */

/* out[r] = bias[r] + sum_c w[r][c] * x[c] for r < rows; bias may be NULL (no bias term).
 * rows >= 1 and cols >= 1 (every model dimension is at least 1).
 *
 * w is row-major [rows][cols]. Rows are taken two at a time so that every x[c] loaded feeds two
 * multiply-accumulates (1.5 loads per MAC instead of 2); the column loop of that pair is where a
 * packed SMLAD/SXTB16 path for Cortex-M4/M7 slots in. The accumulators are int32 and the loop
 * holds no 64-bit arithmetic and no division: the converter proves |sum| < 2^31 for every int8
 * input, so nothing wider is needed.
 *
 * The column loops are do-while on purpose: with a plain for loop the compiler must also handle
 * cols == 0, and clang -O3 versions the code for it -- where out[] is all zeros -- into a memset
 * call, which a bare-metal image may not have. */
static inline void edgernn_matvec_s8(const int8_t *w, const int8_t *x, const int32_t *bias,
                                     int32_t rows, int32_t cols, int32_t *out)
{
    int32_t r;
    for (r = 0; r + 1 < rows; r += 2) {
        const int8_t *w0 = w;
        const int8_t *w1 = w + cols;
        const int8_t *xp = x;
        int32_t acc0 = (bias != NULL) ? bias[r] : 0;
        int32_t acc1 = (bias != NULL) ? bias[r + 1] : 0;
        int32_t c = cols;
        do {
            const int32_t xv = *xp++;
            acc0 += (int32_t)*w0++ * xv;
            acc1 += (int32_t)*w1++ * xv;
        } while (--c > 0);
        out[r] = acc0;
        out[r + 1] = acc1;
        w += 2 * cols;
    }
    if (r < rows) { /* an odd row count leaves one row */
        const int8_t *xp = x;
        int32_t acc = (bias != NULL) ? bias[r] : 0;
        int32_t c = cols;
        do {
            acc += (int32_t)*w++ * (int32_t)*xp++;
        } while (--c > 0);
        out[r] = acc;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Requantization and tanh
 */

/* h[j] = LUT[clamp(z[j])] for every hidden unit of the cell, from its two accumulators.
 *
 * v = acc_x M_x + acc_h M_h fits int64 with room (|acc| < 2^31 and M < 2^30, so |v| < 2^62;
 * the converter proves |v| < 2^61). Rounding half up must not shift a negative number (that is
 * implementation-defined in C), so the sum is moved into unsigned range first:
 *     q = (v + 2^62 + 2^(n-1)) >> n = floor((v + 2^(n-1)) / 2^n) + 2^(62-n) = z + 2^(62-n),
 * exact because 0 <= v + 2^62 + 2^(n-1) < 2^64 (the conversion of a negative v to uint64_t is
 * defined modulo 2^64). Clamping z to [-512, 511] is then an unsigned range check of q.
 * The 64-bit work is per hidden unit, outside the matvec loops (on Cortex-M0+ each int64
 * product is a library call, so it must not be per MAC).
 *
 * rec, when not NULL, receives a copy of the new state (a run buffer), written in the same pass
 * rather than by a copy loop that a compiler could turn into memcpy. */
static inline void edgernn_tanh_requantize(const edgernn_cell_t *cell, const int32_t *acc_x,
                                           const int32_t *acc_h, int8_t *h, int8_t *rec)
{
    const uint32_t n = (uint32_t)cell->shift;
    const uint64_t offset = ((uint64_t)1 << EDGERNN_OFFSET_BITS) + ((uint64_t)1 << (n - 1u));
    /* q for z = -512, the first table entry; positive because n <= 40. */
    const uint64_t q_first = ((uint64_t)1 << (EDGERNN_OFFSET_BITS - n)) - (uint64_t)(-EDGERNN_Z_MIN);
    const int32_t *m_x = cell->m_x;
    const int32_t *m_h = cell->m_h;
    int32_t j;
    for (j = 0; j < cell->hidden; ++j) {
        const int64_t v = (int64_t)acc_x[j] * m_x[j] + (int64_t)acc_h[j] * m_h[j];
        const uint64_t q = ((uint64_t)v + offset) >> n;
        uint32_t k; /* z + 512, clamped to the table */
        int8_t y;
        if (q < q_first) {
            k = 0;
        } else if (q - q_first >= (uint64_t)EDGERNN_LUT_SIZE) {
            k = EDGERNN_LUT_SIZE - 1;
        } else {
            k = (uint32_t)(q - q_first);
        }
        y = edgernn_tanh_lut[k];
        h[j] = y;
        if (rec != NULL) {
            rec[j] = y;
        }
    }
}

/* One step of one cell, in place: the state h is read, then overwritten with the new state.
 *   x       the cell's int8 input [cell->input]; ignored (may be NULL) for a token cell.
 *   token   the input token of a token cell, 0 <= token < vocab (callers check); else ignored.
 *   rec     optional copy of the new state (NULL: none).
 *   scratch EDGERNN_SCRATCH_WORDS(cell->hidden) int32 words.
 * x must not alias h: a layer reads the model input or the layer below, never its own state. */
static inline void edgernn_cell_step(const edgernn_cell_t *cell, const int8_t *x, int32_t token,
                                     int8_t *h, int8_t *rec, int32_t *scratch)
{
    const int32_t hidden = cell->hidden;
    int32_t *acc_h = scratch;
    int32_t *acc_x = scratch + hidden;
    /* The recurrent product reads every old h[k]: it completes before any h[j] is replaced. */
    edgernn_matvec_s8(cell->w_hh, h, NULL, hidden, hidden, acc_h);
    if (cell->table != NULL) {
        /* W_ih E[token] + b was folded at conversion time: acc_x is one row of the table. */
        edgernn_tanh_requantize(cell, cell->table + (size_t)token * (size_t)hidden, acc_h, h, rec);
    } else {
        edgernn_matvec_s8(cell->w_ih, x, cell->bias, hidden, cell->input, acc_x);
        edgernn_tanh_requantize(cell, acc_x, acc_h, h, rec);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Outputs
 */

/* Index of the largest of n >= 1 values; ties go to the lowest index (as torch.argmax). */
static inline int32_t edgernn_argmax_s32(const int32_t *v, int32_t n)
{
    int32_t best = 0;
    int32_t i;
    for (i = 1; i < n; ++i) {
        if (v[i] > v[best]) { /* strict: an equal value later never wins */
            best = i;
        }
    }
    return best;
}

/* ---------------------------------------------------------------------------------------------
 * Float input
 */

/* The float -> int8 input rule, identical to edgernn.quant.quantize_inputs: t = x * inv_scale
 * in float32, rounded half away from zero, saturated to +-127. NaN gives 0.
 *
 * No libm (roundf and lroundf live there) and no room for a fused multiply-add: the product t is
 * the only arithmetic on the input. Everything after it compares t with values that are exact
 * in float32 (small integers and their halves). A compiler may contract a multiply and a later
 * add or subtract into one FMA -- GCC does so even across statements unless -ffp-contract=off --
 * which would skip t's rounding and move ties; a comparison cannot be contracted. */
static inline int8_t edgernn_quantize_f32(float x, float inv_scale)
{
    const float t = x * inv_scale;
    int32_t q;
    if (!(t == t)) { /* NaN */
        return 0;
    }
    if (t >= (float)EDGERNN_Q_MAX) {
        return (int8_t)EDGERNN_Q_MAX;
    }
    if (t <= (float)-EDGERNN_Q_MAX) {
        return (int8_t)-EDGERNN_Q_MAX;
    }
    q = (int32_t)t; /* truncates toward zero; |t| < 127 here, so it fits */
    if (t >= 0.0f) {
        if (t >= (float)q + 0.5f) {
            ++q;
        }
    } else if (t <= (float)q - 0.5f) {
        --q;
    }
    return (int8_t)q;
}

/* ---------------------------------------------------------------------------------------------
 * Sampling (one-to-many generation)
 */

/* xorshift32 (Marsaglia 2003): period 2^32 - 1 over the non-zero states; 0 is a fixed point,
 * which is why a seed of 0 means "greedy" in PREFIX_generate. */
static inline uint32_t edgernn_xorshift32(uint32_t *state)
{
    uint32_t s = *state;
    s ^= s << 13;
    s ^= s >> 17;
    s ^= s << 5;
    *state = s;
    return s;
}

/* Past 64 quarter-octave steps below the top logit a class's weight is 0 (2^15 >> 16). */
#define EDGERNN_SAMPLE_MAX_STEPS 64u

/* round(2^15 * 2^(-i/4)), i = 0..3: the weights of one octave, in quarter steps. */
static const uint32_t edgernn_sample_octave[4] = {32768u, 27554u, 23170u, 19484u};

/* Weight of a logit lying (top - logit) below the top one: 2^15 * 2^(-k/4) rounded down to the
 * table, k = min(64, floor((top - logit) / step)), found by subtraction (no divide on M0+). */
static inline uint32_t edgernn_sample_weight(int32_t top, int32_t logit, uint32_t step)
{
    uint32_t d = (uint32_t)top - (uint32_t)logit; /* top >= logit, so this is exact mod 2^32 */
    uint32_t k = 0;
    while (d >= step && k < EDGERNN_SAMPLE_MAX_STEPS) {
        d -= step;
        ++k;
    }
    return edgernn_sample_octave[k & 3u] >> (k >> 2);
}

/* Integer-only sampling of one of n classes (1 <= n <= 65536). Class c gets the weight
 *     w(c) = edgernn_sample_octave[k % 4] >> (k / 4),   k = min(64, floor((max - logit[c]) / step)),
 * that is exp(-(max - logit[c]) / temperature) in quarter-octave steps, where step (>= 1) is the
 * logit distance of a factor 2^(1/4) at the wanted temperature. The draw
 * r = (xorshift32 * sum w) >> 32 is uniform in [0, sum w) without a division (sum w <= n 2^15
 * < 2^32), and the class drawn is the first whose running sum of weights exceeds r. */
static inline int32_t edgernn_sample_s32(const int32_t *logits, int32_t n, uint32_t step, uint32_t *rng)
{
    const int32_t best = edgernn_argmax_s32(logits, n);
    const int32_t top = logits[best];
    const uint32_t unit = (step > 0u) ? step : 1u;
    uint32_t total = 0;
    uint32_t running = 0;
    uint32_t r;
    int32_t c;
    for (c = 0; c < n; ++c) {
        total += edgernn_sample_weight(top, logits[c], unit);
    }
    r = (uint32_t)(((uint64_t)edgernn_xorshift32(rng) * total) >> 32);
    for (c = 0; c < n; ++c) {
        running += edgernn_sample_weight(top, logits[c], unit);
        if (r < running) {
            return c;
        }
    }
    return best; /* not reached: r < total */
}

#endif /* EDGERNN_RUNTIME_H */
