"""Random models for tests, fuzzing and benchmarks: torch's default init, optionally scaled, and
quantized on random calibration data. Deterministic by seed."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from edgernn.config import ModelConfig, Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_model
from edgernn.train.model import EdgeRNN

CALIB_SEQUENCES, CALIB_STEPS = 16, 20


def small_config(
    task: str, inp: int, hidden: int, layers: int = 1, bi: bool = False, classes: int = 9, vocab: int = 0
) -> ModelConfig:
    """A ModelConfig from the handful of numbers tests and fuzz targets vary (vocab > 0: token input
    with embedding size `inp`; one-to-many predicts its own vocabulary)."""
    return ModelConfig(
        task=task,  # type: ignore[arg-type]
        input_size=inp,
        hidden_size=hidden,
        num_classes=vocab if task == Task.ONE_TO_MANY else classes,
        num_layers=layers,
        bidirectional=bi,
        vocab_size=vocab,
        embed_dim=inp if vocab else 0,
    )


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
    inp = cfg.sample_size  # calibration data are raw samples, framed by the model (edgernn.frame)
    calib = (rng.normal(size=(CALIB_SEQUENCES, CALIB_STEPS, inp)) * rng.uniform(0.5, 3.0, size=inp)).astype(
        np.float32
    )
    mean = rng.normal(size=inp).astype(np.float32) if norm else None
    std = rng.uniform(0.5, 2.0, size=inp).astype(np.float32) if norm else None
    lengths = np.full(CALIB_SEQUENCES, CALIB_STEPS, np.int64)
    return model, quantize_model(model, calib, lengths, mean, std, meta=meta)
