"""Prove an imported model computes what its source computes, or refuse it.

Every sequence of the data is fed to the source and to the rebuilt edgernn float model one at a
time, at its own length, as a device will see it. The largest difference must be within
TOLERANCE (relative to the output's magnitude, as verify's float rows). Nothing is written
unless this passes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from edgernn.config import Readout, Task
from edgernn.data.dataset import Dataset, Split
from edgernn.errors import InputError
from edgernn.importer.found import Found, Reading, build_model, one_direction_refusal, readouts_for
from edgernn.importer.source import Source
from edgernn.train.model import EdgeRNN

TOLERANCE = 1e-5  # float32 recurrences of the same ops in another order differ by ~1e-7


def sequences(split: Split) -> list[np.ndarray]:
    """Each sequence of a split cut to its own length: float32 (T, I) or int64 tokens (T,)."""
    return [split.x[i, : int(n)] for i, n in enumerate(split.lengths)]


def all_sequences(ds: Dataset) -> list[np.ndarray]:
    return [s for split in (ds.train, ds.val, ds.test) for s in sequences(split)]


@torch.no_grad()
def edgernn_answer(model: EdgeRNN, seq: np.ndarray) -> np.ndarray:
    """The float model on one sequence at its own length: (T, C) per step, (C,) per sequence."""
    x = torch.from_numpy(np.ascontiguousarray(seq))[None]
    logits, _ = model(x, torch.tensor([len(seq)]))
    return logits[0].numpy().astype(np.float64)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """|a - b| in units of the tolerance's scale: max(1, max |a|), as verify's float rows."""
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max(initial=0.0) / max(1.0, float(np.abs(a).max(initial=0.0))))


@dataclass(frozen=True)
class Proof:
    model: EdgeRNN
    max_abs_diff: float  # worst scaled difference over every sequence
    n: int  # sequences compared
    source_outputs: list[np.ndarray]  # the source's answer to each sequence, in order


def padded_sequence(seq: np.ndarray, pad_to: int) -> np.ndarray:
    """One sequence with pad steps (zeros, token 0) after it up to pad_to steps (edgernn.pad)."""
    missing = max(0, pad_to - len(seq))
    return np.concatenate([seq, np.zeros((missing, *seq.shape[1:]), seq.dtype)]) if missing else seq


def prove(
    source: Source,
    task: Task,
    seqs: Sequence[np.ndarray],
    progress: Callable[[int], None] | None = None,
    pad_to: int = 0,
) -> Proof:
    """Rebuild the model with each readout that could compute the source's reading; keep the
    one that matches the source on every sequence, or refuse saying where it did not. With
    pad_to, the source reads each sequence padded to pad_to steps, and so does the model."""
    found = source.found
    if seqs and max(len(padded_sequence(s, pad_to)) for s in seqs) < 2:
        # At one step the recurrence (W_hh) never acts and the first step is the last: a model
        # reading output[:, 0], or any W_hh at all, would pass.
        raise InputError(
            f"every one of the {len(seqs)} sequences to prove the import on has 1 step, which cannot "
            "show what the model does over time: give data with longer sequences (or --steps 2 or more)"
        )
    outs = []
    for i, s in enumerate(seqs):
        outs.append(source.run(padded_sequence(s, pad_to)))
        if progress is not None:
            progress(i + 1)
    if outs and (outs[0].ndim == 2) != (found.reading is Reading.PER_STEP):
        raise InputError(
            f"the source answers with shape {outs[0].shape}; the graph reads {found.reading.value}"
        )
    tried: list[tuple[Readout, float, int, tuple[int, ...]]] = []
    for variant, readout in ((v, r) for v in _head_orders(found) for r in readouts_for(v)):
        model = build_model(variant, task, readout, pad_to)
        worst, where = 0.0, 0
        shape: tuple[int, ...] = ()
        for i, (s, want) in enumerate(zip(seqs, outs, strict=True)):
            got = edgernn_answer(model, s)
            d = difference(want, got)
            if d > worst:
                worst, where, shape = d, i, got.shape
            if d > TOLERANCE:
                break
        if worst <= TOLERANCE:
            return Proof(model, worst, len(seqs), outs)
        tried.append((readout, worst, where, shape))
    raise InputError(_mismatch(found, tried, seqs, outs))


def _head_orders(found: Found) -> list[Found]:
    """The head as found, and for a bidirectional RNN whose head reads both directions also with
    its two halves of columns swapped: `cat([h_bwd, h_fwd])` in the source is edgernn's
    `cat([h_fwd, h_bwd])` times the swapped head. The proof decides which one the source is."""
    if not found.bidirectional or found.head_w is None or found.head_w.shape[-1] != 2 * found.hidden_size:
        return [found]
    h = found.hidden_size
    swapped = np.concatenate([found.head_w[:, h:], found.head_w[:, :h]], axis=1)
    return [found, replace(found, head_w=swapped)]


def shape_refusal(
    where: int, seq: np.ndarray, got: tuple[int, ...], model: str, want: tuple[int, ...]
) -> str:
    """The refusal of a source whose answer has another shape than `model`'s."""
    return (
        f"refused: the source answers sequence {where} ({len(seq)} steps) with shape {got}, where "
        f"{model} answers with {want}: does the source's output put time first, or drop a step?"
    )


def _mismatch(
    found: Found,
    tried: list[tuple[Readout, float, int, tuple[int, ...]]],
    seqs: Sequence[np.ndarray],
    outs: Sequence[np.ndarray],
) -> str:
    readout, worst, where, shape = min(tried, key=lambda t: t[1])
    if worst == float("inf") and found.bidirectional and outs[where].shape[-1:] == (found.hidden_size,):
        return f"refused: {one_direction_refusal(found)}"
    if worst == float("inf"):  # difference() of two shapes
        return shape_refusal(
            where, seqs[where], outs[where].shape, f"the rebuilt model reading {found.reading.value}", shape
        )
    ops = " -> ".join(found.ops) or "nothing"
    if len(seqs[where]) == 1:
        part = "the recurrence itself (it differs at one step)"
    elif found.reverse and found.reading is Reading.LAST_OUTPUT:
        part = (
            "the step of the output it reads: of a reverse-only RNN's outputs only step 0 (Y[0]) is "
            "its final state, which edgernn exports"
        )
    elif found.reading is Reading.LAST_OUTPUT:
        # The graph shows that one output step is read, not which: edgernn takes it to be the last.
        part = (
            f"the readout (one step of the RNN's output, via {ops}: edgernn reads the last one, "
            "output[:, -1], or h_n; another step, such as output[:, 0], it does not export) or the "
            "recurrence over time"
        )
    else:
        part = f"the readout ({found.reading.value} via {ops}) or the recurrence over time"
    return (
        f"refused: the rebuilt model does not reproduce the source: {worst:.2e} > {TOLERANCE:g} on "
        f"sequence {where} ({len(seqs[where])} steps) with readout {readout.value}; what differs is {part}"
    )


def source_parity(model: EdgeRNN, test: Split, outputs: np.ndarray) -> dict[str, object]:
    """verify's row: the float model one sequence at a time against the source's recorded answers
    on the test split (`outputs` as import wrote them: (N, C), or (N, T, C) zero after each length)."""
    worst, values = 0.0, 0
    for i, s in enumerate(sequences(test)):
        want = outputs[i, : len(s)] if outputs.ndim == 3 else outputs[i]
        worst = max(worst, difference(want, edgernn_answer(model, s)))
        values += want.size
    return {
        "a": "source-float",
        "b": "torch-float",
        "max_abs_diff": worst,
        "tolerance": TOLERANCE,
        "n": values,
        "passed": bool(worst <= TOLERANCE),
    }
