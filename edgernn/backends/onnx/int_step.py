"""`model.step.int8.onnx`: one step for streaming, state in and state out, bit-exact with the
torch reference. The shared parts (and the requantization) are in `int_builder`.
"""

from __future__ import annotations

import numpy as np
import onnx

from edgernn.backends.onnx.int_builder import (
    I8,
    I32,
    I64,
    Graph,
    cell_name,
    cell_update,
    describe,
    finish,
    head,
    input_term,
    new_graph,
    stack_states,
    tensor_info,
)
from edgernn.contract.bounds import check_bounds
from edgernn.contract.model import QuantizedModel


def _step_cell(g: Graph, qm: QuantizedModel, layer: int, direction: int, inp: str) -> str:
    """One cell, one step: reads h[layer * D + direction] and `inp`; returns h_new int32 (B, H)."""
    p = cell_name(layer, direction)
    px = input_term(g, p, qm.cell(layer, direction), inp)
    index = g.const(f"{p}_state_index", layer * qm.config.directions + direction, np.int64)
    h_prev = g.cast(g.op("Gather", ["h", index], f"{p}_h", axis=0), f"{p}_h_i32", I32)
    return cell_update(g, p, h_prev, px, f"{p}_h_new")


def _step_unidirectional(g: Graph, qm: QuantizedModel) -> str:
    """Advance the whole stack one step; each layer reads the one below's new state (int8, as
    the contract's h_q). Returns the top layer's new state."""
    layer_in = "token" if qm.config.tokens else "x"
    news = []
    for layer in range(qm.config.num_layers):
        news.append(_step_cell(g, qm, layer, 0, layer_in))
        layer_in = g.cast(news[-1], f"{news[-1]}_i8", I8)
    stack_states(g, news, "h_new")
    return news[-1]


def _step_bank(g: Graph, qm: QuantizedModel) -> str:
    """Bidirectional: 2L independent cells, cell (l, d) reading x[:, d] (l = 0) or
    layer_in[l-1, :, d] (l > 0). Returns the head input concat(h_new[-2], h_new[-1])."""
    x_name = "token" if qm.config.tokens else "x"
    news = []
    for layer in range(qm.config.num_layers):
        for direction in range(2):
            p = cell_name(layer, direction)
            d_index = g.const(f"{p}_dir_index", direction, np.int64)
            if layer == 0:
                inp = g.op("Gather", [x_name, d_index], f"{p}_in", axis=1)
            else:
                l_index = g.const(f"{p}_layer_index", layer - 1, np.int64)
                per_layer = g.op("Gather", ["layer_in", l_index], f"{p}_layer_in", axis=0)
                inp = g.op("Gather", [per_layer, d_index], f"{p}_in", axis=1)
            news.append(_step_cell(g, qm, layer, direction, inp))
    stack_states(g, news, "h_new")
    return g.op("Concat", news[-2:], "head_in", axis=1)


def build_step_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.step.int8.onnx`: one step, state in and out.

    Unidirectional: x int8 (B, I) [token int64 (B,)], h int8 (L, B, H) -> h_new, logits (B, C).
    Bidirectional (a bank of 2L independent cells): x int8 (B, 2, I) [token int64 (B, 2)],
    layer_in int8 (L-1, B, 2, 2H) when L > 1, h int8 (2L, B, H) -> h_new (2L, B, H) and
    logits = head(concat(h_new[-2], h_new[-1])).
    """
    check_bounds(qm)
    cfg = qm.config
    dirs, hsz, layers = cfg.directions, cfg.hidden_size, cfg.num_layers
    g = new_graph(qm)
    lead: list[int | str | None] = ["B"] if dirs == 1 else ["B", 2]
    inputs = [
        tensor_info("token", I64, lead) if cfg.tokens else tensor_info("x", I8, [*lead, cfg.input_size])
    ]
    if dirs == 1:
        top = _step_unidirectional(g, qm)
    else:
        if layers > 1:
            inputs.append(tensor_info("layer_in", I8, [layers - 1, "B", 2, 2 * hsz]))
        top = _step_bank(g, qm)
    inputs.append(tensor_info("h", I8, [layers * dirs, "B", hsz]))
    head(g, top, "logits")
    outputs = [
        tensor_info("h_new", I8, [layers * dirs, "B", hsz]),
        tensor_info("logits", I32, ["B", cfg.num_classes]),
    ]
    return finish(qm, g, "edgernn_int8_step", inputs, outputs, describe(qm, "step"))
