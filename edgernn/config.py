"""Configuration dataclasses: the model's shape and the training run's settings."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any

from edgernn.errors import InputError


class Task(StrEnum):
    """What a model outputs. The values are the names in checkpoints, JSON files and the CLI; a
    StrEnum compares equal to them and serialises as them, so files stay as they were."""

    MANY_TO_ONE = "many-to-one"  # one output after the whole (last valid) step
    MANY_TO_MANY = "many-to-many"  # one output per step
    ONE_TO_MANY = "one-to-many"  # generative: each output token is the next input


TASKS: tuple[str, ...] = tuple(t.value for t in Task)

# Generous ceilings: past them the generated C no longer fits any microcontroller we target and
# the integer bounds (|acc| < 2^31) stop being provable for int8 operands.
MAX_HIDDEN = 1024
MAX_LAYERS = 8
MAX_INPUT = 4096


@dataclass(frozen=True)
class ModelConfig:
    """Shape of an EdgeRNN. `input_size` is features per step; token models set `vocab_size`."""

    task: Task
    input_size: int
    hidden_size: int
    num_classes: int
    num_layers: int = 1
    bidirectional: bool = False
    vocab_size: int = 0
    embed_dim: int = 0
    dropout: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        object.__setattr__(self, "task", Task(self.task))  # a plain "many-to-one" becomes the member
        if self.vocab_size and (self.embed_dim < 1 or self.input_size != self.embed_dim):
            raise InputError("a token model needs embed_dim >= 1 and input_size == embed_dim")
        for name, value, hi in (
            ("input_size", self.input_size, MAX_INPUT),
            ("hidden_size", self.hidden_size, MAX_HIDDEN),
            ("num_layers", self.num_layers, MAX_LAYERS),
            ("num_classes", self.num_classes, 1 << 16),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= hi:
                raise InputError(f"{name} must be an integer in 1..{hi}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.task is Task.ONE_TO_MANY:
            if self.bidirectional:
                raise InputError("a one-to-many (generative) model cannot be bidirectional")
            if not self.vocab_size or self.num_classes != self.vocab_size:
                raise InputError("a one-to-many model reads and predicts tokens: vocab_size == num_classes")

    @property
    def per_step(self) -> bool:
        """One output per step (many-to-many, one-to-many), not one per sequence."""
        return self.task is not Task.MANY_TO_ONE

    @property
    def generative(self) -> bool:
        return self.task is Task.ONE_TO_MANY

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def tokens(self) -> bool:
        return self.vocab_size > 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "task": self.task.value}  # plain JSON types, as checkpoints store them

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise InputError(f"unknown model config keys: {', '.join(sorted(unknown))}")
        try:
            return cls(**d)
        except TypeError as e:
            raise InputError(f"malformed model config: {e}") from None


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Same seed + same machine + same data = identical checkpoint."""

    epochs: int = 60
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0
    clip_grad_norm: float = 1.0
    patience: int = 15
    weight_decay: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
