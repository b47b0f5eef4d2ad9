"""Timing statistics: how every wall-clock figure of `edgernn bench` is taken.

Every timing is `repeats` blocks of back-to-back calls after a warm-up, each block sized to take
about `block_s`; a block's time / calls is one sample, reported as median, IQR and min/max
(`summarize`). The blocks of the backends compared in one table are interleaved (`time_blocks`),
and everything runs single-threaded with the garbage collector off.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import torch


@dataclass(frozen=True)
class Settings:
    repeats: int  # timed blocks per measurement
    block_s: float  # target wall time of one block
    warmup_s: float  # untimed calls first (at least 3)
    hidden_sizes: tuple[int, ...]
    lengths: tuple[int, ...]
    callgrind_steps: int  # most steps between the two callgrind runs
    batches: tuple[int, ...] = (1, 64)
    # the peers' shape sweep (`--peers PATH --sweep`): inputs x hidden
    sweep_inputs: tuple[int, ...] = (1, 3, 6, 12, 40)
    sweep_hidden: tuple[int, ...] = (16, 32, 64, 128)


FULL = Settings(15, 0.04, 0.05, (16, 32, 64, 128, 256), (10, 30, 100, 300, 1000), 1024)
# Smoke-test sizes: every code path, tiny repetitions; the numbers mean little.
QUICK = Settings(3, 0.002, 0.002, (8, 16), (10, 40), 32, (1, 4), (3, 12), (16,))


def summarize(samples_ns: Sequence[float], calls: int) -> dict[str, Any]:
    a = np.asarray(samples_ns, dtype=np.float64)
    p25, p50, p75 = np.percentile(a, [25, 50, 75])
    return {
        "median_ns": float(p50),
        "p25_ns": float(p25),
        "p75_ns": float(p75),
        "min_ns": float(a.min()),
        "max_ns": float(a.max()),
        "repeats": len(a),
        "calls_per_repeat": calls,
    }


@contextmanager
def _no_gc() -> Iterator[None]:
    """A collection inside a timed block is noise that belongs to no backend."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


# A block runs n calls (or steps) of one backend and returns its nanoseconds per call.
Block = Callable[[int], float]
K = TypeVar("K", bound=Hashable)


def python_block(fn: Callable[[], object], inference: bool = False) -> Block:
    """Time n back-to-back calls of fn (under torch.inference_mode for torch backends, as a
    streaming application would run them)."""

    def block(n: int) -> float:
        with torch.inference_mode() if inference else nullcontext():
            t0 = time.perf_counter_ns()
            for _ in range(n):
                fn()
            return (time.perf_counter_ns() - t0) / n

    return block


def _size_block(block: Block, s: Settings) -> int:
    """Warm up (caches, allocators, lazy initialisation) by doubling n until one block lasts
    s.warmup_s, then pick the n that makes a block last about s.block_s."""
    n = 1
    while True:
        t0 = time.perf_counter()
        est = block(n)
        if n >= 3 and time.perf_counter() - t0 >= s.warmup_s:
            return max(1, round(s.block_s * 1e9 / max(est, 1.0)))
        n *= 2


def time_blocks(blocks: dict[K, Block], s: Settings) -> dict[K, dict[str, Any]]:
    """s.repeats rounds of one block per backend. Interleaved so that a burst of load on a shared
    machine lands on every backend alike instead of on whichever happened to be running."""
    sizes = {name: _size_block(block, s) for name, block in blocks.items()}
    samples: dict[K, list[float]] = {name: [] for name in blocks}
    with _no_gc():
        for _ in range(s.repeats):
            for name, block in blocks.items():
                samples[name].append(block(sizes[name]))
    return {name: summarize(samples[name], sizes[name]) for name in blocks}


def time_calls(fn: Callable[[], object], s: Settings) -> dict[str, Any]:
    """Nanoseconds per call of fn alone (see time_blocks)."""
    return time_blocks({"fn": python_block(fn)}, s)["fn"]


@contextmanager
def single_threaded() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
