"""Shared fixtures: small real models trained once per session on the bundled data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgernn.config import ModelConfig
from edgernn.synthetic import random_model

__all__ = ["assert_every_backend_exact", "padded_batch", "random_model"]

INTEGER_BACKENDS = ("ort-int8", "ort-int8-step", "c-int8", "ort-int8-raw")


def assert_every_backend_exact(out_dir: Path) -> None:
    """`edgernn verify` on out_dir passes, and every integer backend compared integers (n > 0)
    with 0 mismatches against the torch integer reference."""
    from edgernn.verify import verify_dir

    v = verify_dir(out_dir)
    assert v.passed, v.report["parity"]
    rows = {p["b"]: p for p in v.report["parity"]}
    for backend in INTEGER_BACKENDS:
        assert rows[backend]["mismatches"] == 0 and rows[backend]["n"] > 0


def padded_batch(cfg: ModelConfig, lengths: list[int], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = max(lengths)
    if cfg.tokens:
        x = rng.integers(1, cfg.vocab_size, size=(len(lengths), t)).astype(np.int64)
    else:
        x = rng.normal(size=(len(lengths), t, cfg.input_size)).astype(np.float32)
    for i, n in enumerate(lengths):
        x[i, n:] = 0
    return x, np.asarray(lengths, dtype=np.int64)


@pytest.fixture(scope="session")
def jv_export(tmp_path_factory: pytest.TempPathFactory):
    """The default model (japanese_vowels), trained and exported once for the whole session."""
    from edgernn.pipeline import export_dir, train_to_dir

    out = tmp_path_factory.mktemp("jv")
    train_to_dir(out, dataset="japanese_vowels", progress=False)
    export_dir(out)
    return out
