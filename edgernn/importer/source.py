"""A source model as the importer uses it: what was found in its graph, and a way to run it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edgernn.importer.found import Found

# One sequence at its own length -> the source's answer: (T, C) per step or (C,) per sequence.
# A feature sequence is float32 (T, I), a token sequence int64 (T,).
Runner = Callable[[np.ndarray], np.ndarray]
# A padded batch in edgernn's layout ((N, T, I) float32 or (N, T) int64 tokens, pads 0) -> the
# source's answers, (N, C) or (N, T, C): how a model trained on unpacked padded batches was measured.
BatchRunner = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Source:
    found: Found
    run: Runner
    label: str  # the file name, or the module's class name
    sha256: str  # of the file, or of the module's parameters
    run_padded: BatchRunner | None = None  # None: the source runs at one shape only (a .pt2)
