"""The integer ONNX graphs reproduce the integer contract bit for bit.

Golden vectors (computed independently of the project) through both graphs; 0 mismatches against
the torch reference `int_forward` for every task shape, token and feature input, 1-3 layers,
bidirectional, variable lengths, nonzero h0, adversarial inputs; greedy generation; the checker;
byte-for-byte determinism.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import edgernn.backends.onnx as oi
from edgernn.config import ModelConfig
from edgernn.contract.model import QuantCell, QuantizedModel
from edgernn.contract.quantize import quantize_model
from edgernn.contract.reference import IntResult, int_forward, int_generate
from edgernn.errors import InputError
from tests.conftest import random_model

GOLDEN = Path(__file__).parent / "data" / "rnn_int8_golden.npz"
SINGLE_CASES = ("small", "saturating", "extreme_inputs", "tiny", "wide")


# ---------------------------------------------------------------------------------------------
# Helpers


def sessions(qm: QuantizedModel) -> tuple[Any, Any]:
    return oi.make_session(oi.build_sequence_model(qm)), oi.make_session(oi.build_step_model(qm))


def mismatches(ref: IntResult, got: IntResult) -> dict[str, int]:
    """Per output, the number of differing integers (shape or dtype differences count as -1)."""
    out = {}
    for name in ("hidden", "h_n", "logits"):
        a, b = getattr(ref, name), getattr(got, name)
        same_kind = a.shape == b.shape and a.dtype == b.dtype
        out[name] = int((a != b).sum()) if same_kind else -1
    return out


def assert_parity(
    qm: QuantizedModel, x: np.ndarray, lens: np.ndarray, h0: np.ndarray | None = None
) -> IntResult:
    """int_forward == sequence graph == step graph, every integer."""
    seq, step = sessions(qm)
    ref = int_forward(qm, x, lens, h0)
    for name, got in (
        ("sequence", oi.run_sequence(seq, qm, x, lens, h0)),
        ("step", oi.run_steps(step, qm, x, lens, h0)),
    ):
        bad = mismatches(ref, got)
        assert bad == {"hidden": 0, "h_n": 0, "logits": 0}, (
            f"{name} graph vs int_forward: {bad} ({qm.config})"
        )
    return ref


def make_cfg(
    task: str,
    tokens: bool,
    layers: int,
    bidi: bool,
    inp: int = 5,
    hidden: int = 7,
    classes: int = 4,
    vocab: int = 13,
) -> ModelConfig:
    if task == "one-to-many":
        classes = vocab
    return ModelConfig(
        task=task,  # type: ignore[arg-type]
        input_size=inp,
        hidden_size=hidden,
        num_classes=classes,
        num_layers=layers,
        bidirectional=bidi,
        vocab_size=vocab if tokens else 0,
        embed_dim=inp if tokens else 0,
    )


def quantized(cfg: ModelConfig, seed: int = 0, scale: float = 1.0) -> QuantizedModel:
    """A randomly initialised EdgeRNN quantized with random calibration data."""
    model = random_model(cfg, seed=seed, scale=scale)
    if cfg.tokens:
        return quantize_model(model, None, None)
    rng = np.random.default_rng(seed + 1000)
    calib = rng.normal(size=(16, 11, cfg.input_size)).astype(np.float32) * rng.uniform(
        0.1, 3.0, cfg.input_size
    )
    return quantize_model(model, calib, rng.integers(1, 12, 16))


def random_inputs(
    qm: QuantizedModel, lengths: list[int], seed: int = 0, h0: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    cfg = qm.config
    rng = np.random.default_rng(seed)
    b, t = len(lengths), max(lengths)
    if cfg.tokens:
        x = rng.integers(0, cfg.vocab_size, size=(b, t)).astype(np.int64)
    else:
        x = rng.integers(-127, 128, size=(b, t, cfg.input_size)).astype(np.int8)
    state = None
    if h0:
        state = rng.integers(-127, 128, size=(cfg.num_layers * cfg.directions, b, cfg.hidden_size)).astype(
            np.int8
        )
    return x, np.asarray(lengths, dtype=np.int64), state


def golden_cell(d: Any, key: str) -> QuantCell:
    return QuantCell(
        w_ih=d[f"{key}/Wq_ih"],
        w_hh=d[f"{key}/Wq_hh"],
        bias=d[f"{key}/b_q"].astype(np.int32),
        m_x=d[f"{key}/M_x"],
        m_h=d[f"{key}/M_h"],
        shift=int(d[f"{key}/n"]),
    )


def golden_model(cells: list[QuantCell], lut: np.ndarray) -> QuantizedModel:
    """A many-to-many QuantizedModel around golden cells (the head is irrelevant to the vectors)."""
    hidden, inp = cells[0].w_hh.shape[0], cells[0].w_ih.shape[1]
    cfg = ModelConfig(
        "many-to-many", input_size=inp, hidden_size=hidden, num_classes=3, num_layers=len(cells)
    )
    rng = np.random.default_rng(0)
    return QuantizedModel(
        config=cfg,
        cells=tuple(cells),
        head_w=rng.integers(-127, 128, size=(3, hidden)).astype(np.int8),
        head_b=rng.integers(-1000, 1000, size=3).astype(np.int32),
        head_scale=1e-3,
        input_scale=np.ones(inp, np.float32),
        norm_mean=np.zeros(0, np.float32),
        norm_std=np.zeros(0, np.float32),
        lut=lut,
    )


@pytest.fixture(scope="module")
def golden() -> Any:
    return np.load(GOLDEN)


# ---------------------------------------------------------------------------------------------
# Golden vectors


def test_golden_lut_is_the_models_lut(golden: Any) -> None:
    qm = quantized(make_cfg("many-to-one", False, 1, False))
    assert np.array_equal(qm.lut, golden["lut"])
    assert int(golden["lut_zmin"]) == -512 and int(golden["zfrac"]) == 7


@pytest.mark.parametrize("case", SINGLE_CASES)
def test_golden_single_layer_through_both_graphs(golden: Any, case: str) -> None:
    qm = golden_model([golden_cell(golden, case)], golden["lut"])
    x, y, h0 = golden[f"{case}/x_q"], golden[f"{case}/y"], golden[f"{case}/h0"][None]
    b, t = x.shape[:2]
    full = np.full(b, t, dtype=np.int64)
    seq, step = sessions(qm)
    for got in (oi.run_sequence(seq, qm, x, full, h0), oi.run_steps(step, qm, x, full, h0)):
        assert np.array_equal(got.hidden[0].numpy(), y)
        assert np.array_equal(got.h_n[0].numpy(), y[:, -1])
    # Truncated lengths: the valid prefix is the same run, padding is 0, h_n is the last valid state.
    lens = np.maximum(1, (np.arange(b) * 7919) % t + 1).astype(np.int64)
    lens[0] = 1
    for got in (oi.run_sequence(seq, qm, x, lens, h0), oi.run_steps(step, qm, x, lens, h0)):
        for i, n in enumerate(lens):
            assert np.array_equal(got.hidden[0, i, :n].numpy(), y[i, :n])
            assert not got.hidden[0, i, n:].any()
            assert np.array_equal(got.h_n[0, i].numpy(), y[i, n - 1])


def test_golden_stacked_two_layers(golden: Any) -> None:
    qm = golden_model(
        [golden_cell(golden, "stacked/layer1"), golden_cell(golden, "stacked/layer2")], golden["lut"]
    )
    x = golden["stacked/x_q"]
    full = np.full(x.shape[0], x.shape[1], dtype=np.int64)
    seq, step = sessions(qm)
    for got in (oi.run_sequence(seq, qm, x, full), oi.run_steps(step, qm, x, full)):
        assert np.array_equal(got.hidden[0].numpy(), golden["stacked/y1"])
        assert np.array_equal(got.hidden[1].numpy(), golden["stacked/y2"])
        assert np.array_equal(got.h_n[1].numpy(), golden["stacked/y2"][:, -1])


# ---------------------------------------------------------------------------------------------
# Parity with int_forward on random models

GRID = [
    (task, tokens, layers, bidi)
    for task in ("many-to-one", "many-to-many", "one-to-many")
    for tokens in (False, True)
    for layers in (1, 2, 3)
    for bidi in (False, True)
    if task != "one-to-many" or (tokens and not bidi)
]


@pytest.mark.parametrize(("task", "tokens", "layers", "bidi"), GRID)
def test_parity_every_task_shape(task: str, tokens: bool, layers: int, bidi: bool) -> None:
    qm = quantized(make_cfg(task, tokens, layers, bidi), seed=layers)
    x, lens, h0 = random_inputs(qm, [9, 1, 5, 9, 2, 7], seed=layers)
    ref = assert_parity(qm, x, lens, h0)
    assert ref.hidden.abs().max() > 0


@pytest.mark.parametrize("bidi", [False, True])
@pytest.mark.parametrize("task", ["many-to-one", "many-to-many"])
def test_parity_single_step_sequences(task: str, bidi: bool) -> None:
    qm = quantized(make_cfg(task, False, 2, bidi))
    assert_parity(qm, *random_inputs(qm, [1, 1, 1]))
    assert_parity(qm, *random_inputs(qm, [1], h0=False))


def test_torch_tensors_are_accepted() -> None:
    qm = quantized(make_cfg("many-to-many", True, 2, True))
    x, lens, h0 = random_inputs(qm, [4, 6])
    seq, _ = sessions(qm)
    got = oi.run_sequence(seq, qm, torch.from_numpy(x), torch.from_numpy(lens), torch.from_numpy(h0))
    assert mismatches(int_forward(qm, x, lens, h0), got) == {"hidden": 0, "h_n": 0, "logits": 0}


@pytest.mark.parametrize("bidi", [False, True])
@pytest.mark.parametrize("tokens", [False, True])
def test_parity_adversarial_saturating(tokens: bool, bidi: bool) -> None:
    """Weights 4x the default init and inputs all +-127: accumulators and z saturate."""
    qm = quantized(make_cfg("many-to-many", tokens, 2, bidi, inp=16, hidden=24), seed=3, scale=4.0)
    lengths = [40, 40, 17, 1, 33]
    x, lens, _ = random_inputs(qm, lengths, seed=5, h0=False)
    if not tokens:
        sign = np.where(np.random.default_rng(6).random(x.shape) < 0.5, -127, 127)
        x = sign.astype(np.int8)
        x[0], x[1] = 127, -127  # constant extremes too
    h0 = np.full((qm.config.num_layers * qm.config.directions, len(lengths), 24), -127, dtype=np.int8)
    ref = assert_parity(qm, x, lens, h0)
    saturated = (ref.hidden.abs() == 127).float().mean()
    assert saturated > 0.2, f"the adversarial case must actually saturate ({saturated:.2f})"


def test_parity_long_sequences() -> None:
    qm = quantized(make_cfg("many-to-one", False, 1, True, inp=12, hidden=32), scale=2.0)
    assert_parity(qm, *random_inputs(qm, [300, 1, 157, 299], seed=9))


# ---------------------------------------------------------------------------------------------
# Generation


@pytest.mark.parametrize("layers", [1, 2])
def test_greedy_generation_matches_int_generate(layers: int) -> None:
    qm = quantized(make_cfg("one-to-many", True, layers, False, vocab=11), seed=layers, scale=2.0)
    _, step = sessions(qm)
    for start in range(qm.config.vocab_size):
        for end in (0, 3):
            assert oi.generate_steps(step, qm, start, end, 25) == int_generate(qm, start, end, 25)


def test_generation_ties_pick_the_lowest_index() -> None:
    qm = quantized(make_cfg("one-to-many", True, 1, False, vocab=7))
    flat = dataclasses.replace(qm, head_w=np.zeros_like(qm.head_w), head_b=np.full_like(qm.head_b, 5))
    _, step = sessions(flat)
    assert oi.generate_steps(step, flat, 2, 6, 8) == int_generate(flat, 2, 6, 8) == [0] * 8


def test_generation_refuses_non_generative_models() -> None:
    qm = quantized(make_cfg("many-to-one", False, 1, False))
    with pytest.raises(InputError):
        oi.generate_steps(sessions(qm)[1], qm, 0, 1, 3)


# ---------------------------------------------------------------------------------------------
# The files themselves


@pytest.mark.parametrize(
    ("task", "tokens", "layers", "bidi"),
    [
        ("many-to-one", False, 1, False),
        ("many-to-one", False, 3, True),
        ("many-to-many", True, 2, True),
        ("one-to-many", True, 3, False),
    ],
)
def test_checker_opset_and_interface(task: str, tokens: bool, layers: int, bidi: bool) -> None:
    qm = quantized(make_cfg(task, tokens, layers, bidi))
    for model in (oi.build_sequence_model(qm), oi.build_step_model(qm)):
        onnx.checker.check_model(model, full_check=True)
        assert model.producer_name == "edgernn"
        assert [(o.domain, o.version) for o in model.opset_import] == [("", oi.OPSET)]
        ops = {n.op_type for n in model.graph.node}
        assert not ops & {"MatMulInteger", "QLinearMatMul", "DequantizeLinear"}
        floats = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}
        assert all(t.data_type not in floats for t in model.graph.initializer)
    seq = oi.build_sequence_model(qm)
    assert [i.name for i in seq.graph.input] == ["tokens" if tokens else "x", "lengths", "h0"]
    assert [o.name for o in seq.graph.output] == ["logits", "h_n", "hidden"]
    assert any(n.op_type == "Scan" for n in seq.graph.node)


def test_bytes_are_deterministic(tmp_path: Path) -> None:
    qm = quantized(make_cfg("many-to-many", False, 2, True))
    again = QuantizedModel.from_json(qm.to_json())  # an equal model rebuilt from its text form
    for build in (oi.build_sequence_model, oi.build_step_model):
        a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
        oi.save_model(build(qm), a)
        oi.save_model(build(again), b)
        assert a.read_bytes() == b.read_bytes() == build(qm).SerializeToString(deterministic=True)
        oi.save_model(build(qm), a)  # overwrite in place
        assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.onnx", "b.onnx"]  # no temp files left
    oi.save_model(oi.build_sequence_model(qm), tmp_path / "seq.onnx")
    x, lens, h0 = random_inputs(qm, [5, 3])
    got = oi.run_sequence(oi.make_session(tmp_path / "seq.onnx"), qm, x, lens, h0)
    assert mismatches(int_forward(qm, x, lens, h0), got) == {"hidden": 0, "h_n": 0, "logits": 0}


def test_drivers_refuse_bad_inputs() -> None:
    qm = quantized(make_cfg("many-to-one", True, 1, False))
    seq, step = sessions(qm)
    x, lens, _ = random_inputs(qm, [4, 2])
    for run in (oi.run_sequence, oi.run_steps):
        with pytest.raises(InputError):
            run(seq if run is oi.run_sequence else step, qm, x, np.array([4, 0]))
        with pytest.raises(InputError):
            run(seq if run is oi.run_sequence else step, qm, x, np.array([5, 2]))
        with pytest.raises(InputError):
            run(seq if run is oi.run_sequence else step, qm, x + qm.config.vocab_size, lens)


@pytest.mark.parametrize("bidi", [False, True])
def test_graphs_themselves_refuse_a_negative_token(bidi: bool) -> None:
    """A plain ORT user has no driver to check ids. ONNX Gather reads index -1 as the last row, so
    without the graphs' own check token -1 answered as the last token did, where C returns
    EDGERNN_ERR_TOKEN: now every token graph, the float one included, fails on it."""
    from edgernn.backends.onnx.float_graph import float_onnx_bytes, session

    cfg = make_cfg("many-to-one", True, 1, bidi)
    qm = quantized(cfg)
    seq, step = sessions(qm)
    floats = session(float_onnx_bytes(random_model(cfg, seed=0)))
    x, lens, h0 = random_inputs(qm, [4, 2])
    assert h0 is not None
    runs = {
        "sequence": lambda t: seq.run(None, {"tokens": t, "lengths": lens, "h0": h0}),
        "float": lambda t: floats.run(None, {"tokens": t, "lengths": lens, "h0": h0.astype(np.float32)}),
        "step": lambda t: step.run(None, {"token": t[:, :2] if bidi else t[:, 0], "h": h0}),
    }
    for run in runs.values():
        run(x)  # the valid ids run
        bad = x.copy()
        bad[0, 0] = -1
        with pytest.raises(Exception, match=r"indices element out of data bounds"):
            run(bad)


# ---------------------------------------------------------------------------------------------
# Property test over random configurations


@st.composite
def configurations(draw: st.DrawFn) -> tuple[ModelConfig, float, list[int], int]:
    tokens = draw(st.booleans())
    task = draw(st.sampled_from(["many-to-one", "many-to-many"] + (["one-to-many"] if tokens else [])))
    bidi = task != "one-to-many" and draw(st.booleans())
    cfg = make_cfg(
        task,
        tokens,
        layers=draw(st.integers(1, 3)),
        bidi=bidi,
        inp=draw(st.integers(1, 64)),
        hidden=draw(st.integers(1, 128)),
        classes=draw(st.integers(1, 10)),
        vocab=draw(st.integers(2, 40)),
    )
    lengths = draw(st.lists(st.integers(1, 200), min_size=1, max_size=3))
    return cfg, draw(st.sampled_from([1.0, 4.0])), lengths, draw(st.integers(0, 2**16))


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configurations())
def test_property_random_configurations(case: tuple[ModelConfig, float, list[int], int]) -> None:
    cfg, scale, lengths, seed = case
    qm = quantized(cfg, seed=seed, scale=scale)
    assert_parity(qm, *random_inputs(qm, lengths, seed=seed, h0=seed % 2 == 0))


_EMPTY_BATCH_RUN = """
import json, sys
import numpy as np, onnxruntime as ort
feeds = dict(np.load(sys.argv[2]))
out = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"]).run(None, feeds)
np.savez(sys.argv[3], *out)
"""


@pytest.mark.parametrize(
    "case", ["many-to-one", "many-to-many tokens, 2 layers, bidirectional", "one-to-many", "framed"]
)
def test_a_batch_with_no_step_runs_none(case: str, tmp_path: Path) -> None:
    """ONNX Runtime's Scan fails on a time axis of length 0 and, with a batch of two, kills the
    process (SIGFPE): x with T = 0, or a framed batch without a whole frame. The graph appends a step
    no length reaches, so nothing runs: the state stays h0 and the head reads it, as with T = 1 and
    lengths 0 (a case Scan handles); per-step outputs have the T = 0 steps. Run in a child process,
    which such a crash would kill instead of the test worker."""
    frame = 3 if case == "framed" else 1
    if case == "framed":
        cfg = dataclasses.replace(make_cfg("many-to-one", False, 1, False, inp=6), frame=frame)
    elif case.startswith("many-to-many"):
        cfg = make_cfg("many-to-many", True, 2, True)
    else:
        cfg = make_cfg(case, case == "one-to-many", 1, False)
    if case == "framed":  # calibrated on samples (cfg.sample_size features), not steps
        calib = np.random.default_rng(2).normal(size=(16, 12, cfg.sample_size)).astype(np.float32)
        qm = quantize_model(random_model(cfg), calib, np.full(16, 12))
    else:
        qm = quantized(cfg)
    graphs = {"int8": oi.build_sequence_model(qm)}
    if not cfg.tokens:
        graphs["raw"] = oi.build_raw_sequence_model(qm)
    x1, _, h0 = random_inputs(qm, [frame, frame])
    assert h0 is not None and h0.any()
    if case == "framed":  # samples of cfg.sample_size features, not steps
        x1 = np.random.default_rng(1).integers(-127, 128, size=(2, frame, cfg.sample_size)).astype(np.int8)
    for name, model in graphs.items():
        onnx.save(model, tmp_path / f"{name}.onnx")
        x = x1.astype(np.float32) if name == "raw" else x1
        x_name = "tokens" if cfg.tokens else "x"
        # The same graph on one whole step that no length reaches (frame - 1 samples: not a frame).
        ref = oi.make_session(model).run(None, {x_name: x, "lengths": np.zeros(2, np.int64), "h0": h0})
        empty = x[:, : frame - 1]
        np.savez(
            tmp_path / "feeds.npz", **{x_name: empty, "lengths": np.full(2, frame - 1, np.int64), "h0": h0}
        )
        run = subprocess.run(
            [
                sys.executable,
                "-c",
                _EMPTY_BATCH_RUN,
                str(tmp_path / f"{name}.onnx"),
                str(tmp_path / "feeds.npz"),
                str(tmp_path / "out.npz"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert run.returncode == 0, f"{case}, {name}: exit {run.returncode}, {run.stderr[-400:]}"
        got = np.load(tmp_path / "out.npz")
        logits, h_n, hidden = (got[f"arr_{i}"] for i in range(3))
        assert np.array_equal(h_n, h0), f"{case}, {name}: the state moved"
        assert hidden.shape[2] == 0 and hidden.shape[:2] == ref[2].shape[:2]
        if cfg.task == "many-to-one":
            assert np.array_equal(logits, ref[0]) and ref[0].any(), f"{case}, {name}: not the head on h0"
        else:
            assert logits.shape == (2, 0, cfg.num_classes)
