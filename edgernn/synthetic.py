"""Random models for tests, fuzzing and benchmarks: torch's default init, optionally scaled, and
quantized on random calibration data. Deterministic by seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from .config import ModelConfig
from .model import EdgeRNN
from .quant import QuantizedModel, quantize_model

CALIB_SEQUENCES, CALIB_STEPS = 16, 20


def random_model(cfg: ModelConfig, seed: int = 0, scale: float = 1.0) -> EdgeRNN:
    """scale > 1 pushes the integer path into saturation (4x the default init is the usual test)."""
    torch.manual_seed(seed)
    model = EdgeRNN(cfg).eval()
    if scale != 1.0:
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(scale)
    return model


def random_quantized(
    cfg: ModelConfig,
    seed: int = 0,
    scale: float = 1.0,
    norm: bool = False,
    meta: dict[str, Any] | None = None,
) -> tuple[EdgeRNN, QuantizedModel]:
    """Calibration features get a different spread per feature, so per-feature input scales differ;
    norm=True also stores a random normalization for the C float wrapper."""
    model = random_model(cfg, seed, scale)
    if cfg.tokens:
        return model, quantize_model(model, None, None, meta=meta)
    rng = np.random.default_rng(seed)
    inp = cfg.input_size
    calib = (rng.normal(size=(CALIB_SEQUENCES, CALIB_STEPS, inp)) * rng.uniform(0.5, 3.0, size=inp)).astype(
        np.float32
    )
    mean = rng.normal(size=inp).astype(np.float32) if norm else None
    std = rng.uniform(0.5, 2.0, size=inp).astype(np.float32) if norm else None
    lengths = np.full(CALIB_SEQUENCES, CALIB_STEPS, np.int64)
    return model, quantize_model(model, calib, lengths, mean, std, meta=meta)
