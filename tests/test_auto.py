"""`edgernn train --auto`: deterministic, within its budget and flash limit, every candidate recorded.

One-epoch candidates on Japanese Vowels keep these fast; what the search finds on the long sets is
`make bench-accuracy`'s job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgernn.backends.c.codegen import model_sizes
from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.data.bundled import load_dataset
from edgernn.errors import InputError
from edgernn.pipeline import auto_train_to_dir, flash_bytes, load_data, quantize_checkpoint
from edgernn.report.search import search_section
from edgernn.train.auto import auto_train
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import ModelSpec

TC = TrainConfig(epochs=1, init="orthogonal")
FITS_2K = 16  # hidden 16 needs 1,988 B on Japanese Vowels; 32 needs 3,284 B


def _digest(d: Path) -> str:
    return hashlib.sha256((d / "checkpoint.pt").read_bytes()).hexdigest()


def test_same_seed_gives_the_same_checkpoint_bytes_and_records_every_candidate(tmp_path):
    lines: list[str] = []
    for name in ("a", "b"):
        auto_train_to_dir(
            tmp_path / name, "japanese_vowels", spec=ModelSpec(), tc=TC, budget_minutes=60, log=lines.append
        )
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    meta = load_checkpoint(tmp_path / "a").meta
    auto = meta["auto"]
    # Base (frame 1: 29 steps at most), frame 2, one size down and up, two other inits, two other
    # learning rates: 8 distinct candidates.
    assert len(auto["candidates"]) == 8 and not auto["stopped_by_budget"]
    assert all(c["status"] == "trained" and 0 <= c["val_accuracy"] <= 1 for c in auto["candidates"])
    chosen = auto["candidates"][auto["chosen"]]
    assert (meta["config"]["hidden_size"], meta["config"].get("frame", 1)) == (
        chosen["hidden_size"],
        chosen["frame"],
    )
    assert (meta["train"]["init"], meta["train"]["lr"]) == (chosen["init"], chosen["lr"])
    assert meta["metrics"]["val"]["test_accuracy"] == chosen["val_accuracy"]
    assert max((c["val_accuracy"], -c["val_nll"]) for c in auto["candidates"]) == (
        chosen["val_accuracy"],
        -chosen["val_nll"],
    )
    # Progress names each candidate as it starts and the best so far after it.
    assert sum("best so far" in line for line in lines) == 16 and lines[0].startswith(
        "[1] frame 1, hidden 32"
    )
    section = search_section(meta)
    assert section is not None and section.count("\n| ") == 2 + 8  # header, rule, one row per candidate


def test_a_tiny_budget_runs_the_first_candidate_only():
    ds = load_dataset("japanese_vowels")
    found = auto_train(ds, ModelSpec(), TC, flash_bytes, budget_minutes=1e-6)
    assert [t.status for t in found.trials] == ["trained"] and found.stopped_by_budget
    assert found.meta()["candidates"][0]["hidden_size"] == 32


def test_max_flash_is_respected_by_the_exported_model(tmp_path):
    ckpt = auto_train_to_dir(
        tmp_path, "japanese_vowels", spec=ModelSpec(), tc=TC, budget_minutes=60, max_flash=2048
    )
    auto = ckpt.meta["auto"]
    assert auto["candidates"][0]["hidden_size"] == FITS_2K
    over = [c for c in auto["candidates"] if c["status"] == "over-flash"]
    # hidden 32, and hidden 16 at frame 2 (24 inputs per step), would not fit.
    assert [(c["frame"], c["hidden_size"]) for c in over] == [(2, 16), (1, 32)]
    assert all(c["flash_bytes"] > 2048 for c in over)
    sizes = model_sizes(quantize_checkpoint(ckpt, load_data(ckpt.meta["data"])))
    assert sizes["weight"] + sizes["lut"] <= 2048
    assert all(c["flash_bytes"] <= 2048 for c in auto["candidates"] if c["status"] == "trained")


def test_a_flash_limit_nothing_fits_is_an_input_error():
    with pytest.raises(InputError, match="no candidate fits --max-flash 1000"):
        auto_train(load_dataset("japanese_vowels"), ModelSpec(), TC, flash_bytes, max_flash=1000)


def test_cli_auto_writes_a_checkpoint_and_refuses_conflicting_options(tmp_path):
    def run(*args: str):
        return CliRunner().invoke(
            main, ["train", "--dataset", "japanese_vowels", *args], catch_exceptions=False
        )

    r = run("--auto", "--epochs", "1", "--budget", "0.000001", "--quiet", "--out", str(tmp_path))
    assert r.exit_code == 0, r.output
    assert len(load_checkpoint(tmp_path).meta["auto"]["candidates"]) == 1
    for args, fragment in (
        (("--auto", "--hidden", "8"), "--auto chooses --frame, --hidden"),
        (("--max-flash", "2048"), "go with --auto"),
    ):
        r = run(*args, "--out", str(tmp_path / "x"))
        assert r.exit_code == 2 and fragment in r.output, r.output
