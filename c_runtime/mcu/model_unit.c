/*
 * model_unit.c -- one generated model.h as a firmware links it: the one translation unit that
 * includes the model (defining EDGERNN_IMPLEMENTATION, so the weight tables live here), with the
 * calls of mcu_model.h written as an application writes them, on the prefix-free API:
 *
 *   <cc> -c '-DEDGERNN_MODEL_HEADER="model.h"' -DEDGERNN_MODEL=jv_model -DMCU_SCRATCH_WORDS=64 \
 *        -DMCU_BIDIRECTIONAL=0 model_unit.c
 *
 * EDGERNN_MODEL names the header's descriptor; it is static const here, so the compiler
 * specialises the kernels for the model, exactly as in an application that calls PREFIX_step.
 * Each call holds its scratch on its own stack, as the PREFIX_* wrappers do. Only the calls the
 * harness makes are defined (MCU_BIDIRECTIONAL picks step or run), as a firmware calls only what
 * it uses: a second, unused call site with other arguments would stop the compiler from
 * specialising the kernels, which no application that streams pays for. Measured on this
 * object, as the linked image keeps it: flash = its .text + .rodata; static RAM = .data + .bss
 * (zero: the model keeps no globals); its undefined symbols = what the model needs from
 * libc/compiler-rt (none).
 */
#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_MODEL) || !defined(MCU_SCRATCH_WORDS) || \
    !defined(MCU_BIDIRECTIONAL)
#error "define EDGERNN_MODEL_HEADER (quoted path), EDGERNN_MODEL, MCU_SCRATCH_WORDS and MCU_BIDIRECTIONAL"
#endif
#define EDGERNN_IMPLEMENTATION
#include EDGERNN_MODEL_HEADER

#include "mcu_model.h"

/* Every test below reads the static const descriptor, so it folds away at compile time. */
#define MU_SCRATCH_FITS (EDGERNN_SCRATCH_WORDS(EDGERNN_MODEL.hidden_size) <= MCU_SCRATCH_WORDS)

void mcu_model_init(int8_t *state)
{
    edgernn_init(&EDGERNN_MODEL, state);
}

#if !MCU_BIDIRECTIONAL
int32_t mcu_model_step(int8_t *state, const void *x)
{
    int32_t scratch[MCU_SCRATCH_WORDS];
    if (!MU_SCRATCH_FITS) {
        return EDGERNN_ERR_BUFFER;
    }
    if (EDGERNN_MODEL.vocab_size != 0) {
        return edgernn_step_token(&EDGERNN_MODEL, state, *(const int32_t *)x, scratch);
    }
    return edgernn_step(&EDGERNN_MODEL, state, (const int8_t *)x, scratch);
}

void mcu_model_logits(const int8_t *state, int32_t *out)
{
    edgernn_logits(&EDGERNN_MODEL, state, out);
}
#else

int32_t mcu_model_run(int8_t *state, const void *x, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits)
{
    int32_t scratch[MCU_SCRATCH_WORDS];
    if (!MU_SCRATCH_FITS) {
        return EDGERNN_ERR_BUFFER;
    }
    if (EDGERNN_MODEL.vocab_size != 0) {
        return edgernn_run_tokens(&EDGERNN_MODEL, state, (const int32_t *)x, steps, buf, buf_bytes, logits,
                                  scratch);
    }
    return edgernn_run(&EDGERNN_MODEL, state, (const int8_t *)x, steps, buf, buf_bytes, logits, scratch);
}
#endif
