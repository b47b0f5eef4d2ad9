"""Conversion from float: the one place where scales become integers.

Per cell (layer and direction), with s_z = 2^-7 the scale of z:
    row scales  s_acc[j] = max_i |W_ih[j, i] s_x[i]| / 127   (floored at |b[j]| / 2^24)
                s_hh[j]  = max_k |W_hh[j, k]| / 127
    weights     W_ih_q = round(W_ih s_x / s_acc), W_hh_q = round(W_hh / s_hh), b_q = round(b / s_acc)
    multipliers M_x = round(s_acc / s_z 2^n), M_h = round(s_hh / (127 s_z) 2^n), with n the largest
                shift <= 40 that keeps every M of the cell below 2^30.
Token cells fold W_ih E[token] + b into an int32 table instead. All rounding is half away from
zero (`round_half_away`); see docs/integer-contract.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from edgernn.contract.bounds import check_bounds
from edgernn.contract.constants import (
    ACC_LIMIT,
    BIAS_HEADROOM,
    M_LIMIT,
    MAX_SHIFT,
    Q_MAX,
    TABLE_LEVELS,
    Z_FRAC,
    round_half_away,
)
from edgernn.contract.meta import ModelMeta
from edgernn.contract.model import QuantCell, QuantizedModel
from edgernn.errors import InputError, InternalError, QuantizationError
from edgernn.train.model import EdgeRNN


def _row_scales(w: np.ndarray, floor: np.ndarray | None = None) -> np.ndarray:
    s = np.abs(w).max(axis=1) / Q_MAX
    if floor is not None:
        s = np.maximum(s, floor)
    # An all-zero row still needs a finite scale; any positive value gives W_q = 0 exactly.
    return np.where(s > 0, s, 1.0 / Q_MAX)


def _shift_and_multipliers(m_x: np.ndarray, m_h: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    # n >= 1: rounding adds 2^(n-1). Stopping at 1 (not 0, which check_bounds would refuse with a
    # vaguer "shift < 1") makes weights that are too large fail here, with the reason.
    for n in range(MAX_SHIFT, 0, -1):
        mx, mh = round_half_away(m_x * 2.0**n), round_half_away(m_h * 2.0**n)
        if mx.max(initial=0) < M_LIMIT and mh.max(initial=0) < M_LIMIT:
            return n, mx.astype(np.int64), mh.astype(np.int64)
    raise QuantizationError(
        f"a requantization multiplier is >= 2^30 even with shift 1 (max {max(m_x.max(), m_h.max()):.3g}); "
        "the weights are too large for the int8 contract"
    )


def _check_finite(name: str, *arrays: np.ndarray) -> None:
    for a in arrays:
        if not np.isfinite(a).all():
            raise QuantizationError(f"{name} contains NaN or Inf; refusing to quantize")


def quantize_cell(w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray, s_x: np.ndarray | float) -> QuantCell:
    """Float layer (W_ih (H, In), W_hh (H, H), b = b_ih + b_hh) reading inputs of scale s_x."""
    w_ih, w_hh, bias = (np.asarray(a, dtype=np.float64) for a in (w_ih, w_hh, bias))
    _check_finite("the RNN weights", w_ih, w_hh, bias)
    s_x = np.broadcast_to(np.asarray(s_x, dtype=np.float64), (w_ih.shape[1],))
    folded = w_ih * s_x[None, :]  # per-feature input scales fold into W_ih's columns
    s_acc = _row_scales(folded, np.abs(bias) / BIAS_HEADROOM)
    s_hh = _row_scales(w_hh)
    s_z = 2.0**-Z_FRAC
    n, m_x, m_h = _shift_and_multipliers(s_acc / s_z, s_hh / (Q_MAX * s_z))
    return QuantCell(
        w_ih=round_half_away(folded / s_acc[:, None]).astype(np.int8),
        w_hh=round_half_away(w_hh / s_hh[:, None]).astype(np.int8),
        bias=round_half_away(bias / s_acc).astype(np.int32),
        m_x=m_x,
        m_h=m_h,
        shift=n,
        table=None,
    )


def quantize_token_cell(
    embedding: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray
) -> QuantCell:
    """Token input: acc_x = table[token], the product W_ih . E[token] + b folded once, per row
    scaled into 2^20 levels (far finer than the 2^-7 of z; still leaves int32 headroom for acc_h)."""
    e = np.asarray(embedding, dtype=np.float64)
    _check_finite("the embedding", e)
    w_ih, w_hh, bias = (np.asarray(a, dtype=np.float64) for a in (w_ih, w_hh, bias))
    _check_finite("the RNN weights", w_ih, w_hh, bias)
    table = e @ w_ih.T + bias[None, :]  # (V, H)
    s_acc = np.abs(table).max(axis=0) / TABLE_LEVELS
    s_acc = np.where(s_acc > 0, s_acc, 1.0)
    s_hh = _row_scales(w_hh)
    s_z = 2.0**-Z_FRAC
    n, m_x, m_h = _shift_and_multipliers(s_acc / s_z, s_hh / (Q_MAX * s_z))
    hidden = w_hh.shape[0]
    return QuantCell(
        w_ih=np.zeros((hidden, 0), dtype=np.int8),
        w_hh=round_half_away(w_hh / s_hh[:, None]).astype(np.int8),
        bias=np.zeros(hidden, dtype=np.int32),
        m_x=m_x,
        m_h=m_h,
        shift=n,
        table=round_half_away(table / s_acc[None, :]).astype(np.int32),
    )


def input_scales(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-feature scale from the training split: the largest |x| over valid steps maps to 127."""
    mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    valid = x[mask]
    _check_finite("the calibration data", valid)
    peak = np.abs(valid).max(axis=0) if len(valid) else np.ones(x.shape[2])
    return np.where(peak > 0, peak / Q_MAX, 1.0).astype(np.float32)


def quantize_inputs(x: np.ndarray, input_scale: np.ndarray) -> np.ndarray:
    """The one float -> int8 rule: float32 x * (1 / s_x), round half away from zero, saturate to +-127,
    NaN -> 0. The C float wrapper (edgernn_quantize_f32) does the same float32 operations."""
    inv = (np.float32(1.0) / np.asarray(input_scale, dtype=np.float32)).astype(np.float32)
    t = np.asarray(x, dtype=np.float32) * inv
    t = np.where(np.isnan(t), np.float32(0.0), t)
    return np.clip(round_half_away(t), -Q_MAX, Q_MAX).astype(np.int8)


def quantize_model(
    model: EdgeRNN,
    calib_x: np.ndarray | None,
    calib_lengths: np.ndarray | None,
    norm_mean: np.ndarray | None = None,
    norm_std: np.ndarray | None = None,
    meta: ModelMeta | Mapping[str, Any] | None = None,
) -> QuantizedModel:
    """Quantize an EdgeRNN (`edgernn.import_model` brings one trained elsewhere)."""
    cfg = model.cfg
    rnn, head = model.rnn, model.head
    d = cfg.directions
    sd = {k: v.detach().double().numpy() for k, v in rnn.state_dict().items()}
    if cfg.tokens:
        s_in = np.zeros(0, dtype=np.float32)
    else:
        if calib_x is None or calib_lengths is None:
            raise InputError("a feature-input model needs calibration data to set its input scales")
        # One scale per sample feature, the same at every position of a frame (edgernn.frame): a
        # sample quantizes alone, before it is known where in its frame it lands.
        # input_scales also refuses non-finite calibration data, clip or not.
        per_sample = input_scales(np.asarray(calib_x, dtype=np.float32), np.asarray(calib_lengths))
        if cfg.input_clip:
            # The float model clamps at input_clip: saturating at +-127 is then the same clamp.
            per_sample = np.full(cfg.sample_size, cfg.input_clip / Q_MAX, dtype=np.float32)
        s_in = np.tile(per_sample, cfg.frame)
    cells = []
    for layer in range(cfg.num_layers):
        for direction in range(d):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
            b = sd["bias_ih" + sfx] + sd["bias_hh" + sfx]
            if layer == 0 and cfg.tokens:
                if model.embedding is None:
                    raise InternalError("a token model without an embedding reached quantize_model")
                emb = model.embedding.weight.detach().double().numpy()
                cells.append(quantize_token_cell(emb, w_ih, w_hh, b))
            else:
                s_x = s_in.astype(np.float64) if layer == 0 else np.full(w_ih.shape[1], 1.0 / Q_MAX)
                cells.append(quantize_cell(w_ih, w_hh, b, s_x))
    w_y = head.weight.detach().double().numpy()
    b_y = head.bias.detach().double().numpy()
    _check_finite("the head", w_y, b_y)
    s_y = float(np.abs(w_y).max()) / Q_MAX or 1.0 / Q_MAX
    head_scale = s_y / Q_MAX
    head_b = round_half_away(b_y / head_scale)
    if np.abs(head_b).max(initial=0) >= ACC_LIMIT:
        raise QuantizationError("head: a bias is >= 2^31 at the logit scale; the head weights are too small")
    qm = QuantizedModel(
        config=cfg,
        cells=tuple(cells),
        head_w=round_half_away(w_y / s_y).astype(np.int8),
        head_b=head_b.astype(np.int32),
        head_scale=head_scale,
        input_scale=s_in,
        norm_mean=np.zeros(0, np.float32)
        if norm_mean is None
        else np.tile(np.asarray(norm_mean, np.float32), cfg.frame),
        norm_std=np.zeros(0, np.float32)
        if norm_std is None
        else np.tile(np.asarray(norm_std, np.float32), cfg.frame),
        meta=ModelMeta.from_dict(meta or {}),
    )
    check_bounds(qm)
    return qm
