/*
 * cmsis_lstm_gate.c -- one RNN step on the path CMSIS-NN's int8 LSTM runs for each of its gates:
 * arm_nn_lstm_calculate_gate_s8_s16 with ARM_TANH, i.e. two arm_nn_vec_mat_mul_result_acc_s8_s16
 * (W x, then U h, each with its own effective bias, multiplier and shift, accumulated into an
 * int16 pre-activation, Q3.12) and arm_nn_activation_s16 (an interpolated tanh, Q0.15 out,
 * from arm_nntables.c). The int16 result becomes the int8 state by dropping its low byte.
 */
#include "arm_nnfunctions.h"
#include "arm_nnsupportfunctions.h"
#include "peer.h"

int8_t gate_input_weights[PEER_MAX_HIDDEN * PEER_MAX_INPUTS];   /* W: [H][I] */
int8_t gate_hidden_weights[PEER_MAX_HIDDEN * PEER_MAX_HIDDEN];  /* U: [H][H] */
int32_t gate_input_bias[PEER_MAX_HIDDEN];
int32_t gate_hidden_bias[PEER_MAX_HIDDEN];
int32_t gate_input_multiplier;
int32_t gate_input_shift;
int32_t gate_hidden_multiplier;
int32_t gate_hidden_shift;

static int8_t gate_h[PEER_MAX_HIDDEN];
static int16_t gate_out[PEER_MAX_HIDDEN];
static cmsis_nn_lstm_gate gate;
static cmsis_nn_lstm_params gate_params;

void peer_setup(void)
{
    int32_t j;
    for (j = 0; j < peer_hidden; ++j) {
        gate_h[j] = 0;
    }
    gate.input_multiplier = gate_input_multiplier;
    gate.input_shift = gate_input_shift;
    gate.input_weights = gate_input_weights;
    gate.input_effective_bias = gate_input_bias;
    gate.hidden_multiplier = gate_hidden_multiplier;
    gate.hidden_shift = gate_hidden_shift;
    gate.hidden_weights = gate_hidden_weights;
    gate.hidden_effective_bias = gate_hidden_bias;
    gate.bias = NULL;
    gate.activation_type = ARM_TANH;
    gate_params.time_major = 1;
    gate_params.batch_size = 1;
    gate_params.time_steps = 1;
    gate_params.input_size = peer_inputs;
    gate_params.hidden_size = peer_hidden;
}

void peer_step(const int8_t *x)
{
    const int32_t hidden = peer_hidden;
    int32_t j;
    (void)arm_nn_lstm_calculate_gate_s8_s16(x, gate_h, &gate, &gate_params, gate_out, 1);
    for (j = 0; j < hidden; ++j) {
        gate_h[j] = (int8_t)(gate_out[j] >> 8);
    }
}

const int8_t *peer_state(void)
{
    return gate_h;
}
