/*
 * nnom_cell.c -- NNoM's simple RNN cell step, as its simple_cell_run composes it from NNoM's
 * local kernels: local_dot_q7_opt (U h), local_fully_connected_q7_opt (W x + bias),
 * local_add_q7, local_tanh_q7 (a 256-entry q7 table), then the copy into the state. Scales are
 * powers of two (right shifts); the weights are in NNoM's "x4 q7 opt" interleave, reordered
 * offline by the benchmark as NNoM's converter does.
 */
#include <string.h>

#include "nnom.h"
#include "nnom_local.h"
#include "peer.h"

int8_t nnom_input_weights[PEER_MAX_HIDDEN * PEER_MAX_INPUTS];  /* W, interleaved */
int8_t nnom_hidden_weights[PEER_MAX_HIDDEN * PEER_MAX_HIDDEN]; /* U, interleaved */
int8_t nnom_bias[PEER_MAX_HIDDEN];
int32_t nnom_bias_shift;
int32_t nnom_input_shift;  /* right shift of W x + bias */
int32_t nnom_hidden_shift; /* right shift of U h */
int32_t nnom_tanh_int_bits; /* integer bits of the tanh input (local_tanh_q7's int_width) */

static int8_t nnom_h[PEER_MAX_HIDDEN];
static int8_t nnom_wx[PEER_MAX_HIDDEN];
static int8_t nnom_uh[PEER_MAX_HIDDEN];
static int8_t nnom_sum[PEER_MAX_HIDDEN];

void peer_setup(void)
{
    int32_t j;
    for (j = 0; j < peer_hidden; ++j) {
        nnom_h[j] = 0;
    }
}

void peer_step(const int8_t *x)
{
    const uint16_t hidden = (uint16_t)peer_hidden;
    local_dot_q7_opt(nnom_h, nnom_hidden_weights, hidden, hidden, (uint16_t)nnom_hidden_shift, nnom_uh);
    local_fully_connected_q7_opt(x, nnom_input_weights, (uint16_t)peer_inputs, hidden, (uint16_t)nnom_bias_shift,
                                 (uint16_t)nnom_input_shift, nnom_bias, nnom_wx, NULL);
    local_add_q7(nnom_wx, nnom_uh, nnom_sum, 0, hidden);
    local_tanh_q7(nnom_sum, hidden, (int16_t)nnom_tanh_int_bits);
    memcpy(nnom_h, nnom_sum, hidden);
}

const int8_t *peer_state(void)
{
    return nnom_h;
}
