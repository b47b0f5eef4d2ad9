"""Run an exported model from Python or the `edgernn predict` command.

`Runtime(DIR, backend=...)` opens an export directory in one of four backends ("c", "onnx-int8",
"onnx", "torch") and answers `predict`, `stream` and `generate` with raw (un-normalised) floats or
token ids in; `edgernn.predict.io` reads the --data files and writes the CSV / JSON records.
"""

from edgernn.predict.runtime import (
    BACKENDS,
    Generation,
    Prediction,
    Runtime,
    StepPrediction,
    Stream,
)

__all__ = ["BACKENDS", "Generation", "Prediction", "Runtime", "StepPrediction", "Stream"]
