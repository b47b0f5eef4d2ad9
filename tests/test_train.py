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


def test_a_float64_default_dtype_trains_the_same_bytes_and_the_model_runs(tmp_path):
    """torch.set_default_dtype(torch.float64), common in notebooks: training, loading and the torch
    backend raised dtype mismatches, and export wrote model.int8.json before failing. Now the same
    checkpoint bytes as under float32, and every backend answers."""
    import numpy as np

    from edgernn.pipeline import export_dir
    from edgernn.predict import Runtime

    tc = TrainConfig(epochs=2)
    train_to_dir(tmp_path / "f32", dataset="japanese_vowels", spec=SPEC, tc=tc, progress=False)
    before = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        train_to_dir(tmp_path / "f64", dataset="japanese_vowels", spec=SPEC, tc=tc, progress=False)
        assert _digest(tmp_path / "f64") == _digest(tmp_path / "f32")
        export_dir(tmp_path / "f64")
        seq = np.random.default_rng(0).normal(size=(6, 12))
        float_logits = [
            Runtime(tmp_path / "f64", backend=b).predict([seq])[0].logits for b in ("torch", "onnx")
        ]
        assert np.allclose(float_logits[0], float_logits[1], atol=1e-4)
        assert torch.get_default_dtype() == torch.float64  # the caller's setting is left alone
    finally:
        torch.set_default_dtype(before)


def test_training_leaves_the_callers_random_state_alone(tmp_path):
    """Training seeds Python's, numpy's and torch's generators; the caller's states are restored
    (it used to leave them seeded with the training seed), and opening a model draws nothing."""
    import random

    import numpy as np

    from edgernn.pipeline import export_dir
    from edgernn.predict import Runtime

    def draws() -> tuple[float, float, float]:
        return random.random(), float(np.random.rand()), float(torch.rand(1))

    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    expected = draws()
    random.seed(123)
    np.random.seed(123)
    torch.manual_seed(123)
    train_to_dir(tmp_path, dataset="japanese_vowels", spec=SPEC, tc=TrainConfig(epochs=1), progress=False)
    export_dir(tmp_path)
    Runtime(tmp_path, backend="torch")
    load_checkpoint(tmp_path)
    assert draws() == expected


@pytest.mark.parametrize(
    "kw, fragment",
    [
        ({"epochs": 0}, "epochs must be an integer in 1..100,000, got 0"),
        ({"epochs": 1.5}, "epochs must be an integer"),
        ({"batch_size": 0}, "batch_size must be an integer in 1..65,536"),
        ({"patience": -1}, "patience must be an integer"),
        ({"seed": -1}, "seed must be an integer"),
        ({"early_stop": 1}, "early_stop must be True or False"),
    ],
)
def test_train_config_refuses_counts_the_cli_would(kw, fragment):
    """An epochs of 0 saved the untrained model; a batch_size of 0 failed inside range()."""
    from edgernn.errors import InputError

    with pytest.raises(InputError, match=fragment):
        TrainConfig(**kw)


def test_train_to_dir_refuses_what_the_cli_refuses(tmp_path):
    from edgernn.errors import InputError

    data = tmp_path / "d.npz"
    import numpy as np

    np.savez(data, X=np.zeros((4, 5, 2), np.float32), y=np.array([0, 1, 0, 1]))
    with pytest.raises(InputError, match="not both"):
        train_to_dir(tmp_path / "a", dataset="japanese_vowels", data_file=data, progress=False)
    with pytest.raises(InputError, match="not neither"):
        train_to_dir(tmp_path / "b", progress=False)
    with pytest.raises(InputError, match="names is token data"):
        train_to_dir(tmp_path / "c", dataset="names", spec=ModelSpec(input_clip=2.0), progress=False)
    with pytest.raises(InputError, match=r"frame must be an integer in 1\.\.1024, got 0"):
        train_to_dir(tmp_path / "d", dataset="arrowhead", spec=ModelSpec(frame=0), progress=False)


def test_a_token_data_file_trains_with_the_recipe_whose_clip_it_cannot_use(tmp_path):
    """The CLI passes the long-sequence recipe (input_clip 3) for every data file; on token data
    that clip is the preset's, not the user's, and training goes on without it (a first version of
    the refusal above refused every token file). An explicit --input-clip is still refused."""
    import numpy as np
    from click.testing import CliRunner

    from edgernn.cli import main

    rng = np.random.default_rng(0)
    data = tmp_path / "tok.npz"
    np.savez(data, X=rng.integers(1, 7, size=(20, 6)), y=np.arange(20) % 2)
    res = CliRunner().invoke(
        main, ["train", "--data", str(data), "--epochs", "1", "--quiet", "--out", str(tmp_path / "m")]
    )
    assert res.exit_code == 0, res.output
    assert load_checkpoint(tmp_path / "m").model.cfg.input_clip == 0.0
    res = CliRunner().invoke(
        main, ["train", "--data", str(data), "--input-clip", "2", "--quiet", "--out", str(tmp_path / "n")]
    )
    assert res.exit_code == 2 and "token" in res.output


def test_auto_takes_the_largest_seed_the_cli_takes(tmp_path):
    """--auto's cross-validation repeats train with seed + r: the largest --seed ran one pass and
    then failed TrainConfig's own seed check."""
    from edgernn.pipeline import auto_train_to_dir

    ckpt = auto_train_to_dir(
        tmp_path, "arrowhead", tc=TrainConfig(epochs=1, seed=2**31 - 1), budget_minutes=1e-6
    )
    assert ckpt.meta["train"]["seed"] == 2**31 - 1
