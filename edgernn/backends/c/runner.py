"""The generated C of an export, compiled natively, as a registered backend (edgernn.backends.registry)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.backends.c.host import CModel, compile_model
from edgernn.backends.registry import IntBackend, register
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult
from edgernn.frame import steps_numpy
from edgernn.pipeline import HEADER


@dataclass
class _Stepped:
    """A model whose steps are not its input samples one for one, in order (frame, pad_to,
    reverse): each sequence is made into steps before PREFIX_run, as firmware does (a sample
    buffer of whole frames, PREFIX_push_sample; PREFIX_pad before a run, PREFIX_finish after
    streaming; PREFIX_reverse before a run)."""

    model: CModel
    qm: QuantizedModel

    def run(self, x: np.ndarray, lengths: np.ndarray) -> IntResult:
        return self.model.run(*steps_numpy(self.qm.config, np.asarray(x), np.asarray(lengths)))

    def generate(self, start: int, end: int, max_len: int) -> list[int]:
        return self.model.generate(start, end, max_len)


def _open(out: Path, qm: QuantizedModel, work: Path) -> CModel | _Stepped:
    model = compile_model(out / HEADER, qm.meta.c_prefix or "edgernn_model", work)
    cfg = qm.config
    return _Stepped(model, qm) if cfg.pad_to or cfg.frame > 1 or cfg.reverse else model


register(IntBackend("c-int8", _open, order=30, needs_c_compiler=True, generates=True))
