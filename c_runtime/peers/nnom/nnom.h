/*
 * nnom.h -- the few definitions NNoM's kernels (src/backends/nnom_local.c) take from NNoM's main
 * header, which also declares the whole layer and model API this benchmark does not build. The
 * values are upstream's: q-format integer types, the per-tensor/per-axis quantisation kinds, and
 * NNOM_ROUND (NNoM's default rounding: add half before a right shift).
 */
#ifndef __NNOM_H__
#define __NNOM_H__

#include <stdint.h>
#include <string.h>

#include "nnom_port.h"

#define q7_t int8_t
#define q15_t int16_t
#define q31_t int32_t
#define q63_t int64_t

#define nnom_qformat_param_t int32_t
#define nnom_shape_data_t uint16_t

typedef enum {
    NNOM_QTYPE_PER_TENSOR = 0,
    NNOM_QTYPE_PER_AXIS = 1
} nnom_qtype_t;

#define NNOM_ROUND(out_shift) ((0x1 << out_shift) >> 1)

#endif /* __NNOM_H__ */
