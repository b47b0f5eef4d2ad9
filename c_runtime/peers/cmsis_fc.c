/*
 * cmsis_fc.c -- CMSIS-NN's best int8 path for one RNN step: arm_fully_connected_s8 (which runs
 * arm_nn_vec_mat_mult_t_s8) once over the concatenated vector [x; h] with weights [W | U], one
 * per-tensor multiplier and shift, output clamped to int8, then a 256-entry int8 tanh table
 * (CMSIS-NN has no int8 tanh). The state lives at xh + I, so only x is copied in per step.
 * On a core with the DSP extension CMSIS-NN takes its SMLAD path (ARM_MATH_DSP, set when the
 * compiler defines __ARM_FEATURE_DSP); elsewhere its portable C.
 */
#include <string.h>

#include "arm_nnfunctions.h"
#include "peer.h"

int8_t fc_weights[PEER_MAX_HIDDEN * (PEER_MAX_INPUTS + PEER_MAX_HIDDEN)]; /* [H][I + H] */
int32_t fc_bias[PEER_MAX_HIDDEN];
int32_t fc_multiplier;
int32_t fc_shift;

static int8_t fc_xh[PEER_MAX_INPUTS + PEER_MAX_HIDDEN];
static int8_t fc_z[PEER_MAX_HIDDEN];
static cmsis_nn_context fc_ctx;
static cmsis_nn_fc_params fc_params;
static cmsis_nn_per_tensor_quant_params fc_quant;
static cmsis_nn_dims fc_input_dims, fc_filter_dims, fc_bias_dims, fc_output_dims;

void peer_setup(void)
{
    int32_t j;
    for (j = 0; j < peer_hidden; ++j) {
        fc_xh[peer_inputs + j] = 0;
    }
    fc_ctx.buf = NULL; /* the kernel sums are needed by the MVE path only */
    fc_ctx.size = 0;
    fc_params.input_offset = 0;
    fc_params.filter_offset = 0;
    fc_params.output_offset = 0;
    fc_params.activation.min = -128;
    fc_params.activation.max = 127;
    fc_quant.multiplier = fc_multiplier;
    fc_quant.shift = fc_shift;
    fc_input_dims.n = 1;
    fc_input_dims.h = 1;
    fc_input_dims.w = 1;
    fc_input_dims.c = peer_inputs + peer_hidden;
    fc_filter_dims.n = peer_inputs + peer_hidden;
    fc_filter_dims.h = 1;
    fc_filter_dims.w = 1;
    fc_filter_dims.c = peer_hidden;
    fc_bias_dims.n = 1;
    fc_bias_dims.h = 1;
    fc_bias_dims.w = 1;
    fc_bias_dims.c = peer_hidden;
    fc_output_dims.n = 1;
    fc_output_dims.h = 1;
    fc_output_dims.w = 1;
    fc_output_dims.c = peer_hidden;
}

void peer_step(const int8_t *x)
{
    const int32_t hidden = peer_hidden;
    int8_t *h = &fc_xh[peer_inputs];
    int32_t j;
    memcpy(fc_xh, x, (size_t)peer_inputs);
    (void)arm_fully_connected_s8(&fc_ctx, &fc_params, &fc_quant, &fc_input_dims, fc_xh, &fc_filter_dims,
                                 fc_weights, &fc_bias_dims, fc_bias, &fc_output_dims, fc_z);
    for (j = 0; j < hidden; ++j) {
        h[j] = peer_tanh[fc_z[j] + 128];
    }
}

const int8_t *peer_state(void)
{
    return &fc_xh[peer_inputs];
}
