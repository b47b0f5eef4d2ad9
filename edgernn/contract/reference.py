"""The torch integer reference: int64 tensors, no float anywhere in the step.

This is the oracle every backend (ONNX graphs, C) must match integer for integer. Per cell and step
(docs/integer-contract.md):

    acc_x = W_ih_q . x_q + b_q                       (int32; token models: a per-token table)
    acc_h = W_hh_q . h_q                              (int32)
    v     = acc_x * M_x + acc_h * M_h                 (int64, one rounding for both terms)
    z     = clamp(floor((v + 2^(n-1)) / 2^n), -512, 511)
    h_q   = LUT[z + 512],  LUT[k] = round(127 tanh((k - 512) / 128))
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from edgernn.config import Task
from edgernn.contract.constants import OFFSET_BITS, Z_MAX, Z_MIN
from edgernn.contract.model import QuantCell, QuantizedModel
from edgernn.frame import steps_torch


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
    """Run whole (padded) sequences. x: int8 samples (B, T, I) or int64 tokens (B, T); lengths (B,)
    in samples. IntResult's time axis is in steps (T // frame)."""
    cfg = qm.config
    x = torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x
    lengths = (
        torch.as_tensor(np.asarray(lengths)).long() if isinstance(lengths, np.ndarray) else lengths.long()
    )
    x, lengths = steps_torch(cfg, x, lengths)  # samples in; the integers work on steps
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
    if cfg.task == Task.MANY_TO_ONE:
        # Readout.LAST_OUTPUT: the top layer's output at the last valid step; else h_n's top.
        feat = layer_in[torch.arange(b), lengths - 1] if cfg.last_output else torch.cat(finals[-d:], dim=1)
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
