"""The long-sequence training recipe: recurrent weight initialization and the learning-rate schedule.

Why each exists, and what it measured on the long bundled sets, is in docs/training.md.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from edgernn.config import TrainConfig


@torch.no_grad()
def init_recurrent(rnn: nn.RNN, init: str) -> None:
    """Re-initialise every layer's and direction's W_hh (and, for identity, the biases).

    - "torch": leave nn.RNN's uniform(-1/sqrt(H), 1/sqrt(H)) as it is;
    - "orthogonal": a random orthogonal W_hh, every singular value 1, so a linearised step neither
      shrinks nor grows the gradient (Saxe et al. 2014; the motivation of uRNN, Arjovsky et al. 2016);
    - "identity": W_hh = I and zero biases (IRNN, Le et al. 2015): at the start each unit keeps
      its value and adds the input, so the state carries information over many steps.
    Draws come from torch's global generator, seeded by the training loop: deterministic."""
    if init == "torch":
        return
    for name, p in rnn.named_parameters():
        if name.startswith("weight_hh"):
            if init == "orthogonal":
                nn.init.orthogonal_(p)
            else:
                p.copy_(torch.eye(p.shape[0]))
        elif name.startswith("bias") and init == "identity":
            p.zero_()


def lr_factor(epoch: int, tc: TrainConfig) -> float:
    """Multiplier of tc.lr in `epoch` (0-based): a linear warm-up, then constant or cosine to 0
    at tc.epochs. Warm-up keeps Adam's first, badly estimated steps small, when the long unrolled
    graph's gradients are largest (Goyal et al. 2017); cosine annealing (Loshchilov & Hutter 2017)
    lets the late epochs settle instead of bouncing at the peak rate."""
    warm = min(tc.warmup_epochs, tc.epochs - 1)
    if epoch < warm:
        return (epoch + 1) / (warm + 1)
    if tc.schedule == "constant":
        return 1.0
    span = max(1, tc.epochs - warm)
    return 0.5 * (1.0 + math.cos(math.pi * (epoch - warm) / span))
