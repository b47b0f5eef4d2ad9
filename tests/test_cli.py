"""The CLI's contract with scripts: one-line errors, documented exit codes, never a traceback."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgernn.cli import main
from edgernn.config import TrainConfig
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
    assert_input_error(r, "refused")
    import os

    assert not os.path.exists("/tmp/edgernn-pwned")


def test_plain_pickle_is_refused(tmp_path):
    assert_input_error(run("export", _checkpoint_dir(tmp_path, pickle.dumps(Payload()))), "checkpoint")


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

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), "malformed")


def test_checkpoint_with_nan_weights(tiny_dir, tmp_path):
    def edit(p):
        p["state_dict"]["rnn.weight_hh_l0"][0, 0] = float("nan")

    assert_input_error(run("export", _rewrite(tiny_dir, tmp_path, edit)), "NaN")


def test_not_a_zip_checkpoint(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("hello.txt", "hi")
    assert_input_error(run("export", _checkpoint_dir(tmp_path, buf.getvalue())), "checkpoint")


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
