"""The integer contract's constants and the two rules every backend rebuilds from them.

The numbers here are the contract (docs/integer-contract.md); the C runtime repeats them as
EDGERNN_* macros and the ONNX graphs as initializers. Changing one changes every backend.
"""

from __future__ import annotations

import numpy as np

Q_MAX = 127  # int8 operands are symmetric: -128 is never produced, so |a*b| <= 127^2
Z_FRAC = 7  # z has scale 2^-7: the LUT covers tanh on [-4, 4) in 1/128 steps
Z_MIN, Z_MAX = -512, 511
LUT_SIZE = Z_MAX - Z_MIN + 1
MAX_SHIFT = 40
M_LIMIT = 1 << 30  # multipliers stay below 2^30 so acc * M fits int64 with room to spare
ACC_LIMIT = 1 << 31
V_LIMIT = 1 << 61  # |v| < 2^61 keeps v + 2^62 + 2^(n-1) positive and inside int64
OFFSET_BITS = 62
# An input-weight row scale is never allowed below |bias| / 2^24, so a row with tiny weights and a
# large bias cannot push b_q past int32 (it costs that row weight resolution, nothing else).
BIAS_HEADROOM = float(1 << 24)
# A token table's largest |entry| per hidden unit: 2^20 levels, far finer than z's 2^-7 steps, and
# still leaving int32 headroom for acc_h.
TABLE_LEVELS = float(1 << 20)


def round_half_away(a: np.ndarray | float) -> np.ndarray:
    """sign(a) * floor(|a| + 0.5): the one rounding rule, reproducible in C without libm."""
    a = np.asarray(a, dtype=np.float64)
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def tanh_lut() -> np.ndarray:
    """LUT[k] = round_half_away(127 tanh((k - 512) / 128)), k = 0 .. 1023, as int8."""
    k = np.arange(LUT_SIZE, dtype=np.float64) + Z_MIN
    return round_half_away(Q_MAX * np.tanh(k * 2.0**-Z_FRAC)).astype(np.int8)
