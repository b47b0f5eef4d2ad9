"""EdgeRNN: optional token embedding -> tanh nn.RNN (1..N layers, optionally bidirectional) -> linear head."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from edgernn.config import ModelConfig, Task
from edgernn.frame import frame_torch, reverse_torch
from edgernn.pad import pad_torch


@contextmanager
def float32_default() -> Iterator[None]:
    """torch's default dtype as float32 while edgernn builds or trains a model: after a user's
    torch.set_default_dtype(torch.float64) (common in notebooks) the weights would be float64, which
    the float32 inputs do not match, and the random initial weights would differ in their low bits."""
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


class EdgeRNN(nn.Module):
    """The float model. `forward(x, lengths, h0)` returns (logits, h_n).

    logits are (B, C) for many-to-one and (B, T, C) otherwise; h_n is (layers * directions, B, H),
    each sequence's state after its last *valid* step (packed sequences, so padding never leaks in).
    """

    @classmethod
    def to_be_loaded(cls, cfg: ModelConfig) -> EdgeRNN:
        """A model whose every weight the caller replaces (a checkpoint's, an imported source's):
        built without drawing from torch's global generator, so loading leaves the caller's random
        numbers where they were."""
        with torch.random.fork_rng(devices=[]):
            return cls(cfg)

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        with float32_default():
            self.embedding = (
                nn.Embedding(cfg.vocab_size, cfg.embed_dim, padding_idx=0) if cfg.tokens else None
            )
            self.rnn = nn.RNN(
                cfg.input_size,
                cfg.hidden_size,
                num_layers=cfg.num_layers,
                nonlinearity="tanh",
                batch_first=True,
                dropout=cfg.dropout if cfg.num_layers > 1 else 0.0,
                bidirectional=cfg.bidirectional,
            )
            self.head = nn.Linear(cfg.directions * cfg.hidden_size, cfg.num_classes)

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: samples (B, T, I) or tokens (B, T); lengths in samples."""
        x, lengths = frame_torch(self.cfg, x, lengths)
        return self.forward_steps(reverse_torch(self.cfg, x, lengths), lengths, h0)

    def forward_steps(
        self, x: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The same on steps as the RNN reads them (samples already framed, edgernn.frame)."""
        x, lengths = pad_torch(self.cfg, x, lengths)
        if self.cfg.input_clip:
            # The int8 input path saturates at input_clip (edgernn.contract.quantize): the same clamp.
            x = x.clamp(-self.cfg.input_clip, self.cfg.input_clip)
        inp = self.embedding(x) if self.embedding is not None else x
        packed = pack_padded_sequence(inp, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, h_n = self.rnn(packed, h0)
        if self.cfg.task == Task.MANY_TO_ONE and not self.cfg.last_output:
            # The top layer's forward state after the last valid step, and its backward state after
            # reading the whole sequence (backward output at t=0).
            top = h_n[-self.cfg.directions :]
            return self.head(torch.cat(list(top), dim=1)), h_n
        y, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        if self.cfg.task == Task.MANY_TO_ONE:
            # Readout.LAST_OUTPUT: the top layer's output at each sequence's last valid step.
            last = (lengths.to(y.device) - 1).clamp(min=0)
            return self.head(y[torch.arange(y.shape[0]), last]), h_n
        return self.head(y), h_n

    def init_state(self, batch: int) -> torch.Tensor:
        return torch.zeros(
            self.cfg.num_layers * self.cfg.directions, batch, self.cfg.hidden_size, dtype=torch.float32
        )


@torch.no_grad()
def generate(
    model: EdgeRNN,
    start_token: int,
    end_token: int,
    max_len: int,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[int]:
    """One-to-many: feed each output back as the next input. temperature 0 = greedy argmax."""
    model.eval()
    gen = torch.Generator().manual_seed(seed)
    h = model.init_state(1)
    token, out = start_token, []
    one = torch.ones(1, dtype=torch.int64)
    for _ in range(max_len):
        logits, h = model(torch.tensor([[token]]), one, h)
        last = logits[0, -1]
        if temperature > 0:
            token = int(torch.multinomial(torch.softmax(last / temperature, dim=0), 1, generator=gen))
        else:
            token = int(torch.argmax(last))
        if token == end_token:
            break
        out.append(token)
    return out
