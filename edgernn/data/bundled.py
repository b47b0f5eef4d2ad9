"""The bundled data sets: their registry, `load_dataset` and `list_datasets`.

Everything is read from files committed in `edgernn/data/datasets/` (see PROVENANCE.md there and
`scripts/make_datasets.py`), found with `importlib.resources` so an installed wheel works too;
nothing is downloaded at run time. Splits depend only on the seed; official test sets are kept
where they exist.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from importlib import resources

import numpy as np

from edgernn.config import Task
from edgernn.data.archive import ARCHIVE_SETS, load_archive_set
from edgernn.data.dataset import (
    IGNORE,
    PAD,
    Array,
    Dataset,
    DatasetInfo,
    carve,
    feature_dataset,
    pad_tokens,
    resource_npz,
    seeded_rng,
    step_mask,
    three_way,
    token_dataset,
)
from edgernn.errors import InputError

# `edgernn demo` runs these: one per task shape, each trains in seconds to a minute.
DEMO: tuple[str, ...] = ("japanese_vowels", "basic_motions", "names", "names_by_list")
# Many-to-one sets of 29..1,460 steps, where a plain tanh RNN meets vanishing gradients.
LONG: tuple[str, ...] = ("arrowhead", "acsf1", "pickup_gesture")
BUNDLED: tuple[str, ...] = DEMO + LONG
DEFAULT_DATASET = "japanese_vowels"

NAMES_VOCAB: tuple[str, ...] = ("<pad>", "<s>", "</s>", *"abcdefghijklmnopqrstuvwxyz")
BOS, EOS = 1, 2

# BasicMotions streams: clips of 100 steps stitched 4 at a time, then up to CROP-1 steps cut off
# each end so lengths vary (302..400) and padding is exercised as in real data.
CLIPS_PER_STREAM = 4
CROP = 50
STREAM_ROUNDS = {"train": 40, "val": 20, "test": 10}  # each round uses every clip of its split once
TEST_STREAM_SEED = 20240601  # test streams are the same for every seed, so scores are comparable


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
    valid = step_mask(lengths, full.shape[1])
    x = np.where(valid[..., None], np.take_along_axis(full, src[..., None], axis=1), 0.0).astype(np.float32)
    y = np.where(valid, np.take_along_axis(full_y, src, axis=1), IGNORE).astype(np.int64)
    return x, y, lengths.astype(np.int64)


def _basic_motions(seed: int) -> Dataset:
    z = resource_npz("basic_motions.npz")
    clips, y = z["x"], z["y"]
    rng = seeded_rng(seed)
    # Validation clips come out of the official train clips, so no test clip is ever seen in training.
    train, val = carve(np.flatnonzero(~z["is_test"]), 8, rng, y)
    test = np.flatnonzero(z["is_test"])
    parts = [
        _stitch(clips, y, train, STREAM_ROUNDS["train"], rng),
        _stitch(clips, y, val, STREAM_ROUNDS["val"], rng),
        _stitch(clips, y, test, STREAM_ROUNDS["test"], np.random.default_rng(TEST_STREAM_SEED)),
    ]
    return feature_dataset(
        "basic_motions",
        Task.MANY_TO_MANY,
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


def _names(seed: int) -> Dataset:
    lists = _census_names()
    names = sorted(set(lists["male"]) | set(lists["female"]))
    x = pad_tokens([[BOS, *_encode(n)] for n in names], PAD)
    y = pad_tokens([[*_encode(n), EOS] for n in names], IGNORE)
    lengths = np.array([len(n) + 1 for n in names], dtype=np.int64)
    idx = three_way(len(names), 0.1, 0.1, seeded_rng(seed), None)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    return token_dataset("names", Task.ONE_TO_MANY, NAMES_VOCAB, NAMES_VOCAB, parts, *_NAMES_ORIGIN)


def _names_by_list(seed: int) -> Dataset:
    lists = _census_names()
    male, female = set(lists["male"]), set(lists["female"])
    # A name on both lists has no single right answer, so it is left out.
    names = sorted(male - female) + sorted(female - male)
    y = np.array([0] * len(male - female) + [1] * len(female - male), dtype=np.int64)
    x = pad_tokens([_encode(n) for n in names], PAD)
    lengths = np.array([len(n) for n in names], dtype=np.int64)
    idx = three_way(len(names), 0.1, 0.1, seeded_rng(seed), y)
    parts = [(x[i], y[i], lengths[i]) for i in idx]
    return token_dataset(
        "names_by_list", Task.MANY_TO_ONE, NAMES_VOCAB, ("male", "female"), parts, *_NAMES_ORIGIN
    )


_LOADERS: dict[str, Callable[[int], Dataset]] = {
    name: partial(load_archive_set, spec) for name, spec in ARCHIVE_SETS.items()
}
_LOADERS.update(basic_motions=_basic_motions, names=_names, names_by_list=_names_by_list)

_DESCRIPTIONS = {name: spec.description for name, spec in ARCHIVE_SETS.items()} | {
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
        lo, hi = int(lengths.min()), int(lengths.max())
        steps = f"{lo} steps" if lo == hi else f"{lo}-{hi} steps"
        per_step = "1 feature/step" if d.input_size == 1 else f"{d.input_size} features/step"
        what = per_step if d.input_size else f"letters ({len(d.vocab)} tokens)"
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
