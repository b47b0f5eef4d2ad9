"""Float ONNX: standard RNN op, checker-clean, torch parity <= 1e-5, streaming chunk by chunk."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from edgernn.backends.onnx.float_graph import float_onnx_bytes, run_float, session
from edgernn.config import ModelConfig
from tests.conftest import padded_batch, random_model

TOL = 1e-5
CONFIGS = [
    ModelConfig("many-to-one", 6, 12, 4, num_layers=2, bidirectional=True),
    ModelConfig("many-to-many", 6, 12, 4, num_layers=2, bidirectional=True),
    ModelConfig("many-to-one", 6, 12, 2, num_layers=2, bidirectional=True, vocab_size=20, embed_dim=6),
    ModelConfig("one-to-many", 8, 16, 20, vocab_size=20, embed_dim=8),
]


@pytest.mark.parametrize(
    "cfg", CONFIGS, ids=lambda c: f"{c.task}-L{c.num_layers}-bi{int(c.bidirectional)}-tok{c.vocab_size}"
)
def test_float_parity_variable_lengths(cfg):
    model = random_model(cfg, seed=2)
    blob = float_onnx_bytes(model)
    proto = onnx.load_from_string(blob)
    assert "RNN" in {n.op_type for n in proto.graph.node}  # the standard op, not an unrolled loop
    sess = session(blob)
    for lengths in ([17, 4, 1, 9], [3], [30, 30]):  # batch and length differ from the export's example
        x, lens = padded_batch(cfg, lengths, seed=len(lengths))
        h0 = (
            np.random.default_rng(0)
            .uniform(-0.5, 0.5, size=(cfg.num_layers * cfg.directions, len(lengths), cfg.hidden_size))
            .astype(np.float32)
        )
        with torch.no_grad():
            t_logits, t_h = model(torch.from_numpy(x), torch.from_numpy(lens), torch.from_numpy(h0))
        o_logits, o_h = run_float(sess, x, lens, h0)
        valid = slice(None) if cfg.task == "many-to-one" else np.arange(max(lengths))[None, :] < lens[:, None]
        assert np.abs(o_logits[valid] - t_logits.numpy()[valid]).max() <= TOL
        assert np.abs(o_h - t_h.numpy()).max() <= TOL


@pytest.mark.parametrize(
    "cfg",
    [
        ModelConfig("many-to-many", 6, 12, 4, num_layers=2),
        ModelConfig("one-to-many", 8, 16, 20, vocab_size=20, embed_dim=8),
    ],
)
def test_streaming_in_three_chunks_equals_whole_sequence(cfg):
    model = random_model(cfg, seed=4)
    sess = session(float_onnx_bytes(model))
    x, lens = padded_batch(cfg, [40, 40], seed=9)
    h0 = np.zeros((cfg.num_layers, 2, cfg.hidden_size), np.float32)
    whole_logits, whole_h = run_float(sess, x, lens, h0)
    h, parts = h0, []
    for lo, hi in ((0, 7), (7, 25), (25, 40)):
        logits, h = run_float(sess, x[:, lo:hi], np.full(2, hi - lo, np.int64), h)
        parts.append(logits)
    assert np.abs(np.concatenate(parts, axis=1) - whole_logits).max() <= TOL
    assert np.abs(h - whole_h).max() <= TOL


def test_export_is_deterministic():
    model = random_model(CONFIGS[0], seed=1)
    assert float_onnx_bytes(model) == float_onnx_bytes(model)


def test_verify_float_tolerance_scales_with_the_outputs_and_still_catches_a_wrong_weight(tmp_path):
    """verify's float check: rounding-level differences pass at any output scale, a weight changed
    by 1e-3 of its size does not."""
    from edgernn.backends.onnx.float_graph import export_float_onnx
    from edgernn.verify import FLOAT_TOLERANCE, float_parity

    cfg = ModelConfig("many-to-many", 6, 12, 4)
    model = random_model(cfg, seed=3)
    with torch.no_grad():
        model.head.weight.mul_(50.0)  # logits of magnitude ~10-100: where a fixed 1e-5 is too tight
    export_float_onnx(model, tmp_path / "model.onnx")
    x, lens = padded_batch(cfg, [300, 120, 7], seed=1)
    same = float_parity(tmp_path, model, x, lens)
    assert same["passed"] and same["tolerance"] > FLOAT_TOLERANCE, same
    with torch.no_grad():
        model.head.weight[0, 0] += 1e-3 * float(model.head.weight.abs().max())
    wrong = float_parity(tmp_path, model, x, lens)
    assert not wrong["passed"] and wrong["max_abs_diff"] > 10 * wrong["tolerance"], wrong
