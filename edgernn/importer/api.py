"""`import_model`: a tanh RNN trained elsewhere, brought in faithfully or refused.

The source is read as a graph (`Found`), rebuilt as an edgernn float model, and proven against
the source itself on every sequence of the data (`prove`). Only then is the directory written,
with what `edgernn train` writes (checkpoint.pt, metadata naming the source and its sha256) plus
`source_outputs.npz`, the source's answers on the test split, which `verify` compares the float
model with again. `edgernn export DIR`, `verify`, `bench`, `report` and `mcu` work unchanged.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from edgernn import __version__
from edgernn.artifacts import write_bytes
from edgernn.config import Task
from edgernn.data.dataset import Dataset
from edgernn.errors import InputError
from edgernn.importer.calibration import (
    CALIBRATION,
    has_labels,
    labelled_by_source,
    synthetic_sequences,
    unlabelled_sequences,
)
from edgernn.importer.found import Found, Reading, task_of
from edgernn.importer.padding import PaddingEffect, padding_effect
from edgernn.importer.prove import TOLERANCE, Proof, all_sequences, prove, sequences
from edgernn.importer.source import Source
from edgernn.metrics import task_metrics
from edgernn.pipeline import data_ref, exclusive, load_data, recorded_ref
from edgernn.train.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from edgernn.train.loop import dataset_meta, evaluate

SOURCE_OUTPUTS = "source_outputs.npz"


@dataclass(frozen=True)
class Imported:
    out_dir: Path
    found: Found
    proof: Proof
    metrics: dict[str, Any]  # "float" (edgernn float, test split) and "source" (the source itself)
    warnings: tuple[str, ...]
    labels: str  # "data": the data's own labels; "source": the source's answers stood in for them


def load_source(source: str | os.PathLike[str] | nn.Module, example: Any = None) -> Source:
    """An nn.Module (with `example`), a `.pt2` torch.export archive or an `.onnx` file."""
    if isinstance(source, nn.Module):
        from edgernn.importer.torch_source import from_module

        params = hashlib.sha256()
        for name, t in source.state_dict().items():
            params.update(name.encode())
            params.update(t.detach().cpu().numpy().tobytes())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.export's notes on nn.RNN's flat weights
            return from_module(source, example, params.hexdigest())
    p = Path(source)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputError(f"source not found: {p}") from None
    except IsADirectoryError:
        raise InputError(f"{p} is a directory; give a .pt2 or .onnx file") from None
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    digest = hashlib.sha256(data).hexdigest()
    suffix = p.suffix.lower()
    if suffix == ".pt2":
        from edgernn.importer.torch_source import from_pt2

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return from_pt2(p, digest)
    if suffix == ".onnx":
        from edgernn.importer.onnx_source import from_onnx

        return from_onnx(p, data, digest)
    raise InputError(
        f"{p.name}: unsupported source {suffix or '(no extension)'!r}; give a .pt2 or .onnx file"
    )


def _check_data(found: Found, ds: Dataset, task: Task) -> None:
    """The data must be what the source reads, with labels of the kind its output gives."""
    if found.tokens != bool(ds.vocab):
        what = "token ids" if found.tokens else f"{found.input_size} features per step"
        raise InputError(f"the model reads {what}; the data holds {'tokens' if ds.vocab else 'features'}")
    if found.tokens:
        assert found.embedding is not None
        top = max(int(s.x.max(initial=0)) for s in (ds.train, ds.val, ds.test))
        if top >= found.embedding.shape[0]:
            raise InputError(
                f"the data has token id {top}; the model's embedding has {found.embedding.shape[0]} rows"
            )
    elif ds.input_size != found.input_size:
        raise InputError(
            f"the model reads {found.input_size} features per step; the data has {ds.input_size}"
        )
    per_step_labels = ds.task != Task.MANY_TO_ONE
    if per_step_labels != (task != Task.MANY_TO_ONE):
        want = "one label per step" if task != Task.MANY_TO_ONE else "one label per sequence"
        raise InputError(f"the model answers {found.reading.value} ({task}); the data must have {want}")
    if ds.num_classes > found.outputs:
        raise InputError(f"the data has {ds.num_classes} classes; the model outputs {found.outputs} values")


def _padded_answers(answers: list[np.ndarray], ds: Dataset) -> dict[str, np.ndarray]:
    """The source's answers on the test split as arrays: (N, C), or (N, T, C) zero after each length."""
    lengths = ds.test.lengths.astype(np.int64)
    if answers and answers[0].ndim == 2:
        out = np.zeros((len(answers), ds.test.x.shape[1], answers[0].shape[1]), np.float64)
        for i, a in enumerate(answers):
            out[i, : len(a)] = a
    else:
        out = np.stack(answers) if answers else np.zeros((0, 0))
    return {"outputs": out, "lengths": lengths}


def import_model(
    source: str | os.PathLike[str] | nn.Module,
    out_dir: str | os.PathLike[str],
    data: str | os.PathLike[str] | None = None,
    example: Any = None,
    *,
    dataset: str | None = None,
    input_range: tuple[float, float] | None = None,
    steps: int = 50,
    generative: bool | None = None,
    pad_to: int = 0,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Imported:
    """Import `source` into `out_dir` (see the module docstring). `data` (a user `.npz`/`.csv`)
    or `dataset` (a bundled name) is the calibration set and, with its labels, the accuracy set;
    without labels, or with `input_range` (synthetic feature sequences of 1..`steps` steps), the
    source's own answers are the labels (edgernn.importer.calibration).
    `generative`: a token model whose per-step outputs predict the next token is one-to-many
    unless False (many-to-many). `pad_to`: deploy what a model trained on unpacked padded batches
    was measured on: each sequence read with pad steps after it up to pad_to steps (many-to-one;
    the default reads each sequence at its own length). Raises InputError, writing nothing, when
    the model cannot be exported faithfully."""
    if sum(v is not None for v in (data, dataset, input_range)) != 1:
        raise InputError(
            "give the calibration data, one of: a data file (--data FILE, labels optional), a bundled "
            "data set (--dataset NAME), or synthetic sequences (--input-range LOW HIGH)"
        )
    src = load_source(source, example)
    found = src.found
    if generative is not None and found.reading is not Reading.PER_STEP:
        once = f"this model answers once per sequence ({found.reading.value})"
        raise InputError(f"--task tells a tagger from a generator; {once}")
    if generative is None:
        vocab = found.embedding.shape[0] if found.embedding is not None else -1
        generative = found.reading is Reading.PER_STEP and found.outputs == vocab
    task = task_of(found, bool(generative))
    if found.outputs == 1 and found.head_w is not None:
        # Before any labels are drawn from its answers: the argmax of one logit is always class 0.
        raise InputError(
            "the model outputs 1 logit (a sigmoid / BCE binary classifier?); edgernn classifies by the "
            "largest of one logit per class: give it a 2-output head, e.g. nn.Linear(H, 2) with "
            "weight rows [0, w] and bias [0, b], which decides as sigmoid(w.h + b) > 0.5 does"
        )
    if pad_to and task is not Task.MANY_TO_ONE:
        raise InputError(
            f"--pad-to is for models with one answer per sequence; this one answers {found.reading.value}"
        )
    labelled = _source_labelled(src, task, data, input_range, steps, seed, pad_to)
    calibration, columns = labelled if labelled is not None else (None, ())
    out = Path(out_dir)
    with tempfile.TemporaryDirectory(prefix="edgernn-import-") as tmp:
        if calibration is not None:  # read from a scratch copy, recorded where it will be written
            scratch = Path(tmp) / CALIBRATION
            scratch.write_bytes(calibration)
            scratch_ref = {**data_ref(None, scratch, seed), "normalize": False}
            # The CSV's column names, so that predict reads that CSV's columns by name as it would
            # for a model trained on it.
            ds = replace(load_data(scratch_ref), feature_names=columns)
            ref = {**scratch_ref, "path": str(out / CALIBRATION)}
        else:
            ref = {**data_ref(dataset, data, seed), "normalize": False}
            ds = load_data(ref)
    _check_data(found, ds, task)
    seqs = all_sequences(ds)
    tick = (lambda k: progress(k, len(seqs))) if progress is not None else None
    proof = prove(src, task, seqs, tick, pad_to)
    test_start = len(ds.train) + len(ds.val)
    test_answers = proof.source_outputs[test_start:]
    alone = test_answers if not pad_to else [src.run(s) for s in sequences(ds.test)]
    effect = padding_effect(src, ds.test, task, alone, scored=calibration is None)
    notes = _warnings(found, effect, pad_to)
    metrics = {
        "float": evaluate(proof.model, ds.test),
        "source": _source_metrics(test_answers, ds, task),
    }
    buf = io.BytesIO()
    answers = _padded_answers(test_answers, ds)
    np.savez(buf, outputs=answers["outputs"], lengths=answers["lengths"])
    outputs_bytes = buf.getvalue()
    provenance = dataset_meta(ds, recorded_ref(ref, out))
    if calibration is not None:
        what = (
            "synthetic sequences" if input_range is not None else f"the sequences of {Path(str(data)).name}"
        )
        provenance["dataset"] = Path(src.label).stem.lower()
        provenance["source"] = f"{what}, labelled with the answers of {src.label}"
        provenance["licence"] = "user-supplied"
    meta = {
        **provenance,
        "metrics": metrics,
        "edgernn_version": __version__,
        "import": {
            "source": src.label,
            "labels": "source" if calibration is not None else "data",
            "kind": found.kind,
            "sha256": src.sha256,
            "structure": found.describe(),
            "reading": found.reading.value,
            "readout": proof.model.cfg.readout.value,
            "traced_length": found.traced_length,
            "pad_to": pad_to,
            "parity": {"max_abs_diff": proof.max_abs_diff, "tolerance": TOLERANCE, "n": proof.n},
            "padding": effect.to_dict() if effect is not None else None,
            "warnings": list(notes),
            "outputs_sha256": hashlib.sha256(outputs_bytes).hexdigest(),
        },
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot create {out}: {e.strerror or e}") from None
    with exclusive(out):
        if calibration is not None:
            write_bytes(out / CALIBRATION, calibration)
        write_bytes(out / SOURCE_OUTPUTS, outputs_bytes)
        save_checkpoint(out / CHECKPOINT_NAME, proof.model, meta)
    load_checkpoint(out)  # what was written reads back
    return Imported(out, found, proof, metrics, notes, meta["import"]["labels"])


def _source_labelled(
    src: Source,
    task: Task,
    data: str | os.PathLike[str] | None,
    input_range: tuple[float, float] | None,
    steps: int,
    seed: int,
    pad_to: int,
) -> tuple[bytes, tuple[str, ...]] | None:
    """The calibration set labelled by the source, when there are no true labels, and the names of
    its feature columns (() unless a CSV named them); else None."""
    if input_range is not None:
        if src.found.tokens:
            raise InputError("--input-range makes feature sequences; a token model needs --data or --dataset")
        seqs = synthetic_sequences(src.found.input_size, *input_range, steps, seed)
        return labelled_by_source(src, seqs, task, pad_to), ()
    if data is not None and not has_labels(Path(data)):
        seqs, names = unlabelled_sequences(Path(data))
        return labelled_by_source(src, seqs, task, pad_to), names
    return None


def _source_metrics(answers: list[np.ndarray], ds: Dataset, task: Task) -> dict[str, float]:
    arrays = _padded_answers(answers, ds)
    return task_metrics(arrays["outputs"], ds.test.y, task, arrays["outputs"].shape[-1])


def _warnings(found: Found, effect: PaddingEffect | None, pad_to: int) -> tuple[str, ...]:
    notes = []
    if found.bidirectional and found.reading is Reading.LAST_OUTPUT:
        notes.append(
            "the source reads output[:, -1] of a bidirectional RNN: its backward half has read only the "
            "last step (exported as it is, readout last-output; h_n would give the backward half the "
            "whole sequence)"
        )
    if effect is not None and (line := effect.warning(pad_to)) is not None:
        notes.append(line)
    return tuple(notes)
