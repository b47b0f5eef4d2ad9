"""Training: deterministic by seed, gradient clipping in effect, metrics on real data."""

from __future__ import annotations

import hashlib

import pytest
import torch

from edgernn.config import TrainConfig
from edgernn.pipeline import train_to_dir
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import ModelSpec

SPEC = ModelSpec(hidden_size=16)


def _digest(path) -> str:
    return hashlib.sha256((path / "checkpoint.pt").read_bytes()).hexdigest()


def test_same_seed_same_checkpoint_bytes_different_seed_differs(tmp_path):
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        train_to_dir(
            tmp_path / name,
            dataset="japanese_vowels",
            spec=SPEC,
            tc=TrainConfig(epochs=3, seed=seed),
            progress=False,
        )
    assert _digest(tmp_path / "a") == _digest(tmp_path / "b")
    assert _digest(tmp_path / "a") != _digest(tmp_path / "c")


def test_checkpoint_records_what_export_needs(tmp_path):
    ckpt = train_to_dir(
        tmp_path, dataset="japanese_vowels", spec=SPEC, tc=TrainConfig(epochs=2), progress=False
    )
    meta = ckpt.meta
    assert meta["dataset"] == "japanese_vowels" and meta["task"] == "many-to-one"
    assert meta["data"] == {"kind": "bundled", "name": "japanese_vowels", "seed": 0}
    assert len(meta["norm_mean"]) == 12 and len(meta["norm_std"]) == 12
    assert meta["train"]["clip_grad_norm"] == 1.0
    assert 0.0 <= meta["metrics"]["float"]["test_accuracy"] <= 1.0
    # weights_only load: the checkpoint holds tensors and strings only.
    payload = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert set(payload) == {"format", "meta", "state_dict"}
    assert load_checkpoint(tmp_path).model.cfg.hidden_size == 16


def test_gradient_clipping_bounds_the_update(monkeypatch, tmp_path):
    """With a tiny max_norm every step's total gradient norm seen by the optimizer is <= max_norm."""
    seen: list[float] = []
    real_step = torch.optim.Adam.step

    def spy(self, *a, **k):
        norms = [p.grad.norm() for g in self.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.norm(torch.stack(norms))))
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.Adam, "step", spy)
    train_to_dir(
        tmp_path,
        dataset="japanese_vowels",
        spec=SPEC,
        tc=TrainConfig(epochs=1, clip_grad_norm=0.01),
        progress=False,
    )
    assert seen and max(seen) <= 0.01 + 1e-6


@pytest.mark.slow
def test_default_model_reaches_target_accuracy(jv_export):
    meta = load_checkpoint(jv_export).meta
    assert meta["metrics"]["float"]["test_accuracy"] >= 0.90  # chance is 1/9


@pytest.mark.parametrize(
    "field,value",
    [("lr", float("nan")), ("lr", 0.0), ("clip_grad_norm", float("nan")), ("clip_grad_norm", float("inf")),
     ("weight_decay", float("nan")), ("weight_decay", -1e-4)],
)  # fmt: skip
def test_a_recipe_with_a_nan_or_out_of_range_number_is_refused(field, value):
    """The library API refuses what the CLI's option types refuse: a NaN clip trained a model of
    NaN weights that early stopping then hid behind the untrained ones."""
    from edgernn.errors import InputError

    with pytest.raises(InputError, match=f"{field} must be a (positive|non-negative) finite number"):
        TrainConfig(**{field: value})
