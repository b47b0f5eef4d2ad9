/*
 * model_unit.c -- one generated model.h as a firmware links it: the only translation unit that
 * includes the model, exporting the calls of mcu_model.h under fixed names.
 *
 *   <cc> -c -DEDGERNN_H_PREFIX=jv -DEDGERNN_H_PREFIX_UPPER=JV '-DEDGERNN_MODEL_HEADER="model.h"' \
 *        -DMCU_TOKENS=0 -DMCU_BIDIRECTIONAL=0 -DMCU_PER_STEP=0 model_unit.c
 *
 * The wrappers are one call deep and add a handful of instructions and bytes, the same as an
 * application calling PREFIX_step from its own code would spend. Measured on this object:
 * flash = .text + .rodata (weights, LUT, kernels, wrappers); static RAM = .data + .bss (zero: the
 * model keeps no globals); the undefined symbols = what the model needs from libc/compiler-rt.
 */
#if !defined(EDGERNN_MODEL_HEADER) || !defined(EDGERNN_H_PREFIX) || !defined(EDGERNN_H_PREFIX_UPPER)
#error "define EDGERNN_MODEL_HEADER (quoted path), EDGERNN_H_PREFIX and EDGERNN_H_PREFIX_UPPER"
#endif
#include EDGERNN_MODEL_HEADER

#include "mcu_model.h"

#define MU_CAT_(a, b) a##b
#define MU_CAT(a, b) MU_CAT_(a, b)
#define M(name) MU_CAT(EDGERNN_H_PREFIX, name)       /* M(_step) -> jv_step */
#define U(name) MU_CAT(EDGERNN_H_PREFIX_UPPER, name) /* U(_TASK) -> JV_TASK */

typedef M(_state_t) mu_state_t;

/* The harness was generated from the same model: refuse to build if its idea of the shape differs
 * (C99 has no _Static_assert; a negative array size is the portable compile-time error). */
typedef char mu_tokens_agree[(MCU_TOKENS == U(_TOKEN_INPUT)) ? 1 : -1];
typedef char mu_directions_agree[(MCU_BIDIRECTIONAL == (U(_NUM_DIRECTIONS) == 2)) ? 1 : -1];
typedef char mu_task_agree[(MCU_PER_STEP == (U(_TASK) != EDGERNN_TASK_MANY_TO_ONE)) ? 1 : -1];
typedef char mu_state_is_bytes[(sizeof(mu_state_t) == U(_STATE_BYTES)) ? 1 : -1];

void mcu_model_init(void *state)
{
    M(_init)((mu_state_t *)state);
}

#if MCU_BIDIRECTIONAL
#if MCU_TOKENS
int32_t mcu_model_run(void *state, const int32_t *tokens, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits)
{
    return M(_run)((mu_state_t *)state, tokens, steps, buf, buf_bytes, logits);
}
#else
int32_t mcu_model_run(void *state, const int8_t *x, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits)
{
    return M(_run)((mu_state_t *)state, x, steps, buf, buf_bytes, logits);
}
#endif
#else
#if MCU_TOKENS
int32_t mcu_model_step(void *state, int32_t token)
{
    return M(_step_token)((mu_state_t *)state, token);
}
#else
void mcu_model_step(void *state, const int8_t *x)
{
    M(_step)((mu_state_t *)state, x);
}
#endif
#endif

#if !MCU_BIDIRECTIONAL || !MCU_PER_STEP
void mcu_model_logits(const void *state, int32_t *out)
{
    M(_logits)((const mu_state_t *)state, out);
}
#endif
