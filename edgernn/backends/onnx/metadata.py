"""`metadata_props` of every exported ONNX graph: what an ONNX Runtime user needs to go from a raw
sample to a class name without edgernn installed. The keys are documented in docs/onnx.md.

Values are strings (ONNX allows nothing else); lists are JSON. Floats are written as the shortest
decimal that reads back as the same float64, and every float32 converts to float64 exactly, so
`np.float32(json.loads(value))` is bit-identical to the array the graph holds. No timestamps and
no path: the same QuantizedModel always gives the same properties, in the same order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np
import onnx
from onnx import helper

from edgernn.contract.model import QuantizedModel

CONTRACT = "int8-tanh-lut1024-v1"

# edgernn.graph: which computation the file holds
GRAPH_FLOAT = "float"  # the float model (ONNX RNN op), raw features in: model.onnx
GRAPH_INT_SEQUENCE = "int8-sequence"  # whole padded batches: model.int8.onnx, model.raw.int8.onnx
GRAPH_INT_STEP = "int8-step"  # one step, state in and out: model.step.int8.onnx, model.step.raw.int8.onnx

# edgernn.input: what the first input takes
INPUT_RAW = "raw"  # raw float32 features, as the sensor gives them
INPUT_NORMALIZED = "normalized"  # float32 features after (raw - mean) / std (older model.onnx)
INPUT_INT8 = "int8"  # int8 features after the float -> int8 rule
INPUT_TOKENS = "tokens"  # int64 token ids


def _floats(values: Iterable[Any]) -> str:
    return json.dumps([float(v) for v in values])


def _compact(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def input_kind(qm: QuantizedModel, kind: str) -> str:
    """A token model's graphs all take token ids, whatever the file."""
    return INPUT_TOKENS if qm.config.tokens else kind


def model_props(qm: QuantizedModel, graph: str, inp: str) -> dict[str, str]:
    """The properties of one graph of `qm` (ordered: ONNX keeps the order, so bytes are stable)."""
    cfg, meta = qm.config, qm.meta
    props: dict[str, str] = {
        "edgernn.contract": CONTRACT,
        "edgernn.config": _compact(cfg.to_dict()),
        "edgernn.head_scale": repr(float(qm.head_scale)),
        "edgernn.graph": graph,
        "edgernn.input": input_kind(qm, inp),
        "edgernn.task": str(cfg.task),
        "edgernn.class_names": _compact(list(meta.class_names or ())),
        "edgernn.vocab": _compact(list(meta.vocab or ())),
    }
    if not cfg.tokens:
        props["edgernn.input.mean"] = _floats(qm.norm_mean)
        props["edgernn.input.std"] = _floats(qm.norm_std)
        props["edgernn.input.scale"] = _floats(qm.input_scale)
        inv = np.float32(1.0) / np.asarray(qm.input_scale, dtype=np.float32)
        props["edgernn.input.inv_scale"] = _floats(inv.astype(np.float32))
    for key in ("start_token", "end_token"):
        value = getattr(meta, key)
        if value is not None:
            props[f"edgernn.{key}"] = str(int(value))
    if meta.source_checkpoint_sha256 is not None:
        props["edgernn.source_checkpoint_sha256"] = meta.source_checkpoint_sha256
    return props


def set_props(model: onnx.ModelProto, props: dict[str, str]) -> None:
    """Replace the model's metadata_props with `props`, in order."""
    del model.metadata_props[:]
    helper.set_model_props(model, props)


def read_props(model: onnx.ModelProto) -> dict[str, str]:
    return {p.key: p.value for p in model.metadata_props}
