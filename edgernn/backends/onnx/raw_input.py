"""The raw-input graphs: the same models, taking raw float32 features as a sensor gives them.

- `model.onnx`: the float graph (ONNX `RNN` op, float_graph) with the normalization
  `(x - mean) / std` inside (two float32 ops, Sub then Div); there is no normalized-input float
  graph in an export.
- `model.raw.int8.onnx`, `model.step.raw.int8.onnx`: the integer graphs (`model.int8.onnx`,
  `model.step.int8.onnx`) with the normalization and the contract's float -> int8 rule inside,
  bit-identical to the C float wrapper `edgernn_quantize_input` (docs/integer-contract.md):

      x_n = (x - mean) / std                    float32 Sub, then Div (skipped with no normalization)
      t   = x_n * inv_scale                     float32 Mul, inv_scale = float32(1) / float32(s_x)
      t   = 0 where t is NaN                    IsNaN + Where
      c   = clip(t, -127, 127)                  +-inf -> +-127
      a   = |c|;  f = floor(a)
      r   = f + (a - f >= 0.5)                  a - f is exact (0 <= a < 128), so ties go up
      x_q = int8(c < 0 ? -r : r)                round half away from zero

  Rounding is not `floor(|c| + 0.5)`: for |c| just below 0.5 (0.49999997) the float32 sum rounds
  up to 1.0, which would give 1 where C and numpy give 0. `a - floor(a)` is exact for every
  float32 in [0, 128) and compared with 0.5, as C compares `t >= q + 0.5`.

Built by wrapping the int8-input graph: its input `x` is renamed `x_q` and produced by the nodes
above from a new float32 input `x` of the same shape. Everything after `x_q` is the int8 graph,
unchanged. Token models take token ids: their raw graphs are their token graphs (same
computation, `edgernn.input` = "tokens").
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from edgernn.backends.onnx.int_builder import I8, Graph
from edgernn.backends.onnx.int_sequence import build_sequence_model
from edgernn.backends.onnx.int_step import build_step_model
from edgernn.backends.onnx.metadata import (
    GRAPH_FLOAT,
    GRAPH_INT_SEQUENCE,
    GRAPH_INT_STEP,
    INPUT_RAW,
    model_props,
    set_props,
)
from edgernn.contract.constants import Q_MAX
from edgernn.contract.model import QuantizedModel

F32 = TensorProto.FLOAT
RAW_INPUT = "x"  # the raw graphs' feature input keeps the name of the graphs they wrap


def rename_reads(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Every node that reads `old` (in sub-graphs too) reads `new` instead."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                rename_reads(attr.g, old, new)


def _normalize(g: Graph, qm: QuantizedModel, src: str, samples: bool) -> str:
    """(x - mean) / std as two float32 ops, like the C wrapper and numpy; none without a norm.
    samples: src holds samples (a framed model's sequence graphs), else whole steps."""
    mean_values, std_values = qm.sample_norm if samples else (qm.norm_mean, qm.norm_std)
    if mean_values.size == 0:
        return src
    mean = g.const("raw_norm_mean", mean_values.astype(np.float32))
    std = g.const("raw_norm_std", std_values.astype(np.float32))
    return g.op("Div", [g.op("Sub", [src, mean], "raw_centred"), std], "raw_normalized")


def _quantize(g: Graph, qm: QuantizedModel, src: str, dst: str, samples: bool) -> str:
    """The float -> int8 rule (module docstring), float32 `src` -> int8 `dst`."""
    scale = qm.sample_scale if samples else qm.input_scale
    inv = (np.float32(1.0) / np.asarray(scale, dtype=np.float32)).astype(np.float32)
    g.const("raw_inv_scale", inv)
    for name, value in (("raw_zero", 0.0), ("raw_half", 0.5), ("raw_q_min", -Q_MAX), ("raw_q_max", Q_MAX)):
        g.const(name, np.array(value, np.float32))
    t = g.op("Mul", [src, "raw_inv_scale"], "raw_t")
    t = g.op("Where", [g.op("IsNaN", [t], "raw_is_nan"), "raw_zero", t], "raw_t_not_nan")
    c = g.op("Clip", [t, "raw_q_min", "raw_q_max"], "raw_clipped")
    a = g.op("Abs", [c], "raw_abs")
    f = g.op("Floor", [a], "raw_floor")
    up = g.op("GreaterOrEqual", [g.op("Sub", [a, f], "raw_frac"), "raw_half"], "raw_round_up")
    r = g.op("Add", [f, g.cast(up, "raw_round_up_f", F32)], "raw_rounded_abs")
    neg = g.op("Less", [c, "raw_zero"], "raw_negative")
    signed = g.op("Where", [neg, g.op("Neg", [r], "raw_rounded_neg"), r], "raw_rounded")
    return g.cast(signed, dst, I8)


def _prepend(model: onnx.ModelProto, g: Graph, read_as: str) -> None:
    """Put g's nodes in front of the model's (they produce `read_as` from the input `x`, which
    the existing nodes now read as `read_as`), with their initializers."""
    graph = model.graph
    taken = {t.name for t in graph.initializer} | {n for node in graph.node for n in node.output}
    clash = taken & ({t.name for t in g.initializers} | {n for node in g.nodes for n in node.output})
    if clash:
        raise AssertionError(f"raw-input names already used in the graph: {sorted(clash)}")
    rename_reads(graph, RAW_INPUT, read_as)
    nodes = [*g.nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(g.initializers)


def _int_raw(base: onnx.ModelProto, qm: QuantizedModel, kind: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.CopyFrom(base)
    if not qm.config.tokens:
        g = Graph()
        samples = kind == GRAPH_INT_SEQUENCE
        _quantize(g, qm, _normalize(g, qm, RAW_INPUT, samples), "x_q", samples)
        _prepend(model, g, "x_q")
        (x_info,) = [i for i in model.graph.input if i.name == RAW_INPUT]
        x_info.type.tensor_type.elem_type = F32
        model.graph.name += "_raw"
        model.graph.doc_string += (
            "; input x: raw float32 features, normalized and quantized inside the graph "
            "(edgernn.input.mean/std/inv_scale)"
        )
    set_props(model, model_props(qm, kind, INPUT_RAW))
    onnx.checker.check_model(model, full_check=True)
    return model


def build_raw_sequence_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.raw.int8.onnx`: `model.int8.onnx` with `x` raw float32 (B, T, I)."""
    return _int_raw(build_sequence_model(qm), qm, GRAPH_INT_SEQUENCE)


def build_raw_step_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.step.raw.int8.onnx`: `model.step.int8.onnx` with `x` raw float32 (B, I)
    ((B, 2, I) for a bidirectional bank)."""
    return _int_raw(build_step_model(qm), qm, GRAPH_INT_STEP)


def raw_float_model(float_model: onnx.ModelProto, qm: QuantizedModel) -> onnx.ModelProto:
    """`model.onnx`: the float graph with `(x - mean) / std` in front of it (nothing in front for
    a model without normalization or a token model), and the metadata_props."""
    model = onnx.ModelProto()
    model.CopyFrom(float_model)
    if not qm.config.tokens and qm.norm_mean.size:
        g = Graph()
        normalized = _normalize(g, qm, RAW_INPUT, samples=True)
        _prepend(model, g, normalized)
    set_props(model, model_props(qm, GRAPH_FLOAT, INPUT_RAW))
    onnx.checker.check_model(model, full_check=True)
    return model
