"""What an importer found in a source model, and the edgernn float model it rebuilds from it.

A source is read as a graph (torch.export or ONNX) into a `Found`: the RNN's weights and shape,
the optional embedding in front of it, the optional linear head behind it, and how the head reads
the RNN (`Reading`). Nothing here runs the source; `edgernn.importer.prove` compares the rebuilt
model with the source itself before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
import torch

from edgernn.config import ModelConfig, Readout, Task
from edgernn.errors import InputError
from edgernn.train.model import EdgeRNN


class Reading(StrEnum):
    """What the source's output is made of, as far as the graph shows it."""

    FINAL_STATE = "h_n"  # the RNN's final state (top layer; both directions concatenated)
    LAST_OUTPUT = "output[:, -1]"  # the RNN's output sequence at the last step
    PER_STEP = "output"  # the RNN's output at every step


@dataclass(frozen=True)
class CellWeights:
    """One layer and direction, float32, in torch's layout: w_ih (H, In), w_hh (H, H), biases (H,)."""

    w_ih: np.ndarray
    w_hh: np.ndarray
    b_ih: np.ndarray
    b_hh: np.ndarray


@dataclass(frozen=True)
class Found:
    """The structure of a source model, read from its graph."""

    kind: str  # "module", "pt2" or "onnx"
    input_size: int  # features per step (the embedding's width for a token model)
    hidden_size: int
    num_layers: int
    bidirectional: bool
    cells: tuple[CellWeights, ...]  # index layer * directions + direction, as torch orders h_n
    reading: Reading
    batch_first: bool  # where the source keeps the batch axis of its input (and per-step output)
    has_bias: bool = True
    embedding: np.ndarray | None = None  # (V, E) float32
    padding_idx: int | None = None
    head_w: np.ndarray | None = None  # (C, D*H) float32; None: the source outputs the RNN's values
    head_b: np.ndarray | None = None  # (C,)
    state_input: bool = False  # the source takes an initial state (fed zeros, as a device starts)
    traced_length: int | None = None  # a torch.export source only runs at this many steps
    reverse: bool = False  # one direction, reading each sequence from its end (ONNX direction=reverse)
    ops: tuple[str, ...] = field(default=())  # the ops between the RNN and the output, for messages

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def tokens(self) -> bool:
        return self.embedding is not None

    @property
    def outputs(self) -> int:
        return self.head_w.shape[0] if self.head_w is not None else self.directions * self.hidden_size

    def describe(self) -> str:
        """One line: what was found, in the order the data flows."""
        parts = []
        if self.embedding is not None:
            pad = f", padding_idx={self.padding_idx}" if self.padding_idx is not None else ""
            parts.append(f"Embedding({self.embedding.shape[0]}, {self.embedding.shape[1]}{pad})")
        rnn = f"RNN({self.input_size}, {self.hidden_size}, layers={self.num_layers}"
        rnn += ", bidirectional" if self.bidirectional else ""
        rnn += ", reverse" if self.reverse else ""
        rnn += "" if self.has_bias else ", bias=False"
        parts.append(rnn + f", batch_first={self.batch_first})")
        parts.append(self.reading.value)
        if self.head_w is not None:
            parts.append(f"Linear({self.head_w.shape[1]}, {self.head_w.shape[0]})")
        return " -> ".join(parts)


def task_of(found: Found, generative: bool) -> Task:
    if found.reading is not Reading.PER_STEP:
        return Task.MANY_TO_ONE
    return Task.ONE_TO_MANY if generative else Task.MANY_TO_MANY


def readouts_for(found: Found) -> tuple[Readout, ...]:
    """The edgernn readouts that can compute what the source reads, most likely first. A
    unidirectional model's output at its last step is its final state; a bidirectional one's is
    not (its backward half has read one step), so that reading needs Readout.LAST_OUTPUT."""
    if found.reading is Reading.PER_STEP:
        return (Readout.FINAL_STATE,)
    if found.reading is Reading.LAST_OUTPUT and found.bidirectional:
        return (Readout.LAST_OUTPUT,)
    return (Readout.FINAL_STATE,)


def one_direction_refusal(found: Found) -> str:
    """What a source reading one direction of a bidirectional RNN is told (head or not)."""
    return (
        f"the source reads {found.hidden_size} values of a bidirectional RNN whose state has "
        f"{2 * found.hidden_size}: one direction only (Y_h[0] or Y_h[1]?); edgernn reads both "
        "directions, concatenated"
    )


def build_model(found: Found, task: Task, readout: Readout, pad_to: int = 0) -> EdgeRNN:
    """The edgernn float model with the source's weights (zeros for absent biases, an identity
    head when the source has none)."""
    # A reverse-only RNN's output at step 0 is its final state, so a source reading an output
    # step is built as one reading h_n; the proof then shows whether that step was step 0.
    if found.reverse and (task is not Task.MANY_TO_ONE or found.reading is Reading.PER_STEP or pad_to):
        reads = found.reading.value + (" with --pad-to" if pad_to else "")
        raise InputError(
            f"a reverse-only RNN is exported read at its final state (Y_h, or Y at step 0); this one "
            f"reads {reads}"
        )
    width = found.directions * found.hidden_size
    cfg = ModelConfig(
        task=task,
        input_size=found.input_size,
        hidden_size=found.hidden_size,
        num_classes=found.outputs,
        num_layers=found.num_layers,
        bidirectional=found.bidirectional,
        vocab_size=0 if found.embedding is None else int(found.embedding.shape[0]),
        embed_dim=0 if found.embedding is None else int(found.embedding.shape[1]),
        readout=readout,
        pad_to=pad_to,
        reverse=found.reverse,
    )
    model = EdgeRNN.to_be_loaded(cfg)
    state: dict[str, torch.Tensor] = {}
    for i, cell in enumerate(found.cells):
        layer, direction = divmod(i, found.directions)
        suffix = f"l{layer}" + ("_reverse" if direction else "")
        for name, value in (("weight_ih", cell.w_ih), ("weight_hh", cell.w_hh)):
            state[f"rnn.{name}_{suffix}"] = torch.tensor(np.asarray(value, dtype=np.float32))
        state[f"rnn.bias_ih_{suffix}"] = torch.tensor(np.asarray(cell.b_ih, dtype=np.float32))
        state[f"rnn.bias_hh_{suffix}"] = torch.tensor(np.asarray(cell.b_hh, dtype=np.float32))
    if found.bidirectional and found.head_w is not None and found.head_w.shape[-1] == found.hidden_size:
        raise InputError(one_direction_refusal(found))
    if found.head_w is not None and found.head_w.shape[-1] != width:
        every = found.num_layers * width
        reads = (
            f"the final states of all {found.num_layers} layers ({every} values)"
            if found.num_layers > 1 and found.head_w.shape[-1] == every
            else f"{found.head_w.shape[-1]} values"
        )
        raise InputError(
            f"the head reads {reads}; edgernn's head reads the last layer's output ({width} values: "
            "h_n[-1], both directions side by side when bidirectional)"
        )
    if found.head_w is not None and found.head_b is not None:
        state["head.weight"] = torch.tensor(np.asarray(found.head_w, dtype=np.float32))
        state["head.bias"] = torch.tensor(np.asarray(found.head_b, dtype=np.float32))
    else:
        state["head.weight"] = torch.eye(width, dtype=torch.float32)
        state["head.bias"] = torch.zeros(width, dtype=torch.float32)
    if found.embedding is not None:
        state["embedding.weight"] = torch.tensor(np.asarray(found.embedding, dtype=np.float32))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise InputError(
            f"the weights found do not fit {found.describe()}: {' '.join(str(e).split())[:400]}"
        ) from None
    for name, t in model.state_dict().items():
        if not torch.isfinite(t).all():
            raise InputError(f"the source's {name} contains NaN or Inf")
    return model.eval()
