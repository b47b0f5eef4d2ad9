"""The generated C of an export, compiled natively, as a registered backend (edgernn.backends.registry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.backends.c.host import CModel, compile_model
from edgernn.backends.registry import IntBackend, register
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult
from edgernn.pad import pad_numpy
from edgernn.pipeline import HEADER


@dataclass
class _Padded:
    """A pad_to model: the pad steps appended to each sequence before PREFIX_run, as firmware
    appends them (PREFIX_pad before a run, PREFIX_finish after streaming)."""

    model: CModel
    qm: QuantizedModel

    def run(self, x: np.ndarray, lengths: np.ndarray) -> IntResult:
        return self.model.run(*pad_numpy(self.qm.config, np.asarray(x), np.asarray(lengths)))

    def generate(self, start: int, end: int, max_len: int) -> list[int]:
        return self.model.generate(start, end, max_len)


def _open(out: Path, qm: QuantizedModel, work: Path) -> CModel | _Padded:
    model = compile_model(out / HEADER, qm.meta.c_prefix or "edgernn_model", work)
    return _Padded(model, qm) if qm.config.pad_to else model


register(IntBackend("c-int8", _open, order=30, needs_c_compiler=True, generates=True))
