"""The user's own split of a `--data` file: a `split` array (.npz) or column (.csv) saying which
sequences are train, val and test, so a fixed test set stays the test set.

Values are "train" / "val" / "test" (any case) or 0 / 1 / 2. Validation sequences are carved from
train, stratified and by seed, when none is marked; test sequences must be marked.
"""

from __future__ import annotations

import numpy as np

from edgernn.data.dataset import Array, carve
from edgernn.errors import InputError

SPLITS = ("train", "val", "test")
TRAIN, VAL, TEST = 0, 1, 2
VAL_SHARE = 0.2  # of the train-marked sequences, when no sequence is marked val
_CODES = {**{s: i for i, s in enumerate(SPLITS)}, **{str(i): i for i in range(3)}}


def split_key(value: str) -> str:
    """A split value as parse_split reads it: any case, and a whole number written as a float
    ("2.0", as pandas writes an integer column with gaps) is that number."""
    key = value.strip().lower()
    try:
        number = float(key)
    except ValueError:
        return key
    return str(int(number)) if number.is_integer() else key


def class_list(ids: list[int], class_names: tuple[str, ...]) -> str:
    """Classes as a message names them: by the user's label where there is one, else by id."""
    shown = [
        repr(class_names[c]) if c < len(class_names) and class_names[c] != str(c) else str(c) for c in ids
    ]
    return ", ".join(shown[:5]) + (", ..." if len(shown) > 5 else "")


def is_test(value: str) -> bool:
    return _CODES.get(split_key(value)) == TEST


def parse_split(raw: Array, n: int, name: str, ids: list[str] | None = None) -> Array:
    """int64 codes (0 train, 1 val, 2 test) of a split array for n sequences; `ids` name them in
    messages (CSV sequence ids; npz messages use indices)."""
    if raw.shape != (n,):
        raise InputError(f"{name}: split must have shape ({n},), one entry per sequence, got {raw.shape}")
    if raw.dtype.kind in "US":
        values = [v.decode(errors="replace") if isinstance(v, bytes) else v for v in raw.tolist()]
        keys = [split_key(v) for v in values]
    elif raw.dtype.kind in "iuf":
        values = raw.tolist()
        keys = [split_key(str(v)) for v in values]
    else:
        raise InputError(
            f"{name}: split must be strings (train/val/test) or integers (0/1/2), got {raw.dtype}"
        )
    for i, key in enumerate(keys):
        if key not in _CODES:
            where = f"sequence {ids[i]!r}" if ids is not None else f"sequence {i}"
            raise InputError(
                f"{name}: split value {values[i]!r} ({where}) is not one of train, val, test (or 0, 1, 2)"
            )
    return np.array([_CODES[k] for k in keys], dtype=np.int64)


def require_test_labels(
    y: Array, codes: Array, valid: Array, name: str, ids: list[str] | None = None
) -> None:
    """A test sequence without its true label (NaN or negative y) cannot be scored: say so before
    the general label checks, which would only report a bad value."""
    if y.dtype.kind not in "iuf" or y.shape not in ((len(codes),), valid.shape):
        return  # the general checks report what is wrong with y
    yf = y.astype(np.float64)
    missing = ~(yf >= 0)  # NaN compares False
    per_seq = missing if y.ndim == 1 else (missing & valid).any(axis=1)
    hit = np.flatnonzero(per_seq & (codes == TEST))
    if hit.size:
        raise InputError(
            f"{name}: the test split has unlabelled sequences "
            f"(first: {repr(ids[hit[0]]) if ids else hit[0]}, y NaN or negative); "
            "test sequences need their true labels to be scored"
        )


def split_indices(
    codes: Array,
    rng: np.random.Generator,
    strata: Array | None,
    name: str,
    class_names: tuple[str, ...] = (),
) -> list[Array]:
    """Indices of train, val and test; val carved from train (VAL_SHARE, stratified) if none is
    marked. `class_names` name the classes in messages (by id without them)."""
    train, val, test = (np.flatnonzero(codes == k) for k in (TRAIN, VAL, TEST))
    if len(train) == 0:
        raise InputError(f"{name}: split marks no sequence as train; training needs at least one")
    if len(test) == 0:
        raise InputError(
            f"{name}: split marks no sequence as test; mark the held-out ones test, "
            "or leave split out for a 70/15/15 split by seed"
        )
    if len(val) == 0 and len(train) < 2:
        raise InputError(
            f"{name}: split marks 1 sequence as train and none as val; validation is carved "
            "from train, so mark at least 2 as train or some as val"
        )
    if strata is not None:
        # Many-to-one: a test class with no train or val sequence is one no model made from this
        # file can answer, trained (edgernn.pipeline.require_trained_classes) or imported.
        unseen = sorted(set(strata[test].tolist()) - set(strata[np.concatenate([train, val])].tolist()))
        if unseen:
            raise InputError(
                f"{name}: split marks test sequences of class {class_list(unseen, class_names)} but no "
                "train or val ones; the model cannot learn a class it never sees: move some to train"
            )
    if len(val) == 0:
        train, val = carve(train, max(1, round(VAL_SHARE * len(train))), rng, strata)
    return [train, val, test]
