"""Samples grouped into steps (ModelConfig.frame), and a reverse model's sequences reversed
(ModelConfig.reverse): the one definition every backend follows.

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
from edgernn.pad import pad_numpy, pad_torch


def check_frames(cfg: ModelConfig, lengths: np.ndarray | torch.Tensor, ids: list[str] | None = None) -> None:
    """Refuse a sequence shorter than one frame: a device never steps on it, so no backend answers.
    `ids` name the sequences in the message (default: their index in the batch)."""
    if cfg.frame > 1 and len(lengths) and int(lengths.min()) < cfg.frame:
        first = int(np.flatnonzero(np.asarray(lengths) < cfg.frame)[0])
        name = repr(ids[first]) if ids else str(first)
        raise InputError(
            f"sequence {name} has {int(lengths[first])} samples, fewer than one frame ({cfg.frame} samples)"
        )


def frame_torch(
    cfg: ModelConfig, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, T, I) samples -> (B, T // K, K * I) steps; lengths in samples -> in steps."""
    k = cfg.frame
    if k == 1:
        return x, lengths
    check_frames(cfg, lengths)
    steps = x.shape[1] // k
    return x[:, : steps * k].reshape(x.shape[0], steps, k * x.shape[2]), torch.div(
        lengths, k, rounding_mode="floor"
    )


def frame_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same on numpy arrays (the step-graph, C and MCU drivers)."""
    k = cfg.frame
    if k == 1:
        return x, lengths
    check_frames(cfg, lengths)
    steps = x.shape[1] // k
    framed = np.ascontiguousarray(x[:, : steps * k]).reshape(x.shape[0], steps, k * x.shape[2])
    return framed, np.asarray(lengths) // k


def reverse_torch(cfg: ModelConfig, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """ModelConfig.reverse: each sequence reversed within its own length; padding stays put."""
    if not cfg.reverse:
        return x
    t = torch.arange(x.shape[1])[None, :]
    lens = lengths.long()[:, None]
    index = torch.where(t < lens, lens - 1 - t, t)
    if x.dim() == 3:
        index = index[:, :, None].expand(-1, -1, x.shape[2])
    return torch.gather(x, 1, index)


def reverse_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The same on numpy arrays."""
    if not cfg.reverse:
        return x
    out = np.array(x, copy=True)
    for i, n in enumerate(np.asarray(lengths).tolist()):
        out[i, :n] = x[i, :n][::-1]
    return out


def steps_numpy(cfg: ModelConfig, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What a model's RNN reads, from what its user gives: samples framed (frame), the pad steps
    appended (edgernn.pad), a reverse model's sequences reversed. The drivers that feed steps (the
    step graph, C, the MCU) call it."""
    x, lengths = pad_numpy(cfg, *frame_numpy(cfg, x, lengths))
    return reverse_numpy(cfg, x, lengths), lengths


def steps_torch(
    cfg: ModelConfig, x: torch.Tensor, lengths: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """steps_numpy on tensors: what the RNN reads (the float model's own path, for diagnostics
    that call its nn.RNN directly)."""
    x, lengths = pad_torch(cfg, *frame_torch(cfg, x, lengths))
    return reverse_torch(cfg, x, lengths), lengths
