"""Bundled data sets and user data as padded, normalised, fixed train/val/test splits.

Everything is read from files committed in `edgernn/data/datasets/` (see PROVENANCE.md there and
`scripts/make_datasets.py`); nothing is downloaded at run time. Splits depend only on the seed.

Feature data are float32 `(N, T_max, I)`, zero after each sequence's length, normalised per feature
with a mean and std fitted on the valid steps of the train split only. Token data are int64
`(N, T_max)` with 0 as padding. Labels are int64: `(N,)` for many-to-one, `(N, T_max)` with -100
after each sequence's length for many-to-many and one-to-many.

User data (`load_user_data`)
----------------------------
`.npz` (written by `np.savez`; read without pickle):
    X        float (N, T, I) features, or integer (N, T) token ids (0 = padding, ids >= 1)
    y        integer (N,) one class per sequence (many-to-one), or (N, T) one per step (many-to-many)
    lengths  optional integer (N,) valid steps per sequence, 1..T (default: all T)
    class_names  optional string (C,) naming classes 0..C-1

`.csv`, long format, one row per step, header required, e.g.::

    sequence,step,label,f0,f1
    a,0,walking,0.1,2.0
    a,1,walking,0.3,1.9
    b,0,running,1.2,0.4

    sequence    any identifier; rows of one sequence may be in any order
    step        integer position in the sequence; each sequence must have steps 0..L-1 exactly once
    label       one class per sequence (same on all its rows): many-to-one; or instead
    step_label  one class per step: many-to-many
    all other columns are float features, in header order.
Labels that are all integers are class ids; otherwise the distinct strings, sorted, become classes.

At least 10 sequences and 2 classes are needed; the split is 70/15/15 (stratified for many-to-one).
"""

from __future__ import annotations

import csv
import os
import zipfile
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from edgernn.errors import InputError

Array = npt.NDArray[Any]
IGNORE = -100  # label at padded steps; matches torch.nn.CrossEntropyLoss's default ignore_index

BUNDLED: tuple[str, ...] = ("japanese_vowels", "basic_motions", "names", "names_by_list")
DEFAULT_DATASET = "japanese_vowels"

NAMES_VOCAB: tuple[str, ...] = ("<pad>", "<s>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
PAD, BOS, EOS = 0, 1, 2

# BasicMotions streams: clips of 100 steps stitched 4 at a time, then up to CROP-1 steps cut off
# each end so lengths vary (302..400) and padding is exercised as in real data.
CLIPS_PER_STREAM = 4
CROP = 50
STREAM_ROUNDS = {"train": 40, "val": 20, "test": 10}  # each round uses every clip of its split once
TEST_STREAM_SEED = 20240601  # test streams are the same for every seed, so scores are comparable

MIN_SEQUENCES = 10
CSV_HEADER = "sequence,step,label,f0,f1"
MAX_TOKEN = 1 << 16


@dataclass(frozen=True, eq=False)
class Split:
    x: Array  # float32 (N, T_max, I) normalised, 0 at padding; or int64 tokens (N, T_max), 0 = padding
    y: Array  # int64 (N,) many-to-one; (N, T_max) with -100 at padding otherwise
    lengths: Array  # int64 (N,), each >= 1

    def __len__(self) -> int:
        return int(self.lengths.shape[0])


@dataclass(frozen=True, eq=False)
class Dataset:
    name: str
    task: str  # "many-to-one" | "many-to-many" | "one-to-many"
    input_size: int  # features per step; 0 for token data
    vocab: tuple[str, ...]  # token strings, index = token id, 0 = "<pad>"; empty for feature data
    num_classes: int
    class_names: tuple[str, ...]
    train: Split
    val: Split
    test: Split
    norm_mean: Array  # float32 (I,), fitted on the train split only; empty for tokens
    norm_std: Array  # float32 (I,)
    source: str
    licence: str


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    task: str
    description: str
    n_train: int
    n_val: int
    n_test: int
    num_classes: int
    input: str
    source: str
    licence: str


# ----------------------------------------------------------------------------- shared helpers


def _rng(seed: int) -> np.random.Generator:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def _carve(
    idx: Array, n_take: int, rng: np.random.Generator, strata: Array | None = None
) -> tuple[Array, Array]:
    """Split `idx` into (kept, taken) with `n_take` taken at random, stratified by `strata` if given."""
    order = idx[rng.permutation(len(idx))]
    if strata is not None:
        order = order[np.argsort(strata[order], kind="stable")]
    # Evenly spaced picks through the class-sorted order give every class its share to within one.
    taken = np.zeros(len(order), dtype=bool)
    taken[((np.arange(n_take) + 0.5) * len(order) / n_take).astype(np.int64)] = True
    return np.sort(order[~taken]), np.sort(order[taken])


def _three_way(
    n: int, val: float, test: float, rng: np.random.Generator, strata: Array | None
) -> list[Array]:
    n_val, n_test = max(1, round(val * n)), max(1, round(test * n))
    rest, test_idx = _carve(np.arange(n), n_test, rng, strata)
    train_idx, val_idx = _carve(rest, n_val, rng, strata)
    return [train_idx, val_idx, test_idx]


def _step_mask(lengths: Array, t_max: int) -> Array:
    return np.arange(t_max)[None, :] < np.asarray(lengths)[:, None]


def _fit_norm(x: Array, lengths: Array) -> tuple[Array, Array]:
    valid = x[_step_mask(lengths, x.shape[1])].astype(np.float64)
    mean, std = valid.mean(axis=0), valid.std(axis=0)
    # A feature constant over train carries no information; std 1 keeps it finite (it becomes 0).
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: Array, lengths: Any, mean: Array, std: Array) -> Array:
    """(x - mean) / std on each sequence's valid steps; padding stays exactly 0. Returns float32."""
    out = ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)
    out[~_step_mask(lengths, out.shape[1])] = 0.0
    return out


def _pad_features(seqs: list[Array]) -> tuple[Array, Array]:
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return x, lengths


def _pad_tokens(seqs: list[list[int]], fill: int) -> Array:
    out = np.full((len(seqs), max(len(s) for s in seqs)), fill, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def _feature_dataset(
    name: str,
    task: str,
    class_names: tuple[str, ...],
    parts: list[tuple[Array, Array, Array]],
    source: str,
    licence: str,
) -> Dataset:
    """Normalise (x, y, lengths) for train, val, test with statistics of train alone."""
    mean, std = _fit_norm(parts[0][0], parts[0][2])
    train, val, test = (
        Split(normalize(x, n, mean, std), y.astype(np.int64), n.astype(np.int64)) for x, y, n in parts
    )
    return Dataset(
        name=name, task=task, input_size=int(mean.shape[0]), vocab=(), num_classes=len(class_names),
        class_names=class_names, train=train, val=val, test=test, norm_mean=mean, norm_std=std,
        source=source, licence=licence,
    )  # fmt: skip


def _resource_npz(filename: str) -> dict[str, Array]:
    path = resources.files("edgernn.data").joinpath("datasets").joinpath(filename)
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


# ----------------------------------------------------------------------------- bundled sets


def _japanese_vowels(seed: int) -> Dataset:
    z = _resource_npz("japanese_vowels.npz")
    off = z["offsets"]
    x, lengths = _pad_features([z["x"][off[i] : off[i + 1]] for i in range(len(off) - 1)])
    y = z["y"]
    train_all = np.flatnonzero(~z["is_test"])
    train, val = _carve(train_all, round(0.2 * len(train_all)), _rng(seed), y)
    test = np.flatnonzero(z["is_test"])
    return _feature_dataset(
        "japanese_vowels",
        "many-to-one",
        tuple(f"speaker {i + 1}" for i in range(9)),
        [(x[i], y[i], lengths[i]) for i in (train, val, test)],
        "UCI Japanese Vowels (Kudo, Toyama, Shimbo), doi:10.24432/C5NS47, via aeon 1.6.0",
        "CC BY 4.0 (cite Kudo, Toyama & Shimbo 1999)",
    )


def _stitch(
    clips: Array, labels: Array, ids: Array, rounds: int, rng: np.random.Generator
) -> tuple[Array, Array, Array]:
    per_round = len(ids) // CLIPS_PER_STREAM
    picks = np.concatenate([rng.permutation(ids)[: per_round * CLIPS_PER_STREAM] for _ in range(rounds)])
    picks = picks.reshape(-1, CLIPS_PER_STREAM)
    n, clip_len, feat = len(picks), clips.shape[1], clips.shape[2]
    full = clips[picks].reshape(n, CLIPS_PER_STREAM * clip_len, feat)
    full_y = np.repeat(labels[picks], clip_len, axis=1)
    start = rng.integers(0, CROP, n)
    lengths = full.shape[1] - start - rng.integers(0, CROP, n)
    src = np.minimum(np.arange(full.shape[1])[None, :] + start[:, None], full.shape[1] - 1)
    valid = _step_mask(lengths, full.shape[1])
    x = np.where(valid[..., None], np.take_along_axis(full, src[..., None], axis=1), 0.0).astype(np.float32)
    y = np.where(valid, np.take_along_axis(full_y, src, axis=1), IGNORE).astype(np.int64)
    return x, y, lengths.astype(np.int64)


def _basic_motions(seed: int) -> Dataset:
    z = _resource_npz("basic_motions.npz")
    clips, y = z["x"], z["y"]
    rng = _rng(seed)
    # Validation clips come out of the official train clips, so no test clip is ever seen in training.
    train, val = _carve(np.flatnonzero(~z["is_test"]), 8, rng, y)
    test = np.flatnonzero(z["is_test"])
    parts = [
        _stitch(clips, y, train, STREAM_ROUNDS["train"], rng),
        _stitch(clips, y, val, STREAM_ROUNDS["val"], rng),
        _stitch(clips, y, test, STREAM_ROUNDS["test"], np.random.default_rng(TEST_STREAM_SEED)),
    ]
    return _feature_dataset(
        "basic_motions",
        "many-to-many",
        tuple(str(c) for c in z["class_names"]),
        parts,
        "UEA archive BasicMotions (smartwatch accel + gyro, 10 Hz), via aeon 1.6.0",
        "no explicit licence stated by the UEA/UCR archive",
    )


_NAMES_ORIGIN = (
    "US Census 1990 first names (dist.male.first, dist.female.first) via the names 0.3.0 package",
    "public domain (US Census Bureau); names package MIT",
)


def _census_names() -> dict[str, list[str]]:
    lists: dict[str, list[str]] = {}
    text = resources.files("edgernn.data").joinpath("datasets", "census_names.txt").read_text("ascii")
    current: list[str] = []
    for line in text.splitlines():
        if line.startswith(">"):
            current = lists.setdefault(line[1:], [])
        elif line and not line.startswith("#"):
            current.append(line.lower())
    return lists


def _encode(name: str) -> list[int]:
    return [NAMES_VOCAB.index(c) for c in name]


def _token_dataset(
    name: str,
    task: str,
    vocab: tuple[str, ...],
    class_names: tuple[str, ...],
    parts: list[tuple[Array, Array, Array]],
    source: str,
    licence: str,
) -> Dataset:
    train, val, test = (Split(x, y.astype(np.int64), n.astype(np.int64)) for x, y, n in parts)
    return Dataset(
        name=name, task=task, input_size=0, vocab=vocab, num_classes=len(class_names),
        class_names=class_names, train=train, val=val, test=test,
        norm_mean=np.zeros(0, np.float32), norm_std=np.zeros(0, np.float32), source=source, licence=licence,
    )  # fmt: skip


def _names(seed: int) -> Dataset:
    lists = _census_names()
    names = sorted(set(lists["male"]) | set(lists["female"]))
    x = _pad_tokens([[BOS, *_encode(n)] for n in names], PAD)
    y = _pad_tokens([[*_encode(n), EOS] for n in names], IGNORE)
    lengths = np.array([len(n) + 1 for n in names], dtype=np.int64)
    idx = _three_way(len(names), 0.1, 0.1, _rng(seed), None)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    return _token_dataset("names", "one-to-many", NAMES_VOCAB, NAMES_VOCAB, parts, *_NAMES_ORIGIN)


def _names_by_list(seed: int) -> Dataset:
    lists = _census_names()
    male, female = set(lists["male"]), set(lists["female"])
    # A name on both lists has no single right answer, so it is left out.
    names = sorted(male - female) + sorted(female - male)
    y = np.array([0] * len(male - female) + [1] * len(female - male), dtype=np.int64)
    x = _pad_tokens([_encode(n) for n in names], PAD)
    lengths = np.array([len(n) for n in names], dtype=np.int64)
    idx = _three_way(len(names), 0.1, 0.1, _rng(seed), y)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    return _token_dataset(
        "names_by_list", "many-to-one", NAMES_VOCAB, ("male", "female"), parts, *_NAMES_ORIGIN
    )


_LOADERS = {
    "japanese_vowels": _japanese_vowels,
    "basic_motions": _basic_motions,
    "names": _names,
    "names_by_list": _names_by_list,
}

_DESCRIPTIONS = {
    "japanese_vowels": "speaker of a spoken Japanese vowel from 12 LPC cepstra per frame",
    "basic_motions": "activity at every step of a smartwatch stream (standing/running/walking/badminton)",
    "names": "first names generated letter by letter from a start token to an end token",
    "names_by_list": "whether a first name is on the census male or female list, letter by letter",
}


def load_dataset(name: str, seed: int = 0) -> Dataset:
    """A bundled data set with splits fixed by `seed`; official test sets are kept where they exist."""
    key = name.strip().lower().replace("-", "_")
    if key not in _LOADERS:
        raise InputError(f"unknown data set {name!r}; choose one of: {', '.join(BUNDLED)}")
    return _LOADERS[key](seed)


def list_datasets() -> list[DatasetInfo]:
    out = []
    for name in BUNDLED:
        d = load_dataset(name)
        lengths = np.concatenate([d.train.lengths, d.val.lengths, d.test.lengths])
        steps = f"{lengths.min()}-{lengths.max()} steps"
        what = f"{d.input_size} features/step" if d.input_size else f"letters ({len(d.vocab)} tokens)"
        out.append(
            DatasetInfo(
                name,
                d.task,
                _DESCRIPTIONS[name],
                len(d.train),
                len(d.val),
                len(d.test),
                d.num_classes,
                f"{what}, {steps}",
                d.source,
                d.licence,
            )
        )
    return out


# ----------------------------------------------------------------------------- user data


def load_user_data(path: str | os.PathLike[str], seed: int = 0) -> Dataset:
    """Read a user `.npz` or `.csv` (formats in the module docstring), validate it and split 70/15/15."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"data file not found: {p}")
    if not p.is_file():
        raise InputError(f"not a file: {p}")
    suffix = p.suffix.lower()
    if suffix == ".npz":
        x, y, lengths, class_names = _read_npz(p)
    elif suffix == ".csv":
        x, y, lengths, class_names = _read_csv(p)
    else:
        raise InputError(f"{p.name}: unsupported extension {suffix or '(none)'!r}; use .npz or .csv")
    return _user_dataset(p, x, y, lengths, class_names, _rng(seed))


def _read_npz(p: Path) -> tuple[Array, Array, Array | None, Array | None]:
    allowed = ("X", "y", "lengths", "class_names")
    try:
        with p.open("rb") as f:
            magic = f.read(4)
        # np.load would take any other file for a pickle and report that, which misleads.
        if magic != b"PK\x03\x04":
            raise InputError(f"{p.name}: not an .npz archive; save one with np.savez(path, X=..., y=...)")
        with np.load(p, allow_pickle=False) as z:
            keys = set(z.files)
            missing = [k for k in ("X", "y") if k not in keys]
            if missing:
                found = ", ".join(sorted(keys)) or "nothing"
                raise InputError(f"{p.name}: missing array {missing[0]!r} (found: {found}); expected X, y")
            extra = sorted(keys - set(allowed))
            if extra:
                raise InputError(f"{p.name}: unexpected array {extra[0]!r}; allowed: {', '.join(allowed)}")
            arrays = {k: z[k] for k in keys}
    except InputError:
        raise
    except ValueError as e:
        if "allow_pickle" in str(e):
            raise InputError(f"{p.name}: an array holds Python objects; save plain numeric arrays") from None
        raise InputError(f"{p.name}: cannot read as .npz: {_oneline(e)}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
        raise InputError(f"{p.name}: cannot read as .npz: {_oneline(e)}") from None
    if "class_names" in arrays and arrays["class_names"].dtype.kind not in "US":
        raise InputError(f"{p.name}: class_names must be an array of strings")
    return arrays["X"], arrays["y"], arrays.get("lengths"), arrays.get("class_names")


def _read_csv(p: Path) -> tuple[Array, Array, Array, Array | None]:
    try:
        with p.open(newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise InputError(f"{p.name}: not a UTF-8 text file") from None
    except (OSError, csv.Error) as e:
        raise InputError(f"{p.name}: cannot read as CSV: {_oneline(e)}") from None
    if not rows:
        raise InputError(f"{p.name}: empty file; expected a header like {CSV_HEADER}")
    header = [h.strip() for h in rows[0]]
    if len(set(header)) != len(header):
        raise InputError(f"{p.name}: duplicate column names in the header")
    for col in ("sequence", "step"):
        if col not in header:
            raise InputError(f"{p.name}: missing column {col!r}; expected a header like {CSV_HEADER}")
    label_cols = [c for c in ("label", "step_label") if c in header]
    if len(label_cols) != 1:
        raise InputError(
            f"{p.name}: need exactly one column 'label' (per sequence) or 'step_label' (per step)"
        )
    per_step = label_cols[0] == "step_label"
    i_seq, i_step, i_lab = header.index("sequence"), header.index("step"), header.index(label_cols[0])
    feat_cols = [i for i, h in enumerate(header) if i not in (i_seq, i_step, i_lab)]
    if not feat_cols:
        raise InputError(f"{p.name}: no feature columns besides sequence, step and {label_cols[0]}")

    seqs: dict[str, dict[int, tuple[str, list[float]]]] = {}
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
        steps = seqs.setdefault(row[i_seq].strip(), {})
        if step in steps:
            raise InputError(f"{p.name} line {line_no}: step {step} repeated in sequence {row[i_seq]!r}")
        steps[step] = (row[i_lab].strip(), feats)
    if not seqs:
        raise InputError(f"{p.name}: no data rows after the header")

    raw_labels: list[list[str]] = []
    feats_per_seq: list[list[list[float]]] = []
    for sid, steps in seqs.items():
        if sorted(steps) != list(range(len(steps))):
            raise InputError(f"{p.name}: sequence {sid!r} must have steps 0..{len(steps) - 1}, each once")
        ordered = [steps[t] for t in range(len(steps))]
        labels = [lab for lab, _ in ordered]
        if not per_step and len(set(labels)) != 1:
            raise InputError(
                f"{p.name}: sequence {sid!r} has several labels; per-step labels go in 'step_label'"
            )
        raw_labels.append(labels)
        feats_per_seq.append([f for _, f in ordered])

    distinct = sorted({lab for labels in raw_labels for lab in labels})
    class_names: Array | None = None
    if all(_is_int(s) for s in distinct):
        to_id = {s: int(s) for s in distinct}
    else:
        to_id = {s: i for i, s in enumerate(distinct)}
        class_names = np.array(distinct)
    lengths = np.array([len(f) for f in feats_per_seq], dtype=np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), len(feat_cols)), dtype=np.float64)
    for i, steps_feats in enumerate(feats_per_seq):
        x[i, : len(steps_feats)] = steps_feats
    if per_step:
        y = _pad_tokens([[to_id[s] for s in labels] for labels in raw_labels], IGNORE)
    else:
        y = np.array([to_id[labels[0]] for labels in raw_labels], dtype=np.int64)
    return x, y, lengths, class_names


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True


def _as_int(a: Array, what: str, name: str) -> Array:
    """Integer view of `a`; whole-valued floats (as pandas often writes labels) are accepted."""
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise InputError(f"{name}: {what} must hold whole numbers, found fractional or NaN/Inf values")
        return a.astype(np.int64)
    raise InputError(f"{name}: {what} must be integers, got dtype {a.dtype}")


def _user_dataset(
    p: Path, x: Array, y: Array, lengths: Array | None, class_names: Array | None, rng: np.random.Generator
) -> Dataset:
    name = p.name
    tokens = x.dtype.kind in "iu"
    if x.dtype.kind not in "iufb":
        raise InputError(f"{name}: X must be float features or integer tokens, got dtype {x.dtype}")
    if x.ndim != (2 if tokens else 3):
        want = "(N, T) for integer tokens" if tokens else "(N, T, I) for float features"
        hint = "; for one feature per step use X[..., None]" if not tokens and x.ndim == 2 else ""
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
        raise InputError(f"{name}: lengths must be in 1..{t_max}; sequence {first} has {lengths[first]}")
    valid = _step_mask(lengths, t_max)

    y = _as_int(y, "y", name)
    if y.ndim == 1:
        task = "many-to-one"
        if y.shape != (n,):
            raise InputError(f"{name}: y has {y.shape[0]} labels but X has {n} sequences")
        used = y
    elif y.ndim == 2:
        task = "many-to-many"
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
    if class_names is not None:
        if class_names.ndim != 1 or len(class_names) < num_classes:
            raise InputError(f"{name}: class_names must list at least {num_classes} names, one per class id")
        names = tuple(str(c) for c in class_names)
        num_classes = len(names)
    else:
        names = tuple(str(i) for i in range(num_classes))

    if tokens:
        ids = x[valid]
        if ids.min() < 1 or ids.max() >= MAX_TOKEN:
            found = f"{ids.min()}..{ids.max()}"
            raise InputError(f"{name}: token ids must be in 1..{MAX_TOKEN - 1} (0 is padding), found {found}")
        x = np.where(valid, x, PAD).astype(np.int64)
    else:
        bad = ~np.isfinite(x) & valid[..., None]
        if bad.any():
            first = int(np.argwhere(bad)[0, 0])
            raise InputError(f"{name}: X has {int(bad.sum())} NaN/Inf values, first in sequence {first}")

    idx = _three_way(n, 0.15, 0.15, rng, y if task == "many-to-one" else None)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    source, licence = f"user file {p}", "user-supplied"
    if not tokens:
        # Padding may hold anything (NaN included); normalize() zeroes it.
        return _feature_dataset(p.stem, task, names, parts, source, licence)
    vocab = ("<pad>", *(str(i) for i in range(1, int(x.max()) + 1)))
    return _token_dataset(p.stem, task, vocab, names, parts, source, licence)


def _oneline(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__
