"""The raw-input ONNX graphs and the metadata every graph carries (docs/onnx.md).

- the float -> int8 rule inside the integer raw graphs is bit-identical to the C float wrapper
  (edgernn_quantize_input, via CModel.quantize) on ties, near-ties, +-inf, NaN, huge values,
  denormals and random bit patterns;
- the whole raw graphs give the int8 graphs' integers on quantize_inputs((raw - mean) / std);
- model.onnx (normalization inside) on raw features gives the bare float graph's floats on the
  normalized ones; verify's float check feeds it raw features (and an older, normalized-input
  model.onnx normalized ones);
- metadata_props: documented keys, values that round-trip to the graph's float32 constants,
  deterministic bytes;
- an export writes and lists the raw graphs; examples/onnxruntime_stream.py, run in a venv
  without edgernn, prints the C's class and logits.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import edgernn.backends.onnx as oi
from edgernn.backends.c.codegen import generate_header
from edgernn.backends.c.host import CModel, compile_model
from edgernn.backends.onnx.float_graph import float_onnx_bytes, run_float, session
from edgernn.backends.onnx.metadata import CONTRACT, read_props
from edgernn.backends.onnx.raw_input import build_raw_sequence_model, build_raw_step_model
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_inputs
from edgernn.synthetic import random_quantized, small_config

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "onnxruntime_stream.py"
SCALES = np.array([1.0, 0.5, 0.25, 2.0, 0.3, 1e-3, 7.7, 0.0123], np.float32)  # the first four: exact 1/s
META = {"class_names": ["a", "b", "c", "d"], "source_checkpoint_sha256": "ab" * 32}


def make_qm(
    task: str = "many-to-one",
    inp: int = 8,
    hidden: int = 6,
    layers: int = 1,
    bi: bool = False,
    classes: int = 4,
    vocab: int = 0,
    seed: int = 0,
    norm: bool = True,
) -> tuple[Any, QuantizedModel]:
    cfg = small_config(task, inp, hidden, layers, bi, classes, vocab)
    meta = {**META, "class_names": [f"c{i}" for i in range(classes)]} if not vocab else {}
    return random_quantized(cfg, seed, 1.0, norm, meta)


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("raw_cbuild")


def cmodel(qm: QuantizedModel, workdir: Path, prefix: str) -> CModel:
    text = generate_header(qm, prefix)
    path = workdir / f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:16]}.h"
    if not path.exists():
        path.write_text(text)
    return compile_model(path, prefix, workdir)


def quantizer(qm: QuantizedModel) -> Any:
    """A session on the raw step graph with its internal `x_q` (the quantized input) as an output."""
    model = build_raw_step_model(qm)
    model.graph.output.append(helper.make_tensor_value_info("x_q", TensorProto.INT8, None))
    sess = oi.make_session(model)

    def run(raw: np.ndarray) -> np.ndarray:
        flat = raw.reshape(-1, raw.shape[-1]).astype(np.float32)
        h = np.zeros((qm.config.num_layers, len(flat), qm.config.hidden_size), np.int8)
        return sess.run(["x_q"], {"x": flat, "h": h})[0].reshape(raw.shape)

    return run


def edge_values() -> np.ndarray:
    """Ties k + 0.5 and their float32 neighbours, saturation edges, specials."""
    ties = (np.arange(-140, 141) + 0.5).astype(np.float32)
    near = np.concatenate([np.nextafter(ties, np.float32(np.inf)), np.nextafter(ties, np.float32(-np.inf))])
    specials = np.array(
        [0.0, -0.0, 0.49999997, -0.49999997, 0.5, -0.5, 126.49999, -126.49999, 126.5, -126.5, 127.0,
         -127.0, 127.5, -127.5, 128.0, 2.0**23, -(2.0**23), 2.0**24 + 2, 1e30, -1e30, 3.4e38, -3.4e38,
         np.inf, -np.inf, np.nan, 1e-45, -1e-45, 1e-40, 1.17e-38],
        np.float32,
    )  # fmt: skip
    return np.concatenate([ties, ties / 2, ties / 4, ties * 2, near, specials]).astype(np.float32)


def random_bits(n: int, width: int, seed: int) -> np.ndarray:
    """Every float32 bit pattern is possible: NaN payloads, infinities, denormals, huge values."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2**32, size=(n, width), dtype=np.uint64).astype(np.uint32).view(np.float32)


# ---------------------------------------------------------------------------------------------
# The float -> int8 rule, against C


def test_graph_quantizer_equals_c_on_ties_and_specials(workdir: Path) -> None:
    """No normalization and scales whose reciprocal is exact: t = raw / s lands on exact ties."""
    _, qm = make_qm(inp=8, seed=2, norm=False)
    qm = dataclasses.replace(qm, input_scale=SCALES)
    cm = cmodel(qm, workdir, "rq")
    vals = edge_values()
    with np.errstate(over="ignore"):
        raw = np.repeat(vals[:, None], 8, axis=1) * SCALES
    rng = np.random.default_rng(0)
    raw = np.concatenate(
        [raw, rng.normal(scale=200, size=(500, 8)).astype(np.float32), random_bits(4000, 8, 1)]
    ).astype(np.float32)
    got, want = quantizer(qm)(raw), cm.quantize(raw)
    assert got.dtype == np.int8 and got.shape == want.shape
    assert int((got != want).sum()) == 0, [
        (raw[tuple(i)], got[tuple(i)], want[tuple(i)]) for i in np.argwhere(got != want)[:5]
    ]
    with np.errstate(invalid="ignore", over="ignore"):
        assert np.array_equal(got, quantize_inputs(raw, qm.input_scale))
    col0 = got[: len(vals), 0]  # scale 1: the rule itself, value by value
    assert col0[vals.tolist().index(np.float32(0.49999997))] == 0
    assert (
        col0[vals.tolist().index(np.float32(2.5))] == 3 and col0[vals.tolist().index(np.float32(-2.5))] == -3
    )
    assert col0[-4] == 0  # NaN


def test_graph_quantizer_normalizes_like_c(workdir: Path) -> None:
    _, qm = make_qm(inp=12, hidden=8, seed=4, norm=True)
    cm = cmodel(qm, workdir, "rn")
    rng = np.random.default_rng(4)
    raw = np.concatenate(
        [
            rng.normal(scale=3, size=(3000, 12)).astype(np.float32),
            (rng.normal(size=(500, 12)) * 1e6).astype(np.float32),
            random_bits(3000, 12, 5),
            np.repeat(edge_values()[:, None], 12, axis=1),
        ]
    )
    got, want = quantizer(qm)(raw), cm.quantize(raw)
    assert int((got != want).sum()) == 0, np.argwhere(got != want)[:5]
    with np.errstate(invalid="ignore", over="ignore"):
        normed = ((raw - qm.norm_mean) / qm.norm_std).astype(np.float32)
        assert np.array_equal(got, quantize_inputs(normed, qm.input_scale))


# ---------------------------------------------------------------------------------------------
# Whole graphs: raw in == int8 graph on quantize_inputs(normalized)


def normalized_q(qm: QuantizedModel, raw: np.ndarray) -> np.ndarray:
    if qm.norm_mean.size:
        raw = ((raw - qm.norm_mean) / qm.norm_std).astype(np.float32)
    return quantize_inputs(raw, qm.input_scale)


CASES = [
    ("many-to-one", 1, False, True),
    ("many-to-one", 2, False, False),
    ("many-to-many", 2, True, True),
    ("many-to-one", 3, True, True),
    ("many-to-many", 1, False, True),
]


@pytest.mark.parametrize(("task", "layers", "bi", "norm"), CASES)
def test_raw_sequence_graph_equals_int8_graph(task: str, layers: bool, bi: bool, norm: bool) -> None:
    _, qm = make_qm(task, layers=int(layers), bi=bi, norm=norm, seed=layers)
    rng = np.random.default_rng(7)
    b, t, i = 5, 9, qm.config.input_size
    raw = (rng.normal(size=(b, t, i)) * 4).astype(np.float32)
    raw[0, 0, :3] = [np.nan, np.inf, -1e30]
    lens = np.array([9, 1, 4, 9, 6])
    rows = layers * (2 if bi else 1)
    h0 = rng.integers(-127, 128, size=(rows, b, qm.config.hidden_size)).astype(np.int8)
    seq_raw = oi.make_session(build_raw_sequence_model(qm))
    seq_int = oi.make_session(oi.build_sequence_model(qm))
    got = seq_raw.run(None, {"x": raw, "lengths": lens, "h0": h0})
    want = seq_int.run(None, {"x": normalized_q(qm, raw), "lengths": lens, "h0": h0})
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype and np.array_equal(g, w)
    assert np.array_equal(
        oi.run_sequence(seq_int, qm, normalized_q(qm, raw), lens, h0).logits.numpy(), got[0]
    )


@pytest.mark.parametrize(("task", "layers", "bi", "norm"), CASES)
def test_raw_step_graph_equals_int8_step_graph(task: str, layers: int, bi: bool, norm: bool) -> None:
    _, qm = make_qm(task, layers=layers, bi=bi, norm=norm, seed=layers + 10)
    rng = np.random.default_rng(8)
    b, i, hsz, d = 4, qm.config.input_size, qm.config.hidden_size, 2 if bi else 1
    step_raw = oi.make_session(build_raw_step_model(qm))
    step_int = oi.make_session(oi.build_step_model(qm))
    lead = (b,) if d == 1 else (b, 2)
    h = np.zeros((layers * d, b, hsz), np.int8)
    extra: dict[str, np.ndarray] = {}
    for _ in range(6):  # a short stream, state carried
        raw = (rng.normal(size=(*lead, i)) * 4).astype(np.float32)
        if bi and layers > 1:
            extra = {"layer_in": rng.integers(-127, 128, size=(layers - 1, b, 2, 2 * hsz)).astype(np.int8)}
        got = step_raw.run(None, {"x": raw, "h": h, **extra})
        want = step_int.run(None, {"x": normalized_q(qm, raw), "h": h, **extra})
        for g, w in zip(got, want, strict=True):
            assert g.dtype == w.dtype and np.array_equal(g, w)
        h = got[0]


def test_token_models_raw_graphs_are_their_token_graphs() -> None:
    _, qm = make_qm("many-to-one", vocab=11, inp=5, norm=False)
    assert qm.config.tokens
    for raw, plain in (
        (build_raw_sequence_model(qm), oi.build_sequence_model(qm)),
        (build_raw_step_model(qm), oi.build_step_model(qm)),
    ):
        assert raw.SerializeToString() == plain.SerializeToString()
        assert read_props(raw)["edgernn.input"] == "tokens"
        assert "edgernn.input.mean" not in read_props(raw)


# ---------------------------------------------------------------------------------------------
# The float graph with the normalization inside


@pytest.mark.parametrize("norm", [True, False])
def test_float_graph_on_raw_equals_bare_graph_on_normalized(norm: bool) -> None:
    model, qm = make_qm("many-to-many", layers=2, norm=norm, seed=3)
    plain = session(float_onnx_bytes(model))  # the torch model's own graph: normalized features in
    raw_sess = session(float_onnx_bytes(model, qm))  # model.onnx: raw features in
    rng = np.random.default_rng(9)
    raw = (rng.normal(size=(3, 7, qm.config.input_size)) * 2 + 1).astype(np.float32)
    lens, h0 = np.array([7, 2, 5]), np.zeros((2, 3, qm.config.hidden_size), np.float32)
    normed = ((raw - qm.norm_mean) / qm.norm_std).astype(np.float32) if norm else raw
    got, want = run_float(raw_sess, raw, lens, h0), run_float(plain, normed, lens, h0)
    for g, w in zip(got, want, strict=True):
        assert np.array_equal(g, w)
    assert [i.name for i in raw_sess.get_inputs()] == ["x", "lengths", "h0"]


def test_float_graph_without_qm_is_unchanged() -> None:
    model, qm = make_qm()
    bare = onnx.load_from_string(float_onnx_bytes(model))
    assert read_props(bare) == {}
    props = read_props(onnx.load_from_string(float_onnx_bytes(model, qm)))
    assert props["edgernn.graph"] == "float" and props["edgernn.input"] == "raw"


def test_verify_float_parity_feeds_model_onnx_what_it_takes(tmp_path: Path) -> None:
    """model.onnx takes raw features: verify rebuilds them from the normalized split; an older
    model.onnx (edgernn.input "normalized") is still fed normalized features."""
    from edgernn.backends.onnx.metadata import GRAPH_FLOAT, INPUT_NORMALIZED, model_props, set_props
    from edgernn.verify import float_parity

    model, qm = make_qm("many-to-many", layers=2, norm=True, seed=4)
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 9, qm.config.input_size)).astype(np.float32)
    lens = np.array([9, 4, 1])
    (tmp_path / "model.onnx").write_bytes(float_onnx_bytes(model, qm))
    new = float_parity(tmp_path, model, x, lens, qm)
    assert new["passed"], new
    assert not float_parity(tmp_path, model, x, lens)["passed"]  # raw graph fed normalized x
    old = onnx.load_from_string(float_onnx_bytes(model))
    set_props(old, model_props(qm, GRAPH_FLOAT, INPUT_NORMALIZED))
    (tmp_path / "model.onnx").write_bytes(old.SerializeToString())
    assert float_parity(tmp_path, model, x, lens, qm)["passed"]


# ---------------------------------------------------------------------------------------------
# metadata_props


def test_metadata_keys_and_values() -> None:
    model, qm = make_qm("many-to-many", layers=2, norm=True)
    graphs = {
        "model.onnx": (onnx.load_from_string(float_onnx_bytes(model, qm)), "float", "raw"),
        "model.int8.onnx": (oi.build_sequence_model(qm), "int8-sequence", "int8"),
        "model.step.int8.onnx": (oi.build_step_model(qm), "int8-step", "int8"),
        "model.raw.int8.onnx": (build_raw_sequence_model(qm), "int8-sequence", "raw"),
        "model.step.raw.int8.onnx": (build_raw_step_model(qm), "int8-step", "raw"),
    }
    for name, (proto, graph, inp) in graphs.items():
        p = read_props(proto)
        assert p["edgernn.graph"] == graph and p["edgernn.input"] == inp, name
        assert p["edgernn.contract"] == CONTRACT
        assert json.loads(p["edgernn.config"]) == qm.config.to_dict()
        assert float(p["edgernn.head_scale"]) == qm.head_scale
        assert p["edgernn.task"] == "many-to-many"
        assert json.loads(p["edgernn.class_names"]) == ["c0", "c1", "c2", "c3"]
        assert json.loads(p["edgernn.vocab"]) == []
        assert p["edgernn.source_checkpoint_sha256"] == "ab" * 32
        assert "edgernn.frame" not in p  # no framing exists yet (docs/onnx.md)
        for key, want in (
            ("mean", qm.norm_mean),
            ("std", qm.norm_std),
            ("scale", qm.input_scale),
            ("inv_scale", np.float32(1) / qm.input_scale.astype(np.float32)),
        ):
            got = np.array(json.loads(p[f"edgernn.input.{key}"]), np.float32)
            assert got.tobytes() == np.asarray(want, np.float32).tobytes(), (name, key)
    inv = [t for t in graphs["model.raw.int8.onnx"][0].graph.initializer if t.name == "raw_inv_scale"]
    assert onnx.numpy_helper.to_array(inv[0]).tolist() == json.loads(
        read_props(graphs["model.raw.int8.onnx"][0])["edgernn.input.inv_scale"]
    )


def test_token_model_metadata() -> None:
    _, qm = make_qm("one-to-many", vocab=9, inp=5, norm=False)
    qm = dataclasses.replace(
        qm, meta=dataclasses.replace(qm.meta, vocab=tuple("abcdefghi"), start_token=1, end_token=2)
    )
    p = read_props(build_raw_step_model(qm))
    assert json.loads(p["edgernn.vocab"]) == list("abcdefghi")
    assert (p["edgernn.start_token"], p["edgernn.end_token"]) == ("1", "2")
    assert not any(k.startswith("edgernn.input.") for k in p)


def test_raw_graphs_are_deterministic() -> None:
    model, qm = make_qm(bi=True, layers=2)
    _, qm2 = make_qm(bi=True, layers=2)
    for build in (build_raw_sequence_model, build_raw_step_model):
        assert build(qm).SerializeToString(deterministic=True) == build(qm2).SerializeToString(
            deterministic=True
        )
    assert float_onnx_bytes(model, qm) == float_onnx_bytes(model, qm)


# ---------------------------------------------------------------------------------------------
# The export, and the example in a venv without edgernn


@pytest.mark.slow
def test_export_writes_and_lists_the_raw_graphs(jv_export: Path) -> None:
    from edgernn.manifest import read_manifest
    from edgernn.pipeline import EXPORTED, FLOAT_ONNX, RAW_INT_ONNX, RAW_STEP_ONNX
    from edgernn.train.checkpoint import load_checkpoint

    manifest, _ = read_manifest(jv_export)
    sha = load_checkpoint(jv_export).sha256
    for name in (FLOAT_ONNX, RAW_INT_ONNX, RAW_STEP_ONNX):
        assert name in EXPORTED and name in manifest["artifacts"]
    assert read_props(onnx.load(jv_export / FLOAT_ONNX))["edgernn.input"] == "raw"
    assert "model.raw.onnx" not in manifest["artifacts"] and not (jv_export / "model.raw.onnx").exists()
    for name in EXPORTED:
        if name.endswith(".onnx"):
            p = read_props(onnx.load(jv_export / name))
            assert p["edgernn.source_checkpoint_sha256"] == sha, name
            assert len(json.loads(p["edgernn.class_names"])) == 9, name


@pytest.fixture(scope="module")
def bare_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv with onnxruntime and numpy and no edgernn (pip through the configured index)."""
    venv = tmp_path_factory.mktemp("ortvenv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    pip = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "onnxruntime", "numpy"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert pip.returncode == 0, f"pip could not install onnxruntime and numpy:\n{pip.stderr}"
    return py


@pytest.mark.slow
def test_example_streams_csv_like_c(jv_export: Path, bare_venv: Path, tmp_path: Path) -> None:
    from edgernn.pipeline import HEADER, RAW_STEP_ONNX, load_data, load_quantized
    from edgernn.train.checkpoint import load_checkpoint

    qm = load_quantized(jv_export)
    test = load_data(load_checkpoint(jv_export).meta["data"]).test
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    alone = subprocess.run(
        [str(bare_venv), "-c", "import edgernn"], cwd=tmp_path, env=env, capture_output=True
    )
    assert alone.returncode != 0  # edgernn is not importable there
    cm = compile_model(jv_export / HEADER, str(qm.meta.c_prefix), tmp_path)  # the export's own C
    for k in (0, 7):
        n = int(test.lengths[k])
        raw = (test.x[k, :n] * qm.norm_std + qm.norm_mean).astype(np.float32)  # back to sensor units
        csv = tmp_path / f"seq{k}.csv"
        header = ",".join(f"f{i}" for i in range(raw.shape[1]))
        csv.write_text(header + "\n" + "".join(",".join(repr(float(v)) for v in row) + "\n" for row in raw))
        r = subprocess.run(
            [str(bare_venv), str(EXAMPLE), str(jv_export / RAW_STEP_ONNX), str(csv)],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert r.returncode == 0, r.stderr
        _, logits = cm.stream_with_logits(cm.quantize(raw))
        cls = cm.argmax(logits[-1])
        lines = r.stdout.splitlines()
        assert lines[-2] == f"class {cls} {(qm.meta.class_names or ())[cls]}"
        assert lines[-1] == "logits " + " ".join(str(int(v)) for v in logits[-1])
