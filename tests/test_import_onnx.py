"""ONNX sources built with onnx.helper, one per RNN attribute the importer reads, checked against
an independent numpy implementation of the ONNX RNN definition, then imported and proven.

The numpy `onnx_rnn` below follows the operator's specification (onnx/docs/Operators.md, RNN):
H_t = tanh(X_t W^T + H_{t-1} R^T + Wb + Rb) per direction; Y is (T, D, B, H) for layout 0 and
(B, T, D, H) for layout 1, zero after each sequence's length; Y_h is each direction's last state.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgernn.config import Readout, Task
from edgernn.errors import InputError
from edgernn.importer.api import import_model, load_source
from edgernn.importer.prove import TOLERANCE
from edgernn.train.checkpoint import load_checkpoint

IN, H, C, V = 5, 6, 3, 12


def onnx_rnn(
    x: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    lengths: np.ndarray,
    h0: np.ndarray | None,
    direction: str,
    layout: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The RNN op on x (T, B, IN) (layout 0) or (B, T, IN) (layout 1); returns Y and Y_h."""
    xs = x if layout == 0 else x.transpose(1, 0, 2)
    steps, batch, _ = xs.shape
    dirs = w.shape[0]
    hidden = r.shape[-1]
    y = np.zeros((steps, dirs, batch, hidden))
    y_h = np.zeros((dirs, batch, hidden))
    for d in range(dirs):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        bias = np.zeros(2 * hidden) if b is None else b[d]
        for n in range(batch):
            h = np.zeros(hidden) if h0 is None else (h0[d, n] if layout == 0 else h0[n, d])
            order = range(lengths[n] - 1, -1, -1) if reverse else range(lengths[n])
            for t in order:
                h = np.tanh(xs[t, n] @ w[d].T + h @ r[d].T + bias[:hidden] + bias[hidden:])
                y[t, d, n] = h
            y_h[d, n] = h
    if layout == 1:
        return y.transpose(2, 0, 1, 3), y_h.transpose(1, 0, 2)
    return y, y_h


def _weights(dirs: int, inputs: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.5, (dirs, H, inputs)).astype(np.float32)
    r = rng.normal(0, 0.3, (dirs, H, H)).astype(np.float32)
    b = rng.normal(0, 0.2, (dirs, 2 * H)).astype(np.float32)
    return w, r, b


def rnn_graph(
    direction: str = "forward",
    layout: int = 0,
    with_b: bool = True,
    with_lengths: bool = False,
    with_h0: bool = False,
    output: str = "Y_h",
    head: bool = True,
    tokens: bool = False,
    attrs: dict[str, object] | None = None,
    seed: int = 0,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One RNN op with the given attributes; returns the model and its weights."""
    dirs = 2 if direction == "bidirectional" else 1
    w, r, b = _weights(dirs, IN, seed)
    inits = [numpy_helper.from_array(w, "W"), numpy_helper.from_array(r, "R")]
    rnn_inputs = [
        "X",
        "W",
        "R",
        "B" if with_b else "",
        "lens" if with_lengths else "",
        "h0" if with_h0 else "",
    ]
    while rnn_inputs[-1] == "":
        rnn_inputs.pop()
    if with_b:
        inits.append(numpy_helper.from_array(b, "B"))
    x_shape: list[int | str] = ["T", "N", IN] if layout == 0 else ["N", "T", IN]
    nodes = []
    embedding = None
    if tokens:
        emb = np.random.default_rng(seed + 1).normal(0, 1, (V, IN)).astype(np.float32)
        inits.append(numpy_helper.from_array(emb, "E"))
        embedding = emb
        nodes.append(helper.make_node("Gather", ["E", "ids"], ["X"]))
        graph_inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, x_shape[:2])]
    else:
        graph_inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if with_lengths:
        graph_inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"]))
    if with_h0:
        h0_shape: list[int | str] = [dirs, "N", H] if layout == 0 else ["N", dirs, H]
        graph_inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, h0_shape))
    nodes.append(
        helper.make_node(
            "RNN",
            rnn_inputs,
            ["Y", "Y_h"],
            hidden_size=H,
            direction=direction,
            layout=layout,
            **(attrs or {}),
        )
    )
    weights = {"W": w, "R": r, "B": b if with_b else None, "E": embedding}
    out_name = output
    if head:
        hw = np.random.default_rng(seed + 2).normal(0, 0.5, (C, dirs * H)).astype(np.float32)
        hb = np.random.default_rng(seed + 3).normal(0, 0.1, (C,)).astype(np.float32)
        inits += [numpy_helper.from_array(hw, "HW"), numpy_helper.from_array(hb, "HB")]
        weights |= {"HW": hw, "HB": hb}
        # Y_h (D, N, H) -> (N, D*H) for layout 0; (N, D, H) -> (N, D*H) for layout 1.
        inits.append(numpy_helper.from_array(np.array([0, -1], np.int64), "flat"))
        if layout == 0:
            nodes.append(helper.make_node("Transpose", ["Y_h"], ["Y_h_n"], perm=[1, 0, 2]))
            nodes.append(helper.make_node("Reshape", ["Y_h_n", "flat"], ["feat"]))
        else:
            nodes.append(helper.make_node("Reshape", ["Y_h", "flat"], ["feat"]))
        nodes.append(helper.make_node("Gemm", ["feat", "HW", "HB"], ["logits"], transB=1))
        out_name = "logits"
        outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", C])]
    else:
        shape: list[int | str] = ["T", dirs, "N", H] if output == "Y" else [dirs, "N", H]
        outputs = [helper.make_tensor_value_info(output, TensorProto.FLOAT, shape)]
    graph = helper.make_graph(nodes, "rnn", graph_inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    assert out_name
    return model, weights


def _data(path: Path, tokens: bool = False, per_step: bool = False, n: int = 30, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    t_max = 9
    lengths = rng.integers(1, t_max + 1, n)
    x = rng.integers(1, V, (n, t_max)) if tokens else rng.normal(0, 1.5, (n, t_max, IN)).astype(np.float32)
    y = rng.integers(0, C, (n, t_max) if per_step else n)
    np.savez(path, X=x, y=y, lengths=lengths)
    return path


def _save(tmp: Path, model: onnx.ModelProto, name: str = "m.onnx") -> Path:
    p = tmp / name
    p.write_bytes(model.SerializeToString())
    return p


CASES = {
    "forward": {},
    "bidirectional": {"direction": "bidirectional"},
    "layout-1": {"layout": 1},
    "layout-1-bidirectional": {"layout": 1, "direction": "bidirectional"},
    "no-bias": {"with_b": False},
    "sequence-lens": {"with_lengths": True},
    "initial-h": {"with_h0": True},
    # layout 1 takes initial_h as (N, directions, H), not (directions, N, H): fed the wrong shape,
    # a bidirectional graph failed to run at all.
    "layout-1-bidirectional-initial-h": {"layout": 1, "direction": "bidirectional", "with_h0": True},
    "tokens": {"tokens": True},
    "reverse": {"direction": "reverse"},
    "reverse-layout-1": {"direction": "reverse", "layout": 1},
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_graph_matches_the_numpy_definition_and_imports(tmp_path: Path, case: str) -> None:
    kw = CASES[case]
    model, wts = rnn_graph(**kw)  # type: ignore[arg-type]
    layout = int(kw.get("layout", 0))  # type: ignore[call-overload]
    direction = str(kw.get("direction", "forward"))
    tokens = bool(kw.get("tokens", False))
    data = _data(tmp_path / "d.npz", tokens=tokens)
    src = load_source(_save(tmp_path, model))
    # The source as edgernn runs it (ORT, or the reference evaluator for layout 1) against numpy.
    rng = np.random.default_rng(1)
    for steps in (1, 4, 9):
        ids = rng.integers(1, V, steps)
        seq = ids if tokens else rng.normal(0, 1.5, (steps, IN)).astype(np.float32)
        x_seq = wts["E"][ids] if tokens else seq
        xs = x_seq[:, None, :] if layout == 0 else x_seq[None]
        _, y_h = onnx_rnn(xs, wts["W"], wts["R"], wts["B"], np.array([steps]), None, direction, layout)
        feat = (y_h[:, 0] if layout == 0 else y_h[0]).reshape(-1)
        want = feat @ wts["HW"].T + wts["HB"]
        np.testing.assert_allclose(src.run(seq), want, rtol=1e-5, atol=1e-5)
    result = import_model(_save(tmp_path, model), tmp_path / "out", data)
    assert result.proof.max_abs_diff <= TOLERANCE
    cfg = load_checkpoint(tmp_path / "out").model.cfg
    assert cfg.bidirectional == (direction == "bidirectional") and cfg.readout is Readout.FINAL_STATE
    assert cfg.reverse == (direction == "reverse")


def test_bare_rnn_op_outputs_are_the_hidden_states(tmp_path: Path) -> None:
    """No head: the graph's output is Y itself; edgernn exports the hidden states per step."""
    model, _ = rnn_graph(direction="bidirectional", output="Y", head=False)
    rng = np.random.default_rng(0)
    n, t_max = 30, 7
    lengths = rng.integers(1, t_max + 1, n)
    x = rng.normal(0, 1.5, (n, t_max, IN)).astype(np.float32)
    y = rng.integers(0, 2 * H, (n, t_max))
    np.savez(tmp_path / "d.npz", X=x, y=y, lengths=lengths)
    result = import_model(_save(tmp_path, model), tmp_path / "out", tmp_path / "d.npz")
    cfg = load_checkpoint(tmp_path / "out").model.cfg
    assert cfg.task is Task.MANY_TO_MANY and cfg.num_classes == 2 * H
    assert result.proof.max_abs_diff <= TOLERANCE


def test_final_state_output_without_head(tmp_path: Path) -> None:
    model, _ = rnn_graph(output="Y_h", head=False)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1.5, (30, 6, IN)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=x, y=rng.integers(0, H, 30), lengths=rng.integers(1, 7, 30))
    result = import_model(_save(tmp_path, model), tmp_path / "out", tmp_path / "d.npz")
    assert load_checkpoint(tmp_path / "out").model.cfg.num_classes == H
    assert result.proof.max_abs_diff <= TOLERANCE


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"attrs": {"activations": ["Relu"]}}, "activation relu; edgernn exports tanh RNNs"),
        ({"attrs": {"clip": 3.0}}, "clips its cell input"),
    ],
    ids=["relu", "clip"],
)
def test_unsupported_attributes_are_refused(tmp_path: Path, kw: dict[str, object], message: str) -> None:
    model, _ = rnn_graph(**kw)  # type: ignore[arg-type]
    with pytest.raises(InputError, match=message):
        import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz"))
    assert not (tmp_path / "out").exists()


def test_weights_in_a_separate_data_file_are_refused_in_one_line(tmp_path: Path) -> None:
    """onnx.save(..., save_as_external_data=True) leaves the weights beside the file, outside the
    bytes whose sha256 the import records: refused with how to inline them (was exit 4)."""
    model, _ = rnn_graph()
    onnx.save(model, tmp_path / "ext.onnx", save_as_external_data=True, size_threshold=0)
    assert (tmp_path / "ext.onnx.data").is_file() or any(tmp_path.glob("*.data"))
    with pytest.raises(InputError, match=r"ext\.onnx: its weights \(.+\) are in a separate data file"):
        import_model(tmp_path / "ext.onnx", tmp_path / "out", _data(tmp_path / "d.npz"))
    assert not (tmp_path / "out").exists()
    inlined = tmp_path / "inlined.onnx"
    onnx.save(onnx.load(tmp_path / "ext.onnx"), inlined)  # what the message says to do
    assert import_model(inlined, tmp_path / "out", tmp_path / "d.npz").proof.max_abs_diff <= TOLERANCE


@pytest.mark.parametrize("labels", [True, False], ids=["data", "input-range"])
def test_a_single_logit_binary_classifier_is_refused_as_such(tmp_path: Path, labels: bool) -> None:
    """A BCE head (one logit): argmax would always say class 0. Without labels the refusal used to
    be that the source gives one class on every calibration sequence."""
    model, _ = rnn_graph()
    for t in model.graph.initializer:
        if t.name in ("HW", "HB"):
            a = numpy_helper.to_array(t)[:1]
            t.CopyFrom(numpy_helper.from_array(a, t.name))
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_value = 1
    calibration = {"data": _data(tmp_path / "d.npz")} if labels else {"input_range": (-1.0, 1.0)}
    with pytest.raises(InputError, match=r"outputs 1 logit \(a sigmoid / BCE binary classifier\?\)"):
        import_model(_save(tmp_path, model), tmp_path / "out", **calibration)  # type: ignore[arg-type]
    assert not (tmp_path / "out").exists()


def test_lstm_and_gru_ops_are_refused(tmp_path: Path) -> None:
    for op, gates in (("LSTM", 4), ("GRU", 3)):
        w = numpy_helper.from_array(np.zeros((1, gates * H, IN), np.float32), "W")
        r = numpy_helper.from_array(np.zeros((1, gates * H, H), np.float32), "R")
        node = helper.make_node(op, ["X", "W", "R"], ["Y", "Y_h"], hidden_size=H)
        graph = helper.make_graph(
            [node],
            "g",
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", IN])],
            [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, "N", H])],
            [w, r],
        )
        path = _save(tmp_path, helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]))
        with pytest.raises(InputError, match=f"found {op}; edgernn exports tanh RNNs"):
            import_model(path, tmp_path / "out", _data(tmp_path / "d.npz"))


def test_reverse_model_through_every_backend(tmp_path: Path) -> None:
    """direction=reverse: every backend reads each sequence from its end, integer for integer."""
    from edgernn.pipeline import export_dir
    from edgernn.verify import verify_dir

    model, _ = rnn_graph(direction="reverse", with_lengths=True)
    result = import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz"))
    assert "reverse" in result.found.describe()
    export_dir(tmp_path / "out", prefix="rev")
    v = verify_dir(tmp_path / "out")
    assert v.passed, v.report["parity"]
    assert {p["b"] for p in v.report["parity"]} >= {"torch-float", "ort-int8", "ort-int8-step", "c-int8"}
    header = (tmp_path / "out" / "model.h").read_text()
    assert "void rev_reverse(int8_t *x, size_t n)" in header and "void rev_step(" not in header
    from test_mcu import _assert_exact, _zig_path

    from edgernn.targets.check import check_dir

    _zig_path()
    _assert_exact(check_dir(tmp_path / "out", ("cortex-m0plus", "cortex-m4"), ("zig",)), "zig+unicorn")


def _read_y_at(model: onnx.ModelProto, step: int) -> onnx.ModelProto:
    """The head reads Y at one time step (layout 0, one direction: (1, N, H) like Y_h) instead of Y_h."""
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array(step, np.int64), "step"))
    transpose = next(n for n in g.node if n.op_type == "Transpose")
    transpose.input[0] = "Y_at"
    g.node.insert(list(g.node).index(transpose), helper.make_node("Gather", ["Y", "step"], ["Y_at"], axis=0))
    return model


def test_reverse_model_read_at_step_0_is_its_final_state(tmp_path: Path) -> None:
    """A reverse-only RNN's Y[0] is its Y_h: imported as such (it was refused as output[:, -1]),
    while its Y[-1], which has read one step, is refused with what differs."""
    model, _ = rnn_graph(direction="reverse", with_lengths=True)
    result = import_model(_save(tmp_path, _read_y_at(model, 0)), tmp_path / "out", _data(tmp_path / "d.npz"))
    assert result.proof.max_abs_diff <= TOLERANCE and load_checkpoint(tmp_path / "out").model.cfg.reverse
    model, _ = rnn_graph(direction="reverse", with_lengths=True)
    with pytest.raises(InputError, match=r"only step 0 \(Y\[0\]\) is its final state"):
        import_model(_save(tmp_path, _read_y_at(model, -1)), tmp_path / "o2", _data(tmp_path / "d.npz"))


@pytest.mark.parametrize("head", [True, False], ids=["head", "no-head"])
def test_a_bidirectional_rnn_read_in_one_direction_is_refused_by_name(tmp_path: Path, head: bool) -> None:
    """Y_h[0] of a bidirectional RNN: torch's size-mismatch text (with a head) or a time-axis
    hint (without one) used to stand for "reads one direction"."""
    model, weights = rnn_graph(direction="bidirectional", head=head, output="Y_h")
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array(0, np.int64), "forward_only"))
    if head:
        for t in list(g.initializer):
            if t.name == "HW":
                g.initializer.remove(t)
        g.initializer.append(numpy_helper.from_array(weights["HW"][:, :H].copy(), "HW"))
        reshape = next(n for n in g.node if n.op_type == "Reshape")
        transpose = next(n for n in g.node if n.op_type == "Transpose")
        g.node.remove(transpose)
        g.node.insert(
            list(g.node).index(reshape), helper.make_node("Gather", ["Y_h", "forward_only"], ["Y_h_n"])
        )
    else:
        g.node.append(helper.make_node("Gather", ["Y_h", "forward_only"], ["fwd"]))
        g.output.pop()
        g.output.append(helper.make_tensor_value_info("fwd", TensorProto.FLOAT, ["N", H]))
    with pytest.raises(InputError, match=r"one direction only \(Y_h\[0\] or Y_h\[1\]\?\)"):
        import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz"))


def test_a_batch_reordered_by_computed_indices_is_refused_as_a_reorder(tmp_path: Path) -> None:
    """pack_padded_sequence(enforce_sorted=False) exports a Gather of X by sorted lengths: it was
    refused as "reads part of the input", whose advice (select in your data) did not apply."""
    model, _ = rnn_graph()
    g = model.graph
    g.input.append(helper.make_tensor_value_info("order", TensorProto.INT64, ["N"]))
    rnn = next(n for n in g.node if n.op_type == "RNN")
    rnn.input[0] = "X_sorted"
    g.node.insert(0, helper.make_node("Gather", ["X", "order"], ["X_sorted"], axis=1))
    with pytest.raises(InputError, match=r"reordered by computed indices .*enforce_sorted=True"):
        import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz"))


def test_per_step_answers_in_another_layout_are_refused_without_labels_too(tmp_path: Path) -> None:
    """Time-first input, batch-first output: labelled data got the shape refusal, but source-made
    labels (--input-range, unlabelled data) failed on IGNORE inside a sequence in an internal file."""
    model, _ = rnn_graph(output="Y", head=False)
    g = model.graph
    g.initializer.append(numpy_helper.from_array(np.array([0, 0, -1], np.int64), "ntc"))
    g.node.extend(
        [
            helper.make_node("Transpose", ["Y"], ["Y_ntdh"], perm=[2, 0, 1, 3]),
            helper.make_node("Reshape", ["Y_ntdh", "ntc"], ["per_step"]),
        ]
    )
    g.output.pop()
    g.output.append(helper.make_tensor_value_info("per_step", TensorProto.FLOAT, ["N", "T", H]))
    with pytest.raises(InputError, match="does the source's output put time first"):
        import_model(_save(tmp_path, model), tmp_path / "out", input_range=(-1.0, 1.0))


def test_reverse_model_read_per_step_is_refused(tmp_path: Path) -> None:
    model, _ = rnn_graph(direction="reverse", output="Y", head=False)
    with pytest.raises(InputError, match="a reverse-only RNN is exported read at its final state"):
        import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz", per_step=True))


@pytest.mark.parametrize("where", ["input", "head"])
def test_a_view_that_drops_values_or_an_add_before_the_head_is_refused(tmp_path: Path, where: str) -> None:
    """A Slice of X's time axis (a window the proof's short data never exceeds) was taken for a
    view and dropped; an Add on the head's input was taken for its bias (exit 4 when the shapes
    clashed). Both are refused with exit-2 messages that name the node."""
    model, weights = rnn_graph()
    g = model.graph
    if where == "input":
        g.initializer.extend(
            [
                numpy_helper.from_array(np.array([-4], np.int64), "w_start"),
                numpy_helper.from_array(np.array([2**63 - 1], np.int64), "w_end"),
                numpy_helper.from_array(np.array([0], np.int64), "w_axis"),
            ]
        )
        rnn = next(n for n in g.node if n.op_type == "RNN")
        rnn.input[0] = "X_window"
        g.node.insert(0, helper.make_node("Slice", ["X", "w_start", "w_end", "w_axis"], ["X_window"]))
        message = r"reads part of the model's input \(Slice 'X_window'\)"
    else:
        gemm = next(n for n in g.node if n.op_type == "Gemm")
        g.node.remove(gemm)
        shift = np.full(weights["HW"].shape[1], 0.5, np.float32)
        g.initializer.extend(
            [numpy_helper.from_array(shift, "shift"), numpy_helper.from_array(weights["HW"].T.copy(), "HWt")]
        )
        g.node.extend(
            [
                helper.make_node("Add", ["feat", "shift"], ["feat_shifted"]),
                helper.make_node("MatMul", ["feat_shifted", "HWt"], ["logits"]),
            ]
        )
        message = r"adds 'feat_shifted' before its MatMul"
    with pytest.raises(InputError, match=message):
        import_model(_save(tmp_path, model), tmp_path / "out", _data(tmp_path / "d.npz"))
