"""Bundled data sets and user data loading: shapes, splits, normalisation, validation messages."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edgernn.data import bundled as data
from edgernn.data.bundled import BUNDLED, DEFAULT_DATASET, DEMO, LONG, load_dataset
from edgernn.data.dataset import Dataset, Split, normalize, resource_npz
from edgernn.data.user import load_user_data
from edgernn.errors import DataWarning, InputError


@pytest.fixture(scope="module")
def sets() -> dict[str, Dataset]:
    return {name: load_dataset(name, seed=0) for name in BUNDLED}


def _splits(d: Dataset) -> list[Split]:
    return [d.train, d.val, d.test]


def _valid(sp: Split) -> np.ndarray:
    return np.arange(sp.x.shape[1])[None, :] < sp.lengths[:, None]


def _keys(sp: Split) -> set[bytes]:
    """One hashable key per sequence, from its valid steps only."""
    return {sp.x[i, : sp.lengths[i]].tobytes() for i in range(len(sp))}


# ----------------------------------------------------------------------------- bundled sets


def test_registry() -> None:
    assert DEFAULT_DATASET == "japanese_vowels"
    assert DEMO == ("japanese_vowels", "basic_motions", "names", "names_by_list"), (
        "`make demo` keeps to these"
    )
    assert LONG == ("arrowhead", "acsf1", "pickup_gesture")
    assert BUNDLED == DEMO + LONG
    assert not {"gunpoint", "gun_point"} & set(BUNDLED), "GunPoint stays an outside check"
    infos = data.list_datasets()
    assert [i.name for i in infos] == list(BUNDLED)
    for info in infos:
        assert info.n_train > info.n_val > 0 and info.n_test > 0
        assert info.source and info.licence and info.description and info.input


def test_unknown_name_lists_valid_ones() -> None:
    with pytest.raises(InputError, match=r"japanese_vowels.*basic_motions.*names.*names_by_list"):
        load_dataset("mnist")
    assert load_dataset("Japanese-Vowels").name == "japanese_vowels"


@pytest.mark.parametrize("seed", [-1, 1.5, "0", True])
def test_bad_seed(seed: Any) -> None:
    with pytest.raises(InputError, match="seed"):
        load_dataset("names", seed=seed)


@pytest.mark.parametrize("name", BUNDLED)
def test_common_invariants(sets: dict[str, Dataset], name: str) -> None:
    d = sets[name]
    assert d.name == name
    assert len(d.class_names) == d.num_classes
    tokens = d.input_size == 0
    t_max = {sp.x.shape[1] for sp in _splits(d)}
    assert len(t_max) == 1, "all splits share one padded length"
    for sp in _splits(d):
        n = len(sp)
        assert sp.lengths.dtype == np.int64 and sp.lengths.shape == (n,)
        assert sp.lengths.min() >= 1 and sp.lengths.max() <= sp.x.shape[1]
        assert sp.y.dtype == np.int64
        valid = _valid(sp)
        if tokens:
            assert sp.x.dtype == np.int64 and sp.x.shape == (n, sp.x.shape[1])
            assert (sp.x[~valid] == 0).all() and (sp.x[valid] >= 1).all()
            assert sp.x.max() < len(d.vocab)
        else:
            assert sp.x.dtype == np.float32 and sp.x.shape[2] == d.input_size
            assert (sp.x[~valid] == 0).all()
            assert np.isfinite(sp.x).all()
        if d.task == "many-to-one":
            assert sp.y.shape == (n,)
            assert set(np.unique(sp.y)) == set(range(d.num_classes)), "every class in every split"
        else:
            assert sp.y.shape == sp.x.shape[:2]
            assert (sp.y[~valid] == -100).all()
            assert ((sp.y[valid] >= 0) & (sp.y[valid] < d.num_classes)).all()
    assert not _keys(d.train) & _keys(d.val)
    assert not _keys(d.train) & _keys(d.test)
    assert not _keys(d.val) & _keys(d.test)


def test_japanese_vowels(sets: dict[str, Dataset]) -> None:
    d = sets["japanese_vowels"]
    assert (d.task, d.input_size, d.num_classes, d.vocab) == ("many-to-one", 12, 9, ())
    assert (len(d.train), len(d.val), len(d.test)) == (216, 54, 370)
    lengths = np.concatenate([sp.lengths for sp in _splits(d)])
    assert (lengths.min(), lengths.max()) == (7, 29)
    # Upstream has 30 train utterances per speaker; the validation carve is stratified.
    assert (np.bincount(d.val.y) == 6).all()
    assert "10.24432/C5NS47" in d.source and "CC BY 4.0" in d.licence


def test_basic_motions(sets: dict[str, Dataset]) -> None:
    d = sets["basic_motions"]
    assert (d.task, d.input_size, d.num_classes) == ("many-to-many", 6, 4)
    assert d.class_names == ("standing", "running", "walking", "badminton")
    assert (len(d.train), len(d.val), len(d.test)) == (320, 40, 100)
    assert d.train.x.shape[1] == 400
    assert len(np.unique(d.train.lengths)) > 10, "lengths vary so padding is exercised"
    assert "licence" in d.licence
    # Labels change only at clip boundaries (every 100 raw steps, shifted by the crop).
    for i in range(len(d.test)):
        y = d.test.y[i, : d.test.lengths[i]]
        assert np.count_nonzero(np.diff(y)) <= 3


def test_basic_motions_train_never_contains_test_clips(sets: dict[str, Dataset]) -> None:
    d = sets["basic_motions"]
    raw = resource_npz("basic_motions.npz")
    test_rows = {tuple(r) for r in np.round(raw["x"][raw["is_test"]].reshape(-1, 6), 3)}
    for sp in (d.train, d.val):
        steps = (sp.x * d.norm_std + d.norm_mean)[_valid(sp)]
        assert not {tuple(r) for r in np.round(steps, 3)} & test_rows


# name: (steps min, max), classes, official train, official test, validation carved from train
LONG_SHAPES = {
    "arrowhead": ((251, 251), 3, 36, 175, 7),
    "acsf1": ((1460, 1460), 10, 100, 100, 20),
    "pickup_gesture": ((29, 361), 10, 50, 50, 10),
}


@pytest.mark.parametrize("name", LONG)
def test_long_sets(sets: dict[str, Dataset], name: str) -> None:
    (lo, hi), classes, n_train, n_test, n_val = LONG_SHAPES[name]
    d = sets[name]
    assert (d.task, d.input_size, d.num_classes, d.vocab) == ("many-to-one", 1, classes, ())
    assert (len(d.train) + len(d.val), len(d.val), len(d.test)) == (n_train, n_val, n_test)
    lengths = np.concatenate([sp.lengths for sp in _splits(d)])
    assert (lengths.min(), lengths.max()) == (lo, hi)
    assert d.train.x.shape[1] == hi
    assert "UCR archive" in d.source and "aeon 1.6.0" in d.source and d.licence
    # Validation is a stratified fifth of the official train set: every class within one of its share.
    share = np.bincount(d.val.y, minlength=classes) / np.bincount(np.r_[d.train.y, d.val.y])
    assert np.abs(share - 0.2).max() < 0.1


@pytest.mark.parametrize("name", LONG)
def test_long_sets_keep_the_official_test_split(sets: dict[str, Dataset], name: str) -> None:
    raw = resource_npz(f"{name}.npz")
    off, is_test = raw["offsets"], raw["is_test"]
    d = sets[name]
    # The test split is the upstream TEST file, in its order, for every seed.
    for seed in (0, 5):
        test = load_dataset(name, seed=seed).test if seed else d.test
        np.testing.assert_array_equal(test.y, raw["y"][is_test])
        np.testing.assert_array_equal(test.lengths, np.diff(off)[is_test])
    first = int(np.flatnonzero(is_test)[0])
    upstream = raw["x"][off[first] : off[first + 1], 0]
    np.testing.assert_allclose(
        d.test.x[0, : len(upstream), 0] * d.norm_std[0] + d.norm_mean[0], upstream, atol=1e-5
    )
    # Loading twice gives identical arrays (the fixture and a fresh load).
    again = load_dataset(name, seed=0)
    for a, b in zip(_splits(d), _splits(again), strict=True):
        assert a.x.tobytes() == b.x.tobytes() and a.y.tobytes() == b.y.tobytes()


def test_names(sets: dict[str, Dataset]) -> None:
    d = sets["names"]
    assert d.task == "one-to-many" and d.input_size == 0
    assert d.vocab[:3] == ("<pad>", "<s>", "</s>") and "".join(d.vocab[3:]) == "abcdefghijklmnopqrstuvwxyz"
    assert d.num_classes == len(d.vocab) == 29
    assert d.norm_mean.size == 0 and d.norm_std.size == 0
    assert len(d.train) + len(d.val) + len(d.test) == 5163
    assert len(d.val) == len(d.test) == 516
    for sp in _splits(d):
        assert (sp.x[:, 0] == 1).all(), "every input starts with <s>"
        last = sp.y[np.arange(len(sp)), sp.lengths - 1]
        assert (last == 2).all(), "every target ends with </s>"
        for i in range(0, len(sp), 97):
            n = sp.lengths[i]
            assert (sp.x[i, 1:n] == sp.y[i, : n - 1]).all(), "targets are inputs shifted by one"
    decoded = {"".join(d.vocab[t] for t in row if t > 2) for sp in _splits(d) for row in sp.x}
    assert len(decoded) == 5163 and {"james", "mary"} <= decoded


def test_names_by_list(sets: dict[str, Dataset]) -> None:
    d = sets["names_by_list"]
    assert (d.task, d.num_classes, d.class_names) == ("many-to-one", 2, ("male", "female"))
    # 5,163 unique names less the 331 on both lists.
    assert len(d.train) + len(d.val) + len(d.test) == 5163 - 331
    assert not np.isin(d.train.x, [1, 2]).any(), "no start/end tokens"
    share = [sp.y.mean() for sp in _splits(d)]
    assert max(share) - min(share) < 0.01, "stratified: same female share in every split"


@pytest.mark.parametrize("name", BUNDLED)
def test_normalisation_fitted_on_train_only(sets: dict[str, Dataset], name: str) -> None:
    d = sets[name]
    if d.input_size == 0:
        return
    steps = d.train.x[_valid(d.train)].astype(np.float64)
    np.testing.assert_allclose(steps.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(steps.std(axis=0), 1.0, atol=1e-3)
    if name in ("arrowhead", "acsf1"):
        # Upstream z-normalised every series, so every split has mean 0 and std 1: the statistics
        # are the identity whichever split they came from, and the check below cannot tell.
        np.testing.assert_allclose(d.norm_mean, 0.0, atol=1e-5)
        np.testing.assert_allclose(d.norm_std, 1.0, atol=1e-2)
    else:
        test_steps = d.test.x[_valid(d.test)].astype(np.float64)
        assert np.abs(test_steps.mean(axis=0)).max() > 1e-3, "test statistics were not used"
    assert d.norm_mean.dtype == d.norm_std.dtype == np.float32
    assert d.norm_mean.shape == d.norm_std.shape == (d.input_size,)


@pytest.mark.parametrize("name", BUNDLED)
def test_deterministic_by_seed(sets: dict[str, Dataset], name: str) -> None:
    a, b, c = sets[name], load_dataset(name, seed=0), load_dataset(name, seed=1)
    for sa, sb in zip(_splits(a), _splits(b), strict=True):
        np.testing.assert_array_equal(sa.x, sb.x)
        np.testing.assert_array_equal(sa.y, sb.y)
        np.testing.assert_array_equal(sa.lengths, sb.lengths)
    assert _keys(a.train) != _keys(c.train) and _keys(a.val) != _keys(c.val)
    if name in ("japanese_vowels", "basic_motions", *LONG):
        # Official test data stay the test set whatever the seed (normalisation may differ).
        np.testing.assert_array_equal(a.test.lengths, c.test.lengths)
        np.testing.assert_array_equal(a.test.y, c.test.y)


MAX_BUNDLED_BYTES = 16 << 20  # the largest set (basic_motions) holds about 5.6 MiB of arrays


@pytest.mark.parametrize("name", BUNDLED)
def test_fast(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading is cheap by construction, checked without a clock: no network, no file outside the
    package's datasets folder, and a bounded amount of data (work is linear in it)."""
    import builtins
    import io
    import socket
    from importlib import resources

    opened: list[str] = []
    real_open = io.open

    def spy_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(os.fspath(file) if isinstance(file, (str, os.PathLike)) else repr(file))
        return real_open(file, *args, **kwargs)

    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a bundled data set must not touch the network")

    monkeypatch.setattr(io, "open", spy_open)
    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    d = load_dataset(name, seed=3)
    bundled = Path(str(resources.files("edgernn.data").joinpath("datasets"))).resolve()
    assert opened, "the loader read nothing through open(): this test no longer sees its reads"
    for f in opened:
        assert Path(f).resolve().parent == bundled, f"{name} read {f}, outside {bundled}"
    total = sum(a.nbytes for s in _splits(d) for a in (s.x, s.y, s.lengths))
    assert 0 < total <= MAX_BUNDLED_BYTES


def test_normalize_keeps_padding_zero() -> None:
    x = np.ones((2, 3, 2), dtype=np.float32)
    out = normalize(x, np.array([1, 3]), np.array([0.5, 1.0], np.float32), np.array([2.0, 1.0], np.float32))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], [0.25, 0.0])
    assert (out[0, 1:] == 0).all()
    np.testing.assert_allclose(out[1], [[0.25, 0.0]] * 3)


# ----------------------------------------------------------------------------- user data


def _features(
    n: int = 40, t: int = 8, i: int = 3, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(5.0, 2.0, (n, t, i))
    lengths = rng.integers(2, t + 1, n)
    x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
    x[:, 0, 0] = np.arange(n)  # a sequence id, to check the split has no overlap
    return x, np.arange(n) % 3, lengths


def _save(tmp_path: Path, name: str = "d.npz", **arrays: Any) -> Path:
    p = tmp_path / name
    np.savez(p, **arrays)
    return p


def test_user_npz_many_to_one(tmp_path: Path) -> None:
    x, y, lengths = _features()
    d = load_user_data(_save(tmp_path, X=x, y=y, lengths=lengths), seed=0)
    assert (d.task, d.input_size, d.num_classes, d.vocab) == ("many-to-one", 3, 3, ())
    assert d.class_names == ("0", "1", "2")
    assert (len(d.train), len(d.val), len(d.test)) == (28, 6, 6)
    ids = [set(np.round(sp.x[:, 0, 0] * d.norm_std[0] + d.norm_mean[0]).astype(int)) for sp in _splits(d)]
    assert set.union(*ids) == set(range(40)) and sum(len(s) for s in ids) == 40
    steps = d.train.x[_valid(d.train)]
    np.testing.assert_allclose(steps.mean(axis=0), 0.0, atol=1e-5)
    for sp in _splits(d):
        assert sp.x.dtype == np.float32 and (sp.x[~_valid(sp)] == 0).all()
    again = load_user_data(tmp_path / "d.npz", seed=0)
    np.testing.assert_array_equal(again.train.x, d.train.x)
    other = load_user_data(tmp_path / "d.npz", seed=1)
    assert _keys(other.train) != _keys(d.train)


def test_user_npz_many_to_many_tokens_and_defaults(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.integers(1, 6, (20, 5))
    y = rng.integers(0, 2, (20, 5)).astype(np.float64)  # whole-valued floats are accepted
    names = np.array(["no", "yes", "maybe"])
    d = load_user_data(_save(tmp_path, X=x, y=y, class_names=names))
    assert (d.task, d.input_size, d.num_classes) == ("many-to-many", 0, 3)
    assert d.class_names == ("no", "yes", "maybe") and d.vocab == ("<pad>", "1", "2", "3", "4", "5")
    assert d.norm_mean.size == 0
    assert all((sp.lengths == 5).all() and sp.x.dtype == np.int64 for sp in _splits(d))


def test_user_npz_warns_of_what_is_likely_meant_otherwise(tmp_path: Path) -> None:
    """Taken as documented, with a warning: integer X with more ids than a vocabulary has (raw ADC
    counts?), and features outnumbering steps with no lengths to check them by (transposed?)."""
    x, y, _ = _features()
    counts = np.random.default_rng(2).integers(1, 4096, (40, 8))
    with pytest.warns(DataWarning, match=r"token ids, 409\d of them.*save X as float32"):
        d = load_user_data(_save(tmp_path, X=counts, y=y))
    assert len(d.vocab) > 4000
    with pytest.warns(DataWarning, match=r"read as 3 steps of 8 features each; if X is \(sequences"):
        load_user_data(_save(tmp_path, X=x.transpose(0, 2, 1), y=y))
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        load_user_data(_save(tmp_path, X=counts % 200 + 1, y=y))
        load_user_data(_save(tmp_path, X=x, y=y))


def test_user_npz_padding_may_hold_nan(tmp_path: Path) -> None:
    x, y, lengths = _features()
    x[np.arange(8)[None, :] >= lengths[:, None]] = np.nan
    d = load_user_data(_save(tmp_path, X=x, y=y, lengths=lengths))
    assert all(np.isfinite(sp.x).all() for sp in _splits(d))


def _csv_rows(per_step: bool) -> str:
    rows = []
    for s in range(12):
        for t in range(2 + s % 3):
            label = ("walk", "run")[(s + t) % 2] if per_step else ("walk", "run")[s % 2]
            rows.append(f"s{s},{t},{label},{s + 0.1 * t},{-t}")
    rows.reverse()  # row order must not matter
    return "\n".join(rows) + "\n"


def test_user_csv_many_to_one(tmp_path: Path) -> None:
    p = tmp_path / "walk.csv"
    p.write_text("sequence,step,label,f0,f1\n" + _csv_rows(per_step=False))
    d = load_user_data(p)
    assert (d.name, d.task, d.input_size, d.class_names) == ("walk", "many-to-one", 2, ("run", "walk"))
    assert len(d.train) + len(d.val) + len(d.test) == 12
    assert sorted(np.concatenate([sp.lengths for sp in _splits(d)])) == sorted(2 + s % 3 for s in range(12))


def test_user_csv_many_to_many(tmp_path: Path) -> None:
    p = tmp_path / "steps.csv"
    p.write_text("sequence,step,step_label,f0,f1\n" + _csv_rows(per_step=True))
    d = load_user_data(p)
    assert d.task == "many-to-many" and d.num_classes == 2
    for sp in _splits(d):
        assert (sp.y[~_valid(sp)] == -100).all() and (sp.y[_valid(sp)] >= 0).all()


def _bad_npz_cases() -> list[tuple[str, dict[str, Any], str]]:
    x, y, n = _features()
    xc = x.copy()
    xc[3, 1, 2] = np.inf
    return [
        ("missing X", {"y": y}, "missing array 'X'"),
        ("missing y", {"X": x}, "missing array 'y'"),
        ("typo key", {"X": x, "y": y, "length": n}, "unexpected array 'length'"),
        ("X 2-D float", {"X": x[..., 0], "y": y}, r"X\[\.\.\., None\]"),
        ("X 4-D", {"X": x[..., None], "y": y}, r"\(N, T, I\)"),
        ("complex X", {"X": x.astype(np.complex64), "y": y}, "dtype complex64"),
        ("string X", {"X": x.astype(str), "y": y}, "dtype <U"),
        ("object X", {"X": x.astype(object), "y": y}, "Python objects"),
        ("NaN/Inf", {"X": xc, "y": y, "lengths": np.full(40, 8)}, "first in sequence 3 at step 1, feature 2"),
        ("y too short", {"X": x, "y": y[:-1]}, "39 labels but X has 40 sequences"),
        ("y 3-D", {"X": x, "y": y[:, None, None]}, "y must be"),
        ("y per step wrong shape", {"X": x, "y": np.zeros((40, 7), int)}, "per-step y must have shape"),
        ("fractional y", {"X": x, "y": y + 0.5}, "whole numbers"),
        ("string y", {"X": x, "y": y.astype(str)}, "y must be integers.*give their names as class_names"),
        ("negative label", {"X": x, "y": y - 1}, "labels must be >= 0"),
        ("one class", {"X": x, "y": np.zeros(40, int)}, "at least 2 classes"),
        ("labels from 1", {"X": x, "y": y + 1}, r"no label is 0 \(labels counted from 1\? subtract 1\)"),
        ("a gap", {"X": x, "y": np.where(y == 2, 7, y)}, "0..7, but no label is 2, 3, 4, 5, 6;"),
        ("an id as label", {"X": x, "y": np.where(y == 1, 10**12, 0)}, "more than the 65536 classes"),
        ("uint64 past int64", {"X": x, "y": y, "lengths": np.full(40, 2**64 - 1, np.uint64)}, "2\\^63 - 1"),
        ("float past int64", {"X": x, "y": y.astype(float) * 1e30}, "past the largest integer"),
        ("class_names twice", {"X": x, "y": y, "class_names": np.array(["a", "b", "a"])}, "'a' names two"),
        ("lengths N", {"X": x, "y": y, "lengths": n[:-1]}, r"lengths must have shape \(40,\)"),
        ("lengths 0", {"X": x, "y": y, "lengths": np.where(np.arange(40) == 7, 0, n)}, "sequence 7 has 0"),
        ("lengths > T", {"X": x, "y": y, "lengths": n + 8}, r"lengths must be in 1\.\.8"),
        ("empty sequences", {"X": np.zeros((40, 0, 3)), "y": y}, "X is empty"),
        ("too few", {"X": x[:5], "y": y[:5]}, "only 5 sequences"),
        ("token 0 inside", {"X": np.zeros((40, 4), int), "y": y}, "0 is padding.*sensor samples"),
        ("integer (N, T, I)", {"X": x.astype(np.int16), "y": y}, r"sensor samples\? save X as float32"),
        ("channels first", {"X": x.transpose(0, 2, 1), "y": y, "lengths": n}, r"X\.transpose\(0, 2, 1\)"),
        ("negative token", {"X": -np.ones((40, 4), int), "y": y}, "token ids, which must be in 1"),
        ("class_names short", {"X": x, "y": y, "class_names": np.array(["a", "b"])}, "at least 3 names"),
        ("class_names numbers", {"X": x, "y": y, "class_names": np.arange(3)}, "array of strings"),
    ]


@pytest.mark.parametrize(
    "arrays,message", [c[1:] for c in _bad_npz_cases()], ids=[c[0] for c in _bad_npz_cases()]
)
def test_user_npz_errors(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays, allow_pickle=True)
    with pytest.raises(InputError, match=message) as info:
        load_user_data(p)
    assert "\n" not in str(info.value) and "bad.npz" in str(info.value)


def test_user_file_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="data file not found"):
        load_user_data(tmp_path / "nope.npz")
    with pytest.raises(InputError, match="not a file"):
        load_user_data(tmp_path)
    (tmp_path / "d.txt").write_text("1,2,3\n")
    with pytest.raises(InputError, match=r"unsupported extension '\.txt'"):
        load_user_data(tmp_path / "d.txt")
    (tmp_path / "junk.npz").write_bytes(b"this is not a zip archive at all")
    with pytest.raises(InputError, match=r"not an \.npz archive"):
        load_user_data(tmp_path / "junk.npz")
    good = _save(tmp_path, "trunc.npz", X=np.ones((40, 8, 3)), y=np.arange(40) % 2)
    good.write_bytes(good.read_bytes()[:-200])
    with pytest.raises(InputError, match=r"cannot read as \.npz"):
        load_user_data(good)
    np.save(tmp_path / "plain.npy", np.ones(3))
    (tmp_path / "plain.npy").rename(tmp_path / "plain.npz")
    with pytest.raises(InputError, match=r"not an \.npz archive"):
        load_user_data(tmp_path / "plain.npz")


@pytest.mark.parametrize(
    "text,message",
    [
        ("", "empty file"),
        ("sequence,step,label,f0\n", "no data rows"),
        ("seq,step,label,f0\na,0,1,0.5\n", "missing column 'sequence'"),
        ("sequence,step,f0\na,0,0.5\n", "exactly one column 'label'"),
        ("sequence,step,label,step_label,f0\na,0,1,1,0.5\n", "exactly one column 'label'"),
        ("sequence,step,label\na,0,1\n", "no feature columns"),
        ("sequence,step,label,f0,f0\na,0,1,0.5,1\n", "duplicate column"),
        ("sequence,step,label,f0\na,0,1\n", "line 2: 3 fields, header has 4"),
        ("sequence,step,label,f0\na,x,1,0.5\n", "line 2: step 'x' is not an integer"),
        ("sequence,step,label,f0\na,0,1,abc\n", "line 2: f0 'abc' is not a number"),
        ("sequence,step,label,f0\na,0,1,0.5\na,0,1,0.5\n", "line 3: step 0 repeated"),
        ("sequence,step,label,f0\na,0,1,0.5\na,2,1,0.5\n", "steps 0..1, each once"),
        ("sequence,step,label,f0\na,0,1,0.5\na,1,2,0.5\n", "several labels"),
        ("sequence,step,label,f0\n" + "".join(f"s{i},0,{i % 2},0.5\n" for i in range(9)), "only 9 sequences"),
        (
            "sequence,step,label,f0\n"
            + "".join(f"s{i},0,{i % 2},{'nan' if i == 4 else 1}\n" for i in range(12)),
            "1 NaN/Inf values, first in sequence 's4' at step 0, f0",
        ),
        (
            "sequence,step,label,f0\n" + "".join(f"s{i},0,{(1, 2, 10)[i % 3]},0.5\n" for i in range(12)),
            "no label is 0, 3, 4, 5, 6, ...; number the classes 0, 1, 2, ... or write the labels as names",
        ),
        ("sequence,step,label,f0\n" + "".join(f"s{i},0,-{i % 2},0.5\n" for i in range(12)), ">= 0"),
    ],
)
def test_user_csv_errors(tmp_path: Path, text: str, message: str) -> None:
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_user_data(p)
    assert "\n" not in str(info.value)


def test_user_csv_labels_written_as_floats_are_class_ids(tmp_path: Path) -> None:
    rows = "".join(f"s{i},{t},{i % 3}.0,{0.1 * t + i % 3}\n" for i in range(12) for t in range(3))
    p = tmp_path / "floats.csv"
    p.write_text("sequence,step,label,f0\n" + rows)
    ds = load_user_data(p)
    assert ds.class_names == ("0", "1", "2")
    labels = np.concatenate([ds.train.y, ds.val.y, ds.test.y])
    assert sorted(labels.tolist()) == sorted(i % 3 for i in range(12))


def test_user_csv_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" begins with a BOM; the header's first name is still `sequence`."""
    rows = "".join(f"s{i},{t},{i % 2},{0.1 * t + i % 2}\n" for i in range(12) for t in range(3))
    p = tmp_path / "excel.csv"
    p.write_bytes("\ufeffsequence,step,label,f0\n".encode() + rows.encode())
    ds = load_user_data(p)
    assert ds.num_classes == 2 and len(ds.train) + len(ds.val) + len(ds.test) == 12


def test_user_csv_not_utf8(tmp_path: Path) -> None:
    p = tmp_path / "bin.csv"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        load_user_data(p)


# ----------------------------------------------------------------------------- the user's own split


def _ids(d: Dataset) -> list[set[int]]:
    """The sequence ids (`_features` writes them into x[:, 0, 0]) in train, val and test."""
    return [set(np.round(sp.x[:, 0, 0] * d.norm_std[0] + d.norm_mean[0]).astype(int)) for sp in _splits(d)]


SPLIT_WORDS = np.array(["train"] * 24 + ["val"] * 6 + ["test"] * 10)


@pytest.mark.parametrize(
    "split",
    [SPLIT_WORDS, np.array([w.upper() for w in SPLIT_WORDS]), SPLIT_WORDS.astype("S")]
    + [np.array([0] * 24 + [1] * 6 + [2] * 10, dtype=t) for t in (np.int8, np.int64, np.float64)],
    ids=["words", "upper case", "bytes", "int8", "int64", "whole floats"],
)
def test_user_npz_split_is_kept(tmp_path: Path, split: np.ndarray) -> None:
    x, y, lengths = _features()
    p = _save(tmp_path, X=x, y=y, lengths=lengths, split=split)
    for seed in (0, 1):
        d = load_user_data(p, seed=seed)
        assert _ids(d) == [set(range(24)), set(range(24, 30)), set(range(30, 40))]
    steps = d.train.x[_valid(d.train)]
    np.testing.assert_allclose(steps.mean(axis=0), 0.0, atol=1e-5)  # normalisation from train only


def test_user_npz_split_without_val_carves_it_from_train(tmp_path: Path) -> None:
    x, y, lengths = _features()
    split = np.where(np.arange(40) < 30, 0, 2)
    p = _save(tmp_path, X=x, y=y, lengths=lengths, split=split)
    a, b = load_user_data(p, seed=0), load_user_data(p, seed=1)
    for d in (a, b):
        train, val, test = _ids(d)
        assert test == set(range(30, 40)) and train | val == set(range(30)) and not train & val
        assert len(val) == 6 and sorted(np.bincount(d.val.y)) == [2, 2, 2], "a stratified fifth"
    assert _ids(a)[1] != _ids(b)[1], "the carve depends on the seed"
    assert load_user_data(p, seed=0).val.x.tobytes() == a.val.x.tobytes()


def _split_csv(split_of: Any) -> str:
    rows = ["sequence,step,split,label,f0"]
    for s in range(12):
        for t in range(2 + s % 3):
            rows.append(f"s{s},{t},{split_of(s)},{('walk', 'run')[s % 2]},{s + 0.1 * t}")
    return "\n".join(rows) + "\n"


def _csv_ids(d: Dataset) -> list[set[int]]:
    return [set(np.round(sp.x[:, 0, 0] * d.norm_std[0] + d.norm_mean[0]).astype(int)) for sp in _splits(d)]


def test_user_csv_split_column(tmp_path: Path) -> None:
    p = tmp_path / "walk.csv"
    p.write_text(_split_csv(lambda s: "test" if s >= 8 else "train"))
    d = load_user_data(p, seed=0)
    assert d.input_size == 1, "split is not a feature"
    train, val, test = _csv_ids(d)
    assert test == set(range(8, 12)) and train | val == set(range(8)) and len(val) == 2
    p.write_text(_split_csv(lambda s: (0, 1, 2)[s % 3]))
    assert _csv_ids(load_user_data(p)) == [{0, 3, 6, 9}, {1, 4, 7, 10}, {2, 5, 8, 11}]
    # As pandas writes an integer column with gaps, and in any case, even within one sequence.
    p.write_text(_split_csv(lambda s: ("0.0", "1.0", "2.0")[s % 3]))
    assert _csv_ids(load_user_data(p)) == [{0, 3, 6, 9}, {1, 4, 7, 10}, {2, 5, 8, 11}]
    p.write_text(_split_csv(_test_from_8).replace("s1,1,train,", "s1,1,TRAIN,"))
    assert _csv_ids(load_user_data(p))[2] == set(range(8, 12))


def test_predict_reads_a_file_with_a_split(tmp_path: Path) -> None:
    from edgernn.predict.io import read_sequences

    p = tmp_path / "walk.csv"
    p.write_text(_split_csv(lambda s: "test"))
    ids, arrays = read_sequences(p)
    assert len(ids) == 12 and arrays[0].shape[1] == 1, "split (and label) columns are not features"
    x, y, lengths = _features()
    ids, arrays = read_sequences(_save(tmp_path, X=x, y=y, lengths=lengths, split=SPLIT_WORDS))
    assert len(ids) == 40


def _bad_split_cases() -> list[tuple[str, dict[str, Any], str]]:
    y, words, at = _features()[1], SPLIT_WORDS, np.arange(40)
    unlabelled = y.astype(np.float64)
    unlabelled[35] = np.nan
    no_label = r"test split has unlabelled sequences \(first: {}"
    return [
        ("unknown word", {"split": np.where(at == 4, "validation", words)},
         r"split value 'validation' \(sequence 4\) is not one of train, val, test \(or 0, 1, 2\)"),
        ("unknown number", {"split": np.where(at == 5, 3, 0)}, r"split value 3 \(sequence 5\)"),
        ("fraction", {"split": np.where(at == 6, 0.5, 2.0)}, r"split value 0\.5 \(sequence 6\)"),
        ("too short", {"split": words[:-1]}, r"shape \(40,\), one entry per sequence, got \(39,\)"),
        ("2-D", {"split": words[:, None]}, r"split must have shape \(40,\)"),
        ("bool", {"split": at < 30}, "split must be strings .* got bool"),
        ("no train", {"split": np.where(at < 30, "val", "test")}, "split marks no sequence as train"),
        ("no test", {"split": np.where(at < 30, "train", "val")}, "split marks no sequence as test"),
        ("1 train, no val", {"split": np.where(at < 1, "train", "test")}, "1 sequence as train and none as"),
        ("unlabelled test (NaN)", {"y": unlabelled, "split": words}, no_label.format(35)),
        ("unlabelled test (-1)", {"y": np.where(at >= 30, -1, y), "split": words}, no_label.format(30)),
        ("a class only in test", {"y": np.where(at >= 30, 3, y % 3), "split": words},
         "split marks test sequences of class 3 but no train or val ones"),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "arrays,message", [c[1:] for c in _bad_split_cases()], ids=[c[0] for c in _bad_split_cases()]
)
def test_user_npz_split_errors(tmp_path: Path, arrays: dict[str, Any], message: str) -> None:
    x, y, lengths = _features()
    p = tmp_path / "bad.npz"
    np.savez(p, **({"X": x, "y": y, "lengths": lengths} | arrays))
    with pytest.raises(InputError, match=message) as info:
        load_user_data(p)
    assert "\n" not in str(info.value) and str(info.value).startswith("bad.npz: ")


def test_user_npz_unlabelled_train_is_not_called_a_test_problem(tmp_path: Path) -> None:
    x, y, _ = _features()
    p = _save(tmp_path, X=x, y=np.where(np.arange(40) == 2, -1, y), split=SPLIT_WORDS)
    with pytest.raises(InputError, match="labels must be >= 0"):
        load_user_data(p)


def _test_from_8(s: int) -> str:
    return "test" if s >= 8 else "train"


@pytest.mark.parametrize(
    "split_of,edit,message",
    [
        (lambda s: "holdout" if s == 3 else "train", None, r"split value 'holdout' \(sequence 's3'\)"),
        (lambda s: "train", None, "split marks no sequence as test"),
        (lambda s: "test" if s >= 8 else "val", None, "split marks no sequence as train"),
        (_test_from_8, ("s1,1,train,", "s1,1,test,"),
         r"line \d+: split 'test' differs from 'train' on an earlier row of sequence 's1'; a sequence is"),
        (_test_from_8, (",test,walk,", ",test,,"),
         "test sequence 's8' has no label; test sequences need their true labels to be scored"),
        (_test_from_8, ("s0,0,train,walk,", "s0,0,train,,"), "sequence 's0' has an empty label"),
        # Messages name a class by the user's label, not the id edgernn gave it.
        (_test_from_8, (",test,walk,", ",test,jump,"), "test sequences of class 'jump' but no train or val"),
    ],
)  # fmt: skip
def test_user_csv_split_errors(
    tmp_path: Path, split_of: Any, edit: tuple[str, str] | None, message: str
) -> None:
    text = _split_csv(split_of)
    if edit:
        text = text.replace(*edit)
    p = tmp_path / "bad.csv"
    p.write_text(text)
    with pytest.raises(InputError, match=message) as info:
        load_user_data(p)
    assert "\n" not in str(info.value) and str(info.value).startswith("bad.csv")
