/*
 * mcu_model.h -- the calls harness.c makes into the model under test, with fixed names.
 *
 * model_unit.c defines them on the prefix-free edgernn_* API, in the one translation unit that
 * includes model.h (with EDGERNN_IMPLEMENTATION), so that object file *is* the model as a
 * firmware links it. harness.c sees only this header and vectors.h: nothing of the harness can
 * be mistaken for model code, and each call is a real call whose instructions and stack an
 * emulator can attribute. The state is caller-owned bytes, as an application's PREFIX_state_t.
 */
#ifndef EDGERNN_MCU_MODEL_H
#define EDGERNN_MCU_MODEL_H

#include <stddef.h>
#include <stdint.h>

void mcu_model_init(int8_t *state);
/* One time step of every layer: x is one int8 input vector, or one int32 token id. */
int32_t mcu_model_step(int8_t *state, const void *x);
/* A whole sequence (bidirectional models have no single step; their logits come from the run). */
int32_t mcu_model_run(int8_t *state, const void *x, size_t steps, int8_t *buf, size_t buf_bytes,
                      int32_t *logits);
/* The head on the current state (unidirectional models). */
void mcu_model_logits(const int8_t *state, int32_t *out);

#endif /* EDGERNN_MCU_MODEL_H */
