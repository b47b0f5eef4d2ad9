"""Float ONNX export with the standard ONNX `RNN` op: dynamic batch and length, lengths for padded
batches, initial state in and final state out, so ONNX Runtime can stream chunk by chunk. The
exported `model.onnx` takes raw features: the normalization is inside the graph."""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Iterator

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from edgernn.artifacts import write_bytes
from edgernn.config import Task
from edgernn.contract.model import QuantizedModel
from edgernn.train.model import EdgeRNN, float32_default

OPSET = 17


@contextlib.contextmanager
def _quiet_native_stderr() -> Iterator[None]:
    """The TorchScript exporter prints shape-inference notes for PackPadded from C++; they are noise
    for users (the graph is checked below), so fd 2 is parked for the duration of the export."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def input_name(model: EdgeRNN) -> str:
    return "tokens" if model.cfg.tokens else "x"


def float_onnx_bytes(model: EdgeRNN, qm: QuantizedModel | None = None) -> bytes:
    """Serialize with the TorchScript exporter (dynamo=False): it emits the ONNX RNN op with
    sequence_lens; the dynamo exporter unrolls the loop and bakes the length in.

    With `qm` (the model's quantized form, for its normalization and provenance) this is the
    exported `model.onnx`: it takes raw features and normalizes them itself, `(x - mean) / std`
    in front of the RNN (see raw_input), and carries edgernn's metadata_props (docs/onnx.md).
    Without `qm`: the bare graph of the torch model, which reads whatever the model reads."""
    model = model.eval()
    cfg = model.cfg
    b, t = 2, 3
    x = (
        torch.ones(b, t, dtype=torch.int64)
        if cfg.tokens
        else torch.zeros(b, t, cfg.input_size, dtype=torch.float32)
    )
    lengths = torch.tensor([t, t - 1], dtype=torch.int64)
    h0 = model.init_state(b)
    name = input_name(model)
    seq_axes = {0: "batch", 1: "time"}
    out_axes = {0: "batch"} if cfg.task == Task.MANY_TO_ONE else seq_axes
    buf = io.BytesIO()
    # A framed model is traced on steps; the framing front (Shape, Slice, Reshape) goes in front
    # afterwards, so no sequence length is baked into the trace.
    traced: nn.Module = _Steps(model) if cfg.frame > 1 or cfg.reverse else model
    # The tracer makes constants in torch's default dtype: float32, whatever the caller set.
    with _quiet_native_stderr(), float32_default():
        torch.onnx.export(
            traced,
            (x, lengths, h0),
            buf,  # type: ignore[arg-type]  # file objects are accepted at run time
            dynamo=False,
            opset_version=OPSET,
            input_names=[name, "lengths", "h0"],
            output_names=["logits", "h_n"],
            dynamic_axes={
                name: seq_axes,
                "lengths": {0: "batch"},
                "h0": {1: "batch"},
                "logits": out_axes,
                "h_n": {1: "batch"},
            },
            do_constant_folding=True,
        )
    proto = onnx.load_from_string(buf.getvalue())
    proto.producer_name = "edgernn"
    proto.producer_version = ""
    if cfg.frame > 1 or cfg.reverse or cfg.tokens:
        _prepend_input_rules(proto, model)
    if qm is not None:
        from edgernn.backends.onnx.raw_input import raw_float_model

        proto = raw_float_model(proto, qm)
    onnx.checker.check_model(proto, full_check=True)
    return proto.SerializeToString()


class _Steps(nn.Module):
    """The model on steps (EdgeRNN.forward_steps), for tracing a framed model."""

    def __init__(self, model: EdgeRNN) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor, h0: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_steps(x, lengths, h0)


def _prepend_input_rules(proto: onnx.ModelProto, model: EdgeRNN) -> None:
    """The framing front (backends/onnx/framing.py) and a reverse model's ReverseSequence in
    front of a graph traced on steps: x and lengths become what the user gives again. Token ids
    pass the integer graphs' check first (refuse_negative_tokens)."""
    from edgernn.backends.onnx.framing import frame_front
    from edgernn.backends.onnx.int_builder import Graph, refuse_negative_tokens
    from edgernn.backends.onnx.raw_input import rename_reads

    g = Graph()
    name = input_name(model)
    if model.cfg.frame > 1:
        x_steps, lengths_steps = frame_front(g, model.cfg, name, "lengths")
    elif model.cfg.tokens:
        x_steps, lengths_steps = refuse_negative_tokens(g, name, model.cfg.vocab_size, "edgernn"), "lengths"
    else:
        x_steps, lengths_steps = name, "lengths"
    if model.cfg.reverse:
        x_steps = g.op(
            "ReverseSequence", [x_steps, lengths_steps], f"{name}_reversed", batch_axis=0, time_axis=1
        )
    graph = proto.graph
    rename_reads(graph, name, x_steps)
    rename_reads(graph, "lengths", lengths_steps)
    nodes = [*g.nodes, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    graph.initializer.extend(g.initializers)
    if model.cfg.frame > 1:
        (x_info,) = [i for i in graph.input if i.name == name]
        x_info.type.tensor_type.shape.dim[2].dim_value = model.cfg.sample_size


def export_float_onnx(model: EdgeRNN, path: str | os.PathLike[str], qm: QuantizedModel | None = None) -> None:
    write_bytes(path, float_onnx_bytes(model, qm))


def session(path: str | os.PathLike[str] | bytes, threads: int = 1) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    src = path if isinstance(path, bytes) else str(path)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


def run_float(
    sess: ort.InferenceSession, x: np.ndarray, lengths: np.ndarray, h0: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Returns (logits, h_n) for a padded batch starting from state h0."""
    name = sess.get_inputs()[0].name
    feed = {
        name: x.astype(np.int64 if name == "tokens" else np.float32),
        "lengths": lengths.astype(np.int64),
        "h0": h0.astype(np.float32),
    }
    logits, h_n = sess.run(["logits", "h_n"], feed)
    return logits, h_n
