"""The generated C of an export, compiled natively, as a registered backend (edgernn.backends.registry)."""

from __future__ import annotations

from pathlib import Path

from edgernn.backends.c.host import CModel, compile_model
from edgernn.backends.registry import IntBackend, register
from edgernn.contract.model import QuantizedModel
from edgernn.pipeline import HEADER


def _open(out: Path, qm: QuantizedModel, work: Path) -> CModel:
    return compile_model(out / HEADER, qm.meta.c_prefix or "edgernn_model", work)


register(IntBackend("c-int8", _open, order=30, needs_c_compiler=True, generates=True))
