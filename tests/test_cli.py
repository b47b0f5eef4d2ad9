"""The CLI's contract with scripts: one-line errors, documented exit codes, never a traceback."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import signal
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.errors import DataWarning
from edgernn.pipeline import train_to_dir
from edgernn.train.checkpoint import FORMAT
from edgernn.train.loop import ModelSpec


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_input_error(result, fragment: str) -> None:
    out = result.output
    assert result.exit_code == 2, out
    assert "Traceback" not in out
    assert fragment.lower() in out.lower(), out


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    train_to_dir(
        out,
        dataset="japanese_vowels",
        spec=ModelSpec(hidden_size=8),
        tc=TrainConfig(epochs=1),
        progress=False,
    )
    return out


def test_help_explains_commands_and_exit_codes():
    r = run("--help")
    assert r.exit_code == 0
    for word in ("train", "export", "verify", "demo", "datasets", "Exit codes"):
        assert word in r.output


def test_datasets_lists_the_bundled_sets_with_licences():
    r = run("datasets")
    assert r.exit_code == 0
    for name in ("japanese_vowels", "basic_motions", "names", "names_by_list", "CC BY 4.0", "public domain"):
        assert name.lower() in r.output.lower()


def test_unknown_dataset(tmp_path):
    assert_input_error(run("train", "--dataset", "mnist", "--out", str(tmp_path)), "mnist")


@pytest.mark.parametrize("cmd", ["export", "verify", "quantize"])
def test_missing_directory(cmd, tmp_path):
    assert_input_error(run(cmd, str(tmp_path / "nope")), "does not exist")


@pytest.mark.parametrize("cmd", ["export", "verify", "quantize"])
def test_directory_without_checkpoint(cmd, tmp_path):
    assert_input_error(run(cmd, str(tmp_path)), "no checkpoint.pt")


def _checkpoint_dir(tmp_path, data: bytes):
    (tmp_path / "checkpoint.pt").write_bytes(data)
    return str(tmp_path)


def test_truncated_checkpoint(tiny_dir, tmp_path):
    data = (tiny_dir / "checkpoint.pt").read_bytes()
    assert_input_error(
        run("export", _checkpoint_dir(tmp_path, data[: len(data) // 2])), "truncated or corrupt"
    )


def test_garbage_checkpoint(tmp_path):
    assert_input_error(run("export", _checkpoint_dir(tmp_path, b"\x00" * 1000)), "checkpoint")


class Payload:
    """Unpickling this would run os.system: a weights-only load must refuse it."""

    def __reduce__(self):
        import os

        return (os.system, ("echo pwned > /tmp/edgernn-pwned",))


def test_checkpoint_carrying_pickled_code_is_refused(tmp_path):
    buf = io.BytesIO()
    torch.save({"format": FORMAT, "meta": "{}", "state_dict": {}, "evil": Payload()}, buf)
    r = run("export", _checkpoint_dir(tmp_path, buf.getvalue()))
    assert_input_error(r, "refused: it holds objects other than tensors, which edgernn never unpickles")
    assert "(it names posix.system)" in r.output and "weights_only" not in r.output
    import os

    assert not os.path.exists("/tmp/edgernn-pwned")


def test_plain_pickle_is_refused(tmp_path):
    r = run("export", _checkpoint_dir(tmp_path, pickle.dumps(Payload())))
    assert_input_error(r, "holds objects other than tensors, which edgernn never unpickles")
    assert "weights_only" not in r.output  # torch's text suggests the load that would run it


def test_a_text_file_is_not_a_checkpoint(tmp_path):
    r = run("export", _checkpoint_dir(tmp_path, b"hi\n"))
    assert_input_error(r, "is not a PyTorch checkpoint file")


def _rewrite(tiny_dir, tmp_path, edit) -> str:
    payload = torch.load(tiny_dir / "checkpoint.pt", weights_only=True)
    edit(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    return _checkpoint_dir(tmp_path, buf.getvalue())


def test_malformed_checkpoint_config(tiny_dir, tmp_path):
    def edit(p):
        meta = json.loads(p["meta"])
        meta["config"]["hidden_size"] = 0
        p["meta"] = json.dumps(meta)

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), "hidden_size")


def test_checkpoint_with_wrong_tensor_shapes(tiny_dir, tmp_path):
    def edit(p):
        p["state_dict"]["head.weight"] = torch.zeros(3, 3)

    r = run("export", _rewrite(tiny_dir, tmp_path, edit))
    assert_input_error(
        r, "malformed: Error(s) in loading state_dict for EdgeRNN: size mismatch for head.weight"
    )


def test_checkpoint_with_nan_weights(tiny_dir, tmp_path):
    def edit(p):
        p["state_dict"]["rnn.weight_hh_l0"][0, 0] = float("nan")

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), "NaN")


def test_not_a_zip_checkpoint(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    assert_input_error(run("export", _checkpoint_dir(tmp_path, buf.getvalue())), "checkpoint")


@pytest.mark.parametrize("method", [zipfile.ZIP_DEFLATED, zipfile.ZIP_LZMA])
def test_a_zip_whose_compressed_member_is_corrupt(tmp_path, method):
    """Checking the CRCs decompresses: a member that does not decompress is refused like any
    unreadable checkpoint (was an escaped zlib.error / LZMAError, exit 4)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as z:
        z.writestr("archive/data.pkl", b"hello world " * 200)
    data = bytearray(buf.getvalue())
    start = 30 + len("archive/data.pkl")  # the local header, then the compressed bytes
    for i in range(start + 2, start + 30):
        data[i] ^= 0xFF
    assert_input_error(run("export", _checkpoint_dir(tmp_path, bytes(data))), "checkpoint")


@pytest.mark.parametrize(
    "arrays, fragment",
    [
        ({"X": np.zeros((20, 5, 3), np.float32)}, "y"),
        ({"X": np.zeros((20, 5), np.float32), "y": np.zeros(20, np.int64)}, "X"),
        ({"X": np.full((20, 5, 3), np.nan, np.float32), "y": np.arange(20) % 2}, "NaN"),
        ({"X": np.zeros((20, 5, 3), np.float32), "y": np.arange(19) % 2}, "y"),
        (
            {
                "X": np.zeros((20, 5, 3), np.float32),
                "y": np.arange(20) % 2,
                "lengths": np.zeros(20, np.int64),
            },
            "lengths",
        ),
    ],
)
def test_malformed_data_file(tmp_path, arrays, fragment):
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    assert_input_error(run("train", "--data", str(path), "--out", str(tmp_path / "o"), "--quiet"), fragment)


def test_missing_data_file(tmp_path):
    r = run("train", "--data", str(tmp_path / "none.npz"))
    assert r.exit_code == 2 and "does not exist" in r.output


def test_data_file_that_is_not_an_archive(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_text("hello")
    assert_input_error(run("train", "--data", str(path), "--out", str(tmp_path / "o"), "--quiet"), "npz")


def test_both_dataset_and_data_is_a_usage_error(tmp_path):
    path = tmp_path / "d.npz"
    path.write_bytes(b"x")
    r = run("train", "--dataset", "names", "--data", str(path))
    assert r.exit_code == 2 and "not both" in r.output


def test_bad_option_value_is_a_usage_error():
    r = run("train", "--hidden", "0")
    assert r.exit_code == 2 and "hidden" in r.output.lower()


def test_user_data_trains_end_to_end(tmp_path):
    rng = np.random.default_rng(0)
    y = np.arange(60) % 3
    x = rng.normal(size=(60, 8, 2)).astype(np.float32) + y[:, None, None]
    np.savez(tmp_path / "mine.npz", X=x, y=y, lengths=rng.integers(2, 9, size=60))
    r = run(
        "train",
        "--data",
        str(tmp_path / "mine.npz"),
        "--out",
        str(tmp_path / "o"),
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    assert "test accuracy" in r.output and (tmp_path / "o" / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------
# Exit codes by meaning, and export's manifest as verify's gate


@pytest.fixture(scope="module")
def tiny_export(tiny_dir, tmp_path_factory):
    from edgernn.pipeline import export_dir

    out = tmp_path_factory.mktemp("tiny_export")
    shutil.copy(tiny_dir / "checkpoint.pt", out / "checkpoint.pt")
    export_dir(out)
    return out


def _copy_export(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".edgernn.lock", "report.json"))
    return dst


def assert_check_failed(result, *fragments: str) -> None:
    out = result.output
    assert result.exit_code == 1, out
    assert "Traceback" not in out
    assert out.strip().startswith("error: ") and "\n" not in out.strip(), out
    for f in fragments:
        assert f in out, out


def test_usage_errors_are_one_line(tmp_path):
    for args, says in (
        (("train", "--frame", "0"), "error: Invalid value for '--frame': 0 is not in the range"),
        (("train", "--data", str(tmp_path / "none.npz")), "does not exist"),
        (("nonsense",), "error: No such command 'nonsense'"),
        (("train", "--dropout", "0.2", "--out", str(tmp_path / "o")), "--dropout acts between layers"),
        # NaN passes a range check (every comparison with it is false): it trained a NaN model.
        (("train", "--clip", "nan"), "error: Invalid value for '--clip': 'nan' is not a finite number."),
        (("train", "--lr", "nan"), "'nan' is not a finite number"),
        (("train", "--auto", "--budget", "nan"), "'nan' is not a finite number"),
        (("train", "--auto", "--budget", "inf"), "'inf' is not a finite number"),
        (("import", "m.onnx", "--input-range", "-inf", "1"), "'-inf' is not a finite number"),
    ):
        r = run(*args)
        assert r.exit_code == 2 and "\n" not in r.output.strip(), r.output
        assert says in r.output and "--help" in r.output, r.output
    r = run("train", "--embed-dim", "8", "--out", str(tmp_path / "o"))  # found once the data is read
    assert (
        r.exit_code == 2
        and r.output.strip() == "error: --embed-dim is for token data; japanese_vowels holds float features"
    )
    r = run("train", "--dataset", "names", "--input-clip", "2", "--out", str(tmp_path / "o"))
    assert r.exit_code == 2, r.output
    assert r.output.strip() == "error: --input-clip is for feature data; names holds tokens"


def test_an_unexpected_exception_is_one_line_with_exit_4(monkeypatch, tmp_path):
    import edgernn.pipeline

    def fail(*args, **kwargs):
        raise RuntimeError("deep inside\nthe last line")

    monkeypatch.setattr(edgernn.pipeline, "export_dir", fail)
    r = run("export", str(tmp_path))
    assert r.exit_code == 4 and "Traceback" not in r.output, r.output
    assert r.output.strip().startswith("error: internal error, RuntimeError: the last line"), r.output
    monkeypatch.setenv("EDGERNN_TRACEBACK", "1")
    with pytest.raises(RuntimeError):
        run("export", str(tmp_path))


def test_an_interrupt_reworded_by_a_library_is_still_an_interrupt(monkeypatch, tmp_path):
    """CI saw a SIGINT during export end as exit 4: a library turned the KeyboardInterrupt into
    another exception type. Ctrl-C is exit 130 whatever shape it comes back in."""
    import edgernn.pipeline

    def interrupted_inside_a_library(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # the handler runs at the next bytecode; this is never reached in full
        except KeyboardInterrupt:
            pass
        raise RuntimeError("The following operation failed in the TorchScript interpreter")

    monkeypatch.setattr(edgernn.pipeline, "export_dir", interrupted_inside_a_library)
    r = run("export", str(tmp_path))
    assert r.exit_code == 130 and "internal error" not in r.output, r.output
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back as found


def test_a_checkpoint_retrained_after_the_export_is_refused(tiny_export, tmp_path):
    """predict (every backend), report and mcu read the exported artifacts: after a retrain they
    would answer for the old model, so each refuses until the export is rerun (as verify does)."""
    d = _copy_export(tiny_export, tmp_path / "d")
    assert run("verify", str(d), "--no-c").exit_code == 0
    other = tmp_path / "other"
    train_to_dir(
        other,
        dataset="japanese_vowels",
        spec=ModelSpec(hidden_size=8),
        tc=TrainConfig(epochs=1, seed=1),
        progress=False,
    )
    shutil.copy(other / "checkpoint.pt", d / "checkpoint.pt")
    from edgernn.data.bundled import load_dataset

    test = load_dataset("japanese_vowels").test
    np.savez(tmp_path / "x.npz", X=test.x[:2], lengths=test.lengths[:2])
    for backend in ("onnx-int8", "onnx", "c", "torch"):
        r = run("predict", str(d), "--data", str(tmp_path / "x.npz"), "--backend", backend)
        assert_check_failed(r, "not the checkpoint these artifacts were exported from")
    assert_check_failed(run("report", str(d), "--no-plots"), "not the checkpoint")
    assert_check_failed(run("mcu", str(d)), "not the checkpoint")


def test_an_export_directory_travels_with_its_data_file(tmp_path):
    """The checkpoint records where its data file was; moved beside the checkpoint, the file is
    still found (by name and sha256), and no build path reaches the generated C."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6, 2)).astype(np.float32), np.arange(30) % 2
    x[y == 1] += 1.0
    data = tmp_path / "build" / "mine.npz"
    data.parent.mkdir()
    np.savez(data, X=x, y=y)
    out = tmp_path / "out"
    train_to_dir(out, data_file=data, spec=ModelSpec(hidden_size=4), tc=TrainConfig(epochs=1), progress=False)
    assert run("export", str(out)).exit_code == 0
    assert str(tmp_path) not in (out / "model.h").read_text()
    data.rename(out / "mine.npz")
    r = run("verify", str(out), "--no-c")
    assert r.exit_code == 0, r.output
    (out / "mine.npz").unlink()
    r = run("verify", str(out), "--no-c")
    assert r.exit_code == 2, r.output
    assert r.output.strip() == (
        f"error: the training data file mine.npz recorded in the checkpoint is gone: not at {data}; "
        f"put it back, or copy it to {out / 'mine.npz'}"
    )


def test_a_class_that_train_does_not_hold_is_refused_where_no_model_would_learn_it(tmp_path):
    """On the user's own split, training fits train only: a class in val and test but not train
    would never be answered. --auto on a set this small trains on train + val (cross-validation,
    then the retrain), and importing calibration data trains nothing: both accept the file. A
    split edgernn draws itself is not refused: a rare class may land outside train by the seed."""
    from edgernn.pipeline import load_data

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6, 2)).astype(np.float32)
    y = np.array(["walk", "run", "idle"] * 13 + ["walk"])
    split = np.array(["train"] * 24 + ["val"] * 6 + ["test"] * 10)
    y[24:] = np.where(np.arange(16) % 2, "jump", y[24:])
    ids = {c: i for i, c in enumerate(sorted(set(y)))}
    labels, names = np.array([ids[c] for c in y]), np.array(sorted(ids))
    data = tmp_path / "moves.npz"
    np.savez(data, X=x, y=labels, split=split, class_names=names)
    r = run("train", "--data", str(data), "--out", str(tmp_path / "o"))
    assert r.exit_code == 2 and r.output.strip() == (
        "error: moves: the val and test split holds class 'jump' but train has none; the model "
        "cannot learn a class it never trains on: mark some of its sequences train (at least 2 "
        "when val is carved from train)"
    ), r.output
    assert not (tmp_path / "o" / "checkpoint.pt").exists()
    auto = ("--auto", "--epochs", "1", "--budget", "1e-6", "--quiet")
    r = run("train", "--data", str(data), *auto, "--out", str(tmp_path / "a"))
    assert r.exit_code == 0, r.output
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    ds = load_data({"kind": "file", "path": str(data), "sha256": digest})
    assert ids["jump"] in ds.val.y and ids["jump"] not in ds.train.y
    drawn = tmp_path / "drawn.npz"
    np.savez(drawn, X=x, y=np.where(np.arange(40) == 39, 3, labels % 3), class_names=names)
    r = run("train", "--data", str(drawn), "--epochs", "1", "--quiet", "--out", str(tmp_path / "d"))
    assert r.exit_code == 0, r.output


def test_a_data_file_named_like_a_bundled_set_trains_with_the_long_sequence_recipe(tmp_path):
    """The library API chose the preset by the file's name: a feature file called names.npz was
    refused for an embedding size nobody gave, japanese_vowels.npz got that set's short recipe."""
    from edgernn.pipeline import auto_train_to_dir
    from edgernn.train.loop import DEFAULT_PRESET

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6, 2)).astype(np.float32), np.arange(30) % 2
    for stem in ("names", "japanese_vowels"):
        data = tmp_path / f"{stem}.npz"
        np.savez(data, X=x, y=y)
        ckpt = train_to_dir(tmp_path / stem, data_file=data, progress=False)
        assert ckpt.meta["train"] == DEFAULT_PRESET.train.to_dict()
        assert ckpt.meta["config"]["input_clip"] == DEFAULT_PRESET.model.input_clip
    tc = replace(DEFAULT_PRESET.train, epochs=1)
    ckpt = auto_train_to_dir(tmp_path / "auto", data_file=data, tc=tc, budget_minutes=1e-6)
    assert ckpt.meta["auto"]["candidates"][0]["input_clip"] == DEFAULT_PRESET.model.input_clip


def test_the_same_data_and_command_in_another_checkout_give_the_same_bytes(tmp_path, monkeypatch):
    """The checkpoint records its data file relative to itself, so two clones of a project give
    byte-identical checkpoints and exports; verify then finds the file from any working directory."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(30, 6, 2)).astype(np.float32), np.arange(30) % 2
    x[y == 1] += 1.0
    for clone in ("a", "b"):
        (tmp_path / clone / "data").mkdir(parents=True)
        np.savez(tmp_path / clone / "data" / "mine.npz", X=x, y=y)
        monkeypatch.chdir(tmp_path / clone)
        r = run("train", "--data", "data/mine.npz", "--hidden", "4", "--epochs", "1", "--quiet", "--out=out")
        assert r.exit_code == 0, r.output
        assert run("export", "out").exit_code == 0
    for name in ("checkpoint.pt", "model.h", "model.int8.onnx", "manifest.json"):
        a, b = (tmp_path / clone / "out" / name for clone in ("a", "b"))
        assert a.read_bytes() == b.read_bytes(), name
    monkeypatch.chdir(tmp_path)
    r = run("verify", str(tmp_path / "a" / "out"), "--no-c")
    assert r.exit_code == 0, r.output
    # Reached through a symlink, the directory still finds its data (the way was measured resolved).
    (tmp_path / "link").symlink_to(tmp_path / "a" / "out")
    assert run("verify", "link", "--no-c").exit_code == 0
    # The export directory moved and the data stayed: found where it was given, from the project.
    monkeypatch.chdir(tmp_path / "b")
    (tmp_path / "b" / "out").rename(tmp_path / "moved")
    r = run("verify", str(tmp_path / "moved"), "--no-c")
    assert r.exit_code == 0, r.output
    (tmp_path / "b" / "data" / "mine.npz").unlink()
    r = run("verify", str(tmp_path / "moved"), "--no-c")
    assert r.exit_code == 2, r.output
    assert f"is gone: not at {tmp_path / 'data' / 'mine.npz'}, nor data/mine.npz; put it" in r.output


def test_export_writes_a_deterministic_manifest_last(tiny_export, tmp_path):
    from edgernn.manifest import MANIFEST, MANIFEST_SCHEMA
    from edgernn.pipeline import EXPORTED

    d = _copy_export(tiny_export, tmp_path / "d")
    first = (d / MANIFEST).read_bytes()
    r = run("export", str(d))
    assert r.exit_code == 0, r.output
    assert r.output.strip().splitlines()[-1].startswith(f"wrote {d / MANIFEST} (")  # last
    assert (d / MANIFEST).read_bytes() == first  # same checkpoint, same command: same bytes
    m = json.loads(first)
    assert set(m) == {"schema", "edgernn_version", "checkpoint", "artifacts"}
    assert m["schema"] == MANIFEST_SCHEMA and set(m["artifacts"]) == set(EXPORTED)
    for name, rec in m["artifacts"].items():
        data = (d / name).read_bytes()
        assert rec == {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    ckpt = hashlib.sha256((d / "checkpoint.pt").read_bytes()).hexdigest()
    assert m["checkpoint"] == {"file": "checkpoint.pt", "sha256": ckpt}
    assert str(tmp_path) not in first.decode() and "/" not in first.decode()  # no paths, no timestamps


@pytest.mark.parametrize(
    "name", ["model.int8.json", "model.onnx", "model.int8.onnx", "model.step.int8.onnx", "model.h"]
)
def test_verify_refuses_an_artifact_changed_after_export(tiny_export, tmp_path, name):
    d = _copy_export(tiny_export, tmp_path / "d")
    data = bytearray((d / name).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, mid-file
    (d / name).write_bytes(bytes(data))
    r = run("verify", str(d), "--no-c")
    assert_check_failed(r, f"{d / name} does not match manifest.json", f"edgernn export {d}")
    assert not (d / "report.json").exists()


def test_verify_refuses_a_directory_without_manifest(tiny_export, tmp_path):
    d = _copy_export(tiny_export, tmp_path / "d")
    (d / "manifest.json").unlink()
    assert_input_error(run("verify", str(d), "--no-c"), "no manifest.json, so no completed export vouches")
    only_trained = tmp_path / "t"  # trained, never exported: exit 2 from verify as from predict
    only_trained.mkdir()
    shutil.copy(d / "checkpoint.pt", only_trained / "checkpoint.pt")
    assert_input_error(run("verify", str(only_trained)), f"run `edgernn export {only_trained}` first")
    data = tmp_path / "x.npz"
    np.savez(data, X=np.zeros((1, 3, 12), np.float32))
    assert_input_error(run("predict", str(only_trained), "--data", str(data)), "edgernn export")


def test_verify_refuses_a_missing_artifact_and_a_corrupt_manifest(tiny_export, tmp_path):
    d = _copy_export(tiny_export, tmp_path / "d")
    (d / "model.step.int8.onnx").unlink()
    assert_check_failed(run("verify", str(d), "--no-c"), "model.step.int8.onnx is missing")
    d = _copy_export(tiny_export, tmp_path / "e")
    m = json.loads((d / "manifest.json").read_text())
    m["artifacts"]["../checkpoint.pt"] = m["artifacts"].pop("model.h")
    (d / "manifest.json").write_text(json.dumps(m))
    assert_check_failed(run("verify", str(d), "--no-c"), "manifest.json is corrupt", "not a plain file name")
    (d / "manifest.json").write_text("{")
    assert_check_failed(run("verify", str(d), "--no-c"), "manifest.json is corrupt")


def test_verify_refuses_a_checkpoint_retrained_after_export(tiny_export, tmp_path):
    d = _copy_export(tiny_export, tmp_path / "d")
    with pytest.warns(DataWarning, match="holds an export"):
        train_to_dir(
            d,
            dataset="japanese_vowels",
            spec=ModelSpec(hidden_size=8),
            tc=TrainConfig(epochs=1, seed=9),
            progress=False,
        )
    assert_check_failed(
        run("verify", str(d), "--no-c"), "checkpoint.pt is not the checkpoint", "edgernn export"
    )


def test_verify_reads_under_the_directory_lock(tiny_export, tmp_path):
    import fcntl
    import os

    from edgernn.verify import verify_dir

    d = _copy_export(tiny_export, tmp_path / "d")
    fd = os.open(d / ".edgernn.lock", os.O_CREAT | os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # a writer (export) at work
        r = run("verify", str(d), "--no-c")
        assert_input_error(r, "another edgernn process is writing to")
        assert not (d / "report.json").exists()
        fcntl.flock(fd, fcntl.LOCK_SH)  # another reader: verify reads alongside it
        v = verify_dir(d, with_c=False)
    finally:
        os.close(fd)
    assert v.passed and v.manifest_sha256 == hashlib.sha256((d / "manifest.json").read_bytes()).hexdigest()
    ok = run("verify", str(d), "--no-c")
    assert ok.exit_code == 0, ok.output


def test_verify_without_a_c_compiler_is_a_toolchain_error(tiny_export, tmp_path, monkeypatch):
    d = _copy_export(tiny_export, tmp_path / "d")
    monkeypatch.setenv("CC", "edgernn-no-such-cc")
    r = run("verify", str(d))
    assert r.exit_code == 3 and "Traceback" not in r.output, r.output
    assert "no C compiler found" in r.output and "--no-c" in r.output


def test_backends_that_disagree_on_shapes_fail_a_check_not_an_assert():
    from edgernn.contract import IntResult
    from edgernn.errors import CheckFailed
    from edgernn.verify import int_parity

    a = IntResult(hidden=torch.zeros(2, 3, 4), h_n=torch.zeros(1, 2, 4), logits=torch.zeros(2, 5))
    b = IntResult(hidden=torch.zeros(2, 3, 4), h_n=torch.zeros(1, 2, 4), logits=torch.zeros(2, 6))
    with pytest.raises(CheckFailed, match="c-int8 gives logits of shape"):
        int_parity("torch-int8", "c-int8", a, b)


@pytest.mark.parametrize(
    ("cls", "code"),
    [
        ("InputError", 2),
        ("QuantizationError", 2),
        ("CheckFailed", 1),
        ("ToolchainError", 3),
        ("InternalError", 4),
    ],
)
def test_each_error_class_has_its_exit_code(monkeypatch, tmp_path, cls, code):
    import edgernn.errors
    import edgernn.pipeline

    def fail(*args, **kwargs):
        raise getattr(edgernn.errors, cls)(f"a {cls}")

    monkeypatch.setattr(edgernn.pipeline, "export_dir", fail)
    r = run("export", str(tmp_path))
    assert r.exit_code == code and r.output.strip() == f"error: a {cls}", r.output


def test_verify_waits_for_another_reader_before_writing_its_report(tiny_export, tmp_path):
    """A second verify still reading holds the shared lock: the report write waits, then happens."""
    import fcntl
    import os
    import threading

    from edgernn.report.store import record_verification
    from edgernn.verify import verify_dir

    d = _copy_export(tiny_export, tmp_path / "d")
    v = verify_dir(d, with_c=False)
    fd = os.open(d / ".edgernn.lock", os.O_CREAT | os.O_RDWR)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            record_verification(d, v)
        except BaseException as e:  # handed to the main thread
            errors.append(e)

    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        t = threading.Thread(target=write)
        t.start()
        t.join(0.5)
        assert t.is_alive() and not (d / "report.json").exists()  # waiting, not failing
    finally:
        os.close(fd)
    t.join(60)
    assert not errors and json.loads((d / "report.json").read_text())["parity"] == v.report["parity"]


def test_a_registered_backend_is_checked_by_verify(tiny_export, tmp_path, monkeypatch):
    """The seam for new backends: one registration and verify compares it with the reference; a
    backend that is off by one integer fails the check."""
    import dataclasses

    from edgernn.backends import registry
    from edgernn.verify import verify_dir

    class OffByOne:
        def __init__(self, inner):
            self.inner = inner

        def run(self, x, lengths):
            result = self.inner.run(x, lengths)
            result.logits.view(-1)[0] += 1
            return result

        def generate(self, start, end, max_len):
            return self.inner.generate(start, end, max_len)

    base = registry.INT_BACKENDS["ort-int8"]
    wrong = dataclasses.replace(base, name="off-by-one", order=99, open=lambda *a: OffByOne(base.open(*a)))
    monkeypatch.setitem(registry.INT_BACKENDS, "off-by-one", wrong)
    v = verify_dir(_copy_export(tiny_export, tmp_path / "d"), with_c=False)
    rows = {p["b"]: p for p in v.report["parity"]}
    names = [p["b"] for p in v.report["parity"]]
    assert names.index("off-by-one") > names.index("ort-int8-step")  # in the registry's table order
    assert rows["ort-int8"]["passed"] and not rows["off-by-one"]["passed"]
    assert rows["off-by-one"]["mismatches"] == 1 and not v.passed


def test_verify_checks_the_raw_input_graph_and_catches_a_wrong_scale(tiny_export, tmp_path):
    """verify's ort-int8-raw row: model.raw.int8.onnx on raw features, integer for integer; a
    graph built with input scales 1 % off fails it."""
    import dataclasses

    import numpy as np

    from edgernn.backends.onnx.int_run import save_model
    from edgernn.backends.onnx.raw_input import build_raw_sequence_model
    from edgernn.pipeline import RAW_INT_ONNX, checkpoint_data, load_quantized
    from edgernn.train.checkpoint import load_checkpoint
    from edgernn.verify import raw_parity, verify_dir

    d = _copy_export(tiny_export, tmp_path / "d")
    v = verify_dir(d, with_c=False)
    row = next(p for p in v.report["parity"] if p["b"] == "ort-int8-raw")
    assert row["passed"] and row["mismatches"] == 0 and row["n"] > 0
    qm = load_quantized(d)
    test = checkpoint_data(load_checkpoint(d), d).test
    off = dataclasses.replace(qm, input_scale=np.asarray(qm.input_scale) * 1.01)
    save_model(build_raw_sequence_model(off), d / RAW_INT_ONNX)
    assert not raw_parity(d, qm, test)["passed"]


def test_a_flipped_bit_in_a_weight_is_refused(tiny_dir, tmp_path):
    """torch.load does not check the zip's CRC-32s: the flipped weight would load, export and
    verify as another model."""
    data = bytearray((tiny_dir / "checkpoint.pt").read_bytes())
    weight = torch.load(tiny_dir / "checkpoint.pt", weights_only=True)["state_dict"]["rnn.weight_hh_l0"]
    at = bytes(data).find(weight.numpy().tobytes())
    assert at > 0
    data[at + 5] ^= 0xFF
    assert_input_error(run("export", _checkpoint_dir(tmp_path, bytes(data))), "fails its CRC-32 check")


def test_a_refused_pickle_prints_no_torch_warning(tmp_path):
    """The refusal is the one line the user sees: torch's own UserWarning is not printed before it."""
    import warnings

    from edgernn.errors import InputError
    from edgernn.train.checkpoint import load_checkpoint

    _checkpoint_dir(tmp_path, pickle.dumps(Payload()))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InputError):
            load_checkpoint(tmp_path)
    assert [str(w.message) for w in seen] == []


def test_a_checkpoint_of_another_format_version_says_so(tiny_dir, tmp_path):
    def edit(p):
        p["format"] = "edgernn-checkpoint-v9"

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), "another edgernn version")

    def other(p):
        p["format"] = "other"

    r = run("export", _rewrite(tiny_dir, tmp_path, other))
    assert_input_error(r, "not an edgernn checkpoint (format tag 'other', not edgernn-checkpoint-v1)")


def test_training_beside_an_export_warns_that_it_will_be_stale(tiny_export, tmp_path):
    d = _copy_export(tiny_export, tmp_path / "d")
    r = run(
        "train", "--dataset", "japanese_vowels", "--hidden", "8", "--epochs", "1", "--quiet", "--out", str(d)
    )
    assert r.exit_code == 0, r.output
    assert f"warning: {d} holds an export" in r.output and f"`edgernn export {d}`" in r.output
    r = run(
        "train",
        "--dataset",
        "japanese_vowels",
        "--hidden",
        "8",
        "--epochs",
        "1",
        "--quiet",
        "--out",
        str(tmp_path / "new"),
    )
    assert r.exit_code == 0 and "warning" not in r.output, r.output


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (None, "data reference must be an object"),
        ([], "data reference must be an object"),
        ({"kind": "bundled", "name": "japanese_vowels", "seed": "x"}, "data seed must be an integer"),
        ({"kind": "bundled", "name": 7, "seed": 0}, "data name must be a string"),
        ({"kind": "url", "seed": 0}, "data kind must be"),
        (
            {"kind": "file", "path": "d.npz", "sha256": "0", "seed": 0, "from_checkpoint": 5},
            "from_checkpoint must",
        ),
    ],
)
def test_a_malformed_data_reference_in_a_checkpoint_is_exit_2(tiny_dir, tmp_path, data, fragment):
    def edit(p):
        meta = json.loads(p["meta"])
        meta["data"] = data
        p["meta"] = json.dumps(meta)

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), fragment)


def test_an_export_of_another_model_drops_the_measurements_of_the_old_one(tiny_dir, tmp_path):
    """mcu and bench measured the model.h that was there: after an export that replaces it with
    another (retrained, another prefix), their figures would be shown as the new model's."""
    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    assert run("export", str(d), "--prefix", "first").exit_code == 0

    def measured() -> None:
        (d / "bench.json").write_text("{}")
        (d / "report.json").write_text(json.dumps({"schema": "x", "dataset": "jv", "mcu": [], "bench": {}}))

    measured()
    assert run("export", str(d), "--prefix", "first").exit_code == 0  # the same model.h: still valid
    assert (d / "bench.json").exists() and "mcu" in json.loads((d / "report.json").read_text())
    assert run("export", str(d), "--prefix", "second").exit_code == 0
    assert not (d / "bench.json").exists()
    assert json.loads((d / "report.json").read_text()) == {"schema": "x", "dataset": "jv"}
