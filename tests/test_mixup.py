"""TrainConfig.mixup / --mixup: the long-sequence recipe trains on blends of two sequences and
their labels (edgernn.train.recipe.mixup; docs/training.md, "Mixup").

Trained for real on ArrowHead: mixup is deterministic for a seed, changes what is learnt (the
model is less sure of the sequences it trained on), and is left out where it cannot apply (token
and per-step data) with the checkpoint saying so."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.data.bundled import load_dataset
from edgernn.errors import InputError
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import (
    DEFAULT_PRESET,
    PRESETS,
    ModelSpec,
    model_config,
    predict_logits,
    recipe_for,
    train,
)
from edgernn.train.recipe import mixup

SPEC = ModelSpec(hidden_size=32, frame=16)
TC = TrainConfig(epochs=60, lr=1e-2, init="orthogonal", early_stop=False)


def test_a_blend_is_lam_of_each_sequence_and_as_long_as_the_longer() -> None:
    x = torch.arange(4 * 5 * 2, dtype=torch.float32).reshape(4, 5, 2)
    lengths = torch.tensor([5, 2, 3, 1])
    gen = torch.Generator().manual_seed(3)
    mixed, mixed_lengths, partner, lam = mixup(x, lengths, 0.4, gen, np.random.default_rng(3))
    assert 0.0 <= lam <= 1.0 and sorted(partner.tolist()) == [0, 1, 2, 3]
    assert torch.allclose(mixed, lam * x + (1 - lam) * x[partner])
    assert torch.equal(mixed_lengths, torch.maximum(lengths, lengths[partner]))
    again = mixup(x, lengths, 0.4, torch.Generator().manual_seed(3), np.random.default_rng(3))
    assert again[3] == lam and torch.equal(again[2], partner)


def _fit(mix: float, seed: int = 0) -> tuple[torch.nn.Module, np.ndarray]:
    ds = load_dataset("arrowhead")
    result = train(ds, model_config(ds, SPEC), replace(TC, mixup=mix, seed=seed), progress=False)
    return result.model, predict_logits(result.model, ds.train)


def test_mixup_is_deterministic_and_softens_what_the_model_is_sure_of() -> None:
    """Zhang et al. (2018): trained on blends, a model is less sure of the sequences themselves.
    Measured here as the mean top-class probability on ArrowHead's training split."""
    model_a, logits_a = _fit(0.4)
    model_b, _ = _fit(0.4)
    for (name, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    _, plain = _fit(0.0)

    def sure(logits: np.ndarray) -> float:
        return float(torch.softmax(torch.from_numpy(logits), -1).max(-1).values.mean())

    assert sure(logits_a) < sure(plain) - 0.05, (sure(logits_a), sure(plain))


def test_mixup_is_left_out_where_it_cannot_apply() -> None:
    """A blend of token ids is no token, and per-step labels would need blending per step: those
    data train without it, and the checkpoint records 0. Asked for directly, train() refuses."""
    recipe = replace(DEFAULT_PRESET.train, epochs=1)
    assert recipe.mixup == 0.2
    assert recipe_for(load_dataset("arrowhead"), recipe).mixup == 0.2
    for name in ("names", "names_by_list", "basic_motions"):
        ds = load_dataset(name)
        assert recipe_for(ds, recipe).mixup == 0.0, name
    ds = load_dataset("names_by_list")
    with pytest.raises(InputError, match="mixup is for many-to-one feature data; names_by_list is token"):
        train(ds, model_config(ds, PRESETS["names_by_list"].model), recipe, progress=False)


def test_config_and_cli(tmp_path: Path) -> None:
    assert "mixup" not in TrainConfig().to_dict()  # old checkpoints keep their bytes
    assert TrainConfig(mixup=0.2).to_dict()["mixup"] == 0.2
    for bad in (-0.1, float("nan"), float("inf"), 11.0, True, "0.2"):
        with pytest.raises(InputError, match="mixup must be a number"):
            TrainConfig(mixup=bad)  # type: ignore[arg-type]
    r = CliRunner().invoke(main, ["train", "--dataset", "arrowhead", "--mixup", "-1", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "Invalid value for '--mixup'" in r.output
    common = ["train", "--dataset", "arrowhead", "--epochs", "1", "--frame", "16", "--quiet"]
    assert CliRunner().invoke(main, [*common, "--out", str(tmp_path / "d")]).exit_code == 0
    assert load_checkpoint(tmp_path / "d").meta["train"]["mixup"] == 0.2  # the long-sequence recipe
    assert CliRunner().invoke(main, [*common, "--mixup", "0", "--out", str(tmp_path / "off")]).exit_code == 0
    assert "mixup" not in load_checkpoint(tmp_path / "off").meta["train"]
    r = CliRunner().invoke(
        main, ["train", "--dataset", "names", "--epochs", "1", "--quiet", "--out", str(tmp_path / "n")]
    )
    assert r.exit_code == 0 and "mixup" not in load_checkpoint(tmp_path / "n").meta["train"]
