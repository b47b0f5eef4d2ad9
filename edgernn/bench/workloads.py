"""The inputs every backend is fed: test sequences of the export, or random ones for sweeps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.contract.model import QuantizedModel
from edgernn.pipeline import int8_inputs

POOL_STEPS = 64  # distinct inputs cycled through by the streaming loops


@dataclass(frozen=True)
class Workload:
    """What every backend is fed: float inputs for the float backends, int8 (or token ids) for the
    integer ones, both from the same test sequences."""

    x_float: np.ndarray  # (N, T, I) float32 or (N, T) int64 tokens
    x_int: np.ndarray  # (N, T, I) int8 or (N, T) int64 tokens
    lengths: np.ndarray  # (N,) int64


def raw_features(qm: QuantizedModel, x: np.ndarray) -> np.ndarray:
    """What model.onnx takes: the raw features `x * std + mean` (float32) of normalized `x` (the
    graph normalizes them again); token ids and models without normalization unchanged."""
    mean, std = (a.astype(np.float32) for a in qm.sample_norm)
    if qm.config.tokens or mean.size == 0:
        return x
    return np.ascontiguousarray((x.astype(np.float32) * std + mean).astype(np.float32))


def split_workload(qm: QuantizedModel, split: Any) -> Workload:
    x = split.x if qm.config.tokens else split.x.astype(np.float32)
    return Workload(np.asarray(x), np.asarray(int8_inputs(qm, split)), split.lengths.astype(np.int64))


def step_pool(w: Workload, tokens: bool, frame: int = 1) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """POOL_STEPS consecutive valid steps of the test sequences: float (1, K, I) samples, what
    one step of the whole-sequence graphs reads, and int (1, K * I), one step of the step graph
    and of C (K = frame: a framed model's step is K samples side by side)."""
    idx = [(i, t) for i in range(len(w.lengths)) for t in range(0, int(w.lengths[i]) - frame + 1, frame)]
    idx = idx[:POOL_STEPS]
    floats = [np.ascontiguousarray(w.x_float[i : i + 1, t : t + frame]) for i, t in idx]
    if tokens:
        return floats, [np.ascontiguousarray(w.x_int[i, t : t + 1]) for i, t in idx]
    return floats, [np.ascontiguousarray(w.x_int[i : i + 1, t : t + frame].reshape(1, -1)) for i, t in idx]


def random_workload(cfg: ModelConfig, qm: QuantizedModel, batch: int, steps: int, seed: int = 0) -> Workload:
    from edgernn.contract.quantize import quantize_inputs

    rng = np.random.default_rng(seed)
    if cfg.tokens:
        tok = rng.integers(1, cfg.vocab_size, size=(batch, steps)).astype(np.int64)
        return Workload(tok, tok, np.full(batch, steps, np.int64))
    x = rng.normal(size=(batch, steps * cfg.frame, cfg.sample_size)).astype(np.float32)
    return Workload(x, quantize_inputs(x, qm.sample_scale), np.full(batch, steps * cfg.frame, np.int64))


def in_batches(w: Workload, batch: int, total: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first `total` sequences in batches of `batch`, each cut to its longest sequence."""
    out = []
    for i in range(0, total, batch):
        lens = w.lengths[i : i + batch]
        t = int(lens.max())
        out.append((w.x_float[i : i + batch, :t], w.x_int[i : i + batch, :t], lens))
    return out
