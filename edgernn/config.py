"""Configuration dataclasses: the model's shape and the training run's settings."""

from __future__ import annotations

import math
import operator
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


class Readout(StrEnum):
    """What a many-to-one head reads. The two differ only for a bidirectional model: its backward
    direction's state after reading the whole sequence, or its output at the last step, which is
    the backward cell's first step (what `output[:, -1]` reads in torch)."""

    FINAL_STATE = "final-state"  # h_n: forward after the last valid step, backward after t = 0
    LAST_OUTPUT = "last-output"  # the top layer's output at the last valid step


READOUTS: tuple[str, ...] = tuple(r.value for r in Readout)

# Generous ceilings: past them the generated C no longer fits any microcontroller we target and
# the integer bounds (|acc| < 2^31) stop being provable for int8 operands.
MAX_HIDDEN = 1024
MAX_LAYERS = 8
MAX_INPUT = 4096
MAX_PAD = 65535
MAX_FRAME = 1024
MAX_CLASSES = 1 << 16
# The most tokens one generation returns: the C runtime fills a buffer of them, and PREFIX_generate
# takes an int32 count.
MAX_GENERATED = 1 << 20
MAX_INPUT_CLIP = 1e6  # normalized units; past this the int8 grid is coarser than any data needs


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
    readout: Readout = Readout.FINAL_STATE  # many-to-one only; see Readout
    # Many-to-one only: a sequence shorter than pad_to is read with pad steps after it (token 0,
    # or an all-zero int8 input) up to pad_to steps, as a model trained on unpacked padded
    # batches was measured. 0: every sequence is read at its own length.
    pad_to: int = 0
    # Many-to-one feature models: each RNN step reads `frame` consecutive samples, so input_size
    # is frame x the features of one sample (edgernn.frame); 1: one sample per step.
    frame: int = 1
    # Many-to-one, unidirectional, final-state readout: the RNN reads each sequence from its last
    # step to its first (an ONNX RNN with direction=reverse; edgernn.frame.reverse_*).
    reverse: bool = False
    # Feature models: the RNN reads each normalized input feature clamped to [-input_clip,
    # input_clip], and the int8 input scale is input_clip / 127, so the integer path's saturation
    # at +-127 is the same clamp. A heavy-tailed feature then keeps a fine int8 grid where its
    # values lie (docs/training.md, ACSF1). 0: no clamp; the scale is the calibration data's peak.
    input_clip: float = 0.0

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise InputError(f"task must be one of {', '.join(TASKS)}, not {self.task!r}")
        object.__setattr__(self, "task", Task(self.task))  # a plain "many-to-one" becomes the member
        if self.vocab_size and (self.embed_dim < 1 or self.input_size != self.embed_dim):
            raise InputError("a token model needs embed_dim >= 1 and input_size == embed_dim")
        for name, value, lo, hi in (
            ("frame", self.frame, 1, MAX_FRAME),  # first: input_size is frame x the sample's features
            ("input_size", self.input_size, 1, MAX_INPUT),
            ("hidden_size", self.hidden_size, 1, MAX_HIDDEN),
            ("num_layers", self.num_layers, 1, MAX_LAYERS),
            ("num_classes", self.num_classes, 1, MAX_CLASSES),
            ("pad_to", self.pad_to, 0, MAX_PAD),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise InputError(f"{name} must be an integer in {lo}..{hi}, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if self.readout not in READOUTS:
            raise InputError(f"readout must be one of {', '.join(READOUTS)}, not {self.readout!r}")
        object.__setattr__(self, "readout", Readout(self.readout))
        if self.readout is Readout.LAST_OUTPUT and (
            self.task is not Task.MANY_TO_ONE or not self.bidirectional
        ):
            # Elsewhere the top layer's output at the last valid step is its final state already.
            raise InputError("readout last-output is for bidirectional many-to-one models only")
        if self.pad_to and self.task is not Task.MANY_TO_ONE:
            raise InputError("pad_to is for many-to-one models only")
        if self.frame > 1:
            if not self.streams_samples:
                raise InputError(
                    "frame > 1 is for unidirectional many-to-one feature models (without pad_to or reverse)"
                )
            if self.input_size % self.frame:
                raise InputError(f"input_size {self.input_size} is not a multiple of frame {self.frame}")
        clip = self.input_clip
        if isinstance(clip, bool) or not isinstance(clip, int | float) or not 0.0 <= clip <= MAX_INPUT_CLIP:
            raise InputError(f"input_clip must be a number in 0..{MAX_INPUT_CLIP:g} (0: none), got {clip!r}")
        object.__setattr__(self, "input_clip", float(clip))  # JSON may hold 3 for 3.0: same bytes out
        if self.input_clip and self.tokens:
            raise InputError("input_clip is for feature models; a token model reads ids")
        if not isinstance(self.reverse, bool):
            raise InputError(f"reverse must be true or false, got {self.reverse!r}")
        if self.reverse and (
            self.task is not Task.MANY_TO_ONE
            or self.bidirectional
            or self.readout is not Readout.FINAL_STATE
            or self.pad_to
            or self.frame > 1
        ):
            raise InputError("reverse is for unidirectional many-to-one models read at their final state")
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

    @property
    def streams_samples(self) -> bool:
        """Fed one sample at a time by PREFIX_push_sample, framed or not: a unidirectional
        many-to-one feature model reading in time order (a bidirectional or reverse one needs the
        sequence's end first, a pad_to one its pad steps)."""
        return self.task is Task.MANY_TO_ONE and not (
            self.tokens or self.pad_to or self.bidirectional or self.reverse
        )

    @property
    def sample_size(self) -> int:
        """Features of one input sample: input_size is frame of them side by side."""
        return self.input_size // self.frame

    @property
    def last_output(self) -> bool:
        return self.readout is Readout.LAST_OUTPUT

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types, as checkpoints store them. The default readout, pad_to, frame, reverse
        and input_clip are left out, so files written before they existed keep their bytes."""
        d = {**asdict(self), "task": self.task.value, "readout": self.readout.value}
        return _without_defaults(d, _MODEL_OMITTED_AT_DEFAULT)

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


# How the recurrent weights W_hh start (edgernn.train.recipe; docs/training.md): torch's uniform
# default, a random orthogonal matrix, or the identity (IRNN, Le et al. 2015), biases zero.
INITS: tuple[str, ...] = ("torch", "orthogonal", "identity")
# The learning rate over the epochs: constant, or cosine annealing after the warm-up.
SCHEDULES: tuple[str, ...] = ("constant", "cosine")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Same seed + same machine + same data = identical checkpoint.

    The defaults of init, warmup_epochs and schedule are the plain recipe the short bundled sets
    were tuned with; DEFAULT_PRESET (edgernn.train.loop) sets the long-sequence recipe."""

    epochs: int = 60
    lr: float = 3e-3
    batch_size: int = 32
    seed: int = 0
    clip_grad_norm: float = 1.0
    patience: int = 15
    weight_decay: float = 0.0
    init: str = "torch"
    warmup_epochs: int = 0  # the lr rises linearly to lr over these epochs (fewer if epochs is less)
    schedule: str = "constant"
    # False: train all `epochs` and keep the last epoch's weights (for a retrain on train + val,
    # which has no held-out split to stop on: edgernn.train.auto). True: keep the epoch of lowest
    # validation loss and stop after `patience` epochs without improvement.
    early_stop: bool = True

    def __post_init__(self) -> None:
        if self.init not in INITS:
            raise InputError(f"init must be one of {', '.join(INITS)}, not {self.init!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {', '.join(SCHEDULES)}, not {self.schedule!r}")
        # The CLI's ranges (edgernn train --help): an epochs of 0 saved the untrained model, a
        # batch_size of 0 failed inside range(), a float count inside torch.
        for field_name, low, high in (
            ("epochs", 1, 100_000),
            ("batch_size", 1, 65_536),
            ("patience", 1, 100_000),
            ("warmup_epochs", 0, 100_000),
            # The CLI takes seeds up to 2^31 - 1; --auto's repeats train with seed + r; numpy's
            # global generator takes any seed below 2^32.
            ("seed", 0, 2**32 - 1),
        ):
            value = getattr(self, field_name)
            try:
                count = None if isinstance(value, bool) else operator.index(value)  # numpy ints too
            except TypeError:
                count = None
            if count is None or not low <= count <= high:
                raise InputError(f"{field_name} must be an integer in {low}..{high:,}, got {value!r}")
            object.__setattr__(self, field_name, count)  # a plain int, as checkpoints store it
        if not isinstance(self.early_stop, bool):
            raise InputError(f"early_stop must be True or False, got {self.early_stop!r}")
        # `not x > 0` also refuses NaN, which passes every bound check written the other way round.
        for field_name in ("lr", "clip_grad_norm"):
            value = getattr(self, field_name)
            if not (value > 0 and math.isfinite(value)):
                raise InputError(f"{field_name} must be a positive finite number, got {value!r}")
        if not (self.weight_decay >= 0 and math.isfinite(self.weight_decay)):
            raise InputError(f"weight_decay must be a non-negative finite number, got {self.weight_decay!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types. A field added later (early_stop) is left out at its default, so
        checkpoints of runs that do not use it keep their bytes."""
        return _without_defaults(asdict(self), _TRAIN_OMITTED_AT_DEFAULT)


# Fields added after checkpoints recorded a config: to_dict leaves them out at these values.
_MODEL_OMITTED_AT_DEFAULT: dict[str, Any] = {
    "readout": Readout.FINAL_STATE.value,
    "pad_to": 0,
    "frame": 1,
    "reverse": False,
    "input_clip": 0.0,
}
_TRAIN_OMITTED_AT_DEFAULT: dict[str, Any] = {"early_stop": True}


def _without_defaults(d: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in defaults or v != defaults[k]}
