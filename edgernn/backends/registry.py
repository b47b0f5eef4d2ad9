"""The integer backends of an export, by name: what `verify` checks against the torch reference.

A backend opens from an export directory and answers the reference's two questions on the same
inputs: a padded batch of whole sequences (`run`, as edgernn.contract.reference.int_forward) and,
for one-to-many models, greedy generation (`generate`, as int_generate). A new backend is one
`register(IntBackend(...))` call in its own module, imported at the end of this one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult
from edgernn.errors import InternalError


class IntRunner(Protocol):
    """One export opened in one backend."""

    def run(self, x: np.ndarray, lengths: np.ndarray) -> IntResult:
        """A padded batch (int8 features or token ids), zero initial state."""
        ...

    def generate(self, start: int, end: int, max_len: int) -> list[int]:
        """Greedy generation from `start` until `end` or max_len tokens."""
        ...


@dataclass(frozen=True)
class IntBackend:
    name: str  # the parity table's name, e.g. "ort-int8"
    open: Callable[[Path, QuantizedModel, Path], IntRunner]  # (export dir, model, scratch dir)
    order: int  # where its rows stand in the parity table (imports may register in any order)
    needs_c_compiler: bool = False
    generates: bool = False  # has a generation path worth checking token for token


INT_BACKENDS: dict[str, IntBackend] = {}


def int_backends() -> list[IntBackend]:
    """Every registered backend, in table order."""
    return sorted(INT_BACKENDS.values(), key=lambda b: (b.order, b.name))


def register(backend: IntBackend) -> IntBackend:
    if backend.name in INT_BACKENDS:
        raise InternalError(f"two integer backends are called {backend.name!r}")
    INT_BACKENDS[backend.name] = backend
    return backend


# One line per backend module: importing it registers its backends.
from edgernn.backends.c import runner as _c_runner  # noqa: E402, F401
from edgernn.backends.onnx import runners as _onnx_runners  # noqa: E402, F401
