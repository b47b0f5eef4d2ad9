"""The integer ONNX graphs' shared parts: a tiny graph builder, the sub-graphs both graphs use
(cell constants, the input term, the recurrent update with its requantization, the head), and
the model wrapper with its provenance properties.

Opset 21 (IR version 10). Operators: Cast, Transpose, MatMul (on int32 after a Cast: ORT's
MatMulInteger is wrong for uint8 x int8 on some CPUs), Add, Mul and Div on int64 (Div only of a
positive number, since integer Div truncates toward zero), Clip, Gather and GatherElements (token
table, LUT), Where, Concat, Reshape, Unsqueeze, Shape, Range, Less, ReverseSequence, Scan. No float
tensor anywhere.

The requantization `z = clamp(floor((v + 2^(n-1)) / 2^n), -512, 511)` is written as
    t   = v + (2^(n-1) + 2^62)          >= 0 because |v| < 2^61 (proven by check_bounds)
    idx = clip(t / 2^n + (512 - 2^(62-n)), 0, 1023)     (= z + 512, the LUT index)
which folds the contract's "- 2^(62-n)", the clamp and the "+ 512" of the LUT index into one
constant and one Clip; every intermediate stays an exact int64 (docs/integer-contract.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from edgernn.backends.onnx.metadata import (
    GRAPH_INT_SEQUENCE,
    GRAPH_INT_STEP,
    INPUT_INT8,
    model_props,
    set_props,
)
from edgernn.contract.constants import LUT_SIZE, OFFSET_BITS, Z_MIN
from edgernn.contract.model import QuantCell, QuantizedModel

OPSET = 21
IR_VERSION = 10  # the IR version that goes with opset 21 (not onnx's newest, for older runtimes)
PRODUCER = "edgernn"

I8, I32, I64, BOOL = TensorProto.INT8, TensorProto.INT32, TensorProto.INT64, TensorProto.BOOL


# ---------------------------------------------------------------------------------------------
# A tiny graph builder: named initializers and nodes, nothing clever.


class Graph:
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


def tensor_info(name: str, elem: int, shape: Sequence[int | str | None]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape))


def cell_name(layer: int, direction: int) -> str:
    """Name prefix of a cell's initializers and nodes."""
    return f"l{layer}_d{direction}"


# ---------------------------------------------------------------------------------------------
# Sub-graphs shared by both models


def _shared_constants(g: Graph, lut: np.ndarray) -> None:
    """The LUT (stored as the contract's int8 table) and the scalars every cell uses."""
    g.const("lut", lut.astype(np.int8))
    g.cast("lut", "lut_i32", I32)  # the recurrent state is carried as int32 (see cell_update)
    g.const("lut_lo", 0, np.int64)
    g.const("lut_hi", LUT_SIZE - 1, np.int64)
    g.const("zero_i64", 0, np.int64)
    g.const("one_i64", 1, np.int64)
    g.const("zero_i32", 0, np.int32)
    g.const("flat_shape", [-1], np.int64)
    for axis in range(3):
        g.const(f"axes_{axis}", [axis], np.int64)  # Unsqueeze takes its axes as an input


def _cell_constants(g: Graph, p: str, cell: QuantCell) -> None:
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


def refuse_negative_tokens(g: Graph, tokens: str, vocab: int, p: str) -> str:
    """The token ids with each negative one replaced by `vocab`, an index Gather refuses. ONNX
    Gather counts a negative index from the end, so token -1 would silently read the last token's
    row, where the C runtime returns EDGERNN_ERR_TOKEN and torch raises."""
    negative = g.op("Less", [tokens, g.const(f"{p}_zero_token", 0, np.int64)], f"{p}_token_negative")
    return g.op("Where", [negative, g.const(f"{p}_vocab", vocab, np.int64), tokens], f"{p}_token_checked")


def input_term(g: Graph, p: str, cell: QuantCell, inp: str) -> str:
    """acc_x * M_x (int64) for any leading shape: inp is int8 (..., In) or int64 tokens (...)."""
    if cell.table is not None:
        ids = refuse_negative_tokens(g, inp, len(cell.table), p)
        acc_x = g.op("Gather", [f"{p}_table", ids], f"{p}_acc_x", axis=0)
    else:
        x32 = g.cast(inp, f"{p}_x_i32", I32)
        acc_x = g.op("Add", [g.op("MatMul", [x32, f"{p}_w_ih_t"], f"{p}_wx"), f"{p}_bias"], f"{p}_acc_x")
    return g.op("Mul", [g.cast(acc_x, f"{p}_acc_x_i64", I64), f"{p}_m_x"], f"{p}_px")


def cell_update(g: Graph, p: str, h_prev: str, px: str, out: str) -> str:
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


def head(g: Graph, feat: str, out: str) -> str:
    """logits = head_w . feat + head_b in int32 (|logit| < 2^31 is proven by check_bounds)."""
    f32 = g.cast(feat, f"{out}_feat_i32", I32)
    return g.op("Add", [g.op("MatMul", [f32, "head_w_t"], f"{out}_wy"), "head_b"], out)


def _head_constants(g: Graph, qm: QuantizedModel) -> None:
    g.const("head_w", qm.head_w.astype(np.int8))
    g.op("Transpose", [g.cast("head_w", "head_w_i32", I32)], "head_w_t", perm=[1, 0])
    g.const("head_b", qm.head_b.astype(np.int32))


def new_graph(qm: QuantizedModel) -> Graph:
    g = Graph()
    _shared_constants(g, qm.lut)
    _head_constants(g, qm)
    for i, cell in enumerate(qm.cells):
        _cell_constants(g, cell_name(i // qm.config.directions, i % qm.config.directions), cell)
    return g


# ---------------------------------------------------------------------------------------------
# The model around a graph


def _referenced(nodes: Sequence[onnx.NodeProto]) -> set[str]:
    """Every name a node reads, including from inside Scan bodies (outer-scope references)."""
    names: set[str] = set()
    for node in nodes:
        names.update(node.input)
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                names |= _referenced(attr.g.node)
    return names


def finish(
    qm: QuantizedModel,
    g: Graph,
    name: str,
    inputs: list[onnx.ValueInfoProto],
    outputs: list[onnx.ValueInfoProto],
    doc: str,
) -> onnx.ModelProto:
    """Wrap the graph in a checked opset-21 model with deterministic provenance properties."""
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
    kind = GRAPH_INT_STEP if name.endswith("_step") else GRAPH_INT_SEQUENCE
    set_props(model, model_props(qm, kind, INPUT_INT8))
    onnx.checker.check_model(model, full_check=True)
    return model


def stack_states(g: Graph, states: Sequence[str], out: str) -> str:
    """int32 (B, H) states in torch's h_n order -> int8 (L*D, B, H)."""
    rows = [g.op("Unsqueeze", [s, "axes_0"], f"{s}_u") for s in states]
    return g.cast(g.op("Concat", rows, f"{out}_i32", axis=0), out, I8)


def describe(qm: QuantizedModel, kind: str) -> str:
    """The graph's doc string: shape of the model and how to dequantize its logits."""
    c = qm.config
    return (
        f"edgernn integer {kind} graph: {c.task}, {'tokens' if c.tokens else 'features'} "
        f"{c.vocab_size if c.tokens else c.input_size}, hidden {c.hidden_size}, layers {c.num_layers}, "
        f"{'bidirectional' if c.bidirectional else 'unidirectional'}, classes {c.num_classes}; "
        f"logit = logits * {float(qm.head_scale)!r}"
    )
