"""Pad steps after a sequence (ModelConfig.pad_to): the one definition every backend follows.

A model with pad_to = P reads a sequence of n steps as max(n, P) steps: the sequence, then pad
steps (token 0, or an all-zero input) up to P. For batches, a row's steps past its length are
zeroed (they become its first pad steps, whatever the caller padded with), the time axis grows by
P pad steps at the end and each length becomes max(n, P); steps past that stay masked as before. Appending
P steps rather than max(0, P - T) keeps the shape arithmetic free of data-dependent branches, so
the float ONNX trace and the integer graph compute the same thing the same way.
"""

from __future__ import annotations

import numpy as np
import torch

from edgernn.config import ModelConfig
from edgernn.data.dataset import step_mask


def pad_torch(cfg: ModelConfig, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, I) or tokens (B, T) -> (B, T + P, ...), lengths -> max(lengths, P)."""
    if not cfg.pad_to:
        return x, lengths
    keep = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
    x = x.masked_fill(~keep.reshape(*keep.shape, *([1] * (x.dim() - 2))), 0)
    pad = x.new_zeros((x.shape[0], cfg.pad_to, *x.shape[2:]))
    return torch.cat([x, pad], dim=1), torch.clamp(lengths, min=cfg.pad_to)


def pad_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same on numpy arrays (the drivers of the step graph, C and the MCU vectors)."""
    if not cfg.pad_to:
        return x, lengths
    keep = step_mask(lengths, x.shape[1])
    x = np.where(keep.reshape(*keep.shape, *([1] * (x.ndim - 2))), x, np.zeros((), x.dtype))
    pad = np.zeros((x.shape[0], cfg.pad_to, *x.shape[2:]), dtype=x.dtype)
    return np.concatenate([x, pad], axis=1), np.maximum(np.asarray(lengths), cfg.pad_to)
