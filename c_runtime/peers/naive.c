/*
 * naive.c -- the step as a user writes it for one model without a library: a double loop per row
 * (W x, then U h) into an int32 accumulator, a rounding right shift, a clamp to int8 and the int8
 * tanh table. The shape is a compile-time constant (PEER_INPUTS, PEER_HIDDEN), as in code written
 * for one model, so the compiler unrolls and folds the loops as it does model.h's; the library
 * peers take theirs at run time, as a library call does.
 */
#include "peer.h"

#if !defined(PEER_INPUTS) || !defined(PEER_HIDDEN)
#error "define PEER_INPUTS and PEER_HIDDEN: the naive step is built for one shape"
#endif

int8_t naive_input_weights[PEER_HIDDEN * PEER_INPUTS];  /* W: [H][I] */
int8_t naive_hidden_weights[PEER_HIDDEN * PEER_HIDDEN]; /* U: [H][H] */
int32_t naive_bias[PEER_HIDDEN];
int32_t naive_shift; /* >= 1 */

static int8_t naive_h[PEER_HIDDEN];
static int8_t naive_next[PEER_HIDDEN];

void peer_setup(void)
{
    int32_t j;
    for (j = 0; j < PEER_HIDDEN; ++j) {
        naive_h[j] = 0;
    }
}

void peer_step(const int8_t *x)
{
    const int32_t shift = naive_shift;
    int32_t i;
    int32_t j;
    for (j = 0; j < PEER_HIDDEN; ++j) {
        const int8_t *w = &naive_input_weights[j * PEER_INPUTS];
        const int8_t *u = &naive_hidden_weights[j * PEER_HIDDEN];
        int32_t acc = naive_bias[j];
        int32_t z;
        for (i = 0; i < PEER_INPUTS; ++i) {
            acc += w[i] * x[i];
        }
        for (i = 0; i < PEER_HIDDEN; ++i) {
            acc += u[i] * naive_h[i];
        }
        z = (acc + (1 << (shift - 1))) >> shift;
        z = z < -128 ? -128 : z > 127 ? 127 : z;
        naive_next[j] = peer_tanh[z + 128];
    }
    for (j = 0; j < PEER_HIDDEN; ++j) {
        naive_h[j] = naive_next[j];
    }
}

const int8_t *peer_state(void)
{
    return naive_h;
}
