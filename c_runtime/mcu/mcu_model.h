/*
 * mcu_model.h -- the seam between the on-target test harness and the model under test.
 *
 * model_unit.c wraps one generated model.h behind these fixed, prefix-free names and is compiled
 * on its own: that object file *is* the model as a firmware would link it (its .text + .rodata is
 * the model's flash, its undefined symbols are everything the model needs from a C library or
 * compiler runtime). harness.c only sees this header and the generated vectors.h, so nothing of
 * the harness can be mistaken for model code, and the call into the model is a real call whose
 * instructions and stack an emulator can attribute.
 *
 * The shape macros (MCU_TOKENS, MCU_BIDIRECTIONAL, MCU_PER_STEP, ...) come from vectors.h on the
 * harness side and from the model header on the model side; model_unit.c checks that they agree.
 * The state is passed as void *: the harness owns MCU_STATE_BYTES of RAM for it, exactly like an
 * application owns a PREFIX_state_t.
 */
#ifndef EDGERNN_MCU_MODEL_H
#define EDGERNN_MCU_MODEL_H

#include <stddef.h>
#include <stdint.h>

void mcu_model_init(void *state);

#if MCU_BIDIRECTIONAL
/* A whole sequence (bidirectional models have no single step); returns EDGERNN_OK (0) or an error. */
#if MCU_TOKENS
int32_t mcu_model_run(void *state, const int32_t *tokens, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits);
#else
int32_t mcu_model_run(void *state, const int8_t *x, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits);
#endif
#else
/* One time step of every layer: the streaming call an application makes per sample or token. */
#if MCU_TOKENS
int32_t mcu_model_step(void *state, int32_t token);
#else
void mcu_model_step(void *state, const int8_t *x);
#endif
#endif

#if !MCU_BIDIRECTIONAL || !MCU_PER_STEP
/* The head on the current state (the generated PREFIX_logits). */
void mcu_model_logits(const void *state, int32_t *out);
#endif

#endif /* EDGERNN_MCU_MODEL_H */
