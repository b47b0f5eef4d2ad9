"""The contract's overflow proof: worst-case accumulator and requantization bounds per cell.

A QuantizedModel is only valid if, for every int8 input and state, |acc_x|, |acc_h| < 2^31 (int32),
every multiplier 0 <= M < 2^30, 1 <= n <= 40, and |v| = |acc_x M_x + acc_h M_h| < 2^61 (so that
v + 2^62 + 2^(n-1) is positive and fits int64), and every head logit fits int32. The converter
checks this after quantizing, and `QuantizedModel.from_json` again on load.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from edgernn.contract.constants import ACC_LIMIT, M_LIMIT, MAX_SHIFT, Q_MAX, V_LIMIT, Z_MIN
from edgernn.errors import QuantizationError

if TYPE_CHECKING:
    from edgernn.contract.model import QuantCell, QuantizedModel


def _unit_bounds(cell: QuantCell) -> tuple[np.ndarray, np.ndarray]:
    """Per hidden unit, the worst case over every int8 input and state: (max |acc_x|, max |acc_h|)."""
    if cell.table is not None:
        acc_x = np.abs(cell.table.astype(np.int64)).max(axis=0)
    else:
        acc_x = np.abs(cell.w_ih.astype(np.int64)).sum(axis=1) * Q_MAX + np.abs(cell.bias.astype(np.int64))
    return acc_x, np.abs(cell.w_hh.astype(np.int64)).sum(axis=1) * Q_MAX


def cell_bounds(cell: QuantCell) -> tuple[int, int, int]:
    """Worst case over every int8 input and state: (max |acc_x|, max |acc_h|, max |v|)."""
    acc_x, acc_h = _unit_bounds(cell)
    # Python ints: the product of two int64 bounds may itself overflow int64.
    terms = zip(acc_x, cell.m_x, acc_h, cell.m_h, strict=True)
    v = max(int(a) * int(mx) + int(b) * int(mh) for a, mx, b, mh in terms)
    return int(acc_x.max(initial=0)), int(acc_h.max(initial=0)), v


# The narrow requantization (C on Armv6-M, EDGERNN_V6M_ASM): each multiplier in three 10-bit
# chunks, M = m2 2^20 + m1 2^10 + m0, every product and sum an int32.
NARROW_CHUNK_BITS = 10
NARROW_MIN_SHIFT = 2 * NARROW_CHUNK_BITS + 1  # 2^(n-1) is then a multiple of 2^20


def narrow_requant(cell: QuantCell) -> bool:
    """True if, for every int8 input and state, floor(v / 2^20) of v = acc_x M_x + acc_h M_h is
    computed exactly in int32 arithmetic from the multipliers' 10-bit chunks (as the C runtime's
    Armv6-M requantization does, without any 64-bit sum), and n >= 21 so that the rounding offset
    2^(n-1) is a multiple of 2^20. Per hidden unit, with A = max|acc_x| + max|acc_h|:

        Q0 = acc_x m0_x + acc_h m0_h, Q1 = acc_x m1_x + acc_h m1_h    |Q0|, |Q1| <= 1023 A
        Q1 + floor(Q0 / 2^10)                                          |.| <= 1024 A < 2^31
        V = acc_x m2_x + acc_h m2_h + floor((Q1 + floor(Q0 / 2^10)) / 2^10)
        t = V + 2^(n-21) + 512 2^(n-20) (z + 512, scaled)              |V| + 2^(n-21) + 2^(n-11) < 2^31
    """
    if cell.shift < NARROW_MIN_SHIFT:
        return False
    acc_x, acc_h = _unit_bounds(cell)
    top = 2 * NARROW_CHUNK_BITS
    limit = 1 << 31
    offsets = (1 << (cell.shift - NARROW_MIN_SHIFT)) + (-Z_MIN << (cell.shift - top))
    for a, mx, b, mh in zip(acc_x, cell.m_x, acc_h, cell.m_h, strict=True):
        a, b = int(a), int(b)
        if (a + b) << NARROW_CHUNK_BITS >= limit:
            return False
        high = a * (int(mx) >> top) + b * (int(mh) >> top)
        if high + a + b + offsets >= limit:
            return False
    return True


def check_bounds(qm: QuantizedModel) -> None:
    """Prove |acc| < 2^31, |v| < 2^61, M < 2^30 for every cell, or refuse the model."""
    for i, cell in enumerate(qm.cells):
        where = f"layer {i // qm.config.directions} direction {i % qm.config.directions}"
        acc_x, acc_h, v = cell_bounds(cell)
        if max(acc_x, acc_h) >= ACC_LIMIT:
            raise QuantizationError(f"{where}: int32 accumulator bound {max(acc_x, acc_h)} >= 2^31")
        if v >= V_LIMIT:
            raise QuantizationError(f"{where}: requantization bound {v} >= 2^61")
        if (
            max(int(cell.m_x.max(initial=0)), int(cell.m_h.max(initial=0))) >= M_LIMIT
            or cell.shift > MAX_SHIFT
        ):
            raise QuantizationError(f"{where}: multiplier >= 2^30 or shift > {MAX_SHIFT}")
        if min(int(cell.m_x.min(initial=0)), int(cell.m_h.min(initial=0))) < 0 or cell.shift < 1:
            raise QuantizationError(f"{where}: negative multiplier or shift < 1")
    head = np.abs(qm.head_w.astype(np.int64)).sum(axis=1) * Q_MAX + np.abs(qm.head_b.astype(np.int64))
    if head.max(initial=0) >= ACC_LIMIT:
        raise QuantizationError("head: int32 logit bound >= 2^31")
