"""Integer-only ONNX graphs built from a QuantizedModel, and the drivers that run them.

Two graphs, both bit-exact with the torch reference in `quant.py` (`int_forward`):

* `model.int8.onnx` (`build_sequence_model`): whole padded batches. Per layer and direction the
  input term `acc_x * M_x` is computed for every step at once (Cast + MatMul + Add, or Gather from
  the folded token table), then a `Scan` over time runs the recurrence with a per-step validity
  mask (a sequence's state freezes after its last valid step). The backward direction reverses
  each sequence within its own length with `ReverseSequence`, runs forward, and reverses back.
* `model.step.int8.onnx` (`build_step_model`): one step for streaming, state in and state out.

Opset 21 (IR version 10). Operators: Cast, Transpose, MatMul (on int32 after a Cast: ORT's
MatMulInteger is wrong for uint8 x int8 on some CPUs, see DESIGN.md), Add, Mul and Div on int64
(Div only of a positive number, since integer Div truncates toward zero), Clip, Gather and
GatherElements (token table, LUT), Where, Concat, Reshape, Unsqueeze, Shape, Range, Less,
ReverseSequence, Scan. No float tensor anywhere.

The requantization `z = clamp(floor((v + 2^(n-1)) / 2^n), -512, 511)` is written as
    t   = v + (2^(n-1) + 2^62)          >= 0 because |v| < 2^61 (proven by check_bounds)
    idx = clip(t / 2^n + (512 - 2^(62-n)), 0, 1023)     (= z + 512, the LUT index)
which folds the contract's "- 2^(62-n)", the clamp and the "+ 512" of the LUT index into one
constant and one Clip; every intermediate stays an exact int64.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from edgernn.artifacts import write_bytes
from edgernn.contract.quant import (
    LUT_SIZE,
    OFFSET_BITS,
    Z_MIN,
    IntResult,
    QuantCell,
    QuantizedModel,
    check_bounds,
)
from edgernn.errors import InputError

OPSET = 21
IR_VERSION = 10  # the IR version that goes with opset 21 (not onnx's newest, for older runtimes)
PRODUCER = "edgernn"

I8, I32, I64, BOOL = TensorProto.INT8, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL


# ---------------------------------------------------------------------------------------------
# A tiny graph builder: named initializers and nodes, nothing clever.


class _Graph:
    """Collects nodes and initializers; `op` returns the output name so calls nest readably."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def const(self, name: str, value: np.ndarray | int | list[int], dtype: type | None = None) -> str:
        arr = np.array(value, dtype=dtype, order="C")  # not ascontiguousarray: it turns scalars 1-D
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], name=output, **attrs))
        return output

    def op_multi(
        self, op_type: str, inputs: Sequence[str], outputs: Sequence[str], **attrs: Any
    ) -> list[str]:
        node = helper.make_node(op_type, list(inputs), list(outputs), name=outputs[-1], **attrs)
        self.nodes.append(node)
        return list(outputs)

    def cast(self, name: str, out: str, to: int) -> str:
        return self.op("Cast", [name], out, to=to)


def _tensor(name: str, elem: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def _cell_name(layer: int, direction: int) -> str:
    return f"l{layer}_d{direction}"


# ---------------------------------------------------------------------------------------------
# Sub-graphs shared by both models


def _shared_constants(g: _Graph, lut: np.ndarray) -> None:
    """The LUT (stored as the contract's int8 table) and the scalars every cell uses."""
    g.const("lut", lut.astype(np.int8))
    g.cast("lut", "lut_i32", I32)  # the recurrent state is carried as int32 (see _cell_update)
    g.const("lut_lo", 0, np.int64)
    g.const("lut_hi", LUT_SIZE - 1, np.int64)
    g.const("zero_i64", 0, np.int64)
    g.const("one_i64", 1, np.int64)
    g.const("zero_i32", 0, np.int32)
    g.const("flat_shape", [-1], np.int64)
    for axis in range(3):
        g.const(f"axes_{axis}", [axis], np.int64)  # Unsqueeze takes its axes as an input


def _cell_constants(g: _Graph, p: str, cell: QuantCell) -> None:
    """Per-cell initializers, stored in the contract's own types (int8 weights, int32 bias/table,
    int64 multipliers); the int32/int64 transposed copies are derived by nodes that ORT folds at
    session creation, so the file keeps one byte per weight."""
    if cell.table is not None:
        g.const(f"{p}_table", cell.table.astype(np.int32))
    else:
        g.const(f"{p}_w_ih", cell.w_ih.astype(np.int8))
        g.op("Transpose", [g.cast(f"{p}_w_ih", f"{p}_w_ih_i32", I32)], f"{p}_w_ih_t", perm=[1, 0])
        g.const(f"{p}_bias", cell.bias.astype(np.int32))
    g.const(f"{p}_m_x", cell.m_x.astype(np.int64))
    g.const(f"{p}_w_hh", cell.w_hh.astype(np.int8))
    g.op("Transpose", [g.cast(f"{p}_w_hh", f"{p}_w_hh_i32", I32)], f"{p}_w_hh_t", perm=[1, 0])
    g.const(f"{p}_m_h", cell.m_h.astype(np.int64))
    n = cell.shift
    g.const(f"{p}_round_offset", (1 << (n - 1)) + (1 << OFFSET_BITS), np.int64)
    g.const(f"{p}_divisor", 1 << n, np.int64)
    g.const(f"{p}_index_offset", -Z_MIN - (1 << (OFFSET_BITS - n)), np.int64)


def _input_term(g: _Graph, p: str, cell: QuantCell, inp: str) -> str:
    """acc_x * M_x (int64) for any leading shape: inp is int8 (..., In) or int64 tokens (...)."""
    if cell.table is not None:
        acc_x = g.op("Gather", [f"{p}_table", inp], f"{p}_acc_x", axis=0)
    else:
        x32 = g.cast(inp, f"{p}_x_i32", I32)
        acc_x = g.op("Add", [g.op("MatMul", [x32, f"{p}_w_ih_t"], f"{p}_wx"), f"{p}_bias"], f"{p}_acc_x")
    return g.op("Mul", [g.cast(acc_x, f"{p}_acc_x_i64", I64), f"{p}_m_x"], f"{p}_px")


def _cell_update(g: _Graph, p: str, h_prev: str, px: str, out: str) -> str:
    """h_new = LUT[clamp(round((px + acc_h M_h) / 2^n))]: h int32 (B, H), px int64 -> int32 (B, H).

    The state is int32, not int64, because acc_h is then an int32 MatMul: exact (|acc_h| < 2^31 is
    proven) and ~3x faster in ORT than int64 MatMul, which dominated the loop."""
    acc_h = g.op("MatMul", [h_prev, f"{p}_w_hh_t"], f"{p}_acc_h")
    ph = g.op("Mul", [g.cast(acc_h, f"{p}_acc_h_i64", I64), f"{p}_m_h"], f"{p}_ph")
    v = g.op("Add", [px, ph], f"{p}_v")
    t = g.op("Add", [v, f"{p}_round_offset"], f"{p}_t")  # positive: Div truncation == floor
    q = g.op("Div", [t, f"{p}_divisor"], f"{p}_q")
    idx = g.op("Clip", [g.op("Add", [q, f"{p}_index_offset"], f"{p}_z_idx"), "lut_lo", "lut_hi"], f"{p}_idx")
    # LUT lookup as GatherElements on the flattened index: the same values as Gather, but ORT's
    # Gather copies one element at a time (~14 ns each here, the loop's largest cost) and
    # GatherElements is ~5x faster.
    flat = g.op("Reshape", [idx, "flat_shape"], f"{p}_idx_flat")
    looked_up = g.op("GatherElements", ["lut_i32", flat], f"{p}_lut_flat", axis=0)
    return g.op("Reshape", [looked_up, g.op("Shape", [idx], f"{p}_idx_shape")], out)


def _head(g: _Graph, feat: str, out: str) -> str:
    """logits = head_w . feat + head_b in int32 (|logit| < 2^31 is proven by check_bounds)."""
    f32 = g.cast(feat, f"{out}_feat_i32", I32)
    return g.op("Add", [g.op("MatMul", [f32, "head_w_t"], f"{out}_wy"), "head_b"], out)


def _head_constants(g: _Graph, qm: QuantizedModel) -> None:
    g.const("head_w", qm.head_w.astype(np.int8))
    g.op("Transpose", [g.cast("head_w", "head_w_i32", I32)], "head_w_t", perm=[1, 0])
    g.const("head_b", qm.head_b.astype(np.int32))


def _new_graph(qm: QuantizedModel) -> _Graph:
    g = _Graph()
    _shared_constants(g, qm.lut)
    _head_constants(g, qm)
    for i, cell in enumerate(qm.cells):
        _cell_constants(g, _cell_name(i // qm.config.directions, i % qm.config.directions), cell)
    return g


def _referenced(nodes: Sequence[onnx.NodeProto]) -> set[str]:
    """Every name a node reads, including from inside Scan bodies (outer-scope references)."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                names |= _referenced(attr.g.node)
    return names


def _finish(
    qm: QuantizedModel,
    g: _Graph,
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    doc: str,
) -> onnx.ModelProto:
    # Shared scalars are declared once up front; drop those this particular graph never reads.
    used = _referenced(g.nodes)
    inits = [t for t in g.initializers if t.name in used]
    graph = helper.make_graph(g.nodes, name, inputs, outputs, initializer=inits, doc_string=doc)
    model = helper.make_model(
        graph,
        producer_name=PRODUCER,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    # Provenance without timestamps: the same QuantizedModel always serializes to the same bytes.
    helper.set_model_props(
        model,
        {
            "edgernn.contract": "int8-tanh-lut1024-v1",
            "edgernn.config": json.dumps(qm.config.to_dict(), sort_keys=True, separators=(",", ":")),
            "edgernn.head_scale": repr(float(qm.head_scale)),
        },
    )
    onnx.checker.check_model(model, full_check=True)
    return model


# ---------------------------------------------------------------------------------------------
# Sequence graph


def _validity_mask(g: _Graph, inp: str) -> str:
    """valid[b, t, 0] = t < lengths[b]: bool (B, T, 1), scanned along axis 1 as (B, 1) per step."""
    steps = g.op("Gather", [g.op("Shape", [inp], "x_shape"), "one_i64"], "steps", axis=0)
    t = g.op("Range", ["zero_i64", steps, "one_i64"], "time_index")
    t_row = g.op("Unsqueeze", [t, "axes_0"], "time_row")  # (1, T)
    len_col = g.op("Unsqueeze", ["lengths", "axes_1"], "lengths_col")  # (B, 1)
    return g.op("Unsqueeze", [g.op("Less", [t_row, len_col], "valid_bt"), "axes_2"], "valid")


def _scan_body(p: str, hidden: int) -> onnx.GraphProto:
    """One time step of one cell. State: h (B, H) int32. Scan inputs: px_t (B, H), valid_t (B, 1).
    Outputs: the next state (frozen where the sequence has ended) and y_t (0 where it has)."""
    body = _Graph()
    h_cand = _cell_update(body, p, f"{p}_h_prev", f"{p}_px_t", f"{p}_h_cand")
    body.op("Where", [f"{p}_valid_t", h_cand, f"{p}_h_prev"], f"{p}_h_next")
    body.op("Where", [f"{p}_valid_t", h_cand, "zero_i32"], f"{p}_y_t")
    return helper.make_graph(
        body.nodes,
        f"{p}_step",
        [
            _tensor(f"{p}_h_prev", I32, [None, hidden]),
            _tensor(f"{p}_px_t", I64, [None, hidden]),
            _tensor(f"{p}_valid_t", BOOL, [None, 1]),
        ],
        [_tensor(f"{p}_h_next", I32, [None, hidden]), _tensor(f"{p}_y_t", I32, [None, hidden])],
    )


def _run_direction(g: _Graph, qm: QuantizedModel, layer: int, direction: int, inp: str) -> tuple[str, str]:
    """One cell over the whole batch: returns (outputs int8 (B, T, H) in original time order,
    final state int32 (B, H))."""
    p = _cell_name(layer, direction)
    cell = qm.cell(layer, direction)
    px = _input_term(g, p, cell, inp)
    if direction == 1:  # reverse each sequence within its own length; padding stays in place
        px = g.op("ReverseSequence", [px, "lengths"], f"{p}_px_rev", batch_axis=0, time_axis=1)
    index = g.const(f"{p}_state_index", layer * qm.config.directions + direction, np.int64)
    h_init = g.cast(g.op("Gather", ["h0", index], f"{p}_h0", axis=0), f"{p}_h0_i32", I32)
    h_last, ys = g.op_multi(
        "Scan",
        [h_init, px, "valid"],
        [f"{p}_h_last", f"{p}_ys"],
        num_scan_inputs=2,
        scan_input_axes=[1, 1],
        scan_output_axes=[1],
        body=_scan_body(p, cell.hidden),
    )
    y8 = g.cast(ys, f"{p}_y", I8)
    if direction == 1:
        y8 = g.op("ReverseSequence", [y8, "lengths"], f"{p}_y_fwd_order", batch_axis=0, time_axis=1)
    return y8, h_last


def build_sequence_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.int8.onnx`: whole padded batches, dynamic B and T (see the module docstring)."""
    check_bounds(qm)
    cfg = qm.config
    dirs, hsz, layers = cfg.directions, cfg.hidden_size, cfg.num_layers
    g = _new_graph(qm)
    x_name = "tokens" if cfg.tokens else "x"
    valid = _validity_mask(g, x_name)
    layer_in, layer_outs, finals = x_name, [], []
    for layer in range(layers):
        ys = []
        for direction in range(dirs):
            y, h_last = _run_direction(g, qm, layer, direction, layer_in)
            ys.append(y)
            finals.append(h_last)
        layer_in = g.op("Concat", ys, f"l{layer}_out", axis=2)  # (B, T, D*H) int8
        layer_outs.append(g.op("Unsqueeze", [layer_in, "axes_0"], f"l{layer}_out_u"))
    g.op("Concat", layer_outs, "hidden", axis=0)
    _stack_states(g, finals, "h_n")
    if cfg.task == "many-to-one":
        feat = g.op("Concat", finals[-dirs:], "head_in", axis=1)
        _head(g, feat, "logits")
        logits_shape: list[int | str | None] = ["B", cfg.num_classes]
    else:
        raw = _head(g, layer_in, "logits_all")
        g.op("Where", [valid, raw, "zero_i32"], "logits")
        logits_shape = ["B", "T", cfg.num_classes]
    x_info = (
        _tensor("tokens", I64, ["B", "T"]) if cfg.tokens else _tensor("x", I8, ["B", "T", cfg.input_size])
    )
    inputs = [x_info, _tensor("lengths", I64, ["B"]), _tensor("h0", I8, [layers * dirs, "B", hsz])]
    outputs = [
        _tensor("logits", I32, logits_shape),
        _tensor("h_n", I8, [layers * dirs, "B", hsz]),
        _tensor("hidden", I8, [layers, "B", "T", dirs * hsz]),
    ]
    return _finish(qm, g, "edgernn_int8_sequence", inputs, outputs, _doc(qm, "sequence"))


def _doc(qm: QuantizedModel, kind: str) -> str:
    c = qm.config
    return (
        f"edgernn integer {kind} graph: {c.task}, {'tokens' if c.tokens else 'features'} "
        f"{c.vocab_size if c.tokens else c.input_size}, hidden {c.hidden_size}, layers {c.num_layers}, "
        f"{'bidirectional' if c.bidirectional else 'unidirectional'}, classes {c.num_classes}; "
        f"logit = logits * {float(qm.head_scale)!r}"
    )


# ---------------------------------------------------------------------------------------------
# Step graph


def _step_cell(g: _Graph, qm: QuantizedModel, layer: int, direction: int, inp: str) -> str:
    """One cell, one step: reads h[layer * D + direction] and `inp`; returns h_new int32 (B, H)."""
    p = _cell_name(layer, direction)
    px = _input_term(g, p, qm.cell(layer, direction), inp)
    index = g.const(f"{p}_state_index", layer * qm.config.directions + direction, np.int64)
    h_prev = g.cast(g.op("Gather", ["h", index], f"{p}_h", axis=0), f"{p}_h_i32", I32)
    return _cell_update(g, p, h_prev, px, f"{p}_h_new")


def _stack_states(g: _Graph, states: Sequence[str], out: str) -> str:
    """int32 (B, H) states in torch's h_n order -> int8 (L*D, B, H)."""
    rows = [g.op("Unsqueeze", [s, "axes_0"], f"{s}_u") for s in states]
    return g.cast(g.op("Concat", rows, f"{out}_i32", axis=0), out, I8)


def _step_unidirectional(g: _Graph, qm: QuantizedModel) -> str:
    """Advance the whole stack one step; each layer reads the one below's new state (int8, as
    the contract's h_q). Returns the top layer's new state."""
    layer_in = "token" if qm.config.tokens else "x"
    news = []
    for layer in range(qm.config.num_layers):
        news.append(_step_cell(g, qm, layer, 0, layer_in))
        layer_in = g.cast(news[-1], f"{news[-1]}_i8", I8)
    _stack_states(g, news, "h_new")
    return news[-1]


def _step_bank(g: _Graph, qm: QuantizedModel) -> str:
    """Bidirectional: 2L independent cells, cell (l, d) reading x[:, d] (l = 0) or
    layer_in[l-1, :, d] (l > 0). Returns the head input concat(h_new[-2], h_new[-1])."""
    x_name = "token" if qm.config.tokens else "x"
    news = []
    for layer in range(qm.config.num_layers):
        for direction in range(2):
            p = _cell_name(layer, direction)
            d_index = g.const(f"{p}_dir_index", direction, np.int64)
            if layer == 0:
                inp = g.op("Gather", [x_name, d_index], f"{p}_in", axis=1)
            else:
                l_index = g.const(f"{p}_layer_index", layer - 1, np.int64)
                per_layer = g.op("Gather", ["layer_in", l_index], f"{p}_layer_in", axis=0)
                inp = g.op("Gather", [per_layer, d_index], f"{p}_in", axis=1)
            news.append(_step_cell(g, qm, layer, direction, inp))
    _stack_states(g, news, "h_new")
    return g.op("Concat", news[-2:], "head_in", axis=1)


def build_step_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.step.int8.onnx`: one step, state in and out (see the module docstring).

    Unidirectional: x int8 (B, I) [token int64 (B,)], h int8 (L, B, H) -> h_new, logits (B, C).
    Bidirectional (a bank of 2L independent cells): x int8 (B, 2, I) [token int64 (B, 2)],
    layer_in int8 (L-1, B, 2, 2H) when L > 1, h int8 (2L, B, H) -> h_new (2L, B, H) and
    logits = head(concat(h_new[-2], h_new[-1])).
    """
    check_bounds(qm)
    cfg = qm.config
    dirs, hsz, layers = cfg.directions, cfg.hidden_size, cfg.num_layers
    g = _new_graph(qm)
    lead: list[int | str | None] = ["B"] if dirs == 1 else ["B", 2]
    inputs = [_tensor("token", I64, lead) if cfg.tokens else _tensor("x", I8, [*lead, cfg.input_size])]
    if dirs == 1:
        top = _step_unidirectional(g, qm)
    else:
        if layers > 1:
            inputs.append(_tensor("layer_in", I8, [layers - 1, "B", 2, 2 * hsz]))
        top = _step_bank(g, qm)
    inputs.append(_tensor("h", I8, [layers * dirs, "B", hsz]))
    _head(g, top, "logits")
    outputs = [
        _tensor("h_new", I8, [layers * dirs, "B", hsz]),
        _tensor("logits", I32, ["B", cfg.num_classes]),
    ]
    return _finish(qm, g, "edgernn_int8_step", inputs, outputs, _doc(qm, "step"))


# ---------------------------------------------------------------------------------------------
# Files and sessions


def save_model(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temp file in the same directory, fsync, then os.replace."""
    write_bytes(path, model.SerializeToString(deterministic=True))  # edgernn.artifacts: the one writer


def make_session(model: onnx.ModelProto | str | os.PathLike[str]) -> Any:
    """A CPU session with one thread per pool: reproducible timings, no contention with xdist."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# Drivers


def _np(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _prepare(
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and convert driver inputs to the graph's dtypes: x int8 / tokens int64, lengths int64
    in 1..T, h0 int8 (L*D, B, H) (zeros when None)."""
    cfg = qm.config
    xa, lens = _np(x), _np(lengths)
    rank, want = (2, "(B, T)") if cfg.tokens else (3, f"(B, T, {cfg.input_size})")
    if xa.ndim != rank or (not cfg.tokens and xa.shape[2] != cfg.input_size):
        raise InputError(f"x must have shape {want}, got {xa.shape}")
    if not (np.issubdtype(xa.dtype, np.integer) and np.issubdtype(lens.dtype, np.integer)):
        raise InputError("the integer graphs take integer x and lengths (quantize float inputs first)")
    lens = lens.astype(np.int64)
    b, steps = xa.shape[0], xa.shape[1]
    if lens.shape != (b,) or steps < 1 or (b and (lens.min() < 1 or lens.max() > steps)):
        raise InputError(f"lengths must have shape ({b},) with values in 1..{steps}")
    if cfg.tokens:
        if xa.size and (xa.min() < 0 or xa.max() >= cfg.vocab_size):
            raise InputError(f"tokens must be in 0..{cfg.vocab_size - 1}")
        xa = xa.astype(np.int64)
    else:
        if xa.size and (xa.min() < -128 or xa.max() > 127):
            raise InputError("x must be int8 values")
        xa = xa.astype(np.int8)
    shape = (cfg.num_layers * cfg.directions, b, cfg.hidden_size)
    if h0 is None:
        h = np.zeros(shape, dtype=np.int8)
    else:
        h = _np(h0)
        if h.shape != shape or (h.size and (h.min() < -128 or h.max() > 127)):
            raise InputError(f"h0 must be int8 of shape {shape}")
        h = h.astype(np.int8)
    return np.ascontiguousarray(xa), lens, np.ascontiguousarray(h)


def _result(hidden: np.ndarray, h_n: np.ndarray, logits: np.ndarray) -> IntResult:
    return IntResult(
        hidden=torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.int8)),
        h_n=torch.from_numpy(np.ascontiguousarray(h_n, dtype=np.int8)),
        logits=torch.from_numpy(np.ascontiguousarray(logits, dtype=np.int32)),
    )


def run_sequence(
    session: Any,
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None = None,
) -> IntResult:
    """Run `model.int8.onnx` on a padded batch; same shapes and dtypes as `quant.int_forward`."""
    xa, lens, h = _prepare(qm, x, lengths, h0)
    feed = {"tokens" if qm.config.tokens else "x": xa, "lengths": lens, "h0": h}
    logits, h_n, hidden = session.run(["logits", "h_n", "hidden"], feed)
    return _result(hidden, h_n, logits)


def _step(
    session: Any, qm: QuantizedModel, inp: np.ndarray, h: np.ndarray, layer_in: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    feed = {"token" if qm.config.tokens else "x": inp, "h": h}
    if layer_in is not None:
        feed["layer_in"] = layer_in
    h_new, logits = session.run(["h_new", "logits"], feed)
    return h_new, logits


def _run_steps_unidirectional(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h: np.ndarray
) -> IntResult:
    cfg = qm.config
    b, steps = xa.shape[0], xa.shape[1]
    hidden = np.zeros((cfg.num_layers, b, steps, cfg.hidden_size), dtype=np.int8)
    seq_logits = np.zeros((b, steps, cfg.num_classes), dtype=np.int32)
    last_logits = np.zeros((b, cfg.num_classes), dtype=np.int32)
    for t in range(steps):
        valid = t < lens  # (B,)
        h_new, logits = _step(session, qm, np.ascontiguousarray(xa[:, t]), h)
        h = np.where(valid[None, :, None], h_new, h)  # a finished sequence keeps its state
        hidden[:, :, t] = np.where(valid[None, :, None], h_new, 0)
        seq_logits[:, t] = np.where(valid[:, None], logits, 0)
        last_logits = np.where(valid[:, None], logits, last_logits)
    return _result(hidden, h, last_logits if cfg.task == "many-to-one" else seq_logits)


def _bank_inputs(
    qm: QuantizedModel, layer: int, src: np.ndarray, fwd_t: np.ndarray, bwd_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Step-model inputs that feed layer `layer`'s forward cell src[:, fwd_t] and its backward cell
    src[:, bwd_t] (per sequence); the other layers' cells get zeros, their outputs are ignored."""
    cfg = qm.config
    rows = np.arange(src.shape[0])
    pair = np.stack([src[rows, fwd_t], src[rows, bwd_t]], axis=1)  # (B, 2, ...)
    b = src.shape[0]
    if layer == 0:
        x_step = pair
    else:
        shape = (b, 2) if cfg.tokens else (b, 2, cfg.input_size)
        x_step = np.zeros(shape, dtype=np.int64 if cfg.tokens else np.int8)
    layer_in = None
    if cfg.num_layers > 1:
        layer_in = np.zeros((cfg.num_layers - 1, b, 2, 2 * cfg.hidden_size), dtype=np.int8)
        if layer > 0:
            layer_in[layer - 1] = pair
    return np.ascontiguousarray(x_step), layer_in


def _run_steps_bidirectional(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h0: np.ndarray
) -> IntResult:
    """Layer by layer over the bank: at call t the forward cell reads t and the backward cell
    reads len-1-t; after len calls both have finished their sequence (states then frozen)."""
    cfg = qm.config
    b, steps, hsz, layers = xa.shape[0], xa.shape[1], cfg.hidden_size, cfg.num_layers
    h = h0.copy()
    hidden = np.zeros((layers, b, steps, 2 * hsz), dtype=np.int8)
    last_logits = np.zeros((b, cfg.num_classes), dtype=np.int32)
    rows = np.arange(b)
    src = xa
    for layer in range(layers):
        cells = [2 * layer, 2 * layer + 1]
        for t in range(steps):
            valid = t < lens
            rev_t = np.where(valid, lens - 1 - t, t)
            x_step, layer_in = _bank_inputs(qm, layer, src, np.full(b, t), rev_t)
            h_new, logits = _step(session, qm, x_step, h, layer_in)
            h[cells] = np.where(valid[None, :, None], h_new[cells], h[cells])
            hidden[layer, :, t, :hsz] = np.where(valid[:, None], h_new[cells[0]], 0)
            hidden[layer, rows[valid], rev_t[valid], hsz:] = h_new[cells[1]][valid]
            if layer == layers - 1:  # both top cells took their last step together at t = len-1
                last_logits = np.where(valid[:, None], logits, last_logits)
        src = hidden[layer]
    if cfg.task == "many-to-one":
        return _result(hidden, h, last_logits)
    return _result(hidden, h, _bidirectional_head_pass(session, qm, xa, lens, h0, hidden))


def _bidirectional_head_pass(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h0: np.ndarray, hidden: np.ndarray
) -> np.ndarray:
    """Many-to-many logits at position p need head(concat(fwd[p], bwd[p])), but one pass never has
    both top cells at the same position. So recompute each position once more with the step model:
    the forward top cell from fwd[p-1] (h0 at p=0) and the backward top cell from bwd[p+1] (h0 at
    p=len-1), both reading the layer input at p; h_new[-2:] are then fwd[p] and bwd[p] and the
    step model's own logits output is the many-to-many logit at p. No integer op outside ORT."""
    cfg = qm.config
    b, steps, hsz, top = xa.shape[0], xa.shape[1], cfg.hidden_size, cfg.num_layers - 1
    src = xa if top == 0 else hidden[top - 1]
    out = np.zeros((b, steps, cfg.num_classes), dtype=np.int32)
    h = h0.copy()
    fwd, bwd = hidden[top][..., :hsz], hidden[top][..., hsz:]
    for p in range(steps):
        valid = p < lens
        h[2 * top] = fwd[:, p - 1] if p > 0 else h0[2 * top]
        has_next = p + 1 < lens
        nxt = bwd[:, min(p + 1, steps - 1)]
        h[2 * top + 1] = np.where(has_next[:, None], nxt, h0[2 * top + 1])
        pos = np.full(b, p)
        x_step, layer_in = _bank_inputs(qm, top, src, pos, pos)
        _, logits = _step(session, qm, x_step, h, layer_in)
        out[:, p] = np.where(valid[:, None], logits, 0)
    return out


def run_steps(
    session: Any,
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None = None,
) -> IntResult:
    """Reproduce `int_forward` on a padded batch using only `model.step.int8.onnx`.

    Unidirectional: one call per time step for the whole batch; numpy only masks (a finished
    sequence keeps its state, padded outputs are 0) and keeps each sequence's logits of its last
    valid step (many-to-one). Bidirectional: layer by layer, forward cells reading t and backward
    cells reading len-1-t; many-to-many logits come from one more pass of step calls (see
    `_bidirectional_head_pass`). Every integer of the result is computed by the step graph; numpy
    only selects, masks and reorders.
    """
    xa, lens, h = _prepare(qm, x, lengths, h0)
    if qm.config.bidirectional:
        return _run_steps_bidirectional(session, qm, xa, lens, h)
    return _run_steps_unidirectional(session, qm, xa, lens, h)


def generate_steps(session: Any, qm: QuantizedModel, start: int, end: int, max_len: int) -> list[int]:
    """Greedy generation with the step model (ties -> lowest index, like `int_generate` and C)."""
    cfg = qm.config
    if not cfg.tokens or cfg.bidirectional or cfg.num_classes != cfg.vocab_size:
        raise InputError("generation needs a unidirectional token model that predicts tokens")
    h = np.zeros((cfg.num_layers, 1, cfg.hidden_size), dtype=np.int8)
    token, out = int(start), []
    for _ in range(max_len):
        h, logits = _step(session, qm, np.array([token], dtype=np.int64), h)
        token = int(np.argmax(logits[0]))  # np.argmax returns the first maximum
        if token == end:
            break
        out.append(token)
    return out
