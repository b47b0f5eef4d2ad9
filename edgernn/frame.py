"""Samples grouped into steps (ModelConfig.frame): the one definition every backend follows.

A model with frame K reads a sequence of n samples of I features as n // K steps of K * I
features: step t is samples tK .. tK + K - 1 side by side, in time order. The last n mod K
samples, which do not fill a frame, are dropped, as a device drops them: it steps only when a
frame is full (PREFIX_push_sample). A sequence needs at least K samples.
"""

from __future__ import annotations

import numpy as np
import torch

from edgernn.config import ModelConfig
from edgernn.errors import InputError
from edgernn.pad import pad_numpy


def frame_torch(
    cfg: ModelConfig, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, I) samples -> (B, T // K, K * I) steps; lengths in samples -> in steps."""
    k = cfg.frame
    if k == 1:
        return x, lengths
    if len(lengths) and int(lengths.min()) < k:
        raise InputError(
            f"a sequence of {int(lengths.min())} samples is shorter than one frame ({k} samples)"
        )
    steps = x.shape[1] // k
    return x[:, : steps * k].reshape(x.shape[0], steps, k * x.shape[2]), torch.div(
        lengths, k, rounding_mode="floor"
    )


def frame_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same on numpy arrays (the step-graph, C and MCU drivers)."""
    k = cfg.frame
    if k == 1:
        return x, lengths
    if len(lengths) and int(np.min(lengths)) < k:
        raise InputError(
            f"a sequence of {int(np.min(lengths))} samples is shorter than one frame ({k} samples)"
        )
    steps = x.shape[1] // k
    framed = np.ascontiguousarray(x[:, : steps * k]).reshape(x.shape[0], steps, k * x.shape[2])
    return framed, np.asarray(lengths) // k


def steps_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a model's RNN reads, from what its user gives: samples framed (frame), then the pad
    steps appended (edgernn.pad). The drivers that feed steps (the step graph, C, the MCU) call it."""
    return pad_numpy(cfg, *frame_numpy(cfg, x, lengths))
