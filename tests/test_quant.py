"""The integer contract in the torch reference: golden vectors, bounds, determinism, the float rule."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from edgernn.config import ModelConfig
from edgernn.contract.constants import round_half_away, tanh_lut
from edgernn.contract.meta import ModelMeta
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_cell, quantize_inputs, quantize_model
from edgernn.contract.reference import cell_step, input_accumulator, int_forward
from edgernn.errors import InputError, QuantizationError
from tests.conftest import padded_batch, random_model

EXPORT = Path(__file__).resolve().parent.parent / "export" / "japanese_vowels" / "model.int8.json"
GOLDEN = np.load(Path(__file__).parent / "data" / "rnn_int8_golden.npz")
SINGLE = [str(c) for c in GOLDEN["cases"] if c != "stacked"]


def test_lut_matches_golden():
    assert np.array_equal(tanh_lut(), GOLDEN["lut"])
    assert int(GOLDEN["lut_zmin"]) == -512 and int(GOLDEN["zfrac"]) == 7


@pytest.mark.parametrize("case", SINGLE)
def test_conversion_and_every_hidden_state_match_golden(case):
    g = {k.split("/", 1)[1]: GOLDEN[k] for k in GOLDEN.files if k.startswith(case + "/")}
    cell = quantize_cell(g["W_ih"], g["W_hh"], g["b"], float(g["s_x"]))
    for mine, theirs in (
        ("w_ih", "Wq_ih"),
        ("w_hh", "Wq_hh"),
        ("bias", "b_q"),
        ("m_x", "M_x"),
        ("m_h", "M_h"),
    ):
        assert np.array_equal(getattr(cell, mine), g[theirs]), mine
    assert cell.shift == int(g["n"])
    lut = torch.from_numpy(tanh_lut().astype(np.int64))
    acc = input_accumulator(cell, torch.from_numpy(g["x_q"].astype(np.int64)))
    h = torch.from_numpy(g["h0"].astype(np.int64))
    ys = []
    for t in range(acc.shape[1]):
        h = cell_step(cell, acc[:, t], h, lut)
        ys.append(h)
    assert np.array_equal(torch.stack(ys, 1).numpy(), g["y"])


def test_round_half_away_from_zero():
    assert list(round_half_away(np.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999]))) == [
        1,
        2,
        3,
        -1,
        -2,
        -3,
        0,
    ]


def test_quantize_inputs_saturates_and_rounds_ties_away():
    s = np.array([0.5, 1.0], np.float32)
    x = np.array([[0.25, 126.5], [-0.25, -1000.0], [63.75, 127.49]], np.float32)
    assert quantize_inputs(x, s).tolist() == [[1, 127], [-1, -127], [127, 127]]
    special = np.array([[np.nan, np.inf], [-np.inf, -np.nan]], np.float32)
    assert quantize_inputs(special, s).tolist() == [[0, 127], [-127, 0]]


def test_quantized_model_round_trips_through_json_deterministically():
    cfg = ModelConfig("many-to-one", 5, 9, 3, num_layers=2, bidirectional=True)
    x, lens = padded_batch(cfg, [7, 3, 5])
    qm = quantize_model(random_model(cfg), x, lens)
    text = qm.to_json()
    again = QuantizedModel.from_json(text)
    assert again.to_json() == text
    xq = quantize_inputs(x, qm.input_scale)
    a, b = int_forward(qm, xq, lens), int_forward(again, xq, lens)
    assert torch.equal(a.hidden, b.hidden) and torch.equal(a.logits, b.logits)


def test_committed_model_file_reads_typed_meta_and_rewrites_byte_identically():
    text = EXPORT.read_text()
    qm = QuantizedModel.from_json(text)
    assert isinstance(qm.meta, ModelMeta) and qm.to_json() == text
    assert qm.meta.dataset == "japanese_vowels" and qm.meta.c_prefix == "japanese_vowels"
    assert qm.meta.vocab == () and len(qm.meta.class_names or ()) == 9 and qm.meta.end_token is None
    assert 0.9 <= (qm.meta.int8_accuracy or 0.0) <= 1.0
    # The mapping view lists the recorded fields: exactly the keys of the file.
    assert dict(qm.meta.items()).keys() == json.loads(text)["meta"].keys()


def _with_meta(meta_json: object) -> str:
    cfg = ModelConfig("one-to-many", 3, 6, 5, vocab_size=5, embed_dim=3)
    doc = json.loads(quantize_model(random_model(cfg), None, None).to_json())
    doc["meta"] = meta_json
    return json.dumps(doc)


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"dataset": "x", "comment": "hi"}, "unknown key 'comment'"),
        ({"end_token": "2"}, "end_token: expected a non-negative integer"),
        ({"end_token": True}, "end_token: expected a non-negative integer"),
        ({"start_token": -1}, "start_token: expected a non-negative integer"),
        ({"vocab": "abc"}, "vocab: expected a list of strings"),
        ({"int8_accuracy": "0.9"}, "int8_accuracy: expected a number"),
        ({"c_prefix": 3}, "c_prefix: expected a string"),
        ([], "must be a JSON object"),
    ],
)
def test_bad_meta_in_a_model_file_is_refused(meta: object, message: str):
    with pytest.raises(InputError, match=message):
        QuantizedModel.from_json(_with_meta(meta))


def test_meta_null_means_not_recorded_and_is_dropped_on_rewrite():
    qm = QuantizedModel.from_json(_with_meta({"source": None, "start_token": 1, "end_token": 2}))
    assert qm.meta.source is None and "source" not in qm.meta
    assert json.loads(qm.to_json())["meta"] == {"start_token": 1, "end_token": 2}


def test_meta_given_as_a_mapping_is_checked_and_typed():
    cfg = ModelConfig("one-to-many", 3, 6, 5, vocab_size=5, embed_dim=3)
    qm = quantize_model(
        random_model(cfg), None, None, meta={"vocab": ["<pad>", "a"], "end_token": np.int64(2)}
    )
    assert qm.meta == ModelMeta(vocab=("<pad>", "a"), end_token=2)
    assert dataclasses.replace(qm, meta={"dataset": "d"}).meta.dataset == "d"
    with pytest.raises(InputError, match="unknown key"):
        dataclasses.replace(qm, meta={"datset": "d"})


def test_weights_that_break_the_bounds_are_refused():
    cfg = ModelConfig("many-to-one", 4, 8, 3)
    model = random_model(cfg)
    x, lens = padded_batch(cfg, [5, 5])
    with torch.no_grad():
        model.rnn.weight_hh_l0.mul_(1e12)  # m_h = s_hh / (127 s_z) needs a multiplier >= 2^30 at n = 0
    with pytest.raises(QuantizationError, match="2\\^30"):
        quantize_model(model, x, lens)


def test_nan_weights_are_refused():
    cfg = ModelConfig("many-to-one", 4, 8, 3)
    model = random_model(cfg)
    with torch.no_grad():
        model.head.weight[0, 0] = float("inf")
    x, lens = padded_batch(cfg, [5])
    with pytest.raises(QuantizationError, match="NaN or Inf"):
        quantize_model(model, x, lens)


def test_int8_tracks_float_on_a_random_model():
    """The contract is an approximation of tanh: final states within a few LSB of the float RNN."""
    cfg = ModelConfig("many-to-one", 6, 16, 4)
    model = random_model(cfg, seed=3)
    x, lens = padded_batch(cfg, [20] * 8, seed=2)
    qm = quantize_model(model, x, lens)
    r = int_forward(qm, quantize_inputs(x, qm.input_scale), lens)
    with torch.no_grad():
        _, h = model(torch.from_numpy(x), torch.from_numpy(lens))
    err = np.abs(r.h_n.numpy() / 127.0 - h.numpy())
    assert err.max() < 0.06 and err.mean() < 0.01


def test_padding_does_not_change_integer_results():
    cfg = ModelConfig("many-to-many", 5, 8, 3, num_layers=2, bidirectional=True)
    x, lens = padded_batch(cfg, [9, 4, 1])
    qm = quantize_model(random_model(cfg), x, lens)
    xq = quantize_inputs(x, qm.input_scale)
    full = int_forward(qm, xq, lens)
    for i, n in enumerate(lens):
        alone = int_forward(qm, xq[i : i + 1, :n], lens[i : i + 1])
        assert torch.equal(full.hidden[:, i, :n], alone.hidden[:, 0])
        assert torch.equal(full.h_n[:, i], alone.h_n[:, 0])
        assert torch.equal(full.logits[i, :n], alone.logits[0])
        assert not full.hidden[:, i, n:].any() and not full.logits[i, n:].any()
