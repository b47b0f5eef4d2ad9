"""`model.int8.onnx`: the integer sequence graph, whole padded batches, bit-exact with the torch
reference `int_forward`.

Per layer and direction the input term `acc_x * M_x` is computed for every step at once (Cast +
MatMul + Add, or Gather from the folded token table), then a `Scan` over time runs the recurrence
with a per-step validity mask (a sequence's state freezes after its last valid step). The backward
direction reverses each sequence within its own length with `ReverseSequence`, runs forward, and
reverses back. The shared parts (and the requantization) are in `int_builder`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from edgernn.backends.onnx.framing import frame_front
from edgernn.backends.onnx.int_builder import (
    BOOL,
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
from edgernn.config import Task
from edgernn.contract.bounds import check_bounds
from edgernn.contract.model import QuantizedModel


def _within_lengths(g: Graph, inp: str, lengths: str, p: str = "") -> str:
    """within[b, t] = t < lengths[b]: bool (B, T), T being inp's axis 1. `p` prefixes the names."""
    steps = g.op("Gather", [g.op("Shape", [inp], f"{p}x_shape"), "one_i64"], f"{p}steps", axis=0)
    t = g.op("Range", ["zero_i64", steps, "one_i64"], f"{p}time_index")
    t_row = g.op("Unsqueeze", [t, "axes_0"], f"{p}time_row")  # (1, T)
    len_col = g.op("Unsqueeze", [lengths, "axes_1"], f"{p}lengths_col")  # (B, 1)
    return g.op("Less", [t_row, len_col], f"{p}valid_bt")


def _validity_mask(g: Graph, inp: str, lengths: str) -> str:
    """valid[b, t, 0] = t < lengths[b]: bool (B, T, 1), scanned along axis 1 as (B, 1) per step."""
    return g.op("Unsqueeze", [_within_lengths(g, inp, lengths), "axes_2"], "valid")


def _scan_body(p: str, hidden: int) -> onnx.GraphProto:
    """One time step of one cell. State: h (B, H) int32. Scan inputs: px_t (B, H), valid_t (B, 1).
    Outputs: the next state (frozen where the sequence has ended) and y_t (0 where it has)."""
    body = Graph()
    h_cand = cell_update(body, p, f"{p}_h_prev", f"{p}_px_t", f"{p}_h_cand")
    body.op("Where", [f"{p}_valid_t", h_cand, f"{p}_h_prev"], f"{p}_h_next")
    body.op("Where", [f"{p}_valid_t", h_cand, "zero_i32"], f"{p}_y_t")
    return helper.make_graph(
        body.nodes,
        f"{p}_step",
        [
            tensor_info(f"{p}_h_prev", I32, [None, hidden]),
            tensor_info(f"{p}_px_t", I64, [None, hidden]),
            tensor_info(f"{p}_valid_t", BOOL, [None, 1]),
        ],
        [tensor_info(f"{p}_h_next", I32, [None, hidden]), tensor_info(f"{p}_y_t", I32, [None, hidden])],
    )


def _run_direction(
    g: Graph, qm: QuantizedModel, layer: int, direction: int, inp: str, lengths: str
) -> tuple[str, str]:
    """One cell over the whole batch: returns (outputs int8 (B, T, H) in original time order,
    final state int32 (B, H))."""
    p = cell_name(layer, direction)
    cell = qm.cell(layer, direction)
    px = input_term(g, p, cell, inp)
    if direction == 1:  # reverse each sequence within its own length; padding stays in place
        px = g.op("ReverseSequence", [px, lengths], f"{p}_px_rev", batch_axis=0, time_axis=1)
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
        y8 = g.op("ReverseSequence", [y8, lengths], f"{p}_y_fwd_order", batch_axis=0, time_axis=1)
    return y8, h_last


def _pad_steps(g: Graph, qm: QuantizedModel, x_name: str) -> tuple[str, str]:
    """ModelConfig.pad_to (edgernn.pad): x's steps past each length zeroed (token 0), pad_to zero
    steps after x, lengths raised to pad_to. Returns the names of the padded x and lengths."""
    pad_to = qm.config.pad_to
    keep = _within_lengths(g, x_name, "lengths", "kept_")  # (B, T)
    if not qm.config.tokens:
        keep = g.op("Unsqueeze", [keep, "axes_2"], "pad_keep")  # (B, T, 1)
    fill = g.const("pad_fill", 0, np.int64 if qm.config.tokens else np.int8)
    x_name = g.op("Where", [keep, x_name, fill], f"{x_name}_kept")
    batch = g.op("Gather", ["kept_x_shape", "zero_i64"], "batch", axis=0)  # _within_lengths's Shape
    batch_1 = g.op("Unsqueeze", [batch, "axes_0"], "batch_1")
    tail = [pad_to] if qm.config.tokens else [pad_to, qm.config.input_size]
    shape = g.op("Concat", [batch_1, g.const("pad_tail", tail, np.int64)], "pad_shape", axis=0)
    zero = numpy_helper.from_array(np.zeros(1, np.int64 if qm.config.tokens else np.int8), "pad_value")
    zeros = g.op("ConstantOfShape", [shape], "pad_steps", value=zero)
    x_in = g.op("Concat", [x_name, zeros], f"{x_name}_padded", axis=1)
    lengths = g.op("Max", ["lengths", g.const("pad_to", pad_to, np.int64)], "lengths_padded")
    return x_in, lengths


def _at_least_one_step(g: Graph, x_in: str, lengths: str, rank: int) -> tuple[str, str, str]:
    """ONNX Runtime's Scan fails on a time axis of length 0, and with a batch of two or more kills
    the process (SIGFPE, onnxruntime 1.32): x with T = 0, or a framed batch that holds no whole
    frame. Such an x gets one zero step appended that no length reaches (lengths are clamped to the
    steps x has, which is how the validity mask already read a longer one), so no step runs and
    the state stays h0, as in every other backend; the per-step outputs are cropped back to the
    steps x has. Returns the padded x, the clamped lengths and that step count (1-D, for Slice)."""
    steps = g.op("Gather", [g.op("Shape", [x_in], "scan_in_shape"), "one_i64"], "scan_in_steps", axis=0)
    missing = g.op("Sub", [g.op("Max", [steps, "one_i64"], "scan_steps"), steps], "scan_missing")
    # Pad's pads: every axis's begin, then every axis's end; only the time axis (1) grows at its end.
    pads = g.op(
        "Concat",
        [
            g.const("scan_pads_before", [0] * (rank + 1), np.int64),
            g.op("Unsqueeze", [missing, "axes_0"], "scan_missing_1"),
            *([g.const("scan_pads_after", [0] * (rank - 2), np.int64)] if rank > 2 else []),
        ],
        "scan_pads",
        axis=0,
    )
    padded = g.op("Pad", [x_in, pads], "scan_x")
    clamped = g.op("Min", [lengths, steps], "scan_lengths")
    return padded, clamped, g.op("Unsqueeze", [steps, "axes_0"], "scan_in_steps_1")


def _crop_steps(g: Graph, y: str, steps: str, axis: int, out: str) -> str:
    """y's first `steps` entries along the time axis (undoing _at_least_one_step's padding)."""
    return g.op(
        "Slice",
        [y, g.const(f"{out}_start", [0], np.int64), steps, g.const(f"{out}_axis", [axis], np.int64)],
        out,
    )


def build_sequence_model(qm: QuantizedModel) -> onnx.ModelProto:
    """`model.int8.onnx`: whole padded batches, dynamic B and T (see the module docstring)."""
    check_bounds(qm)
    cfg = qm.config
    dirs, hsz, layers = cfg.directions, cfg.hidden_size, cfg.num_layers
    g = new_graph(qm)
    x_name = "tokens" if cfg.tokens else "x"
    if cfg.frame > 1:  # samples in: the steps are frames of them (edgernn.frame)
        x_in, lengths = frame_front(g, cfg, x_name, "lengths")
    else:
        x_in, lengths = _pad_steps(g, qm, x_name) if cfg.pad_to else (x_name, "lengths")
    x_in, lengths, steps = _at_least_one_step(g, x_in, lengths, 2 if cfg.tokens else 3)
    if cfg.reverse:  # each sequence read from its end (edgernn.frame.reverse_*)
        x_in = g.op("ReverseSequence", [x_in, lengths], "x_reversed", batch_axis=0, time_axis=1)
    valid = _validity_mask(g, x_in, lengths)
    layer_in, layer_outs, finals = x_in, [], []
    for layer in range(layers):
        ys = []
        for direction in range(dirs):
            y, h_last = _run_direction(g, qm, layer, direction, layer_in, lengths)
            ys.append(y)
            finals.append(h_last)
        layer_in = g.op("Concat", ys, f"l{layer}_out", axis=2)  # (B, T, D*H) int8
        layer_outs.append(g.op("Unsqueeze", [layer_in, "axes_0"], f"l{layer}_out_u"))
    _crop_steps(g, g.op("Concat", layer_outs, "hidden_scanned", axis=0), steps, 2, "hidden")
    stack_states(g, finals, "h_n")
    if cfg.task == Task.MANY_TO_ONE:
        if cfg.last_output:  # the top layer's output at each sequence's last valid step
            last = g.op("Sub", [lengths, "one_i64"], "last_step")
            index = g.op("Unsqueeze", [last, "axes_1"], "last_step_col")  # (B, 1)
            feat = g.op("GatherND", [layer_in, index], "head_in", batch_dims=1)
        else:
            feat = g.op("Concat", finals[-dirs:], "head_in", axis=1)
        head(g, feat, "logits")
        logits_shape: list[int | str | None] = ["B", cfg.num_classes]
    else:
        raw = head(g, layer_in, "logits_all")
        _crop_steps(g, g.op("Where", [valid, raw, "zero_i32"], "logits_scanned"), steps, 1, "logits")
        logits_shape = ["B", "T", cfg.num_classes]
    x_info = (
        tensor_info("tokens", I64, ["B", "T"])
        if cfg.tokens
        else tensor_info("x", I8, ["B", "T", cfg.sample_size])
    )
    inputs = [x_info, tensor_info("lengths", I64, ["B"]), tensor_info("h0", I8, [layers * dirs, "B", hsz])]
    outputs = [
        tensor_info("logits", I32, logits_shape),
        tensor_info("h_n", I8, [layers * dirs, "B", hsz]),
        tensor_info(
            "hidden", I8, [layers, "B", "T" if cfg.frame == 1 and not cfg.pad_to else "steps", dirs * hsz]
        ),
    ]
    return finish(qm, g, "edgernn_int8_sequence", inputs, outputs, describe(qm, "sequence"))
