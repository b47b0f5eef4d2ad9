"""The framing front of the ONNX graphs (edgernn.frame): samples in, the steps the RNN reads out.

    steps     = T // K                      (Shape, Gather, Div: integer division of int64)
    x_steps   = reshape(x[:, : steps * K], (B, steps, K * I))
    lengths'  = lengths // K                (the last partial frame is dropped)

Reshape copies B (a 0 in the target shape) and infers the step count (-1), so the graph keeps a
dynamic batch and length. The graphs that read whole sequences (model.onnx, model.int8.onnx and
its raw twin) take samples; the step graphs take one step, a frame of K samples side by side.
"""

from __future__ import annotations

import numpy as np

from edgernn.backends.onnx.int_builder import Graph
from edgernn.config import ModelConfig


def frame_front(g: Graph, cfg: ModelConfig, x: str, lengths: str) -> tuple[str, str]:
    """Nodes that turn samples `x` (B, T, I) and `lengths` (in samples) into steps; returns the
    names of the framed x (B, T // K, K * I) and lengths."""
    k = g.const("frame_k", cfg.frame, np.int64)
    t = g.op(
        "Gather",
        [g.op("Shape", [x], "frame_x_shape"), g.const("frame_time_axis", 1, np.int64)],
        "frame_t",
        axis=0,
    )
    kept = g.op("Mul", [g.op("Div", [t, k], "frame_steps"), k], "frame_kept")
    ends = g.op("Unsqueeze", [kept, g.const("frame_axes_0", [0], np.int64)], "frame_ends")
    starts = g.const("frame_starts", [0], np.int64)
    cropped = g.op("Slice", [x, starts, ends, g.const("frame_axes_1", [1], np.int64)], "frame_cropped")
    shape = g.const("frame_shape", [0, -1, cfg.input_size], np.int64)
    return g.op("Reshape", [cropped, shape], "x_steps"), g.op("Div", [lengths, k], "lengths_steps")
