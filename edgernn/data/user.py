"""User data files (`load_user_data`): validated, then split into a Dataset.

`.npz` (written by `np.savez`; read without pickle):
    X        float (N, T, I) features, or integer (N, T) token ids (0 = padding, ids >= 1)
    y        integer (N,) one class per sequence (many-to-one), or (N, T) one per step (many-to-many)
    lengths  optional integer (N,) valid steps per sequence, 1..T (default: all T)
    class_names  optional string (C,) naming classes 0..C-1
    split    optional (N,) "train" / "val" / "test" strings or 0 / 1 / 2: the user's own split

`.csv`, long format, one row per step, header required, e.g.::

    sequence,step,label,f0,f1
    a,0,walking,0.1,2.0
    a,1,walking,0.3,1.9
    b,0,running,1.2,0.4

    sequence    any identifier; rows of one sequence may be in any order
    step        integer position in the sequence; each sequence must have steps 0..L-1 exactly once
    label       one class per sequence (same on all its rows): many-to-one; or instead
    step_label  one class per step: many-to-many
    split       optional, train / val / test or 0 / 1 / 2, the same on all rows of a sequence
    all other columns are float features, in header order.
Labels that are all integers (`2.0` is 2) are class ids; otherwise the distinct strings, sorted
(Python's string order), become classes 0, 1, 2, ...

At least 10 sequences and 2 classes are needed. Without a split the split is 70/15/15 by seed
(stratified for many-to-one); with one, its test sequences are the test set and validation is
carved from train when no sequence is marked val (edgernn.data.user_split).
"""

from __future__ import annotations

import csv
import os
import warnings
import zipfile
import zlib
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from edgernn.config import MAX_CLASSES, Task
from edgernn.data.dataset import (
    IGNORE,
    PAD,
    Array,
    Dataset,
    feature_dataset,
    pad_tokens,
    seeded_rng,
    step_mask,
    three_way,
    token_dataset,
)
from edgernn.data.user_split import is_test, parse_split, require_test_labels, split_indices, split_key
from edgernn.errors import DataWarning, InputError, oneline

MIN_SEQUENCES = 10
CSV_HEADER = "sequence,step,label,f0,f1"
MAX_TOKEN = 1 << 16
# Beyond this many token ids, integer X is more likely raw sensor counts (a 12-bit ADC reads up
# to 4,095) than a vocabulary: the character and word sets this is built for stay well below.
LARGE_VOCAB = 256
SENSOR_HINT = "sensor samples? save X as float32 (N, T, I): X.astype(np.float32), [..., None] for one feature"
TRANSPOSED_HINT = "if X is (sequences, features, steps), pass X.transpose(0, 2, 1)"


@dataclass(frozen=True, eq=False)
class UserArrays:
    """A file's contents before validation, as either reader gives them."""

    x: Array
    y: Array
    lengths: Array | None
    class_names: Array | None
    split: Array | None  # raw values, parsed by user_split.parse_split
    ids: list[str] | None = None  # CSV sequence ids, to name sequences in messages
    feature_names: tuple[str, ...] = ()  # CSV feature columns, in header order


def load_user_data(path: str | os.PathLike[str], seed: int = 0, normalize: bool = True) -> Dataset:
    """Read a user `.npz` or `.csv` (formats in the module docstring), validate it and split it:
    by its own `split` if it has one, else 70/15/15 by seed."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"data file not found: {p}")
    if not p.is_file():
        raise InputError(f"not a file: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        arrays = _read_npz(p)
    elif suffix == ".csv":
        arrays = _read_csv(p)
    else:
        raise InputError(f"{p.name}: unsupported extension {suffix or '(none)'!r}; use .npz or .csv")
    return _user_dataset(p, arrays, seeded_rng(seed), normalize)


def _read_npz(p: Path) -> UserArrays:
    arrays = read_npz(p, ("X", "y"), ("lengths", "class_names", "split"))
    if "class_names" in arrays and arrays["class_names"].dtype.kind not in "US":
        raise InputError(f"{p.name}: class_names must be an array of strings")
    return UserArrays(
        arrays["X"], arrays["y"], arrays.get("lengths"), arrays.get("class_names"), arrays.get("split")
    )


def read_npz(p: Path, required: tuple[str, ...], optional: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays of the .npz file `p` by name, read without pickle. A file that is not an .npz,
    a missing or unexpected array name, an object array or a damaged archive is an InputError."""
    allowed = (*required, *optional)
    try:
        # Opened here, not by np.load, which leaves its own handle open when the archive is damaged.
        with p.open("rb") as f:
            # np.load would take any other file for a pickle and report that, which misleads.
            if f.read(4) != b"PK\x03\x04":
                example = ", ".join(f"{k}=..." for k in required)
                raise InputError(f"{p.name}: not an .npz archive; save one with np.savez(path, {example})")
            f.seek(0)
            with np.load(f, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except InputError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise InputError(f"{p.name}: an array holds Python objects; save plain numeric arrays") from None
        raise InputError(f"{p.name}: cannot read as .npz: {oneline(e)}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{p.name}: cannot read as .npz: {oneline(e)}") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        found, expected = ", ".join(sorted(arrays)) or "nothing", ", ".join(required)
        raise InputError(f"{p.name}: missing array {missing[0]!r} (found: {found}); expected {expected}")
    extra = sorted(set(arrays) - set(allowed))
    if extra:
        raise InputError(f"{p.name}: unexpected array {extra[0]!r}; allowed: {', '.join(allowed)}")
    return arrays


@dataclass(frozen=True)
class LongCsv:
    ids: list[str]  # sequence ids in file order
    features: list[list[list[float]]]  # per sequence, the feature rows in step order
    labels: list[list[str]]  # per sequence, the label of every step ([] when labels are ignored)
    per_step: bool  # labels come from `step_label`, not `label`
    splits: list[str]  # per sequence, its `split` value ([] without the column or when ignored)
    feature_names: tuple[str, ...]  # the feature columns' names, in header order


def read_long_csv(p: Path, labels: str) -> LongCsv:
    """The documented long CSV format: one row per step, columns `sequence`, `step` (0..T-1 once
    each), the features, a label column `label` (per sequence) or `step_label` (per step), and
    optionally `split` (per sequence).
    labels: "required", or "ignored" (prediction: label and split columns may be there and are skipped).
    """
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise InputError(f"{p.name}: not a UTF-8 text file") from None
    except (OSError, csv.Error) as e:
        raise InputError(f"{p.name}: cannot read as CSV: {oneline(e)}") from None
    if not rows:
        raise InputError(f"{p.name}: empty file; expected a header like {CSV_HEADER}")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise InputError(f"{p.name}: duplicate column names in the header")
    for col in ("sequence", "step"):
        if col not in header:
            raise InputError(f"{p.name}: missing column {col!r}; expected a header like {CSV_HEADER}")
    label_cols = [c for c in ("label", "step_label") if c in header]
    if labels == "required" and len(label_cols) != 1:
        raise InputError(
            f"{p.name}: need exactly one column 'label' (per sequence) or 'step_label' (per step)"
        )
    i_seq, i_step = header.index("sequence"), header.index("step")
    i_lab = header.index(label_cols[0]) if labels == "required" else -1
    i_split = header.index("split") if "split" in header and labels == "required" else -1
    skip = {i_seq, i_step, *(header.index(c) for c in (*label_cols, "split") if c in header)}
    feat_cols = [i for i in range(len(header)) if i not in skip]
    if not feat_cols:
        raise InputError(f"{p.name}: no feature columns besides sequence, step and the labels")

    seqs: dict[str, dict[int, tuple[str, list[float]]]] = {}
    split_of: dict[str, str] = {}
    for line_no, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise InputError(f"{p.name} line {line_no}: {len(row)} fields, header has {len(header)}")
        try:
            step = int(row[i_step])
        except ValueError:
            raise InputError(f"{p.name} line {line_no}: step {row[i_step]!r} is not an integer") from None
        feats = []
        for i in feat_cols:
            try:
                feats.append(float(row[i]))
            except ValueError:
                raise InputError(f"{p.name} line {line_no}: {header[i]} {row[i]!r} is not a number") from None
        sid = row[i_seq].strip()
        steps = seqs.setdefault(sid, {})
        if step in steps:
            raise InputError(f"{p.name} line {line_no}: step {step} repeated in sequence {row[i_seq]!r}")
        if i_split >= 0 and split_key(split_of.setdefault(sid, row[i_split].strip())) != split_key(
            row[i_split]
        ):
            raise InputError(
                f"{p.name} line {line_no}: split {row[i_split].strip()!r} differs from "
                f"{split_of[sid]!r} on an earlier row of sequence {sid!r}; a sequence is in one split"
            )
        steps[step] = (row[i_lab].strip() if i_lab >= 0 else "", feats)
    if not seqs:
        raise InputError(f"{p.name}: no data rows after the header")
    ids, feats_per_seq, labels_per_seq = [], [], []
    for sid, steps in seqs.items():
        if sorted(steps) != list(range(len(steps))):
            raise InputError(f"{p.name}: sequence {sid!r} must have steps 0..{len(steps) - 1}, each once")
        ordered = [steps[t] for t in range(len(steps))]
        ids.append(sid)
        feats_per_seq.append([f for _, f in ordered])
        labels_per_seq.append([lab for lab, _ in ordered])
    per_step = i_lab >= 0 and header[i_lab] == "step_label"
    splits = [split_of[sid] for sid in ids] if i_split >= 0 else []
    names = tuple(header[i] for i in feat_cols)
    return LongCsv(ids, feats_per_seq, labels_per_seq if i_lab >= 0 else [], per_step, splits, names)


def _read_csv(p: Path) -> UserArrays:
    data = read_long_csv(p, labels="required")
    feats_per_seq, raw_labels = data.features, data.labels
    for i, (sid, labels) in enumerate(zip(data.ids, raw_labels, strict=True)):
        if "" in labels:
            # An empty label would otherwise become a class of its own, named "".
            if data.splits and is_test(data.splits[i]):
                raise InputError(
                    f"{p.name}: test sequence {sid!r} has no label; test sequences need their true "
                    "labels to be scored"
                )
            raise InputError(f"{p.name}: sequence {sid!r} has an empty label")
        if not data.per_step and len(set(labels)) != 1:
            raise InputError(
                f"{p.name}: sequence {sid!r} has several labels; per-step labels go in 'step_label'"
            )
    distinct = sorted({lab for labels in raw_labels for lab in labels})
    class_names: Array | None = None
    ids = [_class_id(s) for s in distinct]
    if all(i is not None for i in ids):
        to_id = {s: i for s, i in zip(distinct, ids, strict=True) if i is not None}
    else:
        to_id = {s: i for i, s in enumerate(distinct)}
        class_names = np.array(distinct)
    lengths = np.array([len(f) for f in feats_per_seq], dtype=np.int64)
    x = np.zeros((len(feats_per_seq), int(lengths.max()), len(feats_per_seq[0][0])), dtype=np.float64)
    for i, steps_feats in enumerate(feats_per_seq):
        x[i, : len(steps_feats)] = steps_feats
    if data.per_step:
        y = pad_tokens([[to_id[s] for s in labels] for labels in raw_labels], IGNORE)
    else:
        y = np.array([to_id[labels[0]] for labels in raw_labels], dtype=np.int64)
    split = np.array(data.splits) if data.splits else None
    return UserArrays(x, y, lengths, class_names, split, data.ids, data.feature_names)


def _class_id(label: str) -> int | None:
    """The class id a CSV label writes (`2`, or `2.0` as pandas writes it), None for a name."""
    try:
        return int(label)
    except ValueError:
        pass
    try:
        v = float(label)
    except ValueError:
        return None
    return int(v) if v.is_integer() else None


INT64_MAX = int(np.iinfo(np.int64).max)


def _as_int(a: Array, what: str, name: str) -> Array:
    """Integer view of `a`; whole-valued floats (as pandas often writes labels) are accepted."""
    if a.dtype.kind in "iub":
        if a.dtype.kind == "u" and a.size and int(a.max()) > INT64_MAX:
            raise InputError(
                f"{name}: {what} holds {int(a.max())}, past the largest integer edgernn reads (2^63 - 1)"
            )
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise InputError(f"{name}: {what} must hold whole numbers, found fractional or NaN/Inf values")
        if a.size and float(np.abs(a).max()) >= 2.0**63:  # astype would wrap it to a negative number
            raise InputError(
                f"{name}: {what} holds {np.abs(a).max():g}, past the largest integer edgernn reads (2^63 - 1)"
            )
        return a.astype(np.int64)
    hint = ""
    if what == "y" and a.dtype.kind in "US":
        hint = "; map the labels to 0, 1, 2, ... and give their names as class_names"
    raise InputError(f"{name}: {what} must be integers, got dtype {a.dtype}{hint}")


def _user_dataset(p: Path, arrays: UserArrays, rng: np.random.Generator, normalize: bool = True) -> Dataset:
    name = p.name
    x, y, lengths, class_names = arrays.x, arrays.y, arrays.lengths, arrays.class_names
    tokens = x.dtype.kind in "iu"
    if x.dtype.kind not in "iufb":
        raise InputError(f"{name}: X must be float features or integer tokens, got dtype {x.dtype}")
    if x.ndim != (2 if tokens else 3):
        want = "(N, T) for integer tokens" if tokens else "(N, T, I) for float features"
        hint = "; for one feature per step use X[..., None]" if not tokens and x.ndim == 2 else ""
        if tokens and x.ndim == 3:
            hint = f"; {SENSOR_HINT}"
        raise InputError(f"{name}: X must be {want}, got shape {x.shape}{hint}")
    n, t_max = x.shape[0], x.shape[1]
    if x.size == 0 or t_max == 0:
        raise InputError(f"{name}: X is empty (shape {x.shape}); sequences need at least one step")
    if n < MIN_SEQUENCES:
        raise InputError(f"{name}: only {n} sequences; train/val/test need at least {MIN_SEQUENCES}")

    lengths = np.full(n, t_max, dtype=np.int64) if lengths is None else _as_int(lengths, "lengths", name)
    if lengths.shape != (n,):
        raise InputError(f"{name}: lengths must have shape ({n},) to match X, got {lengths.shape}")
    if lengths.min() < 1 or lengths.max() > t_max:
        first = int(np.flatnonzero((lengths < 1) | (lengths > t_max))[0])
        hint = ""
        if not tokens and lengths.max() > t_max and lengths.max() <= x.shape[2]:
            hint = f"; {TRANSPOSED_HINT}"
        raise InputError(
            f"{name}: lengths must be in 1..{t_max}; sequence {first} has {lengths[first]}{hint}"
        )
    if not tokens and arrays.lengths is None and x.shape[2] > t_max:
        warnings.warn(
            f"{name}: X is {x.shape}, read as {t_max} steps of {x.shape[2]} features each; {TRANSPOSED_HINT}",
            DataWarning,
            stacklevel=2,
        )
    valid = step_mask(lengths, t_max)
    codes = None if arrays.split is None else parse_split(arrays.split, n, name, arrays.ids)
    if codes is not None:
        require_test_labels(y, codes, valid, name, arrays.ids)

    y = _as_int(y, "y", name)
    if y.ndim == 1:
        task = Task.MANY_TO_ONE
        if y.shape != (n,):
            raise InputError(f"{name}: y has {y.shape[0]} labels but X has {n} sequences")
        used = y
    elif y.ndim == 2:
        task = Task.MANY_TO_MANY
        if y.shape != (n, t_max):
            raise InputError(f"{name}: per-step y must have shape {(n, t_max)} like X, got {y.shape}")
        used = y[valid]
        y = np.where(valid, y, IGNORE)
    else:
        raise InputError(f"{name}: y must be (N,) per sequence or (N, T) per step, got shape {y.shape}")
    if used.min() < 0:
        raise InputError(f"{name}: labels must be >= 0, found {used.min()}")
    if len(np.unique(used)) < 2:
        raise InputError(f"{name}: need at least 2 classes, every label is {used[0]}")
    num_classes = int(used.max()) + 1
    if num_classes > MAX_CLASSES:
        # Before anything sized by it is built: an id or a timestamp given as the label would
        # otherwise allocate a range of that many class ids.
        raise InputError(
            f"{name}: labels are class ids 0..{num_classes - 1}, more than the {MAX_CLASSES} classes a "
            "model can have; map your labels to 0, 1, 2, ... (one id per class)"
        )
    if class_names is not None:
        if class_names.ndim != 1 or len(class_names) < num_classes:
            raise InputError(f"{name}: class_names must list at least {num_classes} names, one per class id")
        names = tuple(str(c) for c in class_names)
        seen: set[str] = set()
        for c in names:
            if c in seen:
                raise InputError(f"{name}: class_names must be distinct, {c!r} names two classes")
            seen.add(c)
        num_classes = len(names)
    else:
        # A class id nothing carries is a head output the model can never learn: most often labels
        # counted from 1. A class_names array states such a class on purpose.
        present = {int(v) for v in np.unique(used)}
        absent = [c for c in range(num_classes) if c not in present]
        if absent:
            shown = ", ".join(str(c) for c in absent[:5]) + (", ..." if len(absent) > 5 else "")
            hint = " (labels counted from 1? subtract 1)" if absent == [0] else ""
            keep = (
                "number the classes 0, 1, 2, ... or write the labels as names"
                if p.suffix.lower() == ".csv"  # a CSV has no class_names to give
                else "give class_names to keep a class without data"
            )
            raise InputError(
                f"{name}: labels are class ids 0..{num_classes - 1}, but no label is {shown}{hint}; {keep}"
            )
        names = tuple(str(i) for i in range(num_classes))

    if tokens:
        ids = x[valid]
        if ids.min() < 1 or ids.max() >= MAX_TOKEN:
            found = f"{ids.min()}..{ids.max()}"
            raise InputError(
                f"{name}: integer X is token ids, which must be in 1..{MAX_TOKEN - 1} (0 is padding), "
                f"found {found}; {SENSOR_HINT}"
            )
        if ids.max() > LARGE_VOCAB:
            warnings.warn(
                f"{name}: integer X is read as token ids, {ids.max()} of them, each its own embedding "
                f"row in model.h; {SENSOR_HINT}",
                DataWarning,
                stacklevel=2,
            )
        x = np.where(valid, x, PAD).astype(np.int64)
    else:
        bad = ~np.isfinite(x) & valid[..., None]
        if bad.any():
            first, step, feature = (int(v) for v in np.argwhere(bad)[0])
            which = repr(arrays.ids[first]) if arrays.ids else first
            column = arrays.feature_names[feature] if arrays.feature_names else f"feature {feature}"
            raise InputError(
                f"{name}: X has {int(bad.sum())} NaN/Inf values, first in sequence {which} "
                f"at step {step}, {column}"
            )

    strata = y if task == Task.MANY_TO_ONE else None
    if codes is None:
        idx = three_way(n, 0.15, 0.15, rng, strata)
    else:
        idx = split_indices(codes, rng, strata, name, names)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    source, licence = f"user file {p.name}", "user-supplied"  # no build path in firmware
    if not tokens:
        # Padding may hold anything (NaN included); normalize() zeroes it.
        ds = feature_dataset(p.stem, task, names, parts, source, licence, normalize)
    else:
        vocab = ("<pad>", *(str(i) for i in range(1, int(x.max()) + 1)))
        ds = token_dataset(p.stem, task, vocab, names, parts, source, licence)
    return replace(ds, split_marked=codes is not None, feature_names=arrays.feature_names)
