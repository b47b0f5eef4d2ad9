"""`edgernn train --auto`: deterministic, within its budget and flash limit, every candidate recorded.

One-epoch candidates on Japanese Vowels (validation-split scoring) and ArrowHead (cross-validation,
then a retrain on train + val) keep these fast; what the search finds on the long sets is
`make bench-accuracy`'s job."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import edgernn.train.auto as auto_mod
from edgernn.backends.c.codegen import model_sizes
from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.data.bundled import load_dataset
from edgernn.errors import InputError
from edgernn.pipeline import auto_train_to_dir, flash_bytes, load_data, quantize_checkpoint
from edgernn.report.search import search_section
from edgernn.train.auto import HIDDEN, K_FOLDS, Candidate, auto_train, climb, cv_repeats, stratified_folds
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import ModelSpec

TC = TrainConfig(epochs=1, init="orthogonal")
FITS_2K = 16  # hidden 16 needs 1,988 B on Japanese Vowels unframed; 32 needs 3,284 B


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
    # Japanese Vowels (270 train + val sequences) is scored on its validation split. Base frame 2
    # (29 steps at most, read in 15), then the frame and hidden walks, two other inits, two other
    # learning rates, three input clips (its preset has none): every candidate distinct.
    n = len(auto["candidates"])
    assert auto["scoring"] == "validation split" and not auto["stopped_by_budget"]
    keys = [(c["frame"], c["hidden_size"], c["init"], c["lr"], c["input_clip"]) for c in auto["candidates"]]
    assert len(set(keys)) == n >= 10
    assert [c["input_clip"] for c in auto["candidates"][-3:]] == [2.0, 3.0, 4.0]
    assert all(c["status"] == "trained" and 0 <= c["val_accuracy"] <= 1 for c in auto["candidates"])
    chosen = auto["candidates"][auto["chosen"]]
    assert (meta["config"]["hidden_size"], meta["config"].get("frame", 1)) == (
        chosen["hidden_size"],
        chosen["frame"],
    )
    assert (meta["train"]["init"], meta["train"]["lr"]) == (chosen["init"], chosen["lr"])
    assert meta["config"].get("input_clip", 0.0) == chosen["input_clip"]
    assert meta["metrics"]["val"]["test_accuracy"] == chosen["val_accuracy"]
    # Ranked by what survives quantization: the lower of float and int8 validation accuracy.
    assert all(0 <= c["val_int8_accuracy"] <= 1 for c in auto["candidates"])

    def rank(c: dict) -> tuple[float, float]:
        return (min(c["val_accuracy"], c["val_int8_accuracy"]), -c["val_nll"])

    assert max(rank(c) for c in auto["candidates"]) == rank(chosen)
    # Progress names each candidate as it starts and the best so far after it.
    assert sum("best so far" in line for line in lines) == 2 * n and lines[0].startswith(
        "[1] frame 2, hidden 32"
    )
    section = search_section(meta)
    assert section is not None and section.count("\n| ") == 2 + n  # header, rule, one row per candidate


def test_a_tiny_budget_runs_the_first_candidate_only():
    ds = load_dataset("japanese_vowels")
    found = auto_train(ds, ModelSpec(), TC, flash_bytes, budget_minutes=1e-6)
    assert [t.status for t in found.trials] == ["trained"] and found.skipped
    assert found.meta()["candidates"][0]["hidden_size"] == 32


def test_max_flash_is_respected_by_the_exported_model(tmp_path):
    ckpt = auto_train_to_dir(
        tmp_path, "japanese_vowels", spec=ModelSpec(), tc=TC, budget_minutes=60, max_flash=2048
    )
    auto = ckpt.meta["auto"]
    # Base frame 2 (24 inputs per step): hidden 16 would need more than 2,048 B there, so the
    # search starts at hidden 8; at frame 1, hidden 16 fits.
    assert (auto["candidates"][0]["frame"], auto["candidates"][0]["hidden_size"]) == (2, 8)
    assert (1, FITS_2K) in [(c["frame"], c["hidden_size"]) for c in auto["candidates"]]
    over = [c for c in auto["candidates"] if c["status"] == "over-flash"]
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
        (("--auto", "--input-clip", "2"), "--lr and --input-clip itself"),
        (("--max-flash", "2048"), "go with --auto"),
    ):
        r = run(*args, "--out", str(tmp_path / "x"))
        assert r.exit_code == 2 and fragment in r.output, r.output


def test_small_sets_are_cross_validated_then_retrained_deterministically(tmp_path):
    for name in ("a", "b"):
        auto_train_to_dir(tmp_path / name, "arrowhead", tc=TrainConfig(epochs=1, init="orthogonal"))
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    meta = load_checkpoint(tmp_path / "a").meta
    auto = meta["auto"]
    assert auto["scoring"].startswith(f"{cv_repeats(36)} x {K_FOLDS}-fold cross-validation")
    chosen = auto["candidates"][auto["chosen"]]
    # The validation metrics are the winner's cross-validation means, not a score on what it trained on.
    assert meta["metrics"]["val"]["test_accuracy"] == chosen["val_accuracy"]
    assert all(0 <= c["val_int8_accuracy"] <= 1 for c in auto["candidates"])  # the folds' int8 models
    # The retrain runs all epochs and keeps the last: no held-out split to stop on.
    assert meta["train"]["early_stop"] is False and meta["epochs_run"] == 1
    # One optimizer step an epoch, as each fold of 28-29 sequences took with batch 32: all 36 at once.
    assert meta["train"]["batch_size"] == 36
    # ArrowHead's 251 steps start at frame 16 (16 steps), hidden 32.
    assert (auto["candidates"][0]["frame"], auto["candidates"][0]["hidden_size"]) == (16, 32)


def test_the_budget_notice_comes_after_the_retrain_of_a_cross_validated_search():
    lines: list[str] = []
    ds = load_dataset("arrowhead")
    tc = TrainConfig(epochs=1, init="orthogonal")
    found = auto_train(ds, ModelSpec(), tc, flash_bytes, budget_minutes=1e-6, log=lines.append)
    assert found.skipped and found.meta()["scoring"].endswith("then retrained")
    assert lines[-2].startswith("retraining [1]") and "makes the search repeatable" in lines[-1]


class _Grid:
    """A search whose candidates score from a table: what climb sees of _Search."""

    def __init__(self, scores: dict[tuple[int, int], float], start: tuple[int, int], budget: int) -> None:
        self.scores, self.budget, self.stopped = scores, budget, False
        self.ran: list[tuple[int, int]] = []
        self.best = Candidate(*start, "orthogonal", 3e-3)
        self.run(self.best)

    @property
    def current(self) -> Candidate:
        return self.best

    def run(self, c: Candidate) -> None:
        key = (c.frame, c.hidden_size)
        if self.stopped or key in self.ran:
            return
        if len(self.ran) == self.budget:
            self.stopped = True
            return
        self.ran.append(key)
        if self.scores.get(key, 0.0) > self.scores.get((self.best.frame, self.best.hidden_size), 0.0):
            self.best = c


# ArrowHead's grid as 10 x 5-fold cross-validation scored it (docs/training.md): from the base cell
# (16, 32), a walk along the frame first moves to (32, 32) and never scores (16, 64), the best.
ARROWHEAD_CV = {
    (4, 32): 0.727, (8, 32): 0.753, (16, 32): 0.763, (32, 32): 0.783, (64, 32): 0.762,
    (4, 64): 0.696, (8, 64): 0.772, (16, 64): 0.815, (32, 64): 0.779, (64, 64): 0.784,
    (4, 128): 0.682, (8, 128): 0.761, (16, 128): 0.767, (32, 128): 0.776, (64, 128): 0.761,
    (16, 16): 0.769,
}  # fmt: skip
FRAMES_1_TO_64 = (1, 2, 4, 8, 16, 32, 64)


def test_climb_scores_every_neighbour_before_moving_and_stops_at_a_local_best():
    g = _Grid(ARROWHEAD_CV, (16, 32), budget=100)
    climb(g, FRAMES_1_TO_64, HIDDEN)
    assert (g.best.frame, g.best.hidden_size) == (16, 64)
    # Every neighbour of the start, then the new neighbours of (16, 64); nothing after.
    assert g.ran == [(16, 32), (8, 32), (32, 32), (16, 16), (16, 64), (8, 64), (32, 64), (16, 128)]


def test_climb_ends_when_the_budget_skips_every_neighbour():
    g = _Grid(ARROWHEAD_CV, (16, 32), budget=3)
    climb(g, FRAMES_1_TO_64, HIDDEN)
    assert g.stopped and g.ran == [(16, 32), (8, 32), (32, 32)]
    assert (g.best.frame, g.best.hidden_size) == (32, 32)


def test_a_candidate_past_the_budget_is_skipped_and_the_search_goes_on(monkeypatch):
    """Every candidate but those at hidden 64 is estimated to fit: the hidden-64 ones are skipped
    and logged, the cheaper ones after them still run."""
    ds = load_dataset("japanese_vowels")
    real = auto_mod._Search.estimate
    monkeypatch.setattr(
        auto_mod._Search, "estimate", lambda self, c: 1e9 if c.hidden_size == 64 else real(self, c)
    )
    lines: list[str] = []
    found = auto_train(ds, ModelSpec(), TC, flash_bytes, budget_minutes=60, log=lines.append)
    assert found.skipped and all(c.hidden_size == 64 for c in found.skipped)
    assert len(set(found.skipped)) == len(found.skipped)
    assert all(t.candidate.hidden_size != 64 for t in found.trials)
    skipped = [line for line in lines if "past the budget" in line]
    assert skipped and all("hidden 64" in line and line.endswith("skipped") for line in skipped)
    # The user is told the result now depends on the machine, and the checkpoint and report say which.
    assert "makes the search repeatable" in lines[-1]
    meta = found.meta()
    assert meta["stopped_by_budget"] and meta["skipped_by_budget"] == [c.label() for c in found.skipped]
    section = search_section({"auto": meta})
    assert section is not None and f"skipped {len(found.skipped)} candidate(s) (frame" in section
    # The init, learning-rate and clip steps still ran after the skip.
    assert [t.candidate.input_clip for t in found.trials[-3:]] == [2.0, 3.0, 4.0]


def test_stratified_folds_hold_out_every_sequence_once_with_classes_spread():
    y = np.repeat(np.arange(3), [12, 12, 11])
    folds = stratified_folds(y, K_FOLDS, seed=0)
    held = np.concatenate([h for _, h in folds])
    assert sorted(held.tolist()) == list(range(len(y)))
    for fit, h in folds:
        assert not set(fit.tolist()) & set(h.tolist())
        counts = np.bincount(y[h], minlength=3)
        assert counts.max() - counts.min() <= 1
    assert [h.tolist() for _, h in folds] == [h.tolist() for _, h in stratified_folds(y, K_FOLDS, seed=0)]


def test_train_config_records_new_fields_only_when_set():
    old_keys = {
        "epochs",
        "lr",
        "batch_size",
        "seed",
        "clip_grad_norm",
        "patience",
        "weight_decay",
        "init",
        "warmup_epochs",
        "schedule",
    }
    assert set(TrainConfig().to_dict()) == old_keys
    assert TrainConfig(early_stop=False).to_dict()["early_stop"] is False


@pytest.mark.parametrize("minutes", [0.0, -1.0, float("nan"), float("inf")])
def test_a_budget_that_is_not_a_positive_finite_number_is_refused(minutes):
    with pytest.raises(InputError, match="the budget must be a positive finite number"):
        auto_train(load_dataset("japanese_vowels"), ModelSpec(), TC, flash_bytes, budget_minutes=minutes)
