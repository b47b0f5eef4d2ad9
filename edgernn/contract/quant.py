"""The integer contract of DESIGN.md: conversion from float, the QuantizedModel, and the torch reference.

Every integer backend (ONNX, C) is generated from a QuantizedModel; this module is the one place
where scales become integers. Per layer and direction, per step:

    acc_x = W_ih_q . x_q + b_q                       (int32; token models: a per-token table)
    acc_h = W_hh_q . h_q                              (int32)
    v     = acc_x * M_x + acc_h * M_h                 (int64, one rounding for both terms)
    z     = clamp(floor((v + 2^(n-1)) / 2^n), -512, 511)
    h_q   = LUT[z + 512],  LUT[k] = round(127 tanh((k - 512) / 128))
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from edgernn.config import ModelConfig
from edgernn.errors import InputError, QuantizationError
from edgernn.train.model import EdgeRNN

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


def round_half_away(a: np.ndarray | float) -> np.ndarray:
    """sign(a) * floor(|a| + 0.5): the one rounding rule, reproducible in C without libm."""
    a = np.asarray(a, dtype=np.float64)
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def tanh_lut() -> np.ndarray:
    k = np.arange(LUT_SIZE, dtype=np.float64) + Z_MIN
    return round_half_away(Q_MAX * np.tanh(k * 2.0**-Z_FRAC)).astype(np.int8)


@dataclass(frozen=True)
class QuantCell:
    """One layer and direction in integers. Token-input cells carry `table` instead of w_ih/bias."""

    w_ih: np.ndarray  # int8 (H, In), or (H, 0) for a token cell
    w_hh: np.ndarray  # int8 (H, H)
    bias: np.ndarray  # int32 (H,), zeros for a token cell (folded into the table)
    m_x: np.ndarray  # int64 (H,)
    m_h: np.ndarray  # int64 (H,)
    shift: int
    table: np.ndarray | None = None  # int32 (V, H): W_ih . E[token] + b at the scale of acc_x

    @property
    def hidden(self) -> int:
        return int(self.w_hh.shape[0])


@dataclass(frozen=True)
class QuantizedModel:
    """Everything an integer backend needs; nothing downstream re-derives a scale."""

    config: ModelConfig
    cells: tuple[QuantCell, ...]  # index = layer * directions + direction (torch's h_n order)
    head_w: np.ndarray  # int8 (C, D*H), one scale for the tensor so integer argmax is valid
    head_b: np.ndarray  # int32 (C,)
    head_scale: float  # logit = logits_q * head_scale
    input_scale: np.ndarray  # float32 (I,): x_q = sat(round(x / s_x)); empty for token models
    norm_mean: np.ndarray  # float32 (I,): the data's normalization, for the C float wrapper
    norm_std: np.ndarray  # float32 (I,)
    lut: np.ndarray = field(default_factory=tanh_lut)
    meta: dict[str, Any] = field(default_factory=dict)

    def cell(self, layer: int, direction: int) -> QuantCell:
        return self.cells[layer * self.config.directions + direction]

    def to_json(self) -> str:
        """Deterministic text: same model, same bytes."""

        def arr(a: np.ndarray) -> list[Any]:
            return list(np.asarray(a).tolist())

        doc = {
            "format": "edgernn-quantized-v1",
            "config": self.config.to_dict(),
            "cells": [
                {
                    "w_ih": arr(c.w_ih),
                    "w_hh": arr(c.w_hh),
                    "bias": arr(c.bias),
                    "m_x": arr(c.m_x),
                    "m_h": arr(c.m_h),
                    "shift": c.shift,
                    "table": None if c.table is None else arr(c.table),
                }
                for c in self.cells
            ],
            "head_w": arr(self.head_w),
            "head_b": arr(self.head_b),
            "head_scale": float(self.head_scale),
            "input_scale": [float(v) for v in self.input_scale],
            "norm_mean": [float(v) for v in self.norm_mean],
            "norm_std": [float(v) for v in self.norm_std],
            "meta": self.meta,
        }
        return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuantizedModel:
        try:
            d = json.loads(text)
            if d.get("format") != "edgernn-quantized-v1":
                raise InputError("not an edgernn quantized model (format tag missing or unknown)")
            cfg = ModelConfig.from_dict(d["config"])
            hidden = cfg.hidden_size
            cells = []
            for c in d["cells"]:
                w_ih = np.array(c["w_ih"], dtype=np.int8).reshape(hidden, -1)
                cells.append(
                    QuantCell(
                        w_ih=w_ih,
                        w_hh=np.array(c["w_hh"], dtype=np.int8).reshape(hidden, hidden),
                        bias=np.array(c["bias"], dtype=np.int32),
                        m_x=np.array(c["m_x"], dtype=np.int64),
                        m_h=np.array(c["m_h"], dtype=np.int64),
                        shift=int(c["shift"]),
                        table=None if c["table"] is None else np.array(c["table"], dtype=np.int32),
                    )
                )
            qm = cls(
                config=cfg,
                cells=tuple(cells),
                head_w=np.array(d["head_w"], dtype=np.int8).reshape(cfg.num_classes, -1),
                head_b=np.array(d["head_b"], dtype=np.int32),
                head_scale=float(d["head_scale"]),
                input_scale=np.array(d["input_scale"], dtype=np.float32),
                norm_mean=np.array(d["norm_mean"], dtype=np.float32),
                norm_std=np.array(d["norm_std"], dtype=np.float32),
                meta=dict(d["meta"]),
            )
        except InputError:
            raise
        # OverflowError: numpy refuses e.g. 300 as int8 or 2^31 as int32 (a hand-edited file).
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise InputError(f"malformed quantized model: {type(e).__name__}: {e}") from None
        check_bounds(qm)
        return qm


# ---------------------------------------------------------------------------------------------
# Conversion from float


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
    s_acc = np.abs(table).max(axis=0) / float(1 << 20)
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


def cell_bounds(cell: QuantCell) -> tuple[int, int, int]:
    """Worst case over every int8 input and state: (max |acc_x|, max |acc_h|, max |v|)."""
    if cell.table is not None:
        acc_x = np.abs(cell.table.astype(np.int64)).max(axis=0)
    else:
        acc_x = np.abs(cell.w_ih.astype(np.int64)).sum(axis=1) * Q_MAX + np.abs(cell.bias.astype(np.int64))
    acc_h = np.abs(cell.w_hh.astype(np.int64)).sum(axis=1) * Q_MAX
    # Python ints: the product of two int64 bounds may itself overflow int64.
    terms = zip(acc_x, cell.m_x, acc_h, cell.m_h, strict=True)
    v = max(int(a) * int(mx) + int(b) * int(mh) for a, mx, b, mh in terms)
    return int(acc_x.max(initial=0)), int(acc_h.max(initial=0)), v


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


def input_scales(x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Per-feature scale from the training split: the largest |x| over valid steps maps to 127."""
    mask = np.arange(x.shape[1])[None, :] < lengths[:, None]
    valid = x[mask]
    _check_finite("the calibration data", valid)
    peak = np.abs(valid).max(axis=0) if len(valid) else np.ones(x.shape[2])
    return np.where(peak > 0, peak / Q_MAX, 1.0).astype(np.float32)


def quantize_inputs(x: np.ndarray, input_scale: np.ndarray) -> np.ndarray:
    """The one float -> int8 rule: float32 x * (1 / s_x), round half away from zero, saturate to +-127.
    The C float wrapper does the same float32 operations."""
    inv = (np.float32(1.0) / np.asarray(input_scale, dtype=np.float32)).astype(np.float32)
    t = np.asarray(x, dtype=np.float32) * inv
    return np.clip(round_half_away(t), -Q_MAX, Q_MAX).astype(np.int8)


def quantize_model(
    model: EdgeRNN,
    calib_x: np.ndarray | None,
    calib_lengths: np.ndarray | None,
    norm_mean: np.ndarray | None = None,
    norm_std: np.ndarray | None = None,
    meta: dict[str, Any] | None = None,
) -> QuantizedModel:
    """Quantize an EdgeRNN (see `from_torch` for an nn.RNN + nn.Linear trained elsewhere)."""
    cfg = model.cfg
    rnn, head = model.rnn, model.head
    d = cfg.directions
    sd = {k: v.detach().double().numpy() for k, v in rnn.state_dict().items()}
    if cfg.tokens:
        s_in = np.zeros(0, dtype=np.float32)
    else:
        if calib_x is None or calib_lengths is None:
            raise InputError("a feature-input model needs calibration data to set its input scales")
        s_in = input_scales(np.asarray(calib_x, dtype=np.float32), np.asarray(calib_lengths))
    cells = []
    for layer in range(cfg.num_layers):
        for direction in range(d):
            sfx = f"_l{layer}" + ("_reverse" if direction else "")
            w_ih, w_hh = sd["weight_ih" + sfx], sd["weight_hh" + sfx]
            b = sd["bias_ih" + sfx] + sd["bias_hh" + sfx]
            if layer == 0 and cfg.tokens:
                assert model.embedding is not None
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
        norm_mean=np.zeros(0, np.float32) if norm_mean is None else np.asarray(norm_mean, np.float32),
        norm_std=np.zeros(0, np.float32) if norm_std is None else np.asarray(norm_std, np.float32),
        meta=dict(meta or {}),
    )
    check_bounds(qm)
    return qm


# ---------------------------------------------------------------------------------------------
# The torch integer reference: int64 tensors, no float anywhere in the step.


@dataclass(frozen=True)
class IntResult:
    hidden: torch.Tensor  # int8 (L, B, T, D*H): every layer's output, 0 at padded steps
    h_n: torch.Tensor  # int8 (L*D, B, H): forward state after the last valid step, backward after t=0
    logits: torch.Tensor  # int32 (B, C) many-to-one, (B, T, C) otherwise (0 at padded steps)


def requantize(
    acc_x: torch.Tensor, acc_h: torch.Tensor, m_x: torch.Tensor, m_h: torch.Tensor, shift: int
) -> torch.Tensor:
    """z = clamp(floor((acc_x M_x + acc_h M_h + 2^(n-1)) / 2^n)) without shifting a negative number."""
    v = acc_x * m_x + acc_h * m_h
    t = v + ((1 << (shift - 1)) + (1 << OFFSET_BITS))
    z = torch.div(t, 1 << shift, rounding_mode="floor") - (1 << (OFFSET_BITS - shift))
    return z.clamp(Z_MIN, Z_MAX)


def cell_step(cell: QuantCell, acc_x: torch.Tensor, h: torch.Tensor, lut: torch.Tensor) -> torch.Tensor:
    """One step for a batch: acc_x (B, H) int64, h (B, H) int64 -> new h (B, H) int64."""
    w_hh = torch.from_numpy(cell.w_hh.astype(np.int64))
    acc_h = h @ w_hh.T
    z = requantize(acc_x, acc_h, torch.from_numpy(cell.m_x), torch.from_numpy(cell.m_h), cell.shift)
    return lut[z - Z_MIN]


def input_accumulator(cell: QuantCell, inp: torch.Tensor) -> torch.Tensor:
    """acc_x for every step at once: inp is int (B, T, In) or tokens (B, T) -> int64 (B, T, H)."""
    if cell.table is not None:
        return torch.from_numpy(cell.table.astype(np.int64))[inp.long()]
    w = torch.from_numpy(cell.w_ih.astype(np.int64))
    return inp.long() @ w.T + torch.from_numpy(cell.bias.astype(np.int64))


def _reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Index that reverses each sequence within its own length and leaves padding in place."""
    t = torch.arange(steps)[None, :]
    lens = lengths[:, None]
    return torch.where(t < lens, lens - 1 - t, t)


def int_forward(
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None = None,
) -> IntResult:
    """Run whole (padded) sequences. x: int8 (B, T, I) or int64 tokens (B, T); lengths (B,)."""
    cfg = qm.config
    x = torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x
    lengths = (
        torch.as_tensor(np.asarray(lengths)).long() if isinstance(lengths, np.ndarray) else lengths.long()
    )
    b, steps = x.shape[0], x.shape[1]
    hsz, d = cfg.hidden_size, cfg.directions
    if h0 is None:
        h0 = torch.zeros(cfg.num_layers * d, b, hsz, dtype=torch.int64)
    h0 = torch.as_tensor(np.asarray(h0)).long()
    lut = torch.from_numpy(qm.lut.astype(np.int64))
    valid = torch.arange(steps)[None, :] < lengths[:, None]  # (B, T)
    rev = _reverse_index(lengths, steps)
    layer_in: torch.Tensor = x.long()
    hidden, finals = [], []
    for layer in range(cfg.num_layers):
        outs = []
        for direction in range(d):
            cell = qm.cell(layer, direction)
            src = layer_in
            if direction == 1:
                idx = rev if src.dim() == 2 else rev[:, :, None].expand(-1, -1, src.shape[2])
                src = torch.gather(src, 1, idx)
            acc_x = input_accumulator(cell, src)
            h = h0[layer * d + direction]
            ys = torch.zeros(b, steps, hsz, dtype=torch.int64)
            for t in range(steps):
                h = torch.where(valid[:, t : t + 1], cell_step(cell, acc_x[:, t], h, lut), h)
                ys[:, t] = h
            ys = ys * valid[:, :, None]
            if direction == 1:
                ys = torch.gather(ys, 1, rev[:, :, None].expand(-1, -1, hsz))
            outs.append(ys)
            finals.append(h)
        layer_in = torch.cat(outs, dim=2)
        hidden.append(layer_in)
    head_w = torch.from_numpy(qm.head_w.astype(np.int64))
    head_b = torch.from_numpy(qm.head_b.astype(np.int64))
    if cfg.task == "many-to-one":
        feat = torch.cat(finals[-d:], dim=1)
        logits = feat @ head_w.T + head_b
    else:
        logits = (layer_in @ head_w.T + head_b) * valid[:, :, None]
    return IntResult(
        hidden=torch.stack(hidden).to(torch.int8),
        h_n=torch.stack(finals).to(torch.int8),
        logits=logits.to(torch.int32),
    )


@torch.no_grad()
def int_generate(qm: QuantizedModel, start_token: int, end_token: int, max_len: int) -> list[int]:
    """Greedy one-to-many generation in the integer reference (ties -> lowest index, as in C)."""
    cfg = qm.config
    h = torch.zeros(cfg.num_layers, 1, cfg.hidden_size, dtype=torch.int64)
    token, out = start_token, []
    for _ in range(max_len):
        r = int_forward(qm, torch.tensor([[token]]), torch.tensor([1]), h)
        h = r.h_n.long()
        token = int(torch.argmax(r.logits[0, 0]))
        if token == end_token:
            break
        out.append(token)
    return out
