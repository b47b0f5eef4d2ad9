"""The in-memory data set: padded, normalised, fixed train/val/test splits, and the helpers that
build one (seeded splitting, padding, normalisation).

Feature data are float32 `(N, T_max, I)`, zero after each sequence's length, normalised per feature
with a mean and std fitted on the valid steps of the train split only. Token data are int64
`(N, T_max)` with 0 as padding. Labels are int64: `(N,)` for many-to-one, `(N, T_max)` with -100
after each sequence's length for many-to-many and one-to-many.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import numpy as np
import numpy.typing as npt

from edgernn.config import Task
from edgernn.errors import InputError

Array = npt.NDArray[Any]
IGNORE = -100  # label at padded steps; matches torch.nn.CrossEntropyLoss's default ignore_index
PAD = 0  # token id of padding


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
    task: Task
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
    # True when the user's file said which sequences are train, val and test (edgernn.data.user_split);
    # False when edgernn drew the split (or a bundled set's is used).
    split_marked: bool = False
    # The features' names, in the order X holds them, when the file named them (a CSV header);
    # `edgernn predict` matches a CSV's columns to them by name. Empty: not named.
    feature_names: tuple[str, ...] = ()


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


def resource_npz(filename: str) -> dict[str, Array]:
    """The arrays of a bundled file, found through importlib.resources so an installed wheel works."""
    path = resources.files("edgernn.data").joinpath("datasets").joinpath(filename)
    with path.open("rb") as f, np.load(f, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def seeded_rng(seed: int) -> np.random.Generator:
    """The generator behind every split; refuses a seed that is not a non-negative integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed!r}")
    return np.random.default_rng(int(seed))


def carve(
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


def three_way(n: int, val: float, test: float, rng: np.random.Generator, strata: Array | None) -> list[Array]:
    """Indices of train, val and test (fractions val and test of n, at least one each)."""
    n_val, n_test = max(1, round(val * n)), max(1, round(test * n))
    rest, test_idx = carve(np.arange(n), n_test, rng, strata)
    train_idx, val_idx = carve(rest, n_val, rng, strata)
    return [train_idx, val_idx, test_idx]


def step_mask(lengths: Array, t_max: int) -> Array:
    """bool (N, t_max): True on each sequence's valid steps."""
    return np.arange(t_max)[None, :] < np.asarray(lengths)[:, None]


def _fit_norm(x: Array, lengths: Array) -> tuple[Array, Array]:
    valid = x[step_mask(lengths, x.shape[1])].astype(np.float64)
    mean, std = valid.mean(axis=0), valid.std(axis=0)
    # A feature constant over train carries no information; std 1 keeps it finite (it becomes 0).
    std[std < 1e-8] = 1.0
    return mean.astype(np.float32), std.astype(np.float32)


def normalize(x: Array, lengths: Any, mean: Array, std: Array) -> Array:
    """(x - mean) / std on each sequence's valid steps; padding stays exactly 0. Returns float32."""
    out = ((np.asarray(x, dtype=np.float32) - mean) / std).astype(np.float32)
    out[~step_mask(lengths, out.shape[1])] = 0.0
    return out


def pad_features(seqs: list[Array]) -> tuple[Array, Array]:
    """Variable-length (L_i, I) sequences -> float32 (N, T_max, I) zero-padded, and lengths."""
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), seqs[0].shape[1]), dtype=np.float32)
    for i, s in enumerate(seqs):
        x[i, : len(s)] = s
    return x, lengths


def pad_tokens(seqs: list[list[int]], fill: int) -> Array:
    """Variable-length id lists -> int64 (N, T_max) padded with `fill`."""
    out = np.full((len(seqs), max(len(s) for s in seqs)), fill, dtype=np.int64)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
    return out


def feature_dataset(
    name: str,
    task: str,
    class_names: tuple[str, ...],
    parts: list[tuple[Array, Array, Array]],
    source: str,
    licence: str,
    normalize_features: bool = True,
) -> Dataset:
    """Normalise (x, y, lengths) for train, val, test with statistics of train alone; or, without
    `normalize_features`, keep the values as given (mean 0, std 1: a model imported from elsewhere
    reads the features it was trained on)."""
    if normalize_features:
        mean, std = _fit_norm(parts[0][0], parts[0][2])
    else:
        width = parts[0][0].shape[2]
        mean, std = np.zeros(width, np.float32), np.ones(width, np.float32)
    train, val, test = (
        Split(normalize(x, n, mean, std), y.astype(np.int64), n.astype(np.int64)) for x, y, n in parts
    )
    return Dataset(
        name=name, task=Task(task), input_size=int(mean.shape[0]), vocab=(), num_classes=len(class_names),
        class_names=class_names, train=train, val=val, test=test, norm_mean=mean, norm_std=std,
        source=source, licence=licence,
    )  # fmt: skip


def token_dataset(
    name: str,
    task: str,
    vocab: tuple[str, ...],
    class_names: tuple[str, ...],
    parts: list[tuple[Array, Array, Array]],
    source: str,
    licence: str,
) -> Dataset:
    """Token splits as given (no normalisation; empty norm arrays)."""
    train, val, test = (Split(x, y.astype(np.int64), n.astype(np.int64)) for x, y, n in parts)
    return Dataset(
        name=name, task=Task(task), input_size=0, vocab=vocab, num_classes=len(class_names),
        class_names=class_names, train=train, val=val, test=test,
        norm_mean=np.zeros(0, np.float32), norm_std=np.zeros(0, np.float32), source=source, licence=licence,
    )  # fmt: skip
