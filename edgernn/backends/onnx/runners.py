"""The two integer ONNX graphs of an export as registered backends (edgernn.backends.registry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.backends.onnx.int_run import generate_steps, make_session, run_sequence, run_steps
from edgernn.backends.registry import IntBackend, register
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult
from edgernn.errors import InternalError
from edgernn.pipeline import INT_ONNX, STEP_ONNX


@dataclass
class _Sequence:
    session: Any
    qm: QuantizedModel

    def run(self, x: np.ndarray, lengths: np.ndarray) -> IntResult:
        return run_sequence(self.session, self.qm, x, lengths)

    def generate(self, start: int, end: int, max_len: int) -> list[int]:
        raise InternalError("the whole-sequence graph does not generate; use ort-int8-step")


@dataclass
class _Step:
    session: Any
    qm: QuantizedModel

    def run(self, x: np.ndarray, lengths: np.ndarray) -> IntResult:
        return run_steps(self.session, self.qm, x, lengths)

    def generate(self, start: int, end: int, max_len: int) -> list[int]:
        return generate_steps(self.session, self.qm, start, end, max_len)


def _open_sequence(out: Path, qm: QuantizedModel, _work: Path) -> _Sequence:
    return _Sequence(make_session(out / INT_ONNX), qm)


def _open_step(out: Path, qm: QuantizedModel, _work: Path) -> _Step:
    return _Step(make_session(out / STEP_ONNX), qm)


register(IntBackend("ort-int8", _open_sequence, order=10))
register(IntBackend("ort-int8-step", _open_step, order=20, generates=True))
