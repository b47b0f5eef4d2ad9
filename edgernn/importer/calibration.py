"""Calibration data without labels: an unlabelled `--data` file, or `--input-range` (synthetic).

Quantization needs inputs, not labels; the reports need labels to score anything. Without true
labels the import labels each sequence with the source's own answer (its argmax, per sequence or
per step), so every accuracy the export reports is agreement with the source model: the question
a converter must answer. The labelled set is written into the import directory
(`calibration.npz`), where export and verify read it back; the checkpoint records that its
labels are the source's (meta "labels": "source").
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np

from edgernn.config import Task
from edgernn.data.dataset import IGNORE, PAD, pad_features, pad_tokens, seeded_rng
from edgernn.errors import InputError
from edgernn.importer.prove import padded_sequence, shape_refusal
from edgernn.importer.source import Source
from edgernn.predict.io import read_named_sequences

CALIBRATION = "calibration.npz"
SYNTHETIC_SEQUENCES = 300  # enough for stable input scales; the proof runs the source on each


def has_labels(path: Path) -> bool:
    """Whether a --data file carries labels (`y` in an .npz; `label` or `step_label` in a .csv)."""
    try:
        if path.suffix.lower() == ".npz":
            with zipfile.ZipFile(path) as z:
                return "y.npy" in z.namelist()
        with path.open(encoding="utf-8") as f:
            header = {h.strip() for h in f.readline().split(",")}
        return bool(header & {"label", "step_label"})
    except (OSError, UnicodeDecodeError, zipfile.BadZipFile):
        return True  # let the labelled reader give its own message for an unreadable file


def synthetic_sequences(input_size: int, low: float, high: float, steps: int, seed: int) -> list[np.ndarray]:
    """Uniform random features in [low, high], of lengths 1..steps, from the seed. The lengths
    vary so that the proof and the padding check see more than one length."""
    if not low < high:
        raise InputError(f"--input-range needs LOW < HIGH, got {low:g} {high:g}")
    rng = seeded_rng(seed)
    lengths = rng.integers(1, steps + 1, SYNTHETIC_SEQUENCES)
    return [rng.uniform(low, high, (int(n), input_size)).astype(np.float32) for n in lengths]


def labelled_by_source(source: Source, seqs: list[np.ndarray], task: Task, pad_to: int) -> bytes:
    """An .npz (X, y, lengths, class_names) of `seqs` labelled with the source's answers."""
    if len(seqs) == 0:
        raise InputError("no calibration sequences")
    if seqs[0].ndim == 1:  # token ids, 0 after each sequence (PAD)
        x = pad_tokens([s.tolist() for s in seqs], PAD)
        lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    else:
        x, lengths = pad_features(seqs)
    t_max = int(lengths.max())
    answers = [source.run(padded_sequence(s, pad_to)) for s in seqs]
    _check_answers(seqs, answers, task)
    if task == Task.MANY_TO_ONE:
        y = np.array([int(np.argmax(a)) for a in answers], dtype=np.int64)
    else:
        y = np.full((len(seqs), t_max), IGNORE, dtype=np.int64)
        for i, a in enumerate(answers):
            y[i, : len(a)] = np.argmax(a, axis=-1)
    classes = answers[0].shape[-1]
    if len(np.unique(y[y != IGNORE])) < 2:
        raise InputError(
            f"the source gives one class on all {len(seqs)} calibration sequences, so they cannot stand "
            "in for labels; give labelled data with --data"
        )
    buf = io.BytesIO()
    names = np.array([str(c) for c in range(classes)])
    np.savez(buf, X=x, y=y, lengths=lengths, class_names=names)
    return buf.getvalue()


def _check_answers(seqs: list[np.ndarray], answers: list[np.ndarray], task: Task) -> None:
    """Labels from answers of the wrong shape would be garbage (or IGNORE inside a sequence):
    refuse as the proof refuses a shape it does not reproduce."""
    classes = answers[0].shape[-1] if answers[0].ndim else 0
    for i, (s, a) in enumerate(zip(seqs, answers, strict=True)):
        want: tuple[int, ...] = (classes,) if task == Task.MANY_TO_ONE else (len(s), classes)
        if a.shape != want:
            per = "per sequence" if task == Task.MANY_TO_ONE else "per step"
            raise InputError(shape_refusal(i, s, a.shape, f"a model answering {per}", want))


def unlabelled_sequences(path: Path) -> tuple[list[np.ndarray], tuple[str, ...]]:
    """The sequences of an unlabelled --data file, each at its own length, and the names of its
    feature columns (a CSV's header; () for .npz), which the calibration .npz cannot carry."""
    _, seqs, names = read_named_sequences(path)
    return seqs, names
