"""ONNX backends.

- `float_graph`: the float model as the standard ONNX RNN op (`model.onnx`, raw features in);
- the integer graphs, bit-exact with the torch reference of `edgernn.contract`:
  `int_builder` (builder and shared sub-graphs), `int_sequence` (`model.int8.onnx`),
  `int_step` (`model.step.int8.onnx`), `int_run` (saving, sessions and drivers);
- `raw_input`: the raw-input graphs (`model.onnx`'s normalization, `model.raw.int8.onnx`,
  `model.step.raw.int8.onnx`): normalization and the float -> int8 rule inside the graph;
- `metadata`: the `metadata_props` every graph carries (docs/onnx.md).

The integer graphs' public names are re-exported here.
"""

from edgernn.backends.onnx.int_builder import IR_VERSION, OPSET
from edgernn.backends.onnx.int_run import (
    generate_steps,
    make_session,
    run_sequence,
    run_steps,
    save_model,
)
from edgernn.backends.onnx.int_sequence import build_sequence_model
from edgernn.backends.onnx.int_step import build_step_model
from edgernn.backends.onnx.raw_input import build_raw_sequence_model, build_raw_step_model

__all__ = [
    "IR_VERSION",
    "OPSET",
    "build_raw_sequence_model",
    "build_raw_step_model",
    "build_sequence_model",
    "build_step_model",
    "generate_steps",
    "make_session",
    "run_sequence",
    "run_steps",
    "save_model",
]
