/*
 * edgernn_runtime.h -- the generic int8 RNN core shared by every model header edgernn generates.
 *
 * Hand-written C99 (also valid C++). A generated model.h embeds this file verbatim, so a user
 * includes one header and links nothing else. In the style of the stb headers:
 *
 *   - the code (every file that includes it): return codes, the model descriptor
 *     edgernn_model_t, the kernels and the prefix-free API edgernn_init/step/step_token/run/
 *     run_tokens/logits/classify/generate/quantize_input, all static inline and each taking a
 *     descriptor. Every model header adds its descriptor, PREFIX_model (static const, so the
 *     compiler folds the model's shapes into the code that runs it), and one-line PREFIX_*
 *     wrappers. Code is emitted only in the files that call it, at every optimization level
 *     (one exception: GCC at -O0 keeps the Armv6-M assembly kernels, about 0.8 KB, in every file
 *     that includes the header; linking with --gc-sections drops them).
 *   - the data: the tanh table here and every model's weight tables, defined only in the one
 *     translation unit that defines EDGERNN_IMPLEMENTATION before including the model header(s),
 *     so a program holds one copy of each table however many files include the header.
 *
 * What it implements is edgernn's integer contract (docs/integer-contract.md); the torch
 * reference edgernn.contract.reference.int_forward is the oracle and the tests require identical
 * integers. Per layer, direction and step, for every hidden unit j:
 *
 *     acc_x[j] = sum_i W_ih[j][i] * x[i] + b[j]     int32 (token input: acc_x = table[token][j])
 *     acc_h[j] = sum_k W_hh[j][k] * h[k]             int32
 *     v[j]     = acc_x[j] * M_x[j] + acc_h[j] * M_h[j]          int64, a single rounding below
 *     z[j]     = clamp(floor((v[j] + 2^(n-1)) / 2^n), -512, 511)
 *     h[j]     = LUT[z[j] + 512]                     LUT[k] = round(127 tanh((k - 512) / 128))
 *
 * Freestanding: only <stddef.h> and <stdint.h> (and, on AVR, avr-libc's <avr/pgmspace.h>, macros
 * only: see EDGERNN_FLASH; on hosted x86-64 and AArch64 builds, the compiler's SIMD intrinsics:
 * see EDGERNN_SIMD). No malloc, no stdio, no libm, and no calls to
 * memset/memcpy -- compilers turn plain zeroing or copy loops into such calls, which a bare-metal
 * image may not provide, so the one zeroing loop here writes through a volatile pointer.
 * Build the float wrappers without -ffast-math: they rely on IEEE float32 arithmetic.
 * No width of `int` is assumed: 16-bit-int targets (AVR) build with -Wall -Wextra -Werror.
 */
#ifndef EDGERNN_RUNTIME_H
#define EDGERNN_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/* A count as size_t, in the size macros a model header gives its includer (PREFIX_RUN_BUF_BYTES):
 * those expand in the includer's code, under its warnings, and C++ ones may refuse a C cast. */
#ifdef __cplusplus
#define EDGERNN_SIZE(n) static_cast<size_t>(n)
#else
#define EDGERNN_SIZE(n) ((size_t)(n))
#endif

/* Bumped whenever a kernel's behaviour, the descriptor or a signature changes; model headers
 * check it. */
#define EDGERNN_RUNTIME_VERSION 4

/* Where the tables live, and how the code reads them: one storage/read pair.
 *
 * EDGERNN_FLASH       on the definition and declaration of every table -- weights, biases,
 *                     multipliers, token tables, float input scales, the tanh table:
 *                     PROGMEM on AVR, where plain `const` data is copied into the 2 KB of RAM at
 *                     start-up; word alignment on cores with the Armv7E-M DSP extension (at most 3
 *                     bytes of padding a table); nothing elsewhere (a `const` object already
 *                     stays in flash).
 * EDGERNN_READ_S8/S32/U32/F32(p)
 *                     one element of such a table at address p: avr-libc's pgm_read_byte/dword/
 *                     float (LPM) on AVR, a plain load elsewhere -- on Arm and x86 the generated
 *                     code is the same as without the macros. Every read of a table goes through
 *                     them; descriptors (edgernn_model_t, edgernn_cell_t) are not tables: they stay
 *                     ordinary `static const` objects, which compilers fold into the code.
 * EDGERNN_TABLES_IN_DATA  1 when a table's address can be read as data (not on AVR): a token
 *                     cell's table row is then used in place, else it is copied to the scratch.
 * Define EDGERNN_NO_PROGMEM to keep AVR tables in RAM (as plain const); flash above 64 KB (far
 * addresses, ATmega1280/2560) is not supported by these macros. */
#if defined(__AVR__) && !defined(EDGERNN_NO_PROGMEM)
#include <avr/pgmspace.h>
#define EDGERNN_FLASH PROGMEM
#define EDGERNN_READ_S8(p) ((int8_t)pgm_read_byte(p))
#define EDGERNN_READ_S32(p) ((int32_t)pgm_read_dword(p))
#define EDGERNN_READ_U32(p) ((uint32_t)pgm_read_dword(p))
#define EDGERNN_READ_F32(p) (pgm_read_float(p))
#define EDGERNN_TABLES_IN_DATA 0
#else
#if defined(__GNUC__) && defined(__ARM_FEATURE_DSP)
#define EDGERNN_FLASH __attribute__((aligned(4))) /* the DSP kernels read weights by LDRD (see EDGERNN_DSP) */
#else
#define EDGERNN_FLASH
#endif
#define EDGERNN_READ_S8(p) (*(p))
#define EDGERNN_READ_S32(p) (*(p))
#define EDGERNN_READ_U32(p) (*(p))
#define EDGERNN_READ_F32(p) (*(p))
#define EDGERNN_TABLES_IN_DATA 1
#endif

/* EDGERNN_MUL_S8(a, b): the product of two int8 values (held in any integer type) as int32. On
 * AVR it is formed in 16 bits, where it fits (|a b| <= 127 * 127): one MULS, where the int32
 * product is a call to libgcc's __mulhisi3. Elsewhere the plain int32 product. */
#if defined(__AVR__)
#define EDGERNN_MUL_S8(a, b) ((int32_t)(int16_t)((int16_t)(int8_t)(a) * (int16_t)(int8_t)(b)))
#else
#define EDGERNN_MUL_S8(a, b) ((int32_t)(a) * (int32_t)(b))
#endif

/* Return codes. Plain macros, not an enum: arm-none-eabi-gcc defaults to short enums and
 * clang does not, so enums in an API change its ABI between compilers. */
#define EDGERNN_OK 0
#define EDGERNN_ERR_BUFFER (-1) /* run: buf smaller than edgernn_run_buf_bytes(m, T), or NULL where
                                 * required (bidirectional) */
#define EDGERNN_ERR_TOKEN (-2)  /* a token id outside [0, vocab_size) */
#define EDGERNN_ERR_NULL (-3)   /* a required pointer is NULL */
#define EDGERNN_ERR_MODEL (-4)  /* the call does not fit the model: a step of a bidirectional model,
                                 * a token call on a feature model or the reverse */

/* Values of edgernn_model_t.task (and PREFIX_TASK). */
#define EDGERNN_TASK_MANY_TO_ONE 1  /* one output after the whole sequence */
#define EDGERNN_TASK_MANY_TO_MANY 2 /* one output per step */
#define EDGERNN_TASK_ONE_TO_MANY 3  /* generative: each output token is the next input */

/* What a many-to-one head reads (edgernn.config.Readout). They differ for a bidirectional model
 * only: its backward state after reading the whole sequence, or the top layer's output at the
 * last step, whose backward half has read that step alone (torch's `output[:, -1]`). */
#define EDGERNN_READOUT_FINAL_STATE 0 /* the final state, h_n */
#define EDGERNN_READOUT_LAST_OUTPUT 1 /* the top layer's output at the last step; run() only */

/* The contract's constants. */
#define EDGERNN_Q_MAX 127          /* int8 operands are symmetric: -128 never occurs */
#define EDGERNN_Z_MIN (-512)       /* z (scale 2^-7) is clamped to [-512, 511]: tanh on [-4, 4) */
#define EDGERNN_LUT_SIZE 1024      /* one int8 entry per clamped z */
#define EDGERNN_OFFSET_BITS 62     /* |v| < 2^61, so v + 2^62 + 2^(n-1) is positive and < 2^64 */

/* int32 words of scratch that a step or run needs (acc_h and acc_x, one per hidden unit), and
 * that generation needs (the same plus one logit per class). The caller provides them, usually
 * on its stack: the PREFIX_* wrappers do, with sizes known at compile time. */
#define EDGERNN_SCRATCH_WORDS(hidden) (2 * (hidden))
#define EDGERNN_GENERATE_SCRATCH_WORDS(hidden, classes) (2 * (hidden) + (classes))

/* One layer and direction of the RNN, as the generated header lays it out in flash. On the DSP
 * cores most feature cells are one stream instead, their pointers leading into it (EDGERNN_DSP_STREAM). */
typedef struct {
    const int8_t *w_ih;   /* [hidden][input], row j at its own scale; NULL for a token cell */
    const int8_t *w_hh;   /* [hidden][hidden], row j at its own scale */
    const int32_t *bias;  /* [hidden], b_ih + b_hh at the scale of acc_x; NULL for a token cell */
    const int32_t *table; /* [vocab][hidden], W_ih E[token] + b at the scale of acc_x; else NULL */
    const int32_t *m_x;   /* [hidden], M_x = round(s_acc_x / s_z * 2^n) < 2^30 */
    const int32_t *m_h;   /* [hidden], M_h = round(s_whh / (127 s_z) * 2^n) < 2^30 */
    int32_t input;        /* int8 features read per step (0 for a token cell) */
    int32_t hidden;       /* hidden units */
    int16_t shift;        /* n, 1..40: v is scaled by 2^-n */
    int16_t narrow;       /* 1 if the generator proved the 32-bit requantization exact for every
                             input and state (edgernn.contract.bounds.narrow_requant; used on
                             Armv6-M, see edgernn_requant_narrow_v6m), else 0. Both int16: the
                             descriptor keeps its size (AVR keeps descriptors in RAM) */
} edgernn_cell_t;

/* A whole model: what the prefix-free API needs to run it. Each model header defines one,
 * PREFIX_model, in flash. The state a caller owns is num_layers * num_directions * hidden_size
 * int8 values, row layer * num_directions + direction (torch's h_n order), at scale 1/127.
 * Small fields are narrow and last: no padding between fields on 32- or 64-bit targets (64-bit
 * ones round the size up to a multiple of 8). */
typedef struct {
    const edgernn_cell_t *cells;  /* [num_layers * num_directions], index layer * dirs + dir */
    const int8_t *head_w;         /* [num_classes][num_directions * hidden_size], one scale */
    const int32_t *head_b;        /* [num_classes] at scale head_scale */
    const float *input_inv_scale; /* [input_size]: 1 / s_x per feature; NULL for a token model */
    const float *norm_mean;       /* [input_size] training-data mean, or NULL: none stored */
    const float *norm_std;        /* [input_size] training-data std, or NULL */
    float head_scale;             /* a logit as a float is logit_q * head_scale */
    uint32_t sample_step;         /* logit_q units per factor 2^(1/4) at temperature 1 */
    int32_t input_size;           /* int8 features per step; 0 for a token model */
    int32_t vocab_size;           /* token ids 0 .. vocab_size - 1; 0 for a feature model */
    int32_t end_token;            /* generation stops when it produces this token; -1: never */
    int16_t hidden_size;          /* hidden units per layer and direction */
    int16_t num_classes;          /* head outputs */
    int8_t num_layers;
    int8_t num_directions;        /* 2: bidirectional (no single step, only run) */
    int8_t task;                  /* EDGERNN_TASK_* */
    int8_t readout;               /* EDGERNN_READOUT_* */
} edgernn_model_t;

/* The tanh table LUT[k] = round_half_away(127 * tanh((k - 512) / 128)), k = z + 512: the same
 * for every model (edgernn.contract.constants.tanh_lut), defined where EDGERNN_IMPLEMENTATION is
 * defined. Each model package ships such a file, and one firmware may link several packages: the
 * definitions are the same bytes, so they are weak (a COMDAT under MSVC) and the linker keeps one.
 * Another compiler needs EDGERNN_NO_TANH_TABLE in all but one of those files. */
#if defined(__GNUC__) || defined(__clang__)
#define EDGERNN_SHARED_TABLE __attribute__((weak))
#elif defined(_MSC_VER)
#define EDGERNN_SHARED_TABLE __declspec(selectany)
#else
#define EDGERNN_SHARED_TABLE
#endif
#ifdef __cplusplus
extern "C" EDGERNN_FLASH const int8_t edgernn_tanh_lut[EDGERNN_LUT_SIZE];
#else
extern EDGERNN_FLASH const int8_t edgernn_tanh_lut[EDGERNN_LUT_SIZE];
#endif

/* EDGERNN_INLINE: the API's glue between a descriptor and the kernels. Always inlined under GCC
 * and clang, so that a call with a model's own descriptor folds the shapes before the compiler
 * decides how to specialise the kernels (GCC otherwise keeps the calls generic: +4 % instructions
 * per step and +350 B of code measured on Cortex-M4). */
#if defined(__GNUC__)
#define EDGERNN_INLINE static inline __attribute__((always_inline))
#else
#define EDGERNN_INLINE static inline
#endif

/* The prefix-free API. Every function is static inline and reads the model only through its
 * descriptor: called with a model's own descriptor (&PREFIX_model, as the PREFIX_* wrappers do),
 * a compiler folds the shapes into the code; called with a pointer it cannot see through, the
 * same code runs any model. */

/* Bytes of the caller-owned state, and of a run buffer for `steps` steps (0 if that overflows
 * size_t). */
EDGERNN_INLINE size_t edgernn_state_bytes(const edgernn_model_t *m);
EDGERNN_INLINE size_t edgernn_run_buf_bytes(const edgernn_model_t *m, size_t steps);

/* The all-zero state (what torch uses when no h0 is given). */
EDGERNN_INLINE void edgernn_init(const edgernn_model_t *m, int8_t *state);

/* One time step of every layer of a unidirectional model, in place. x is one int8 input vector
 * (feature model), token one id (token model). scratch: EDGERNN_SCRATCH_WORDS(hidden_size)
 * words. Returns EDGERNN_OK, EDGERNN_ERR_TOKEN (state untouched) or EDGERNN_ERR_MODEL. */
EDGERNN_INLINE int edgernn_step(const edgernn_model_t *m, int8_t *state, const int8_t *x,
                                int32_t *scratch);
EDGERNN_INLINE int edgernn_step_token(const edgernn_model_t *m, int8_t *state, int32_t token,
                                      int32_t *scratch);

/* A whole sequence of `steps` steps, continuing from *state. Unidirectional: buf is NULL or
 * receives every layer's state after every step, [layer][step][hidden]. Bidirectional: buf is
 * required and receives every layer's output, [layer][step][forward | backward][hidden], and
 * the backward direction starts from its state as if after the end. logits: NULL, or the head
 * on the final state (many-to-one, [num_classes]) or after every step (otherwise,
 * [steps][num_classes]). Returns EDGERNN_OK; EDGERNN_ERR_BUFFER if buf is too small (or NULL
 * when required); EDGERNN_ERR_NULL if state or the input is NULL; EDGERNN_ERR_TOKEN for an
 * invalid token; EDGERNN_ERR_MODEL for the wrong input kind. On an error *state is untouched;
 * steps == 0 does nothing and returns EDGERNN_OK. scratch: EDGERNN_SCRATCH_WORDS words. */
EDGERNN_INLINE int edgernn_run(const edgernn_model_t *m, int8_t *state, const int8_t *x, size_t steps,
                               int8_t *buf, size_t buf_bytes, int32_t *logits, int32_t *scratch);
EDGERNN_INLINE int edgernn_run_tokens(const edgernn_model_t *m, int8_t *state, const int32_t *tokens,
                                      size_t steps, int8_t *buf, size_t buf_bytes, int32_t *logits,
                                      int32_t *scratch);

/* The head on the top layer's state: out[c] = logit of class c, int32 at scale head_scale.
 * Integer argmax of out is the float model's argmax up to rounding (one scale for all classes).
 * classify also returns the argmax; ties go to the lowest index. A bidirectional model's state
 * after edgernn_run holds the forward state after the last step and the backward state after
 * reading the whole sequence. */
EDGERNN_INLINE void edgernn_logits(const edgernn_model_t *m, const int8_t *state, int32_t *out);
EDGERNN_INLINE int32_t edgernn_classify(const edgernn_model_t *m, const int8_t *state, int32_t *logits);

/* One-to-many generation from *state: feeds start_token, then each output back as the next
 * input, writing outputs until end_token is produced (not written) or max_len were written.
 * Returns how many were written; 0 if start_token is invalid or the model has no token step
 * (a feature or bidirectional model). seed 0: greedy (argmax, ties to
 * the lowest id); else sampling at temperature 1 with the integer rule of edgernn_sample_s32 and
 * xorshift32 seeded with `seed`: the same seed gives the same tokens.
 * scratch: EDGERNN_GENERATE_SCRATCH_WORDS(hidden_size, num_classes) words. */
static inline size_t edgernn_generate(const edgernn_model_t *m, int8_t *state, int32_t start_token,
                                     int32_t *out, size_t max_len, uint32_t seed, int32_t *scratch);

/* Float input to int8: normalises raw as the training data was (if the model stores a
 * normalisation), then x * 1/s_x in float32, rounded half away from zero, saturated to +-127;
 * exactly edgernn.contract.quantize.quantize_inputs. A token model has no float input: no-op. */
static inline void edgernn_quantize_input(const edgernn_model_t *m, const float *raw, int8_t *xq);
/* The same for the first n features only: one sample of a framed model (its frame positions
 * share the scales). */
static inline void edgernn_quantize_features(const edgernn_model_t *m, const float *raw, int8_t *xq, int32_t n);

/* An int32 logit as a float: logit_q * head_scale. */
EDGERNN_INLINE float edgernn_dequantize_logit(const edgernn_model_t *m, int32_t logit_q);

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
 * Code generation choices (none changes a result: every path gives the contract's integers)
 *
 * EDGERNN_DSP        1 on cores with the Armv7E-M DSP extension (Cortex-M4, M7; M33 with DSP)
 *                    under GCC or clang: the matvec uses SXTB16 + SMLAD, two MACs an instruction.
 *                    Define EDGERNN_NO_DSP to build the portable C instead. Little-endian only:
 *                    the kernels load four int8 values as one word and take byte k as lane k,
 *                    the order edgernn.backends.c.tables lays the weights in; a big-endian core
 *                    (BE8, __ARM_BIG_ENDIAN) loads the same bytes in the other order, and there
 *                    the portable C runs.
 * EDGERNN_SPLIT_MUL  1 where the instruction set has no 32 x 32 -> 64 multiply (Armv6-M:
 *                    Cortex-M0, M0+, M1): requantization builds its 64-bit sums from 16-bit
 *                    products instead of calling the compiler's __aeabi_lmul, so model code
 *                    needs no compiler-runtime helper at all. May be forced to 1 for testing.
 * EDGERNN_KERNEL     (the linkage of a kernel) keeps one copy of each: a cell step or matvec is
 *                    called a few times per step, and inlining it everywhere (with constant
 *                    shapes, fully unrolled) would triple the code for no measurable gain. It is
 *                    also `inline` wherever that costs nothing, because a static function that is
 *                    not inline is emitted unoptimized by GCC at -O0 in every file that includes
 *                    the header, called or not: clang takes noinline on an inline function, GCC
 *                    warns about it, so GCC gets inline only at -O0, where nothing is inlined.
 */
#if defined(__clang__)
#define EDGERNN_KERNEL static inline __attribute__((noinline))
#elif defined(__GNUC__) && defined(__OPTIMIZE__)
#define EDGERNN_KERNEL static __attribute__((noinline, unused)) /* unused: no warning if a TU never calls it */
#elif defined(__GNUC__)
#define EDGERNN_KERNEL static inline
#else
#define EDGERNN_KERNEL static
#endif

#if defined(__GNUC__) && defined(__thumb2__) && defined(__ARM_FEATURE_DSP) && !defined(__ARM_BIG_ENDIAN) && \
    !defined(EDGERNN_NO_DSP)
#define EDGERNN_DSP 1
#else
#define EDGERNN_DSP 0
#endif

/* EDGERNN_V6M_ASM: the Armv6-M matvec loop in assembly (GCC and clang). From C, both compilers
 * spill the accumulators of a row pair to the stack inside the column loop on this 8-low-register
 * core (clang: 9.8 instructions per MAC measured); the loops below keep eight rows' sums in
 * registers and cost about 3.3 (four rows': 3.6). The generated tables store whole blocks of
 * eight rows in the order that loop reads (edgernn.backends.c.tables.v6m_order, under
 * #elif EDGERNN_V6M_ASM). The same switch selects the 32-bit requantization of a cell whose
 * `narrow` flag is set (edgernn_requant_narrow_v6m). Define EDGERNN_NO_V6M_ASM for the C loop,
 * row-major tables and the 64-bit requantization. */
#if defined(__GNUC__) && defined(__ARM_ARCH_ISA_THUMB) && defined(__ARM_ARCH_PROFILE) && \
    __ARM_ARCH_ISA_THUMB == 1 && __ARM_ARCH_PROFILE == 'M' && !defined(EDGERNN_NO_V6M_ASM)
#define EDGERNN_V6M_ASM 1
#else
#define EDGERNN_V6M_ASM 0
#endif

#ifndef EDGERNN_SPLIT_MUL
#if defined(__ARM_ARCH_PROFILE) && defined(__ARM_ARCH_ISA_THUMB) && __ARM_ARCH_PROFILE == 'M' && \
    __ARM_ARCH_ISA_THUMB == 1
#define EDGERNN_SPLIT_MUL 1
#else
#define EDGERNN_SPLIT_MUL 0
#endif
#endif

/* Where the split multiply matters, clang recognizes the 16-bit-product idiom (and a loop of
 * subtractions) and turns it back into the __aeabi_lmul (__aeabi_uidiv) call it was written to
 * avoid. An empty assembly statement that "may change" v hides the idiom; it emits nothing. */
#if EDGERNN_SPLIT_MUL && defined(__GNUC__)
#define EDGERNN_OPAQUE(v) __asm__("" : "+r"(v))
#else
#define EDGERNN_OPAQUE(v) ((void)0)
#endif

/* EDGERNN_RV32: the RV32 matvec (RV32IMC cores: ESP32-C3/C6, CH32V, GD32V) four rows a pass with
 * eight columns a step (edgernn_blocks_rv32), in C with GCC and clang's empty-asm barriers: 3.4
 * instructions per MAC in its loop where the two-row loop below takes 6. Define EDGERNN_NO_RV32
 * for the portable C. */
#if defined(__GNUC__) && defined(__riscv) && defined(__riscv_xlen) && __riscv_xlen == 32 && \
    !defined(EDGERNN_NO_RV32)
#define EDGERNN_RV32 1
#else
#define EDGERNN_RV32 0
#endif

/* EDGERNN_SIMD: the host matvec in SIMD intrinsics, chosen at compile time from what the compiler
 * is told the CPU has; every model header still builds with plain C where neither is defined.
 *   1  x86-64 SSE2 (every x86-64 CPU: the default flags), with SSE4.1's PMOVSXBW where the
 *      build enables it (-msse4.1, -mavx2, -march=native; 256-bit lanes measured no faster at
 *      these row lengths, so AVX2 builds run the same 128-bit code);
 *   2  AArch64 NEON (every AArch64 CPU).
 * The intrinsics call nothing, but GCC's x86 headers include <stdlib.h> (for _mm_malloc), which a
 * freestanding build (-ffreestanding: __STDC_HOSTED__ 0) may not have; there the x86 path is off.
 * Define EDGERNN_NO_SIMD for the portable C, which stays the reference the SIMD is tested against. */
#if defined(__GNUC__) && defined(__SSE2__) && defined(__x86_64__) && __STDC_HOSTED__ && !defined(EDGERNN_NO_SIMD)
#define EDGERNN_SIMD 1
#include <immintrin.h>
#elif defined(__GNUC__) && defined(__aarch64__) && defined(__ARM_NEON) && !defined(EDGERNN_NO_SIMD)
#define EDGERNN_SIMD 2
#include <arm_neon.h>
#else
#define EDGERNN_SIMD 0
#endif

/* ---------------------------------------------------------------------------------------------
 * Matrix-vector product
 */

#if EDGERNN_DSP
/* On the DSP extension, SXTB16 splits a word x3 x2 x1 x0 into the signed halfwords (x0, x2) and,
 * with ROR #8, (x1, x3); a word of weights likewise, and SMLAD adds both halfword products to an
 * accumulator in one instruction: two MACs. The integers are those of the plain loop, because
 * every product and partial sum is exact in int32 (|w x| <= 127 * 128, |sum| < 2^31 proven).
 * Written in assembly because no compiler was seen to emit SXTB16/SMLAD from C.
 *
 * The state widened once per step: each word v3 v2 v1 v0 of the int8 vector becomes the two
 * words SXTB16 makes of it, (v0, v2) and (v1, v3), so that every row of W_hh reads them with one
 * LDRD instead of re-expanding them (LDR + two SXTB16 per four columns and four rows). The last
 * n % 4 elements are padded with zeros. The widened copy is also what keeps the old state while
 * the new one is written in place. out must be word-aligned (LDRD/STRD fault otherwise). */
static inline void edgernn_widen_dsp(const int8_t *v, int32_t n, uint32_t *out)
{
    const int8_t *p = v;
    uint32_t *q = out;
    int32_t words = n >> 2;
    uint32_t e, o;
    if (words > 0) {
        __asm__ volatile("1:\n\t"
                         "ldr    %[e], [%[p]], #4\n\t"
                         "sxtb16 %[o], %[e], ror #8\n\t"
                         "sxtb16 %[e], %[e]\n\t"
                         "strd   %[e], %[o], [%[q]], #8\n\t"
                         "subs   %[n], %[n], #1\n\t"
                         "bne    1b\n\t"
                         : [p] "+r"(p), [q] "+r"(q), [n] "+r"(words), [e] "=&r"(e), [o] "=&r"(o)
                         :
                         : "cc", "memory");
    }
    if ((n & 3) != 0) {
        uint32_t t = (uint8_t)p[0];
        if ((n & 3) > 1) {
            t |= (uint32_t)(uint8_t)p[1] << 8;
        }
        if ((n & 3) > 2) {
            t |= (uint32_t)(uint8_t)p[2] << 16;
        }
        __asm__("sxtb16 %[o], %[t], ror #8\n\t"
                "sxtb16 %[e], %[t]"
                : [e] "=&r"(e), [o] "=&r"(o)
                : [t] "r"(t));
        q[0] = e;
        q[1] = o;
    }
}

/* The matvec kernels of a cell step on the DSP extension read W_ih and W_hh in the order the
 * generated header stores them under EDGERNN_DSP (edgernn.backends.c.tables.dsp_order), where
 * each block of four rows is one run of 4 * cols bytes:
 *     for each group of four columns q:  row 0's word, row 1's, row 2's, row 3's   (16 bytes)
 *     for each of the last cols % 4 columns c:  rows 0..3 of column c              (4 bytes)
 * and the last rows % 4 rows follow, row-major. So the kernel walks one pointer, two LDRDs bring
 * a column group's four words (the tables are word-aligned on these cores: EDGERNN_FLASH), and
 * one SXTB16 pair per word feeds two SMLADs with x expanded once for the four rows: 16 MACs in 19
 * instructions with a widened x, 21 with an int8 one. A last column is one word too: SXTB16
 * splits it into (row 0, row 2) and (row 1, row 3), and SMLABB/SMLATB multiply the halves by the
 * column's x.
 *
 * Every whole block runs in one assembly block, the loop over blocks included (from C, each
 * block cost about 45 instructions of set-up and spills; here 18). The block's four sums stay in
 * registers from the first column to the store; what the loop over blocks needs besides -- the
 * out cursor, where the blocks end, x and the bias cursor -- lives in four words the code pushes
 * below the stack pointer, because the thirteen registers a block uses are all the compilers
 * can give when r7 is a frame pointer. They arrive in a0-a3 and are stored first. */
#define EDGERNN_DSP4_BLOCKS(init, group, tail)                                                         \
    "strd   %[a0], %[a1], [sp, #-16]!\n\t" /* out, end of the blocks */                                \
    "strd   %[a2], %[a3], [sp, #8]\n\t"    /* x, bias */                                               \
    "1:\n\t"                                                                                           \
    "ldr    %[px], [sp, #8]\n\t" init                                                                  \
    "lsrs   %[n], %[s], #3\n\t"                                                                        \
    "beq    3f\n\t"                                                                                    \
    "2:\n\t" group group                                                                               \
    "subs   %[n], %[n], #1\n\t"                                                                        \
    "bne    2b\n\t"                                                                                    \
    "3:\n\t"                                                                                           \
    "tst    %[s], #4\n\t"                                                                              \
    "beq    4f\n\t" group                                                                              \
    "4:\n\t" tail                                                                                      \
    "ldr    %[t], [sp]\n\t"                                                                            \
    "strd   %[a0], %[a1], [%[t]], #8\n\t"                                                              \
    "strd   %[a2], %[a3], [%[t]], #8\n\t"                                                              \
    "str    %[t], [sp]\n\t"                                                                            \
    "ldr    %[t], [sp, #4]\n\t"                                                                        \
    "cmp    %[p], %[t]\n\t"                                                                            \
    "bne    1b\n\t"                                                                                    \
    "add    sp, sp, #16\n\t"

#define EDGERNN_DSP4_INIT_BIAS                                                                         \
    "ldr    %[t], [sp, #12]\n\t"                                                                       \
    "ldrd   %[a0], %[a1], [%[t]], #8\n\t"                                                              \
    "ldrd   %[a2], %[a3], [%[t]], #8\n\t"                                                              \
    "str    %[t], [sp, #12]\n\t"

#define EDGERNN_DSP4_INIT_ZERO                                                                         \
    "movs   %[a0], #0\n\t"                                                                             \
    "movs   %[a1], #0\n\t"                                                                             \
    "movs   %[a2], #0\n\t"                                                                             \
    "movs   %[a3], #0\n\t"

/* Two rows' words of one column group (one LDRD) against the expanded x in xe, xo. */
#define EDGERNN_DSP4_ROW_PAIR(a, b)                                                                    \
    "ldrd   %[w], %[u], [%[p]], #8\n\t"                                                                \
    "sxtb16 %[t], %[w]\n\t"                                                                            \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                    \
    "smlad  %[" a "], %[t], %[xe], %[" a "]\n\t"                                                       \
    "smlad  %[" a "], %[w], %[xo], %[" a "]\n\t"                                                       \
    "sxtb16 %[t], %[u]\n\t"                                                                            \
    "sxtb16 %[u], %[u], ror #8\n\t"                                                                    \
    "smlad  %[" b "], %[t], %[xe], %[" b "]\n\t"                                                       \
    "smlad  %[" b "], %[u], %[xo], %[" b "]\n\t"

/* One column group against an int8 x: x3 x2 x1 x0 split into (x0, x2) and (x1, x3). */
#define EDGERNN_DSP4_GROUP_S8                                                                          \
    "ldr    %[xe], [%[px]], #4\n\t"                                                                    \
    "sxtb16 %[xo], %[xe], ror #8\n\t"                                                                  \
    "sxtb16 %[xe], %[xe]\n\t" EDGERNN_DSP4_ROW_PAIR("a0", "a1") EDGERNN_DSP4_ROW_PAIR("a2", "a3")

/* One column group against a widened x (edgernn_widen_dsp): one LDRD brings (x0, x2), (x1, x3). */
#define EDGERNN_DSP4_GROUP_S16                                                                         \
    "ldrd   %[xe], %[xo], [%[px]], #8\n\t" EDGERNN_DSP4_ROW_PAIR("a0", "a1") EDGERNN_DSP4_ROW_PAIR("a2", "a3")

/* One of the last cols % 4 columns, its x (sign-extended) in xe. */
#define EDGERNN_DSP4_LAST_COL                                                                          \
    "ldr    %[w], [%[p]], #4\n\t"                                                                      \
    "sxtb16 %[t], %[w]\n\t"         /* (row 0, row 2) */                                               \
    "sxtb16 %[w], %[w], ror #8\n\t" /* (row 1, row 3) */                                               \
    "smlabb %[a0], %[t], %[xe], %[a0]\n\t"                                                             \
    "smlatb %[a2], %[t], %[xe], %[a2]\n\t"                                                             \
    "smlabb %[a1], %[w], %[xe], %[a1]\n\t"                                                             \
    "smlatb %[a3], %[w], %[xe], %[a3]\n\t"

/* The last cols % 4 columns against an int8 x. */
#define EDGERNN_DSP4_TAIL_S8                                                                           \
    "ands   %[n], %[s], #3\n\t"                                                                        \
    "beq    6f\n\t"                                                                                    \
    "5:\n\t"                                                                                           \
    "ldrsb  %[xe], [%[px]], #1\n\t" EDGERNN_DSP4_LAST_COL                                              \
    "subs   %[n], %[n], #1\n\t"                                                                        \
    "bne    5b\n\t"                                                                                    \
    "6:\n\t"

/* The last cols % 4 columns against a widened x: the elements 4q, 4q + 1 and 4q + 2 of the last
 * pair of words lie at byte offsets 0, 4 and 2. */
#define EDGERNN_DSP4_TAIL_S16                                                                          \
    "ands   %[n], %[s], #3\n\t"                                                                        \
    "beq    6f\n\t"                                                                                    \
    "ldrsh  %[xe], [%[px]]\n\t" EDGERNN_DSP4_LAST_COL                                                  \
    "cmp    %[n], #2\n\t"                                                                              \
    "blo    6f\n\t"                                                                                    \
    "ldrsh  %[xe], [%[px], #4]\n\t" EDGERNN_DSP4_LAST_COL                                              \
    "beq    6f\n\t"                                                                                    \
    "ldrsh  %[xe], [%[px], #2]\n\t" EDGERNN_DSP4_LAST_COL                                              \
    "6:\n\t"

/* The block loop of EDGERNN_DSP4_BLOCKS on the locals of the two functions below, which differ only
 * in how a block starts and what x is. */
#define EDGERNN_DSP4_ASM(init, group, tail)                                                            \
    __asm__ volatile(EDGERNN_DSP4_BLOCKS(init, group, tail)                                            \
                     : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [p] "+&r"(p),     \
                       [px] "=&r"(px), [n] "=&r"(n), [xe] "=&r"(xe), [xo] "=&r"(xo), [w] "=&r"(wv),     \
                       [u] "=&r"(u), [t] "=&r"(t)                                                      \
                     : [s] "r"(cols)                                                                   \
                     : "cc", "memory")

/* out[r] = bias[r] + w_r . x for the first rows & ~3 rows (rows >= 4) of a matrix in the DSP
 * order; returns the rows done. Every operand is early-clobber, "+&r" too: the cursors are
 * written before s is last read, and clang gives an input the register of a "+r" operand when it
 * can prove both hold the same value (seen with rows / 4 == cols). */
static inline int32_t edgernn_blocks_s8_dsp(const int8_t *w, const int8_t *x, const int32_t *bias, int32_t rows,
                                            int32_t cols, int32_t *out)
{
    uint32_t a0 = (uint32_t)(uintptr_t)out, a2 = (uint32_t)(uintptr_t)x, a3 = (uint32_t)(uintptr_t)bias;
    uint32_t a1 = (uint32_t)(uintptr_t)(w + (size_t)(rows & ~3) * (size_t)cols);
    const int8_t *p = w;
    const int8_t *px;
    uint32_t n, xe, xo, wv, u, t;
    EDGERNN_DSP4_ASM(EDGERNN_DSP4_INIT_BIAS, EDGERNN_DSP4_GROUP_S8, EDGERNN_DSP4_TAIL_S8);
    return rows & ~3;
}

/* out[r] = w_r . x for the first rows & ~3 rows (rows >= 4) of a matrix in the DSP order, x
 * widened by edgernn_widen_dsp. */
static inline int32_t edgernn_blocks_s16_dsp(const int8_t *w, const uint32_t *xw, int32_t rows, int32_t cols,
                                             int32_t *out)
{
    uint32_t a0 = (uint32_t)(uintptr_t)out, a2 = (uint32_t)(uintptr_t)xw, a3 = 0;
    uint32_t a1 = (uint32_t)(uintptr_t)(w + (size_t)(rows & ~3) * (size_t)cols);
    const int8_t *p = w;
    const int8_t *px;
    uint32_t n, xe, xo, wv, u, t;
    EDGERNN_DSP4_ASM(EDGERNN_DSP4_INIT_ZERO, EDGERNN_DSP4_GROUP_S16, EDGERNN_DSP4_TAIL_S16);
    return rows & ~3;
}

/* ---- The fused cell step (a feature cell stored as one stream) ----
 *
 * At small H the separate passes cost more than their MACs: at I = 1, H = 16, of ~840
 * instructions a step, the input product took ~150 (a call, and per block of four rows the same
 * bias, loop and store overhead as the recurrent one for a single column) and the requantization
 * ~230 (per unit four loads and three of loop). So one pass over the blocks does all of a block:
 *     X  acc_x = bias + W_ih x             (a0-a3, then four words below the stack pointer)
 *     R  acc_h = W_hh h, h widened         (a0-a3)
 *     Q  h[j] = LUT[clamp(z_j)] for the block's four units, from acc_x, acc_h in registers
 * reading everything it needs, in that order, from one pointer: the generator stores such a cell
 * as one stream (edgernn.backends.c.tables.dsp_stream), per block
 *     the 4 biases (4 words), W_ih and W_hh in the DSP order, (M_x, M_h) of each row (8 words),
 * so no pass keeps a cursor of its own. The new state is written in place: R reads the widened
 * copy of the old one. 148 instructions a block at I = 1, H = 16 (X 21, R 85, Q 42).
 *
 * Q is edgernn_tanh_fast's arithmetic, for n >= 33 only (the generator streams no other cell): with
 * s = n - 32, z + 512 = floor((hi + 2^(s-1)) / 2^s) + 512 = (hi + c) ASR s, c = 2^(s-1) + 512 2^s,
 * where hi is the high word of the signed 64-bit v = acc_x M_x + acc_h M_h (SMULL + SMLAL): the
 * rounding term 2^(n-1) = 2^(s-1) 2^32 has no low word, and ASR is the floor (this is assembly).
 * USAT #10 clamps to [0, 1023], the table's range. Every value is edgernn_tanh_fast's.
 *
 * R's first column group starts the sums with SMUAD (no zeroing), so R walks the remaining
 * H - 4 columns. Both column counts live in one register, s = (H - 4) << 16 | I (I <= 2047:
 * EDGERNN_DSP_STREAM_MAX_INPUT), each tested with immediates that Thumb-2 encodes. The other
 * values the loop needs are in twelve bytes pushed below the stack pointer, with the four acc_x:
 *     [0] x  [4] widened h  [8] c  [12] s  [16] LUT  [20] h cursor  [24] end of the blocks
 *     [32..44] acc_x of the block's four rows
 * They arrive in a0-a3, n, xe, xo and are stored first. */
#define EDGERNN_DSP_STREAM_MAX_INPUT 2047 /* 11 bits: X's eight-column loop count is s & 0x7F8 */
#define EDGERNN_DSP_STREAM_MIN_SHIFT 33   /* the rounding term 2^(n-1) lies in the high word */
#define EDGERNN_DSP_STREAM_MAX_SHIFT 40   /* every shift the contract allows: c < 2^18 */

/* Whether the generator stored the cell as one stream: edgernn.backends.c.tables.dsp_stream_cell,
 * the same test. Such a cell's descriptor points at the stream (w_hh) and, for the last hidden % 4
 * rows, at their bias, M_x, M_h and W_ih in it (their W_hh rows follow their M_h, row-major). */
#define EDGERNN_DSP_STREAM(cell)                                                                       \
    ((cell)->table == NULL && (cell)->hidden >= 4 && (cell)->shift >= EDGERNN_DSP_STREAM_MIN_SHIFT &&   \
     (cell)->shift <= EDGERNN_DSP_STREAM_MAX_SHIFT && (cell)->input <= EDGERNN_DSP_STREAM_MAX_INPUT)

/* The first column group of R: SMUAD starts each row's sum. */
#define EDGERNN_DSP4_FIRST_PAIR(a, b)                                                                  \
    "ldrd   %[w], %[u], [%[p]], #8\n\t"                                                                \
    "sxtb16 %[t], %[w]\n\t"                                                                            \
    "sxtb16 %[w], %[w], ror #8\n\t"                                                                    \
    "smuad  %[" a "], %[t], %[xe]\n\t"                                                                 \
    "smlad  %[" a "], %[w], %[xo], %[" a "]\n\t"                                                       \
    "sxtb16 %[t], %[u]\n\t"                                                                            \
    "sxtb16 %[u], %[u], ror #8\n\t"                                                                    \
    "smuad  %[" b "], %[t], %[xe]\n\t"                                                                 \
    "smlad  %[" b "], %[u], %[xo], %[" b "]\n\t"

/* Unit i of the block (acc_h in a, acc_x at [sp, #off]) to its int8 state, through the table;
 * xe = c, xo = s, px = LUT, n = the h cursor. */
#define EDGERNN_DSP4_UNIT(a, off)                                                                      \
    "ldr    %[w], [sp, #" off "]\n\t"                                                                  \
    "ldrd   %[t], %[u], [%[p]], #8\n\t" /* M_x, M_h */                                                 \
    "smull  %[w], %[t], %[w], %[t]\n\t"                                                                \
    "smlal  %[w], %[t], %[" a "], %[u]\n\t" /* t = hi(v) */                                            \
    "add    %[t], %[t], %[xe]\n\t"                                                                     \
    "asr    %[t], %[t], %[xo]\n\t"                                                                     \
    "usat   %[t], #10, %[t]\n\t"                                                                       \
    "ldrb   %[t], [%[px], %[t]]\n\t"                                                                   \
    "strb   %[t], [%[n]], #1\n\t"

#define EDGERNN_DSP_STREAM_BLOCKS                                                                      \
    "strd   %[a0], %[a1], [sp, #-48]!\n\t" /* x, widened h */                                          \
    "strd   %[a2], %[a3], [sp, #8]\n\t"    /* c, s */                                                  \
    "strd   %[n], %[xe], [sp, #16]\n\t"    /* LUT, h */                                                \
    "str    %[xo], [sp, #24]\n\t"          /* end of the blocks */                                     \
    "1:\n\t" /* X: acc_x = bias + W_ih x */                                                            \
    "ldrd   %[a0], %[a1], [%[p]], #8\n\t"                                                              \
    "ldrd   %[a2], %[a3], [%[p]], #8\n\t"                                                              \
    "ldr    %[px], [sp]\n\t"                                                                           \
    "ands   %[n], %[s], #0x7F8\n\t"                                                                    \
    "beq    3f\n\t"                                                                                    \
    "2:\n\t" EDGERNN_DSP4_GROUP_S8 EDGERNN_DSP4_GROUP_S8                                               \
    "subs   %[n], %[n], #8\n\t"                                                                        \
    "bne    2b\n\t"                                                                                    \
    "3:\n\t"                                                                                           \
    "tst    %[s], #4\n\t"                                                                              \
    "beq    4f\n\t" EDGERNN_DSP4_GROUP_S8 "4:\n\t" EDGERNN_DSP4_TAIL_S8                                \
    "strd   %[a0], %[a1], [sp, #32]\n\t"                                                               \
    "strd   %[a2], %[a3], [sp, #40]\n\t"                                                               \
    /* R: acc_h = W_hh h, the first group apart */                                                     \
    "ldr    %[px], [sp, #4]\n\t"                                                                       \
    "ldrd   %[xe], %[xo], [%[px]], #8\n\t" EDGERNN_DSP4_FIRST_PAIR("a0", "a1")                         \
        EDGERNN_DSP4_FIRST_PAIR("a2", "a3") "lsrs   %[n], %[s], #19\n\t"                               \
    "beq    8f\n\t"                                                                                    \
    "7:\n\t" EDGERNN_DSP4_GROUP_S16 EDGERNN_DSP4_GROUP_S16                                             \
    "subs   %[n], %[n], #1\n\t"                                                                        \
    "bne    7b\n\t"                                                                                    \
    "8:\n\t"                                                                                           \
    "tst    %[s], #0x40000\n\t"                                                                        \
    "beq    9f\n\t" EDGERNN_DSP4_GROUP_S16 "9:\n\t" /* the last H % 4 columns (EDGERNN_DSP4_TAIL_S16) */ \
    "ands   %[n], %[s], #0x30000\n\t"                                                                  \
    "beq    10f\n\t"                                                                                   \
    "ldrsh  %[xe], [%[px]]\n\t" EDGERNN_DSP4_LAST_COL "cmp    %[n], #0x20000\n\t"                      \
    "blo    10f\n\t"                                                                                   \
    "ldrsh  %[xe], [%[px], #4]\n\t" EDGERNN_DSP4_LAST_COL "beq    10f\n\t"                             \
    "ldrsh  %[xe], [%[px], #2]\n\t" EDGERNN_DSP4_LAST_COL "10:\n\t" /* Q */                           \
    "ldrd   %[xe], %[xo], [sp, #8]\n\t"                                                                \
    "ldrd   %[px], %[n], [sp, #16]\n\t" EDGERNN_DSP4_UNIT("a0", "32") EDGERNN_DSP4_UNIT("a1", "36")    \
        EDGERNN_DSP4_UNIT("a2", "40") EDGERNN_DSP4_UNIT("a3", "44") "str    %[n], [sp, #20]\n\t"       \
    "ldr    %[t], [sp, #24]\n\t"                                                                       \
    "cmp    %[p], %[t]\n\t"                                                                            \
    "bne    1b\n\t"                                                                                    \
    "add    sp, sp, #48\n\t"

/* clang -Wpedantic flags a string literal past C99's 4095 characters; an assembly template is
 * one, and this one is longer (an assembler has no such limit). */
#if defined(__clang__)
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Woverlength-strings"
#endif
/* The first hidden & ~3 units of a streamed cell (EDGERNN_DSP_STREAM): h[j] for j < hidden & ~3
 * from x and the old state, widened in hw (edgernn_widen_dsp). Operands as edgernn_blocks_s8_dsp. */
static inline void edgernn_stream_blocks_dsp(const int32_t *stream, const int8_t *x, const uint32_t *hw,
                                             int32_t input, int32_t hidden, uint32_t shift, int8_t *h)
{
    const uint32_t s = shift - 32u;
    uint32_t a0 = (uint32_t)(uintptr_t)x, a1 = (uint32_t)(uintptr_t)hw;
    uint32_t a2 = ((uint32_t)1 << (s - 1u)) + ((uint32_t)(-EDGERNN_Z_MIN) << s), a3 = s;
    uint32_t n = (uint32_t)(uintptr_t)edgernn_tanh_lut, xe = (uint32_t)(uintptr_t)h;
    /* a block is 4 (bias) + input + hidden (W_ih, W_hh) + 8 (M_x, M_h) words */
    uint32_t xo = (uint32_t)(uintptr_t)(stream + (size_t)(hidden >> 2) * (size_t)(input + hidden + 12));
    const int32_t *p = stream;
    const int8_t *px;
    uint32_t wv, u, t;
    const uint32_t counts = ((uint32_t)(hidden - 4) << 16) | (uint32_t)input;
    __asm__ volatile(EDGERNN_DSP_STREAM_BLOCKS
                     : [a0] "+&r"(a0), [a1] "+&r"(a1), [a2] "+&r"(a2), [a3] "+&r"(a3), [p] "+&r"(p),
                       [px] "=&r"(px), [n] "+&r"(n), [xe] "+&r"(xe), [xo] "+&r"(xo), [w] "=&r"(wv),
                       [u] "=&r"(u), [t] "=&r"(t)
                     : [s] "r"(counts)
                     : "cc", "memory");
}
#if defined(__clang__)
#pragma clang diagnostic pop
#endif

#endif /* EDGERNN_DSP */

#if EDGERNN_SIMD
/* The host matvec, four rows a pass. Exact: every product fits the lanes it is formed in
 * (|w x| <= 127 * 128; on NEON two of them summed in an int16 lane, <= 32,512; PMADDWD sums two
 * into an int32 lane), and every partial sum is a sum over a subset of a row, which the
 * converter's bound |sum| < 2^31 covers. */
#if EDGERNN_SIMD == 1
/* x86-64. x is widened to int16 once per call, before the rows (widening it again for every four
 * rows cost as much as the products at the default shape), in pieces of EDGERNN_SSE_PIECE
 * columns. A row is then its own loads, widening and PMADDWDs: 16 columns a group; then, for the
 * last cols % 16 columns, an 8-column group and one more group of the row's last eight columns
 * with the x lanes already counted set to zero, so that every load stays inside its row. Rows
 * shorter than eight columns are plain C.
 *
 * Widening the weights is the inner loop's cost. SSE4.1 sign-extends them as it loads them
 * (PMOVSXBW). SSE2 cannot, and does not sign-extend them at all: a weight byte in the high half of
 * a 16-bit lane whose low byte is zero is w 2^8 exactly -- an odd column's byte already is, once
 * the even byte is cleared (AND), an even column's after a shift left, and an 8-column group's
 * after unpacking against zero -- one instruction per eight weights, where sign-extending takes two
 * (measured: fewer instructions, and the arithmetic shifts it saves compete with PMADDWD for the
 * same two ports). So on SSE2 the sums are 2^8 times too large until the end of the piece, which
 * shifts them back (exactly: they are multiples of 2^8). They fit: |w| <= 127 and |x| <= 128, so a
 * piece's scaled sum is at most 2^8 * 512 * 16,256 < 2^31. */
#define EDGERNN_SSE_PIECE 512 /* columns widened ahead: 1 KiB of stack, on hosts only */
#if defined(__SSE4_1__)
#define EDGERNN_SSE_SCALE 0 /* log2 of the factor the weights carry */
#else
#define EDGERNN_SSE_SCALE 8
#endif

/* Eight int8 values at any address, sign-extended to eight int16 lanes. */
static inline __m128i edgernn_load8_s16(const int8_t *p)
{
    const __m128i v = _mm_loadl_epi64((const __m128i *)(const void *)p);
#if defined(__SSE4_1__)
    return _mm_cvtepi8_epi16(v);
#else /* each byte into the high half of its 16-bit lane, then an arithmetic shift down */
    return _mm_srai_epi16(_mm_unpacklo_epi8(v, v), 8);
#endif
}

/* Eight weights at any address as eight int16 lanes, times 2^EDGERNN_SSE_SCALE. */
static inline __m128i edgernn_load8_w16(const int8_t *p)
{
#if defined(__SSE4_1__)
    return edgernn_load8_s16(p);
#else
    return _mm_unpacklo_epi8(_mm_setzero_si128(), _mm_loadl_epi64((const __m128i *)(const void *)p));
#endif
}

/* Sixteen weights at any address as two vectors of eight int16 lanes, likewise: with SSE4.1 in
 * column order, on SSE2 the even columns and the odd ones (a byte already in the high half of its
 * 16-bit lane only needs the other byte cleared: one AND, where unpacking needs a zeroed register
 * and a shuffle). x is widened in the same order (edgernn_blocks_sse), so the PMADDWDs sum the same
 * sixteen products. */
static inline void edgernn_load16_w16(const int8_t *p, __m128i *lo, __m128i *hi)
{
#if defined(__SSE4_1__)
    *lo = edgernn_load8_s16(p);
    *hi = edgernn_load8_s16(p + 8);
#else
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    *lo = _mm_slli_epi16(v, 8);                   /* even bytes, times 2^8 */
    *hi = _mm_and_si128(v, _mm_set1_epi16(-256)); /* odd bytes (mask 0xFF00), times 2^8 */
#endif
}

/* (sum of a's lanes, of b's, of c's, of d's) */
static inline __m128i edgernn_sum4_s32(__m128i a, __m128i b, __m128i c, __m128i d)
{
    const __m128i ab = _mm_add_epi32(_mm_unpacklo_epi32(a, b), _mm_unpackhi_epi32(a, b));
    const __m128i cd = _mm_add_epi32(_mm_unpacklo_epi32(c, d), _mm_unpackhi_epi32(c, d));
    return _mm_add_epi32(_mm_unpacklo_epi64(ab, cd), _mm_unpackhi_epi64(ab, cd));
}

/* out[r] = bias[r] + w_r . x for the first rows & ~3 rows; cols >= 8. */
static inline void edgernn_blocks_sse(const int8_t *w, const int8_t *x, const int32_t *bias, int32_t rows,
                                      int32_t cols, int32_t *out)
{
    const size_t n = (size_t)cols;
    __m128i xw[EDGERNN_SSE_PIECE / 8];
    int32_t c0;
    for (c0 = 0; c0 < cols; c0 += EDGERNN_SSE_PIECE) {
        const int32_t c1 = (cols - c0 > EDGERNN_SSE_PIECE) ? c0 + EDGERNN_SSE_PIECE : cols;
        const int32_t groups = (c1 - c0) >> 4;
        const size_t c8 = (size_t)(c0 + 16 * groups); /* the 8-column group, if 8 columns are left */
        const int32_t has8 = (c1 - (int32_t)c8) >= 8;
        const int32_t rest = (c1 - (int32_t)c8) & 7; /* counted by the row's last eight columns */
        const size_t ct = (size_t)c1 - 8;
        __m128i x8 = _mm_setzero_si128(), xt = x8;
        int32_t g, r;
        for (g = 0; g < 2 * groups; ++g) {
#if defined(__SSE4_1__)
            xw[g] = edgernn_load8_s16(x + c0 + 8 * g);
#else /* even columns of the 16-column group g / 2, then its odd ones (edgernn_load16_w16) */
            const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(x + c0 + 16 * (g >> 1)));
            xw[g] = (g & 1) ? _mm_srai_epi16(v, 8) : _mm_srai_epi16(_mm_slli_epi16(v, 8), 8);
#endif
        }
        if (has8) {
            x8 = edgernn_load8_s16(x + c8);
        }
        if (rest != 0) {
            const __m128i lane = _mm_set_epi16(7, 6, 5, 4, 3, 2, 1, 0);
            xt = _mm_and_si128(edgernn_load8_s16(x + ct), _mm_cmpgt_epi16(lane, _mm_set1_epi16((short)(7 - rest))));
        }
        for (r = 0; r + 3 < rows; r += 4) {
            const int8_t *p = w + (size_t)r * n;
            __m128i a0 = _mm_setzero_si128(), a1 = a0, a2 = a0, a3 = a0, sums;
            for (g = 0; g < groups; ++g) {
                const size_t c = (size_t)(c0 + 16 * g);
#define EDGERNN_SSE_ROW16(a, row)                                                                      \
    do {                                                                                               \
        __m128i lo, hi;                                                                                \
        edgernn_load16_w16((row) + c, &lo, &hi);                                                       \
        a = _mm_add_epi32(a, _mm_add_epi32(_mm_madd_epi16(lo, xw[2 * g]), _mm_madd_epi16(hi, xw[2 * g + 1]))); \
    } while (0)
                EDGERNN_SSE_ROW16(a0, p);
                EDGERNN_SSE_ROW16(a1, p + n);
                EDGERNN_SSE_ROW16(a2, p + 2 * n);
                EDGERNN_SSE_ROW16(a3, p + 3 * n);
#undef EDGERNN_SSE_ROW16
            }
/* The four rows' eight columns from column c against xv. */
#define EDGERNN_SSE_ROWS8(c, xv)                                                                       \
    do {                                                                                               \
        a0 = _mm_add_epi32(a0, _mm_madd_epi16(edgernn_load8_w16(p + (c)), xv));                        \
        a1 = _mm_add_epi32(a1, _mm_madd_epi16(edgernn_load8_w16(p + n + (c)), xv));                    \
        a2 = _mm_add_epi32(a2, _mm_madd_epi16(edgernn_load8_w16(p + 2 * n + (c)), xv));                \
        a3 = _mm_add_epi32(a3, _mm_madd_epi16(edgernn_load8_w16(p + 3 * n + (c)), xv));                \
    } while (0)
            if (has8) {
                EDGERNN_SSE_ROWS8(c8, x8);
            }
            if (rest != 0) {
                EDGERNN_SSE_ROWS8(ct, xt);
            }
#undef EDGERNN_SSE_ROWS8
            sums = _mm_srai_epi32(edgernn_sum4_s32(a0, a1, a2, a3), EDGERNN_SSE_SCALE);
            if (c0 > 0) { /* a later piece of a long row: add to what the earlier ones wrote */
                sums = _mm_add_epi32(sums, _mm_loadu_si128((const __m128i *)(const void *)(out + r)));
            } else if (bias != NULL) {
                sums = _mm_add_epi32(sums, _mm_loadu_si128((const __m128i *)(const void *)(bias + r)));
            }
            _mm_storeu_si128((__m128i *)(void *)(out + r), sums);
        }
    }
}
#else
/* AArch64: out[k] = bias[k] + w_k . x for the four rows w + k cols, k = 0..3; bias may be NULL.
 * The last cols % 8 columns are one more pass over the row's last eight (masked); a row shorter
 * than eight is plain C. */
static inline void edgernn_dot4_neon(const int8_t *w, const int8_t *x, int32_t cols, const int32_t *bias,
                                     int32_t *out)
{
    const size_t n = (size_t)cols;
    int32_t c = 0;
    int32_t k;
    int32x4_t a0 = vdupq_n_s32(0), a1 = a0, a2 = a0, a3 = a0;
    for (; c + 16 <= cols; c += 16) { /* 16 columns: 8 int16 pair sums per row, added into int32 */
        const int8x16_t xv = vld1q_s8(x + c);
        const int8x8_t xl = vget_low_s8(xv);
#define EDGERNN_NEON_ROW(a, row)                                                                       \
    do {                                                                                               \
        const int8x16_t wv = vld1q_s8(row + c);                                                        \
        a = vpadalq_s16(a, vmlal_high_s8(vmull_s8(vget_low_s8(wv), xl), wv, xv));                      \
    } while (0)
        EDGERNN_NEON_ROW(a0, w);
        EDGERNN_NEON_ROW(a1, w + n);
        EDGERNN_NEON_ROW(a2, w + 2 * n);
        EDGERNN_NEON_ROW(a3, w + 3 * n);
#undef EDGERNN_NEON_ROW
    }
    for (; c + 8 <= cols; c += 8) {
        const int8x8_t xv = vld1_s8(x + c);
        a0 = vpadalq_s16(a0, vmull_s8(vld1_s8(w + c), xv));
        a1 = vpadalq_s16(a1, vmull_s8(vld1_s8(w + n + c), xv));
        a2 = vpadalq_s16(a2, vmull_s8(vld1_s8(w + 2 * n + c), xv));
        a3 = vpadalq_s16(a3, vmull_s8(vld1_s8(w + 3 * n + c), xv));
    }
    if (c < cols && cols >= 8) { /* the last eight columns, the lanes counted zeroed */
        const int8x8_t lane = vcreate_s8(0x0706050403020100u);
        const int8x8_t xv = vand_s8(vld1_s8(x + n - 8),
                                    vreinterpret_s8_u8(vcgt_s8(lane, vdup_n_s8((int8_t)(7 - (cols - c))))));
        a0 = vpadalq_s16(a0, vmull_s8(vld1_s8(w + n - 8), xv));
        a1 = vpadalq_s16(a1, vmull_s8(vld1_s8(w + 2 * n - 8), xv));
        a2 = vpadalq_s16(a2, vmull_s8(vld1_s8(w + 3 * n - 8), xv));
        a3 = vpadalq_s16(a3, vmull_s8(vld1_s8(w + 4 * n - 8), xv));
        c = cols;
    }
    {
        int32x4_t sums = vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3));
        if (bias != NULL) {
            sums = vaddq_s32(sums, vld1q_s32(bias));
        }
        vst1q_s32(out, sums);
    }
    for (; c < cols; ++c) {
        const int32_t xv = x[c];
        for (k = 0; k < 4; ++k) {
            out[k] += (int32_t)w[(size_t)k * n + (size_t)c] * xv;
        }
    }
}
#endif
#endif /* EDGERNN_SIMD */

#if EDGERNN_RV32
/* RV32IM has no multiply-accumulate and no indexed load: a MAC is LB, MUL and ADD whatever the
 * loop, and what the loop decides is everything else. Four rows a pass, so that each x[c] loaded
 * feeds four MACs; eight columns a step, so that the loads take immediate offsets and one ADDI per
 * pointer serves eight columns: 13 instructions a column and 5 a step, 3.4 a MAC. The last
 * cols % 8 columns are a jump into a run of such columns at the end of the pass (no pointer
 * steps). Eight rows a pass would read x half as often but runs out of registers (both compilers
 * spill in the loop); so do both when free to schedule the loads of a step early, which the
 * barrier after each column forbids: it holds memory and the four sums, so that each column's
 * products are added before the next column's loads (clang otherwise sums products of two columns
 * first, in more registers: 0.03 instructions per MAC more at H = 128). The empty asm on
 * the row pointers keeps clang from rebuilding them as one base plus an index per row and column
 * (as many ADDs as loads). */
#define EDGERNN_RV_COL(c)                                                                              \
    do {                                                                                               \
        const int32_t xv = xp[c];                                                                      \
        a0 += (int32_t)w0[c] * xv;                                                                     \
        a1 += (int32_t)w1[c] * xv;                                                                     \
        a2 += (int32_t)w2[c] * xv;                                                                     \
        a3 += (int32_t)w3[c] * xv;                                                                     \
        __asm__ volatile("" : "+r"(a0), "+r"(a1), "+r"(a2), "+r"(a3) : : "memory");                  \
    } while (0)

/* out[r] = bias[r] + w_r . x for the first rows & ~3 rows; returns how many. Each pass starts
 * where the last one's row 3 ended. */
static inline int32_t edgernn_blocks_rv32(const int8_t *w, const int8_t *x, const int32_t *bias, int32_t rows,
                                          int32_t cols, int32_t *out)
{
    const size_t n = (size_t)cols;
    const int8_t *x_end = x + (n & ~(size_t)7); /* the blocks of eight end */
    const int32_t tail = cols & 7;
    int32_t *o = out;
    int32_t *const o_end = out + (rows & ~(int32_t)3);
    const int8_t *w0 = w;
    while (o != o_end) {
        const int8_t *w1 = w0 + n, *w2 = w1 + n, *w3 = w2 + n;
        const int8_t *xp = x;
        int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
        __asm__("" : "+r"(w1), "+r"(w2), "+r"(w3), "+r"(xp));
        if (bias != NULL) {
            a0 = bias[0];
            a1 = bias[1];
            a2 = bias[2];
            a3 = bias[3];
            bias += 4;
        }
        while (xp != x_end) {
            EDGERNN_RV_COL(0);
            EDGERNN_RV_COL(1);
            EDGERNN_RV_COL(2);
            EDGERNN_RV_COL(3);
            EDGERNN_RV_COL(4);
            EDGERNN_RV_COL(5);
            EDGERNN_RV_COL(6);
            EDGERNN_RV_COL(7);
            xp += 8;
            w0 += 8;
            w1 += 8;
            w2 += 8;
            w3 += 8;
        }
        switch (tail) {
        case 7:
            EDGERNN_RV_COL(6);
            /* fall through */
        case 6:
            EDGERNN_RV_COL(5);
            /* fall through */
        case 5:
            EDGERNN_RV_COL(4);
            /* fall through */
        case 4:
            EDGERNN_RV_COL(3);
            /* fall through */
        case 3:
            EDGERNN_RV_COL(2);
            /* fall through */
        case 2:
            EDGERNN_RV_COL(1);
            /* fall through */
        case 1:
            EDGERNN_RV_COL(0);
            /* fall through */
        default:
            break;
        }
        o[0] = a0;
        o[1] = a1;
        o[2] = a2;
        o[3] = a3;
        o += 4;
        w0 = w3 + tail;
    }
    return rows & ~(int32_t)3;
}
#undef EDGERNN_RV_COL
#endif /* EDGERNN_RV32 */

#if EDGERNN_V6M_ASM
/* out[r] = bias[r] (or 0) + w_r . x over cols columns for `rows` (1 or 2: the rows left over by
 * a matrix of fewer than four rows) consecutive rows of w, on Armv6-M. Not inlined: its named
 * high registers would make every edgernn_matvec_s8 call save and restore them (GCC).
 * Each LDRSB is register-offset (the only signed byte load Thumb-1 has), so all pointers sit at
 * their rows' ends and one index climbs from -cols to 0: its ADDS sets the flags for BNE. Every
 * x[c] loaded feeds all the rows; the sums live in r8 and r9 (ADD rd, rm reaches them), named
 * and clobbered rather than asked for with "h" operands, which GCC -Os rejects ("inconsistent
 * operand constraints"). GCC assembles inline Thumb-1 code in divided syntax unless told: hence
 * .syntax unified. */
#define EDGERNN_V6M_ROW(w, a)                                                                          \
    "ldrsb  %[t], [%[" w "], %[i]]\n\t"                                                               \
    "muls   %[t], %[xv], %[t]\n\t"                                                                    \
    "add    " a ", %[t]\n\t"

EDGERNN_KERNEL void edgernn_dot_v6m(const int8_t *w, const int8_t *x, const int32_t *bias, int32_t rows,
                                     int32_t cols, int32_t *out)
{
    const int8_t *x_end = x + cols;
    const int8_t *w0_end = w + cols;
    int32_t i = -cols;
    int32_t xv = (bias != NULL) ? bias[0] : 0; /* the starting sums arrive in xv and t */
    int32_t t;
    if (rows == 2) {
        const int8_t *w1_end = w0_end + cols;
        t = (bias != NULL) ? bias[1] : 0;
        __asm__ volatile(".syntax unified\n\t"
                         "mov    r8, %[xv]\n\t"
                         "mov    r9, %[t]\n\t"
                         "1:\n\t"
                         "ldrsb  %[xv], [%[x], %[i]]\n\t" EDGERNN_V6M_ROW("w0", "r8") EDGERNN_V6M_ROW("w1", "r9")
                         "adds   %[i], #1\n\t"
                         "bne    1b\n\t"
                         "mov    %[xv], r8\n\t"
                         "mov    %[t], r9\n\t"
                         : [i] "+l"(i), [xv] "+l"(xv), [t] "+l"(t)
                         : [x] "l"(x_end), [w0] "l"(w0_end), [w1] "l"(w1_end)
                         : "r8", "r9", "cc", "memory");
        out[1] = t;
    } else {
        __asm__ volatile(".syntax unified\n\t"
                         "mov    r8, %[xv]\n\t"
                         "1:\n\t"
                         "ldrsb  %[xv], [%[x], %[i]]\n\t" EDGERNN_V6M_ROW("w0", "r8")
                         "adds   %[i], #1\n\t"
                         "bne    1b\n\t"
                         "mov    %[xv], r8\n\t"
                         : [i] "+l"(i), [xv] "+l"(xv), [t] "=&l"(t)
                         : [x] "l"(x_end), [w0] "l"(w0_end)
                         : "r8", "cc", "memory");
    }
    out[0] = xv;
}

#define EDGERNN_V6M_4ROWS                                                                           \
    "ldrsb  r3, [r1, r2]\n\t"                                                                          \
    "ldrsb  r4, [r0, r2]\n\t"                                                                          \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r8, r4\n\t"                                                                                \
    "ldrsb  r4, [r5, r2]\n\t"                                                                          \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r9, r4\n\t"                                                                                \
    "ldrsb  r4, [r6, r2]\n\t"                                                                          \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r10, r4\n\t"                                                                               \
    "ldrsb  r4, [r7, r2]\n\t"                                                                          \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r11, r4\n\t"

/* The naked passes' entry and exit: AAPCS keeps r4-r11 across a call, and Thumb-1 PUSH and POP
 * reach only the low registers and lr, so r8-r11 go through r4-r7. */
#define EDGERNN_V6M_SAVE_R4_R11                                                                        \
    "push   {r4, r5, r6, r7, lr}\n\t"                                                                  \
    "mov    r4, r8\n\t"                                                                               \
    "mov    r5, r9\n\t"                                                                               \
    "mov    r6, r10\n\t"                                                                              \
    "mov    r7, r11\n\t"                                                                              \
    "push   {r4, r5, r6, r7}\n\t"
#define EDGERNN_V6M_RESTORE_R4_R11_RETURN                                                              \
    "pop    {r4, r5, r6, r7}\n\t"                                                                     \
    "mov    r8, r4\n\t"                                                                               \
    "mov    r9, r5\n\t"                                                                               \
    "mov    r10, r6\n\t"                                                                              \
    "mov    r11, r7\n\t"                                                                              \
    "pop    {r4, r5, r6, r7, pc}\n\t"

/* out[r] = bias[r] (or 0) + w_r . x for rows = 4 p rows (p >= 1) of a row-major matrix (the rows
 * after the eight-row blocks, edgernn_dot8_passes_v6m), four rows a pass, the loop over passes in
 * the assembly too: from C, each pass cost ~55 instructions of set-up (pointers, bias
 * tests, spills of the high registers); here it costs about 35. Naked, so that it may use all
 * eight low registers (an inline-assembly block may not take r7 where it is a frame pointer):
 * four row-end pointers, x, the index, the loaded x[c] and a product; the four sums in r8-r11.
 * Across passes bias rides in lr, out in r12, cols and the rows left on the stack. An odd column
 * count enters the two-column loop at its second half, so one loop serves both parities.
 * Arguments (AAPCS): r0 w, r1 x, r2 bias or NULL, r3 rows, [sp] cols >= 1, [sp + 4] out. */
#define EDGERNN_ARG __attribute__((unused)) /* read by the assembly only */
__attribute__((naked, noinline, unused)) static void
edgernn_dot4_passes_v6m(EDGERNN_ARG const int8_t *w, EDGERNN_ARG const int8_t *x, EDGERNN_ARG const int32_t *bias,
                        EDGERNN_ARG int32_t rows, EDGERNN_ARG int32_t cols, EDGERNN_ARG int32_t *out)
{
    __asm__ volatile(".syntax unified\n\t"
                     EDGERNN_V6M_SAVE_R4_R11
                     "ldr    r4, [sp, #36]\n\t" /* cols */
                     "ldr    r5, [sp, #40]\n\t" /* out */
                     "sub    sp, #12\n\t"
                     "str    r4, [sp, #0]\n\t"
                     "negs   r6, r4\n\t"        /* the column loop's entry: (-cols) % 4 column */
                     "movs   r7, #3\n\t"        /* blocks of 28 bytes past its start, so that */
                     "ands   r6, r7\n\t"        /* the index reaches 0 at a block's end */
                     "movs   r7, #28\n\t"
                     "muls   r6, r7, r6\n\t"
                     "adr    r7, 1f\n\t"
                     "adds   r6, r6, r7\n\t"
                     "adds   r6, #1\n\t" /* a Thumb address for BX */
                     "str    r6, [sp, #8]\n\t"
                     "mov    r12, r5\n\t"
                     "mov    lr, r2\n\t"
                     "adds   r1, r1, r4\n\t" /* x end */
                     "lsls   r3, r3, #2\n\t"
                     "adds   r3, r5, r3\n\t"
                     "str    r3, [sp, #4]\n\t" /* out end */
                     "adds   r0, r0, r4\n\t" /* row 0's end */
                     "2:\n\t"
                     "mov    r3, lr\n\t"
                     "cmp    r3, #0\n\t"
                     "beq    4f\n\t"
                     "ldmia  r3!, {r4, r5, r6, r7}\n\t" /* the row pointers are set below */
                     "mov    lr, r3\n\t"
                     "b      5f\n\t"
                     "4:\n\t"
                     "movs   r4, #0\n\t"
                     "movs   r5, #0\n\t"
                     "movs   r6, #0\n\t"
                     "movs   r7, #0\n\t"
                     "5:\n\t"
                     "mov    r8, r4\n\t"
                     "mov    r9, r5\n\t"
                     "mov    r10, r6\n\t"
                     "mov    r11, r7\n\t"
                     "ldr    r4, [sp, #0]\n\t"
                     "adds   r5, r0, r4\n\t" /* the row ends: w0, w0 + cols, ... */
                     "adds   r6, r5, r4\n\t"
                     "adds   r7, r6, r4\n\t"
                     "negs   r2, r4\n\t"
                     "ldr    r4, [sp, #8]\n\t"
                     "bx     r4\n\t"
                     ".p2align 2\n\t" /* for ADR; never executed: BX jumps over the padding */
                     "1:\n\t" EDGERNN_V6M_4ROWS "adds   r2, #1\n\t" EDGERNN_V6M_4ROWS "adds   r2, #1\n\t"
                     EDGERNN_V6M_4ROWS "adds   r2, #1\n\t" EDGERNN_V6M_4ROWS "adds   r2, #1\n\t"
                     "bne    1b\n\t"
                     "ldr    r4, [sp, #0]\n\t"
                     "adds   r0, r7, r4\n\t" /* the next pass's row 0 ends cols after this row 3 */
                     "mov    r3, r12\n\t"
                     "mov    r4, r8\n\t"
                     "mov    r5, r9\n\t"
                     "mov    r6, r10\n\t"
                     "mov    r7, r11\n\t"
                     "stmia  r3!, {r4, r5, r6, r7}\n\t"
                     "mov    r12, r3\n\t"
                     "ldr    r4, [sp, #4]\n\t"
                     "cmp    r3, r4\n\t"
                     "bne    2b\n\t"
                     "add    sp, #12\n\t"
                     EDGERNN_V6M_RESTORE_R4_R11_RETURN);
}
/* One column of an eight-row block: x[c] into r3, then each row's byte (w + 128, LDRB with an
 * immediate offset from the one block pointer r0) times x[c] into its sum. */
#define EDGERNN_V6M_8ROWS(k0, k1, k2, k3, k4, k5, k6, k7)                                            \
    "ldrsb  r3, [r1, r2]\n\t"                                                                          \
    "ldrb   r4, [r0, #" k0 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r8, r4\n\t"                                                                                \
    "ldrb   r4, [r0, #" k1 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r9, r4\n\t"                                                                                \
    "ldrb   r4, [r0, #" k2 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r10, r4\n\t"                                                                               \
    "ldrb   r4, [r0, #" k3 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r11, r4\n\t"                                                                               \
    "ldrb   r4, [r0, #" k4 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "add    r12, r4\n\t"                                                                               \
    "ldrb   r4, [r0, #" k5 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "adds   r5, r5, r4\n\t"                                                                            \
    "ldrb   r4, [r0, #" k6 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "adds   r6, r6, r4\n\t"                                                                            \
    "ldrb   r4, [r0, #" k7 "]\n\t"                                                                     \
    "muls   r4, r3, r4\n\t"                                                                            \
    "adds   r7, r7, r4\n\t"

/* out[r] = bias[r] (or 0) + w_r . x for rows = 8 p rows (p >= 1) of a matrix in the Armv6-M order
 * (edgernn.backends.c.tables.v6m_order): per block of eight rows, column by column, the eight
 * rows' weights as w + 128 (a uint8). One pointer then reaches all eight rows with LDRB immediate
 * offsets, where row-major rows need a pointer register each (edgernn_dot4_passes_v6m: four rows
 * fill the low registers); the x[c] loaded and the index step serve eight MACs instead of four
 * (26 instructions a column where four-row passes take 28, and half the passes). The offset adds
 * 128 sum_c x[c] to every row's sum: computed once a call and taken off the starting sums. Every
 * sum is exact modulo 2^32, and the result is the plain loop's int32.
 * The eight sums live in r8-r12, r5-r7; the column loop takes two columns a step (an odd count
 * enters it at its second column, the block pointer 8 bytes early so the offsets line up). Naked,
 * for all eight low registers. Frame: [sp] -128 sum x, [4] the loop's entry, [8] the bias cursor,
 * [12] the block pointer, [16] -cols, [20] how early the pointer starts (8 (-cols % 4)); the end
 * of x stays in r1, out's cursor rides in lr, the end of out in its argument's place.
 * Arguments (AAPCS): r0 w, r1 x, r2 bias or NULL, r3 rows, [sp] cols >= 1, [sp + 4] out. */
__attribute__((naked, noinline, unused)) static void
edgernn_dot8_passes_v6m(EDGERNN_ARG const int8_t *w, EDGERNN_ARG const int8_t *x, EDGERNN_ARG const int32_t *bias,
                        EDGERNN_ARG int32_t rows, EDGERNN_ARG int32_t cols, EDGERNN_ARG int32_t *out)
{
    __asm__ volatile(".syntax unified\n\t"
                     EDGERNN_V6M_SAVE_R4_R11
                     "sub    sp, #24\n\t"
                     "ldr    r4, [sp, #60]\n\t" /* cols */
                     "str    r2, [sp, #8]\n\t"
                     "adds   r1, r1, r4\n\t" /* x end, in r1 for the whole call */
                     "ldr    r5, [sp, #64]\n\t" /* out */
                     "mov    lr, r5\n\t"
                     "lsls   r3, r3, #2\n\t"
                     "adds   r3, r5, r3\n\t"
                     "str    r3, [sp, #64]\n\t" /* its end, in its place */
                     "negs   r2, r4\n\t" /* sum x, two a step after the first of an odd count */
                     "str    r2, [sp, #16]\n\t"
                     "movs   r5, #0\n\t"
                     "lsrs   r3, r4, #1\n\t" /* the carry: cols is odd */
                     "bcc    7f\n\t"
                     "ldrsb  r5, [r1, r2]\n\t"
                     "adds   r2, #1\n\t"
                     "beq    8f\n\t"
                     "7:\n\t"
                     "adds   r6, r1, #1\n\t"
                     "3:\n\t"
                     "ldrsb  r3, [r1, r2]\n\t"
                     "ldrsb  r7, [r6, r2]\n\t"
                     "adds   r5, r5, r3\n\t"
                     "adds   r5, r5, r7\n\t"
                     "adds   r2, #2\n\t"
                     "bne    3b\n\t"
                     "8:\n\t"
                     "lsls   r5, r5, #7\n\t"
                     "negs   r5, r5\n\t"
                     "str    r5, [sp, #0]\n\t"
                     "negs   r6, r4\n\t"     /* the loop's entry: (-cols) % 4 columns of 52 bytes */
                     "movs   r7, #3\n\t"     /* past its start, with the pointer as many times 8 */
                     "ands   r6, r7\n\t"     /* bytes early, so that at a step's end the index */
                     "lsls   r7, r6, #3\n\t" /* reaches 0 and the pointer the next block */
                     "str    r7, [sp, #20]\n\t"
                     "subs   r0, r0, r7\n\t"
                     "str    r0, [sp, #12]\n\t"
                     "movs   r7, #52\n\t"
                     "muls   r6, r7, r6\n\t"
                     "adr    r7, 1f\n\t"
                     "adds   r6, r6, r7\n\t"
                     "adds   r6, #1\n\t" /* a Thumb address for BX */
                     "str    r6, [sp, #4]\n\t"
                     "b      2f\n\t" /* the first block's sums (the set-up after the loop: */
                     ".p2align 2\n\t" /* BNE reaches 256 bytes back, not past the loop to it) */
                     "1:\n\t" EDGERNN_V6M_8ROWS("0", "1", "2", "3", "4", "5", "6", "7") "adds   r2, #1\n\t"
                     EDGERNN_V6M_8ROWS("8", "9", "10", "11", "12", "13", "14", "15") "adds   r2, #1\n\t"
                     EDGERNN_V6M_8ROWS("16", "17", "18", "19", "20", "21", "22", "23") "adds   r2, #1\n\t"
                     EDGERNN_V6M_8ROWS("24", "25", "26", "27", "28", "29", "30", "31")
                     "adds   r0, #32\n\t"
                     "adds   r2, #1\n\t"
                     "bne    1b\n\t"
                     "ldr    r4, [sp, #20]\n\t" /* r0 is the next block: its pointer */
                     "subs   r0, r0, r4\n\t"
                     "str    r0, [sp, #12]\n\t"
                     "mov    r0, lr\n\t"
                     "mov    r2, r8\n\t"
                     "mov    r3, r9\n\t"
                     "mov    r4, r10\n\t"
                     "stmia  r0!, {r2, r3, r4}\n\t"
                     "mov    r2, r11\n\t"
                     "mov    r3, r12\n\t"
                     "stmia  r0!, {r2, r3, r5, r6, r7}\n\t"
                     "mov    lr, r0\n\t"
                     "ldr    r2, [sp, #64]\n\t"
                     "cmp    r0, r2\n\t"
                     "beq    6f\n\t"
                     "2:\n\t" /* a block's starting sums: bias - 128 sum x, or -128 sum x */
                     "ldr    r2, [sp, #0]\n\t"
                     "ldr    r0, [sp, #8]\n\t"
                     "cmp    r0, #0\n\t"
                     "beq    4f\n\t"
                     "ldmia  r0!, {r3, r4, r5, r6}\n\t"
                     "adds   r3, r3, r2\n\t"
                     "adds   r4, r4, r2\n\t"
                     "adds   r5, r5, r2\n\t"
                     "adds   r6, r6, r2\n\t"
                     "mov    r8, r3\n\t"
                     "mov    r9, r4\n\t"
                     "mov    r10, r5\n\t"
                     "mov    r11, r6\n\t"
                     "ldmia  r0!, {r3, r4, r5, r6}\n\t"
                     "str    r0, [sp, #8]\n\t"
                     "adds   r3, r3, r2\n\t"
                     "mov    r12, r3\n\t"
                     "adds   r7, r6, r2\n\t"
                     "adds   r6, r5, r2\n\t"
                     "adds   r5, r4, r2\n\t"
                     "b      5f\n\t"
                     "4:\n\t"
                     "mov    r8, r2\n\t"
                     "mov    r9, r2\n\t"
                     "mov    r10, r2\n\t"
                     "mov    r11, r2\n\t"
                     "mov    r12, r2\n\t"
                     "movs   r5, r2\n\t"
                     "movs   r6, r2\n\t"
                     "movs   r7, r2\n\t"
                     "5:\n\t"
                     "ldr    r2, [sp, #16]\n\t"
                     "ldr    r0, [sp, #12]\n\t"
                     "ldr    r4, [sp, #4]\n\t"
                     "bx     r4\n\t" /* into the column loop */
                     "6:\n\t"
                     "add    sp, #24\n\t"
                     EDGERNN_V6M_RESTORE_R4_R11_RETURN);
}
/* out[r] = bias[r] + w[r] x[0] for a matrix of one column (the W_ih of a univariate input,
 * row-major: v6m_order leaves it so), two rows a step: 5.5 instructions a row, where an eight-row
 * pass would spend ~45 of set-up on its one column (at I = 1, H = 16: 103 instructions a step
 * instead of ~220). Naked, for eight low registers: x[0], the end of w, the index, bias, out, two
 * sums and a product. Arguments (AAPCS): r0 w, r1 x, r2 bias, r3 rows >= 1, [sp] out. */
__attribute__((naked, noinline, unused)) static void edgernn_column_v6m(EDGERNN_ARG const int8_t *w,
                                                                        EDGERNN_ARG const int8_t *x,
                                                                        EDGERNN_ARG const int32_t *bias,
                                                                        EDGERNN_ARG int32_t rows,
                                                                        EDGERNN_ARG int32_t *out)
{
    __asm__ volatile(".syntax unified\n\t"
                     "push   {r4, r5, r6, r7, lr}\n\t"
                     "ldr    r4, [sp, #20]\n\t" /* out */
                     "movs   r5, #0\n\t"
                     "ldrsb  r1, [r1, r5]\n\t" /* x[0] */
                     "adds   r0, r0, r3\n\t"   /* w end */
                     "negs   r3, r3\n\t"
                     "lsls   r5, r3, #31\n\t" /* Z: an even row count */
                     "beq    1f\n\t"
                     "ldmia  r2!, {r5}\n\t" /* else the first row alone */
                     "ldrsb  r7, [r0, r3]\n\t"
                     "muls   r7, r1, r7\n\t"
                     "adds   r5, r5, r7\n\t"
                     "stmia  r4!, {r5}\n\t"
                     "adds   r3, #1\n\t"
                     "beq    2f\n\t"
                     "1:\n\t"
                     "ldmia  r2!, {r5, r6}\n\t"
                     "ldrsb  r7, [r0, r3]\n\t"
                     "muls   r7, r1, r7\n\t"
                     "adds   r5, r5, r7\n\t"
                     "adds   r3, #1\n\t"
                     "ldrsb  r7, [r0, r3]\n\t"
                     "muls   r7, r1, r7\n\t"
                     "adds   r6, r6, r7\n\t"
                     "stmia  r4!, {r5, r6}\n\t"
                     "adds   r3, #1\n\t"
                     "bne    1b\n\t"
                     "2:\n\t"
                     "pop    {r4, r5, r6, r7, pc}\n\t");
}
#endif /* EDGERNN_V6M_ASM */

/* out[r] = bias[r] + sum_c w[r][c] * x[c] for r < rows; bias may be NULL (no bias term).
 * rows >= 1 and cols >= 1 (every model dimension is at least 1).
 *
 * w is [rows][cols] as the generated header stores it: row-major, except on DSP cores, where the
 * whole blocks of four rows are in the DSP order (edgernn_blocks_s8_dsp, which needs the bias:
 * every matrix of four rows or more has one there -- W_ih and the head) and only the last
 * rows % 4 rows are row-major; and on Armv6-M, where the whole blocks of eight rows are in the
 * Armv6-M order (edgernn_dot8_passes_v6m) and the last rows % 8 rows row-major. The plain C takes
 * rows two at a time so that every x[c] loaded feeds two multiply-accumulates (1.5 loads per MAC
 * instead of 2). On Armv6-M all whole eight-row blocks run in one assembly function, the last
 * rows % 8 rows, if four or more, in two four-row passes (edgernn_dot4_passes_v6m: the first four
 * and the last four), and fewer through edgernn_dot_v6m. On x86-64 and AArch64 rows go four at a
 * time through edgernn_blocks_sse and edgernn_dot4_neon, on RV32 through edgernn_blocks_rv32, the
 * last rows % 4 in the plain C.
 * The accumulators are int32 and the loop holds no 64-bit arithmetic and no division: the
 * converter proves |sum| < 2^31 for every int8 input, so nothing wider is needed.
 *
 * The column loops count down and test at the end on purpose: with a plain for loop the compiler
 * must also handle cols == 0, and clang -O3 versions the code for it -- where out[] is all zeros
 * -- into a memset call, which a bare-metal image may not have.
 * On Armv6-M the function is only the choice between two assembly calls: inlined, so that a cell
 * step calls them directly (a second call frame cost ~20 instructions a matrix). */
#if EDGERNN_V6M_ASM
#define EDGERNN_MATVEC_LINKAGE EDGERNN_INLINE
#else
#define EDGERNN_MATVEC_LINKAGE EDGERNN_KERNEL
#endif
EDGERNN_MATVEC_LINKAGE void edgernn_matvec_s8(const int8_t *w, const int8_t *x, const int32_t *bias,
                                               int32_t rows, int32_t cols, int32_t *out)
{
    int32_t r;
#if EDGERNN_V6M_ASM
    if (cols == 1 && bias != NULL) {
        edgernn_column_v6m(w, x, bias, rows, out);
        return;
    }
    r = (cols > 1) ? rows & ~(int32_t)7 : 0; /* a matrix of one column is row-major (v6m_order) */
    if (r > 0) { /* the whole blocks of eight rows, stored in the Armv6-M order */
        edgernn_dot8_passes_v6m(w, x, bias, r, cols, out);
        if (r == rows) {
            return;
        }
        w += (size_t)r * (size_t)cols; /* the rows after them, row-major */
        bias = (bias != NULL) ? bias + r : NULL;
        out += r;
        rows -= r;
    }
    if (rows >= 4) {
        r = rows & ~(int32_t)3;
        edgernn_dot4_passes_v6m(w, x, bias, r, cols, out);
        if (r < rows) { /* the last rows % 4 rows: one more pass over the last four, recomputing
                           4 - rows % 4 rows already done (same sums) rather than a second loop */
            r = rows - 4;
            edgernn_dot4_passes_v6m(w + (size_t)r * (size_t)cols, x, (bias != NULL) ? bias + r : NULL, 4, cols,
                                    out + r);
        }
        return;
    }
    for (r = 0; r < rows; r += 2) { /* a matrix of one to three rows */
        edgernn_dot_v6m(w + (size_t)r * (size_t)cols, x, (bias != NULL) ? bias + r : NULL,
                        (rows - r >= 2) ? 2 : 1, cols, out + r);
    }
#elif EDGERNN_SIMD
    r = 0;
#if EDGERNN_SIMD == 1
    if (cols >= 8) {
        r = rows & ~(int32_t)3;
        edgernn_blocks_sse(w, x, bias, rows, cols, out);
        w += (size_t)r * (size_t)cols;
    }
#else
    for (; r + 3 < rows; r += 4) {
        edgernn_dot4_neon(w, x, cols, (bias != NULL) ? bias + r : NULL, out + r);
        w += 4 * (size_t)cols;
    }
#endif
    for (; r < rows; ++r) { /* the last rows % 4 rows */
        const int8_t *xp = x;
        int32_t acc = (bias != NULL) ? bias[r] : 0;
        int32_t c = cols;
        do {
            acc += (int32_t)*w++ * *xp++;
        } while (--c > 0);
        out[r] = acc;
    }
#else
    r = 0;
#if EDGERNN_DSP
    if (rows >= 4) { /* the whole blocks of four rows, stored in the DSP order */
        r = edgernn_blocks_s8_dsp(w, x, bias, rows, cols, out);
        w += (size_t)r * (size_t)cols;
    }
#elif EDGERNN_RV32
    r = edgernn_blocks_rv32(w, x, bias, rows, cols, out);
    w += (size_t)r * (size_t)cols;
#endif
    for (; r + 1 < rows; r += 2) {
        const int8_t *w0 = w;
        const int8_t *w1 = w + cols;
        const int8_t *xp = x;
        int32_t acc0 = (bias != NULL) ? EDGERNN_READ_S32(&bias[r]) : 0;
        int32_t acc1 = (bias != NULL) ? EDGERNN_READ_S32(&bias[r + 1]) : 0;
        int32_t c = cols;
        do {
            const int32_t xv = *xp++;
            acc0 += EDGERNN_MUL_S8(EDGERNN_READ_S8(w0++), xv);
            acc1 += EDGERNN_MUL_S8(EDGERNN_READ_S8(w1++), xv);
        } while (--c > 0);
        out[r] = acc0;
        out[r + 1] = acc1;
        w += 2 * cols;
    }
    if (r < rows) { /* an odd row count leaves one row */
        const int8_t *xp = x;
        int32_t acc = (bias != NULL) ? EDGERNN_READ_S32(&bias[r]) : 0;
        int32_t c = cols;
        do {
            acc += EDGERNN_MUL_S8(EDGERNN_READ_S8(w++), *xp++);
        } while (--c > 0);
        out[r] = acc;
    }
#endif
}

/* ---------------------------------------------------------------------------------------------
 * Requantization and tanh
 */

/* The 64-bit sum V = acc_x M_x + acc_h M_h + offset, as two 32-bit words (returns the high word).
 * offset = 2^62 + 2^(n-1) (as off_hi:off_lo) makes V non-negative: 0 <= V < 2^63. */
#if EDGERNN_SPLIT_MUL && EDGERNN_V6M_ASM
/* v = a M + b k in 64 bits from eight 16 x 16 -> 32 MULS, carries by ADCS. Signed 16-bit halves:
 * a = ah 2^16 + al (ah = a ASR 16, al = UXTH a), M = mh 2^16 + ml (M < 2^30: mh < 2^14), so
 *   a M = ah mh 2^32 + (ah ml) 2^16 + (al mh) 2^16 + al ml,
 * every partial product exact in 32 bits (|ah ml| < 2^31, al mh < 2^30, al ml < 2^32 unsigned)
 * and each middle term added as its two words (x << 16, x ASR/LSR 16). 36 instructions, where the
 * C below compiles to about 80 and __aeabi_lmul calls to more. Arithmetic shifts of negative
 * numbers are well defined here: this is assembly, not C. */
static inline uint32_t edgernn_requant_sum(int32_t a, int32_t m, int32_t b, int32_t k, uint32_t off_hi,
                                           uint32_t off_lo, uint32_t *lo)
{
    uint32_t ra = (uint32_t)a, rm = (uint32_t)m, rb = (uint32_t)b, rk = (uint32_t)k;
    uint32_t hi, t, u, sum;
    __asm__(".syntax unified\n\t"
            "asrs  %[t], %[a], #16\n\t"     /* a M */
            "lsrs  %[u], %[m], #16\n\t"
            "movs  %[hi], %[t]\n\t"
            "muls  %[hi], %[u], %[hi]\n\t"  /* ah mh */
            "uxth  %[a], %[a]\n\t"
            "muls  %[u], %[a], %[u]\n\t"    /* al mh */
            "uxth  %[m], %[m]\n\t"
            "muls  %[t], %[m], %[t]\n\t"    /* ah ml */
            "muls  %[a], %[m], %[a]\n\t"    /* al ml: the low word so far */
            "lsls  %[m], %[u], #16\n\t"
            "lsrs  %[u], %[u], #16\n\t"
            "adds  %[a], %[a], %[m]\n\t"
            "adcs  %[hi], %[u]\n\t"
            "lsls  %[m], %[t], #16\n\t"
            "asrs  %[t], %[t], #16\n\t"
            "adds  %[a], %[a], %[m]\n\t"
            "adcs  %[hi], %[t]\n\t"
            "asrs  %[t], %[b], #16\n\t"     /* + b k, likewise */
            "lsrs  %[u], %[k], #16\n\t"
            "uxth  %[b], %[b]\n\t"
            "uxth  %[k], %[k]\n\t"
            "movs  %[m], %[t]\n\t"
            "muls  %[m], %[u], %[m]\n\t"    /* bh kh */
            "muls  %[u], %[b], %[u]\n\t"    /* bl kh */
            "muls  %[t], %[k], %[t]\n\t"    /* bh kl */
            "muls  %[b], %[k], %[b]\n\t"    /* bl kl */
            "adds  %[a], %[a], %[b]\n\t"
            "adcs  %[hi], %[m]\n\t"
            "lsls  %[m], %[u], #16\n\t"
            "lsrs  %[u], %[u], #16\n\t"
            "adds  %[a], %[a], %[m]\n\t"
            "adcs  %[hi], %[u]\n\t"
            "lsls  %[m], %[t], #16\n\t"
            "asrs  %[t], %[t], #16\n\t"
            "adds  %[a], %[a], %[m]\n\t"
            "adcs  %[hi], %[t]\n\t"
            : [a] "+l"(ra), [m] "+l"(rm), [b] "+l"(rb), [k] "+l"(rk), [hi] "=&l"(hi), [t] "=&l"(t), [u] "=&l"(u)
            :
            : "cc");
    sum = ra + off_lo; /* v + offset; off_lo is 0 on the fast path and folds away */
    *lo = sum;
    return hi + off_hi + ((sum < ra) ? 1u : 0u);
}
#elif EDGERNN_SPLIT_MUL
/* u * m for u < 2^32 and m < 2^30 from four 16 x 16 -> 32 products (MULS is 32 x 32 -> 32 on
 * Armv6-M); returns the high word, *lo the low one. u1 m1 < 2^30 leaves room for both carries. */
static inline uint32_t edgernn_umul30(uint32_t u, uint32_t m, uint32_t *lo)
{
    const uint32_t u0 = u & 0xFFFFu;
    const uint32_t u1 = u >> 16;
    const uint32_t m0 = m & 0xFFFFu;
    const uint32_t m1 = m >> 16;
    const uint32_t p00 = u0 * m0;
    const uint32_t p01 = u0 * m1;
    const uint32_t mid = u1 * m0 + p01; /* may wrap: its carry is worth 2^48 */
    uint32_t hi = u1 * m1 + ((mid < p01) ? 0x10000u : 0u);
    const uint32_t l = p00 + (mid << 16);
    hi += (mid >> 16) + ((l < p00) ? 1u : 0u);
    *lo = l;
    return hi;
}

/* Signed operands are moved to unsigned range, a + 2^31, so no negative number is multiplied or
 * shifted: a M + b N = (a + 2^31) M + (b + 2^31) N - 2^31 (M + N), and the last term is taken
 * off the offset (words: 2^31 S = (S >> 1) : (S << 31), with S = M + N < 2^31). */
static inline uint32_t edgernn_requant_sum(int32_t a, int32_t m, int32_t b, int32_t k, uint32_t off_hi,
                                           uint32_t off_lo, uint32_t *lo)
{
    const uint32_t s = (uint32_t)m + (uint32_t)k;
    uint32_t lo1, lo2, sum, hi;
    hi = edgernn_umul30((uint32_t)a ^ 0x80000000u, (uint32_t)m, &lo1);
    hi += edgernn_umul30((uint32_t)b ^ 0x80000000u, (uint32_t)k, &lo2);
    /* lo1 + lo2 + off_lo - (S << 31), keeping every carry and borrow. */
    sum = lo1 + lo2;
    hi += (sum < lo1) ? 1u : 0u;
    lo1 = sum + off_lo;
    hi += (lo1 < sum) ? 1u : 0u;
    sum = lo1 - (s << 31);
    hi -= (sum > lo1) ? 1u : 0u;
    *lo = sum;
    return hi + off_hi - (s >> 1);
}
#else
static inline uint32_t edgernn_requant_sum(int32_t a, int32_t m, int32_t b, int32_t k, uint32_t off_hi,
                                           uint32_t off_lo, uint32_t *lo)
{
    const int64_t v = (int64_t)a * m + (int64_t)b * k; /* SMULL + SMLAL on Armv7-M */
    const uint64_t sum = (uint64_t)v + (((uint64_t)off_hi << 32) | off_lo);
    *lo = (uint32_t)sum;
    return (uint32_t)(sum >> 32);
}
#endif

#if EDGERNN_V6M_ASM
/* floor(v / 2^20) of v = a M + b K in 32-bit arithmetic only, for a cell whose `narrow` flag is
 * set: the generator proved (edgernn.contract.bounds.narrow_requant) that every sum below fits
 * int32 for every input and state. Each multiplier is cut into 10-bit chunks,
 * M = m2 2^20 + m1 2^10 + m0 (M < 2^30), so that
 *     v = 2^20 (a m2 + b k2) + 2^10 (a m1 + b k1) + (a m0 + b k0) = 2^20 P + 2^10 Q1 + Q0
 * and floor(v / 2^20) = P + floor((Q1 + floor(Q0 / 2^10)) / 2^10), floors of floors being exact.
 * Equal chunks keep the most models exact: |Q0|, |Q1| < 2^10 (|a| + |b|) fit for accumulators up
 * to 2^21 (H = 128 reaches 2^20.4), and P for |v| up to 2^51 (|z| up to 2^11 at n = 40). Six
 * 32 x 32 -> 32 MULS and 23 instructions, where the 64-bit sum costs 36 and more work after it.
 * ASRS is floor division by a power of two here: this is assembly, not C. */
static inline int32_t edgernn_requant_narrow_v6m(int32_t a, int32_t m, int32_t b, int32_t k)
{
    uint32_t ra = (uint32_t)a, rm = (uint32_t)m, rb = (uint32_t)b, rk = (uint32_t)k;
    uint32_t p, q;
    __asm__(".syntax unified\n\t"
            "lsrs  %[p], %[m], #20\n\t"
            "muls  %[p], %[a], %[p]\n\t" /* a m2 */
            "lsls  %[q], %[m], #12\n\t"
            "lsrs  %[q], %[q], #22\n\t"
            "muls  %[q], %[a], %[q]\n\t" /* a m1 */
            "lsls  %[m], %[m], #22\n\t"
            "lsrs  %[m], %[m], #22\n\t"
            "muls  %[m], %[a], %[m]\n\t" /* a m0 */
            "lsrs  %[a], %[k], #20\n\t"
            "muls  %[a], %[b], %[a]\n\t"
            "adds  %[p], %[p], %[a]\n\t" /* P = a m2 + b k2 */
            "lsls  %[a], %[k], #12\n\t"
            "lsrs  %[a], %[a], #22\n\t"
            "muls  %[a], %[b], %[a]\n\t"
            "adds  %[q], %[q], %[a]\n\t" /* Q1 = a m1 + b k1 */
            "lsls  %[k], %[k], #22\n\t"
            "lsrs  %[k], %[k], #22\n\t"
            "muls  %[k], %[b], %[k]\n\t"
            "adds  %[m], %[m], %[k]\n\t" /* Q0 = a m0 + b k0 */
            "asrs  %[m], %[m], #10\n\t"
            "adds  %[q], %[q], %[m]\n\t"
            "asrs  %[q], %[q], #10\n\t"
            "adds  %[p], %[p], %[q]\n\t"
            : [a] "+l"(ra), [m] "+l"(rm), [b] "+l"(rb), [k] "+l"(rk), [p] "=&l"(p), [q] "=&l"(q)
            :
            : "cc");
    return (int32_t)p;
}
#endif

/* hi:lo >> n for 1 <= n <= 63 from 32-bit shifts (a variable 64-bit shift is a library call on
 * Armv6-M). */
static inline uint64_t edgernn_shr64(uint32_t hi, uint32_t lo, uint32_t n)
{
    if (n >= 32u) {
        return (uint64_t)(hi >> (n - 32u));
    }
    return ((uint64_t)(hi >> n) << 32) | (uint64_t)((lo >> n) | (hi << (32u - n)));
}

/* c, which the compiler is told is rarely true, where it can be told (GCC, clang): on RV32 both
 * otherwise make the clamp below branch-free, three instructions more a hidden unit. */
#if defined(__GNUC__)
#define EDGERNN_UNLIKELY(c) __builtin_expect(!!(c), 0)
#else
#define EDGERNN_UNLIKELY(c) (c)
#endif

/* k clamped to the table's index range [0, EDGERNN_LUT_SIZE - 1]. On Thumb-2 (Armv7-M) this is
 * one USAT, where both compilers emit two compare-and-select pairs from C. */
#define EDGERNN_LUT_BITS 10 /* EDGERNN_LUT_SIZE == 1 << EDGERNN_LUT_BITS */
static inline int32_t edgernn_lut_index(int32_t k)
{
#if defined(__GNUC__) && defined(__thumb2__)
    int32_t r;
    __asm__("usat   %[r], %[bits], %[k]" : [r] "=r"(r) : [k] "r"(k), [bits] "I"(EDGERNN_LUT_BITS));
    return r;
#else
    /* One unsigned compare finds both out-of-range sides; which side only matters when z
     * saturates, so the common path is a compare and a branch (Armv6-M: ~4 fewer a unit). */
    if (EDGERNN_UNLIKELY((uint32_t)k > (uint32_t)(EDGERNN_LUT_SIZE - 1))) {
        k = (k < 0) ? 0 : EDGERNN_LUT_SIZE - 1;
    }
    return k;
#endif
}

/* One hidden unit's new state from its two accumulators and multipliers, when n >= 33 (the
 * fast path of edgernn_tanh_requantize, which explains it): off_hi = 2^30 + 2^(n-33), s = n - 32,
 * q_first = 2^(62-n) - 512. */
static inline int8_t edgernn_tanh_fast(int32_t acc_x, int32_t m_x, int32_t acc_h, int32_t m_h, uint32_t off_hi,
                                       uint32_t s, int32_t q_first)
{
    uint32_t lo;
    const uint32_t hi = edgernn_requant_sum(acc_x, m_x, acc_h, m_h, off_hi, 0u, &lo);
    const int32_t k = edgernn_lut_index((int32_t)(hi >> s) - q_first); /* z + 512 */
    return EDGERNN_READ_S8(&edgernn_tanh_lut[k]);
}

/* The same for any shift 1 <= n <= 40 (the general path of edgernn_tanh_requantize). */
static inline int8_t edgernn_tanh_general(int32_t acc_x, int32_t m_x, int32_t acc_h, int32_t m_h, uint32_t n)
{
    const uint32_t off_hi = (uint32_t)1 << (EDGERNN_OFFSET_BITS - 32);
    const uint32_t off_lo = (uint32_t)1 << (n - 1u);
    const uint64_t q_first = edgernn_shr64(off_hi, 0u, n) - (uint64_t)(-EDGERNN_Z_MIN);
    uint32_t lo;
    const uint32_t hi = edgernn_requant_sum(acc_x, m_x, acc_h, m_h, off_hi, off_lo, &lo);
    const uint64_t q = edgernn_shr64(hi, lo, n);
    uint32_t k; /* z + 512, clamped to the table */
    if (q < q_first) {
        k = 0;
    } else if (q - q_first >= (uint64_t)EDGERNN_LUT_SIZE) {
        k = EDGERNN_LUT_SIZE - 1;
    } else {
        k = (uint32_t)(q - q_first);
    }
    return EDGERNN_READ_S8(&edgernn_tanh_lut[k]);
}

#if EDGERNN_SIMD == 1
/* edgernn_tanh_fast for four units at a time on x86-64 (SSE2), for the first hidden & ~3 units;
 * returns how many it did. The same integers: PMULUDQ multiplies unsigned, so a negative acc
 * (a + 2^32 as unsigned) gives a M + 2^32 M, and M is taken off the high word for it (C below).
 * Only the high word of V = acc_x M_x + acc_h M_h + off_hi 2^32 is needed (n >= 33: q = hi >> s),
 * and 0 <= V < 2^63 makes it exact in 32-bit arithmetic modulo 2^32. k = q - q_first fits int32;
 * PACKSSDW saturates it to int16 without changing which side of [0, 1023] it is on. */
static inline int32_t edgernn_tanh_fast_sse(const int32_t *acc_x, const int32_t *m_x, const int32_t *acc_h,
                                            const int32_t *m_h, int32_t hidden, uint32_t off_hi, uint32_t s,
                                            int32_t q_first, int8_t *h, int8_t *rec)
{
    const __m128i odd_words = _mm_set_epi32(-1, 0, -1, 0);
    const __m128i shift = _mm_cvtsi32_si128((int)s);
    const __m128i top = _mm_set1_epi16(EDGERNN_LUT_SIZE - 1);
    int32_t j;
    for (j = 0; j + 3 < hidden; j += 4) {
        const __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(acc_x + j));
        const __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(acc_h + j));
        const __m128i ma = _mm_loadu_si128((const __m128i *)(const void *)(m_x + j));
        const __m128i mb = _mm_loadu_si128((const __m128i *)(const void *)(m_h + j));
        /* units 0 and 2 in the even words, 1 and 3 moved there: 64-bit sums of the two products */
        const __m128i even = _mm_add_epi64(_mm_mul_epu32(a, ma), _mm_mul_epu32(b, mb));
        const __m128i odd = _mm_add_epi64(_mm_mul_epu32(_mm_srli_epi64(a, 32), _mm_srli_epi64(ma, 32)),
                                          _mm_mul_epu32(_mm_srli_epi64(b, 32), _mm_srli_epi64(mb, 32)));
        const __m128i hi = _mm_or_si128(_mm_srli_epi64(even, 32), _mm_and_si128(odd, odd_words));
        const __m128i c = _mm_add_epi32(_mm_and_si128(_mm_srai_epi32(a, 31), ma), _mm_and_si128(_mm_srai_epi32(b, 31), mb));
        const __m128i q = _mm_srl_epi32(_mm_sub_epi32(_mm_add_epi32(hi, _mm_set1_epi32((int)off_hi)), c), shift);
        const __m128i k32 = _mm_sub_epi32(q, _mm_set1_epi32(q_first));
        const __m128i k = _mm_min_epi16(_mm_max_epi16(_mm_packs_epi32(k32, k32), _mm_setzero_si128()), top);
        const int8_t y0 = EDGERNN_READ_S8(&edgernn_tanh_lut[_mm_extract_epi16(k, 0)]);
        const int8_t y1 = EDGERNN_READ_S8(&edgernn_tanh_lut[_mm_extract_epi16(k, 1)]);
        const int8_t y2 = EDGERNN_READ_S8(&edgernn_tanh_lut[_mm_extract_epi16(k, 2)]);
        const int8_t y3 = EDGERNN_READ_S8(&edgernn_tanh_lut[_mm_extract_epi16(k, 3)]);
        h[j] = y0;
        h[j + 1] = y1;
        h[j + 2] = y2;
        h[j + 3] = y3;
        if (rec != NULL) {
            rec[j] = y0;
            rec[j + 1] = y1;
            rec[j + 2] = y2;
            rec[j + 3] = y3;
        }
    }
    return j;
}
#endif

/* h[j] = LUT[clamp(z[j])] for every hidden unit of the cell, from its two accumulators.
 *
 * v = acc_x M_x + acc_h M_h fits int64 with room (|acc| < 2^31 and M < 2^30, so |v| < 2^62;
 * the converter proves |v| < 2^61). Rounding half up must not shift a negative number (that is
 * implementation-defined in C), so the sum is moved into unsigned range first:
 *     q = (v + 2^62 + 2^(n-1)) >> n = floor((v + 2^(n-1)) / 2^n) + 2^(62-n) = z + 2^(62-n),
 * exact because 0 <= V = v + 2^62 + 2^(n-1) < 2^63. Clamping z to [-512, 511] is then a range
 * check of q against q_first = 2^(62-n) - 512, the q of the first table entry.
 *
 * When n >= 33 (every model converted so far has n in 36..40: M < 2^30 with multipliers well
 * below 1) the offset has no low word and q = hi(V) >> (n - 32) exactly, so the whole step after
 * the products is 32-bit: one add, one shift, one subtract and a clamp to [0, 1023] (USAT on
 * Armv7-M). Smaller shifts take the general 64-bit path. Either way the 64-bit work is per hidden
 * unit, outside the matvec loops.
 *
 * rec, when not NULL, receives a copy of the new state (a run buffer), written in the same pass
 * rather than by a copy loop that a compiler could turn into memcpy. */
static inline void edgernn_tanh_requantize(const edgernn_cell_t *cell, const int32_t *acc_x,
                                                         const int32_t *acc_h, int8_t *h, int8_t *rec)
{
    const uint32_t n = (uint32_t)cell->shift;
    const int32_t *m_x = cell->m_x;
    const int32_t *m_h = cell->m_h;
    const int32_t hidden = cell->hidden;
    int32_t j;
#if EDGERNN_V6M_ASM
    if (cell->narrow) {
        /* V = floor(v / 2^20) from edgernn_requant_narrow_v6m; n >= 21, so 2^(n-1) is a multiple of
         * 2^20 and z = floor((V + 2^(n-21)) / 2^s) with s = n - 20. With the table's offset folded
         * in, t = V + 2^(n-21) + 512 2^s is z + 512 scaled by 2^s; the generator proved
         * |V| + 2^(n-21) + 512 2^s < 2^31, so t as an int32 never wraps and is negative exactly
         * when z < -512. Computed in unsigned arithmetic (no negative number is shifted): t >> s
         * is z + 512 when it is at most 1023; above, t is either negative (its unsigned value is
         * at least 2^31, so t >> s >= 2^11) or z > 511. */
        const uint32_t s = n - 20u;
        const uint32_t c = ((uint32_t)1 << (n - 21u)) + ((uint32_t)(-EDGERNN_Z_MIN) << s);
        for (j = 0; j < hidden; ++j) {
            const uint32_t t = (uint32_t)edgernn_requant_narrow_v6m(acc_x[j], m_x[j], acc_h[j], m_h[j]) + c;
            uint32_t k = t >> s;
            if (EDGERNN_UNLIKELY(k > (uint32_t)(EDGERNN_LUT_SIZE - 1))) { /* z saturates: rare */
                k = (t >= 0x80000000u) ? 0u : (uint32_t)(EDGERNN_LUT_SIZE - 1);
            }
            h[j] = edgernn_tanh_lut[k];
            if (rec != NULL) {
                rec[j] = edgernn_tanh_lut[k];
            }
        }
        return;
    }
#endif
    if (n >= 33u) {
        const uint32_t off_hi = ((uint32_t)1 << (EDGERNN_OFFSET_BITS - 32)) + ((uint32_t)1 << (n - 33u));
        const uint32_t s = n - 32u;
        /* q_first < 2^29 here, so q - q_first fits int32 (q = hi(V) >> s < 2^31 too). */
        const int32_t q_first = (int32_t)((uint32_t)1 << (EDGERNN_OFFSET_BITS - n)) + EDGERNN_Z_MIN;
#if EDGERNN_SIMD == 1
        j = edgernn_tanh_fast_sse(acc_x, m_x, acc_h, m_h, hidden, off_hi, s, q_first, h, rec);
#else
        j = 0;
#endif
        for (; j < hidden; ++j) {
            const int8_t y = edgernn_tanh_fast(acc_x[j], EDGERNN_READ_S32(&m_x[j]), acc_h[j],
                                               EDGERNN_READ_S32(&m_h[j]), off_hi, s, q_first);
            h[j] = y;
            if (rec != NULL) {
                rec[j] = y;
            }
        }
    } else {
        for (j = 0; j < hidden; ++j) {
            const int8_t y = edgernn_tanh_general(acc_x[j], EDGERNN_READ_S32(&m_x[j]), acc_h[j],
                                                  EDGERNN_READ_S32(&m_h[j]), n);
            h[j] = y;
            if (rec != NULL) {
                rec[j] = y;
            }
        }
    }
}

#if EDGERNN_DSP
/* edgernn_cell_step's two products on the DSP extension for a cell not streamed (a token cell, or a
 * shift below 33), four rows a pass; the last rows % 4 rows in plain C.
 *
 * The recurrent product first widens the old state into the upper half of the scratch
 * (edgernn_widen_dsp: ceil(H / 4) pairs of words, at most H words), where every row reads it
 * with one LDRD per four columns, and writes acc_h below it. The input product then writes acc_x
 * over the widened state, which is no longer needed. */
static inline void edgernn_recurrent_dsp(const int8_t *w, const int8_t *h, int32_t hidden, int32_t *acc_h,
                                         uint32_t *hw)
{
    int32_t r = 0;
    if (hidden >= 4) { /* else the widened state would not fit: ceil(hidden / 4) pairs > hidden words */
        edgernn_widen_dsp(h, hidden, hw);
        r = edgernn_blocks_s16_dsp(w, hw, hidden, hidden, acc_h);
    }
    if (r < hidden) { /* the last hidden % 4 rows */
        edgernn_matvec_s8(w + (size_t)r * (size_t)hidden, h, NULL, hidden - r, hidden, acc_h + r);
    }
}

/* One step of a streamed cell (EDGERNN_DSP_STREAM). The last hidden % 4 rows first take their
 * sums in plain C, from their tables in the stream, while h is still the old state; one pass over
 * the blocks (edgernn_stream_blocks_dsp) then writes h[0 .. hidden & ~3) in place, and those rows
 * their new state last. The scratch holds the widened state (ceil(H / 4) pairs of words) and the
 * last rows' acc_x and acc_h (at most 3 words each): within 2 H words for every H >= 4. */
static inline void edgernn_stream_step_dsp(const edgernn_cell_t *cell, const int8_t *x, int8_t *h, int8_t *rec,
                                           int32_t *scratch)
{
    const int32_t hidden = cell->hidden;
    const int32_t whole = hidden & ~(int32_t)3;
    const int32_t rest = hidden - whole;
    uint32_t *hw = (uint32_t *)(void *)scratch;
    int32_t *acc_x = scratch + 2 * ((hidden + 3) >> 2);
    int32_t *acc_h = acc_x + rest;
    if (rest != 0) { /* their W_hh rows follow their M_h in the stream */
        edgernn_matvec_s8((const int8_t *)(const void *)(cell->m_h + rest), h, NULL, rest, hidden, acc_h);
        edgernn_matvec_s8(cell->w_ih, x, cell->bias, rest, cell->input, acc_x);
    }
    edgernn_widen_dsp(h, hidden, hw);
    edgernn_stream_blocks_dsp((const int32_t *)(const void *)cell->w_hh, x, hw, cell->input, hidden,
                              (uint32_t)cell->shift, h);
    if (rec != NULL) {
        int32_t j;
        for (j = 0; j < whole; ++j) {
            rec[j] = h[j];
            __asm__ volatile("" ::: "memory"); /* a byte loop, not a call to memcpy */
        }
    }
    if (rest != 0) {
        edgernn_cell_t last = *cell; /* its m_x, m_h lead to these rows' */
        last.hidden = rest;
        edgernn_tanh_requantize(&last, acc_x, acc_h, h + whole, (rec != NULL) ? rec + whole : NULL);
    }
}

#endif /* EDGERNN_DSP */

/* One step of one cell, in place: the state h is read, then overwritten with the new state.
 *   x       the cell's int8 input [cell->input]; ignored (may be NULL) for a token cell.
 *   token   the input token of a token cell, 0 <= token < vocab (callers check); else ignored.
 *   rec     optional copy of the new state (NULL: none).
 *   scratch EDGERNN_SCRATCH_WORDS(cell->hidden) int32 words.
 * x must not alias h: a layer reads the model input or the layer below, never its own state. */
EDGERNN_KERNEL void edgernn_cell_step(const edgernn_cell_t *cell, const int8_t *x, int32_t token,
                                       int8_t *h, int8_t *rec, int32_t *scratch)
{
    const int32_t hidden = cell->hidden;
    int32_t *acc_h = scratch;
    int32_t *acc_x = scratch + hidden;
#if EDGERNN_DSP
    if (EDGERNN_DSP_STREAM(cell)) {
        edgernn_stream_step_dsp(cell, x, h, rec, scratch);
        return;
    }
#endif
    /* The recurrent product reads every old h[k]: it completes before any h[j] is replaced. */
#if EDGERNN_DSP
    edgernn_recurrent_dsp(cell->w_hh, h, hidden, acc_h, (uint32_t *)(void *)acc_x);
#else
    edgernn_matvec_s8(cell->w_hh, h, NULL, hidden, hidden, acc_h);
#endif
    if (cell->table != NULL) {
        /* W_ih E[token] + b was folded at conversion time: acc_x is one row of the table. */
        const int32_t *row = cell->table + (size_t)token * (size_t)hidden;
#if EDGERNN_TABLES_IN_DATA
        edgernn_tanh_requantize(cell, row, acc_h, h, rec);
#else
        int32_t j; /* the row is in program memory (AVR): into the scratch first */
        for (j = 0; j < hidden; ++j) {
            acc_x[j] = EDGERNN_READ_S32(&row[j]);
        }
        edgernn_tanh_requantize(cell, acc_x, acc_h, h, rec);
#endif
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

/* The float -> int8 input rule, identical to edgernn.contract.quantize.quantize_inputs: t = x * inv_scale
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
    if (t >= (float)EDGERNN_Q_MAX) {
        return (int8_t)EDGERNN_Q_MAX;
    }
    if (t <= (float)-EDGERNN_Q_MAX) {
        return (int8_t)-EDGERNN_Q_MAX;
    }
    if (!(t > (float)-EDGERNN_Q_MAX)) { /* only NaN is left here (every comparison with it is false) */
        return 0;
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
static EDGERNN_FLASH const uint32_t edgernn_sample_octave[4] = {32768u, 27554u, 23170u, 19484u};

/* Weight of a logit lying (top - logit) below the top one: 2^15 * 2^(-k/4) rounded down to the
 * table, k = min(64, floor((top - logit) / step)), found by subtraction (no divide on M0+). */
static inline uint32_t edgernn_sample_weight(int32_t top, int32_t logit, uint32_t step)
{
    uint32_t d = (uint32_t)top - (uint32_t)logit; /* top >= logit, so this is exact mod 2^32 */
    uint32_t k = 0;
    while (d >= step && k < EDGERNN_SAMPLE_MAX_STEPS) {
        d -= step;
        EDGERNN_OPAQUE(d);
        ++k;
    }
    return EDGERNN_READ_U32(&edgernn_sample_octave[k & 3u]) >> (k >> 2);
}

/* The high word of a * b, from four 16 x 16 -> 32 products: (uint64_t)a * b would call
 * __aeabi_lmul on Armv6-M, and the integer path needs no compiler-runtime helper (EDGERNN_SPLIT_MUL).
 * mid adds three values below 2^16, so it cannot wrap; the result is below 2^32 by construction. */
static inline uint32_t edgernn_mulhi_u32(uint32_t a, uint32_t b)
{
    const uint32_t a0 = a & 0xFFFFu;
    const uint32_t a1 = a >> 16;
    const uint32_t b0 = b & 0xFFFFu;
    const uint32_t b1 = b >> 16;
    uint32_t cross1 = a1 * b0;
    const uint32_t cross0 = a0 * b1;
    uint32_t mid;
    EDGERNN_OPAQUE(cross1);
    mid = ((a0 * b0) >> 16) + (cross1 & 0xFFFFu) + (cross0 & 0xFFFFu);
    return a1 * b1 + (cross1 >> 16) + (cross0 >> 16) + (mid >> 16);
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
    r = edgernn_mulhi_u32(edgernn_xorshift32(rng), total);
    for (c = 0; c < n; ++c) {
        running += edgernn_sample_weight(top, logits[c], unit);
        if (r < running) {
            return c;
        }
    }
    return best; /* not reached: r < total */
}

/* ---------------------------------------------------------------------------------------------
 * The prefix-free API (declared at the top of this file)
 */

EDGERNN_INLINE size_t edgernn_state_bytes(const edgernn_model_t *m)
{
    return (size_t)m->num_layers * (size_t)m->num_directions * (size_t)m->hidden_size;
}

EDGERNN_INLINE size_t edgernn_run_buf_bytes(const edgernn_model_t *m, size_t steps)
{
    const size_t per_step = edgernn_state_bytes(m);
    return (steps <= (size_t)-1 / per_step) ? steps * per_step : 0u;
}

EDGERNN_INLINE void edgernn_init(const edgernn_model_t *m, int8_t *state)
{
    edgernn_zero_s8(state, edgernn_state_bytes(m));
}

/* Every layer of a unidirectional model one step on: layer 0 reads x or token, each deeper layer
 * the new state of the layer below. rec, if not NULL, receives layer l's new state at
 * rec + l * rec_stride. The loop walks a cell pointer and tests at the end: with a model's own
 * descriptor the compiler then proves a one-layer loop runs once and calls the kernel with a
 * constant cell, which it specialises (GCC does not for a counted loop). */
EDGERNN_INLINE void edgernn_advance(const edgernn_model_t *m, int8_t *state, const int8_t *x, int32_t token,
                                    int8_t *rec, size_t rec_stride, int32_t *scratch)
{
    const size_t hidden = (size_t)m->hidden_size;
    const edgernn_cell_t *cell = m->cells;
    const edgernn_cell_t *const end = m->cells + m->num_layers;
    const int8_t *in = x;
    int8_t *h = state;
    do {
        edgernn_cell_step(cell, in, token, h, rec, scratch);
        in = h;
        h += hidden;
        rec = (rec != NULL) ? rec + rec_stride : NULL;
    } while (++cell != end);
}

EDGERNN_INLINE int edgernn_step(const edgernn_model_t *m, int8_t *state, const int8_t *x,
                                int32_t *scratch)
{
    if (m->num_directions != 1 || m->vocab_size != 0) {
        return EDGERNN_ERR_MODEL;
    }
    edgernn_advance(m, state, x, 0, NULL, 0, scratch);
    return EDGERNN_OK;
}

EDGERNN_INLINE int edgernn_step_token(const edgernn_model_t *m, int8_t *state, int32_t token,
                                      int32_t *scratch)
{
    if (m->num_directions != 1 || m->vocab_size == 0) {
        return EDGERNN_ERR_MODEL;
    }
    if (token < 0 || token >= m->vocab_size) {
        return EDGERNN_ERR_TOKEN;
    }
    edgernn_advance(m, state, NULL, token, NULL, 0, scratch);
    return EDGERNN_OK;
}

EDGERNN_INLINE void edgernn_logits(const edgernn_model_t *m, const int8_t *state, int32_t *out)
{
    /* The top layer's rows of the state, [forward | backward], are adjacent in memory. */
    const int32_t width = (int32_t)m->num_directions * m->hidden_size;
    const int8_t *top = state + (size_t)(m->num_layers - 1) * (size_t)width;
    edgernn_matvec_s8(m->head_w, top, m->head_b, m->num_classes, width, out);
}

EDGERNN_INLINE int32_t edgernn_classify(const edgernn_model_t *m, const int8_t *state, int32_t *logits)
{
    edgernn_logits(m, state, logits);
    return edgernn_argmax_s32(logits, m->num_classes);
}

/* The bidirectional run: layer by layer over the whole sequence, forward then backward; the
 * backward state after reading steps t..T-1 is the output at step t, stored beside the forward
 * one, and each layer reads the one below from buf. */
EDGERNN_INLINE void edgernn_run_bidirectional(const edgernn_model_t *m, int8_t *state, const int8_t *x,
                                              const int32_t *tokens, size_t steps, int8_t *buf,
                                              int32_t *scratch)
{
    const size_t hidden = (size_t)m->hidden_size;
    const size_t row = 2u * hidden; /* one step of one layer's output: [forward | backward] */
    const size_t input = (size_t)m->input_size;
    const int token_input = m->vocab_size != 0; /* folds to a constant with a model's descriptor */
    int32_t layer;
    size_t t;
    if (buf == NULL) {
        /* edgernn_run_any has refused this already. Testing again lets the compiler prove every
         * record pointer below non-null, whatever it has folded by then: clang drops a null test
         * and two spills from the requantize loop (6 % fewer instructions a step on Cortex-M4). */
        return;
    }
    for (layer = 0; layer < m->num_layers; ++layer) {
        const edgernn_cell_t *forward = &m->cells[2 * layer];
        const edgernn_cell_t *backward = &m->cells[2 * layer + 1];
        int8_t *h_fwd = state + (size_t)(2 * layer) * hidden;
        int8_t *h_bwd = h_fwd + hidden;
        int8_t *out = buf + (size_t)layer * steps * row;
        const int8_t *below = (layer > 0) ? out - steps * row : NULL;
        for (t = 0; t < steps; ++t) {
            const int8_t *in = (layer > 0) ? below + t * row : token_input ? NULL : x + t * input;
            const int32_t token = (layer == 0 && token_input) ? tokens[t] : 0;
            edgernn_cell_step(forward, in, token, h_fwd, out + t * row, scratch);
        }
        for (t = steps; t-- > 0;) {
            const int8_t *in = (layer > 0) ? below + t * row : token_input ? NULL : x + t * input;
            const int32_t token = (layer == 0 && token_input) ? tokens[t] : 0;
            edgernn_cell_step(backward, in, token, h_bwd, out + t * row + hidden, scratch);
        }
    }
}

/* edgernn_run and edgernn_run_tokens: x for a feature model, tokens for a token model. */
EDGERNN_INLINE int edgernn_run_any(const edgernn_model_t *m, int8_t *state, const int8_t *x,
                                   const int32_t *tokens, size_t steps, int8_t *buf, size_t buf_bytes,
                                   int32_t *logits, int32_t *scratch)
{
    const int bidirectional = m->num_directions == 2;
    const int per_step = m->task != EDGERNN_TASK_MANY_TO_ONE;
    const int token_input = m->vocab_size != 0;
    const size_t classes = (size_t)m->num_classes;
    size_t t;
    if (steps == 0) {
        return EDGERNN_OK;
    }
    if (state == NULL || (token_input ? tokens == NULL : x == NULL)) {
        return EDGERNN_ERR_NULL;
    }
    if (buf != NULL || bidirectional) { /* the run buffer: optional one way, required the other */
        const size_t need = edgernn_run_buf_bytes(m, steps);
        if (buf == NULL || need == 0 || buf_bytes < need) {
            return EDGERNN_ERR_BUFFER;
        }
    }
    if (token_input) {
        for (t = 0; t < steps; ++t) {
            if (tokens[t] < 0 || tokens[t] >= m->vocab_size) {
                return EDGERNN_ERR_TOKEN;
            }
        }
    }
    if (bidirectional) {
        edgernn_run_bidirectional(m, state, x, tokens, steps, buf, scratch);
        if (logits != NULL && per_step) {
            const size_t width = 2u * (size_t)m->hidden_size;
            const int8_t *top = buf + (size_t)(m->num_layers - 1) * steps * width;
            for (t = 0; t < steps; ++t) {
                edgernn_matvec_s8(m->head_w, top + t * width, m->head_b, m->num_classes, (int32_t)width,
                                  logits + t * classes);
            }
        }
    } else {
        const size_t hidden = (size_t)m->hidden_size;
        for (t = 0; t < steps; ++t) {
            int8_t *rec = (buf != NULL) ? buf + t * hidden : NULL;
            const int8_t *in = token_input ? NULL : x + t * (size_t)m->input_size;
            edgernn_advance(m, state, in, token_input ? tokens[t] : 0, rec, steps * hidden, scratch);
            if (logits != NULL && per_step) {
                edgernn_logits(m, state, logits + t * classes);
            }
        }
    }
    if (logits != NULL && !per_step) {
        if (bidirectional && m->readout == EDGERNN_READOUT_LAST_OUTPUT) {
            const size_t width = 2u * (size_t)m->hidden_size;
            const int8_t *last = buf + ((size_t)m->num_layers * steps - 1u) * width;
            edgernn_matvec_s8(m->head_w, last, m->head_b, m->num_classes, (int32_t)width, logits);
        } else {
            edgernn_logits(m, state, logits);
        }
    }
    return EDGERNN_OK;
}

EDGERNN_INLINE int edgernn_run(const edgernn_model_t *m, int8_t *state, const int8_t *x, size_t steps,
                               int8_t *buf, size_t buf_bytes, int32_t *logits, int32_t *scratch)
{
    if (m->vocab_size != 0) {
        return EDGERNN_ERR_MODEL;
    }
    return edgernn_run_any(m, state, x, NULL, steps, buf, buf_bytes, logits, scratch);
}

EDGERNN_INLINE int edgernn_run_tokens(const edgernn_model_t *m, int8_t *state, const int32_t *tokens,
                                      size_t steps, int8_t *buf, size_t buf_bytes, int32_t *logits,
                                      int32_t *scratch)
{
    if (m->vocab_size == 0) {
        return EDGERNN_ERR_MODEL;
    }
    return edgernn_run_any(m, state, NULL, tokens, steps, buf, buf_bytes, logits, scratch);
}

static inline size_t edgernn_generate(const edgernn_model_t *m, int8_t *state, int32_t start_token,
                                     int32_t *out, size_t max_len, uint32_t seed, int32_t *scratch)
{
    int32_t *logits = scratch + EDGERNN_SCRATCH_WORDS(m->hidden_size);
    uint32_t rng = seed;
    int32_t token = start_token;
    size_t written = 0;
    while (written < max_len) {
        if (edgernn_step_token(m, state, token, scratch) != EDGERNN_OK) {
            break;
        }
        edgernn_logits(m, state, logits);
        if (seed == 0u) {
            token = edgernn_argmax_s32(logits, m->num_classes);
        } else {
            token = edgernn_sample_s32(logits, m->num_classes, m->sample_step, &rng);
        }
        if (token == m->end_token) {
            break;
        }
        out[written++] = token;
    }
    return written;
}

static inline void edgernn_quantize_features(const edgernn_model_t *m, const float *raw, int8_t *xq, int32_t n)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        float value = raw[i];
        if (m->norm_mean != NULL) {
            /* (raw - mean) / std as two float32 operations, like numpy on float32 arrays. */
            const float centred = value - EDGERNN_READ_F32(&m->norm_mean[i]);
            value = centred / EDGERNN_READ_F32(&m->norm_std[i]);
        }
        xq[i] = edgernn_quantize_f32(value, EDGERNN_READ_F32(&m->input_inv_scale[i]));
    }
}

static inline void edgernn_quantize_input(const edgernn_model_t *m, const float *raw, int8_t *xq)
{
    edgernn_quantize_features(m, raw, xq, m->input_size);
}

EDGERNN_INLINE float edgernn_dequantize_logit(const edgernn_model_t *m, int32_t logit_q)
{
    return (float)logit_q * m->head_scale;
}

#endif /* EDGERNN_RUNTIME_H */

/* =============================================================================================
 * Implementation: the tanh table, in the one translation unit that defines
 * EDGERNN_IMPLEMENTATION, once however many model headers it includes.
 */
#if defined(EDGERNN_IMPLEMENTATION) && !defined(EDGERNN_RUNTIME_IMPLEMENTED) && !defined(EDGERNN_NO_TANH_TABLE)
#define EDGERNN_RUNTIME_IMPLEMENTED

/* LUT[k] = round_half_away(127 * tanh((k - 512) / 128)), k = z + 512. The same for every
 * model (edgernn.contract.constants.tanh_lut). The full table is kept rather than half of it (tanh is odd):
 * it costs 512 bytes of flash and saves a branch and a negation per hidden unit and step. */
#ifdef __cplusplus
extern "C" /* C++: a namespace-scope const is internal, and a weak definition must be public */
#endif
EDGERNN_SHARED_TABLE EDGERNN_FLASH const int8_t edgernn_tanh_lut[EDGERNN_LUT_SIZE] = {
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

#endif /* EDGERNN_IMPLEMENTATION */
