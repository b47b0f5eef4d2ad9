"""--input-clip C: the float model clamps each normalized feature to [-C, C] and the int8 input
scale is C / 127, so the integer path's saturation is the same clamp (ModelConfig.input_clip).

The model is trained for real on ACSF1, whose normalized series reach 12 standard deviations, with
a clip that the test split crosses, exported and checked: torch float = ORT float (which holds the
clamp as a Clip node) and the torch integer reference = ORT (sequence, step, raw) = C, integer for
integer; `edgernn predict` from raw samples gives the same records on C and ORT int8.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from click.testing import CliRunner
from conftest import assert_every_backend_exact

from edgernn.cli import main
from edgernn.config import ModelConfig, TrainConfig
from edgernn.contract.quantize import quantize_inputs, quantize_model
from edgernn.contract.reference import int_forward
from edgernn.data.bundled import load_dataset
from edgernn.errors import InputError, QuantizationError
from edgernn.pipeline import export_dir, load_quantized, train_to_dir
from edgernn.train.loop import DEFAULT_PRESET, ModelSpec
from edgernn.train.model import EdgeRNN

CLIP = 2.0
FRAME = 20


@pytest.fixture(scope="module")
def clipped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clipped")
    spec = ModelSpec(hidden_size=16, frame=FRAME, input_clip=CLIP)
    train_to_dir(out, dataset="acsf1", spec=spec, tc=TrainConfig(epochs=3, lr=5e-3), progress=False)
    export_dir(out, prefix="clip")
    return out


def test_clipped_model_is_bit_exact_on_every_backend(clipped: Path) -> None:
    test = load_dataset("acsf1").test
    valid = np.arange(test.x.shape[1])[None, :] < test.lengths[:, None]
    assert (np.abs(test.x[valid]) > CLIP).sum() > 100  # the clamp is exercised (the spikes), not idle
    assert_every_backend_exact(clipped)
    qm = load_quantized(clipped)
    assert qm.config.input_clip == CLIP
    assert np.array_equal(qm.input_scale, np.full(FRAME, CLIP / 127, np.float32))
    # Saturation is the clamp: quantizing x and quantizing clamp(x) give the same integers.
    scale = qm.input_scale[:1]
    clamped = np.clip(test.x, -CLIP, CLIP)
    assert np.array_equal(quantize_inputs(test.x, scale), quantize_inputs(clamped, scale))
    ops = [n.op_type for n in onnx.load(str(clipped / "model.onnx")).graph.node]
    assert "Clip" in ops
    header = (clipped / "model.h").read_text()
    assert f"input clip: the float model clamps normalized inputs to +-{CLIP:g}" in header


def test_predict_from_raw_samples_agrees_across_backends(clipped: Path, tmp_path: Path) -> None:
    test = load_dataset("acsf1").test
    np.savez(tmp_path / "some.npz", X=test.x[:12], lengths=test.lengths[:12])
    out = {}
    for backend in ("c", "onnx-int8", "torch", "onnx"):
        path = tmp_path / f"{backend}.csv"
        args = ["predict", str(clipped), "--data", str(tmp_path / "some.npz"), "--backend", backend]
        r = CliRunner().invoke(main, [*args, "--out", str(path)])
        assert r.exit_code == 0, r.output
        out[backend] = path.read_text()
    assert out["c"] == out["onnx-int8"] and out["torch"] == out["onnx"]
    assert out["c"].count("\n") == 13


def test_the_float_model_reads_clamped_inputs() -> None:
    cfg = ModelConfig("many-to-one", 3, 8, 4, input_clip=1.5)
    torch.manual_seed(0)
    clipped = EdgeRNN(cfg).eval()
    free = EdgeRNN(ModelConfig("many-to-one", 3, 8, 4)).eval()
    free.load_state_dict(clipped.state_dict())
    x = torch.randn(5, 9, 3) * 3
    lengths = torch.tensor([9, 4, 7, 1, 9])
    got, _ = clipped(x, lengths)
    assert torch.equal(got, free(x.clamp(-1.5, 1.5), lengths)[0])
    assert not torch.allclose(got, free(x, lengths)[0])
    # The input scale follows the clip, not the calibration data's peak.
    qm = quantize_model(clipped, x.numpy() * 10, lengths.numpy())
    assert np.array_equal(qm.input_scale, np.full(3, 1.5 / 127, np.float32))
    bad = x.numpy().copy()
    bad[1, 2, 0] = np.nan  # the scale comes from the clip, but calibration data is still checked
    with pytest.raises(QuantizationError, match="NaN or Inf"):
        quantize_model(clipped, bad, lengths.numpy())
    ref = int_forward(qm, quantize_inputs(x.numpy(), qm.input_scale), lengths.numpy())
    clamped = int_forward(qm, quantize_inputs(x.clamp(-1.5, 1.5).numpy(), qm.input_scale), lengths.numpy())
    assert torch.equal(ref.logits, clamped.logits)


def test_config_round_trip_and_bad_values(tmp_path: Path) -> None:
    cfg = ModelConfig("many-to-one", 3, 8, 4, input_clip=3)
    assert cfg.input_clip == 3.0 and cfg.to_dict()["input_clip"] == 3.0
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    assert "input_clip" not in ModelConfig("many-to-one", 3, 8, 4).to_dict()  # old files keep their bytes
    for bad in (-1.0, float("nan"), float("inf"), True, "3"):
        with pytest.raises(InputError, match="input_clip must be a number"):
            ModelConfig("many-to-one", 3, 8, 4, input_clip=bad)
    with pytest.raises(InputError, match="token model"):
        ModelConfig("many-to-many", 4, 8, 5, vocab_size=5, embed_dim=4, input_clip=1.0)
    args = ["train", "--dataset", "acsf1", "--input-clip", "-1", "--out", str(tmp_path)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "Invalid value for '--input-clip'" in r.output
    # The long-sequence recipe clips at 3 standard deviations; the short bundled sets do not.
    assert DEFAULT_PRESET.model.input_clip == 3.0
