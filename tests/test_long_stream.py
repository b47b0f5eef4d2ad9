"""10^6 steps through PREFIX_step, every one of them equal to the torch integer reference.

The reference is not run as one 10^6-step Python loop (hours). Instead, the RNN's whole memory is
its state, so the reference's transition -- edgernn.contract.reference.int_forward on a length-1 sequence
starting from a given h0 -- is applied to *every* recorded C state at once, as one batch of 10^6
independent one-step sequences:

    for all t:  int_forward(x_t, h0 = C's state after step t-1)  ==  C's state (and logits) after step t

with C's state before step 1 being the zero state. By induction on t this is exactly "C's stream
equals the reference's stream at every one of the 10^6 steps", with nothing sampled. The first
2,000 steps are also run through int_forward as one ordinary sequence, which shows on this very
stream that the batched one-step form and the sequential form of the reference agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgernn.backends.c.codegen import write_header
from edgernn.backends.c.fuzz import random_quantized_model
from edgernn.backends.c.host import compile_model
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import int_forward

STEPS = 1_000_000
CHUNK = 100_000  # one-step sequences per int_forward call: bounded memory, few Python calls


def stream_input(qm: QuantizedModel, steps: int, seed: int) -> np.ndarray:
    """Random steps, with runs of +-127 (saturating) and of zeros (decaying) mixed in."""
    rng = np.random.default_rng(seed)
    cfg = qm.config
    if cfg.tokens:
        return rng.integers(0, cfg.vocab_size, size=steps).astype(np.int64)
    x = rng.integers(-127, 128, size=(steps, cfg.input_size)).astype(np.int8)
    for start in rng.integers(0, steps - 500, size=steps // 5000):
        kind = rng.integers(3)
        span = slice(int(start), int(start) + int(rng.integers(20, 500)))
        x[span] = 127 if kind == 0 else (-127 if kind == 1 else 0)
    return x


def check_every_step(qm: QuantizedModel, x: np.ndarray, states: np.ndarray, logits: np.ndarray) -> int:
    """Each C state (and its logits) = the reference's one step from the previous C state.
    Returns the number of steps that differ."""
    cfg = qm.config
    rows, hidden = cfg.num_layers * cfg.directions, cfg.hidden_size
    bad = 0
    for lo in range(0, len(x), CHUNK):
        hi = min(lo + CHUNK, len(x))
        prev = np.zeros((hi - lo, rows, hidden), np.int8)
        prev[1 if lo == 0 else 0 :] = states[max(lo - 1, 0) : hi - 1]
        h0 = torch.from_numpy(prev.transpose(1, 0, 2).copy())
        xs = torch.from_numpy(x[lo:hi, None] if cfg.tokens else x[lo:hi, None, :])
        ref = int_forward(qm, xs, torch.ones(hi - lo, dtype=torch.int64), h0)
        want_states = ref.h_n.numpy().transpose(1, 0, 2)
        want_logits = ref.logits[:, 0].numpy()
        bad += int(
            (
                (want_states != states[lo:hi]).any(axis=(1, 2)) | (want_logits != logits[lo:hi]).any(axis=1)
            ).sum()
        )
    return bad


FEATURES = dict(
    task="many-to-many", inp=6, hidden=16, layers=2, bi=False, classes=5, vocab=0, seed=11, scale=2.0
)
TOKENS = dict(
    task="many-to-many", inp=8, hidden=16, layers=2, bi=False, classes=6, vocab=40, seed=12, scale=2.0
)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "steps"), [(FEATURES, STEPS), (TOKENS, STEPS // 5)], ids=["features-1e6", "tokens-2e5"]
)
def test_a_million_steps_equal_the_reference(tmp_path: Path, kind: dict[str, Any], steps: int) -> None:
    qm = random_quantized_model(**kind)
    header = write_header(qm, tmp_path / "model.h", "ls")
    cm = compile_model(header, "ls", tmp_path)
    x = stream_input(qm, steps, seed=kind["seed"])
    states, logits = cm.stream_with_logits(x)  # (T, L, H) int8 and (T, C) int32, C's PREFIX_step

    assert check_every_step(qm, x, states, logits) == 0
    # The stream is not a degenerate one: states saturate and move all the way through.
    assert (np.abs(states) == 127).mean() > 0.05
    assert len(np.unique(states[-1000:])) > 50

    head = 2000  # the sequential reference, as one ordinary sequence, on the first steps
    seq = int_forward(qm, torch.from_numpy(x[None, :head]), torch.tensor([head]))
    assert np.array_equal(states[:head], seq.hidden[:, 0].numpy().transpose(1, 0, 2))
    assert np.array_equal(logits[:head], seq.logits[0].numpy())


def test_one_wrong_step_is_caught(tmp_path: Path) -> None:
    """The batched check has teeth: one flipped state bit in the middle of a stream is found, and
    only the steps whose input state or output it touches are reported."""
    qm = random_quantized_model("many-to-many", 4, 8, 2, False, 3, 0, seed=5, scale=2.0)
    cm = compile_model(write_header(qm, tmp_path / "model.h", "lt"), "lt", tmp_path)
    x = stream_input(qm, 20_000, seed=5)
    states, logits = cm.stream_with_logits(x)
    assert check_every_step(qm, x, states, logits) == 0
    states[12_345, 1, 3] ^= 1
    assert check_every_step(qm, x, states, logits) == 2  # step 12345 itself, and step 12346
