"""Every backend as a zero-argument callable, state carried in its closure: one call is one
streaming step (`*_step`) or one padded batch of whole sequences (`sequence_fns`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from edgernn.backends.c.host import CModel
from edgernn.train.model import EdgeRNN


def torch_step(model: EdgeRNN, pool: list[np.ndarray]) -> Callable[[], object]:
    """EdgeRNN.forward on one step (T=1) with the state carried: what the edgernn model gives you."""
    xs = itertools.cycle([torch.from_numpy(p) for p in pool])
    one = torch.full((1,), pool[0].shape[1], dtype=torch.int64)  # one step: `frame` samples
    h = model.init_state(1)

    def step() -> object:
        nonlocal h
        logits, h = model(next(xs), one, h)
        return logits

    return step


def torch_bare_step(model: EdgeRNN, pool: list[np.ndarray]) -> Callable[[], object]:
    """nn.RNN + nn.Linear on one step, no packing: the least torch work per step."""
    xs = itertools.cycle([torch.from_numpy(p) for p in pool])
    h = model.init_state(1)
    emb = model.embedding

    def step() -> object:
        nonlocal h
        x = next(xs)
        x = emb(x) if emb is not None else x.reshape(1, 1, -1)  # a framed step: K samples in one
        y, h = model.rnn(x, h)
        return model.head(y[:, -1])

    return step


def ort_float_step(sess: Any, pool: list[np.ndarray], state_shape: tuple[int, ...]) -> Callable[[], object]:
    name = sess.get_inputs()[0].name
    xs = itertools.cycle(pool)
    one = np.full(1, pool[0].shape[1], dtype=np.int64)  # one step: `frame` samples
    h = np.zeros(state_shape, dtype=np.float32)

    def step() -> object:
        nonlocal h
        logits, h = sess.run(["logits", "h_n"], {name: next(xs), "lengths": one, "h0": h})
        return logits

    return step


def ort_int8_step(sess: Any, pool: list[np.ndarray], state_shape: tuple[int, ...]) -> Callable[[], object]:
    name = sess.get_inputs()[0].name  # "x" or "token"
    xs = itertools.cycle(pool)
    h = np.zeros(state_shape, dtype=np.int8)

    def step() -> object:
        nonlocal h
        h, logits = sess.run(["h_new", "logits"], {name: next(xs), "h": h})
        return logits

    return step


def c_ctypes_step(model: CModel, pool: list[np.ndarray], rows: int, hidden: int) -> Callable[[], object]:
    """PREFIX_run over one step through ctypes, state in and out: one FFI call per step."""
    dtype = np.int32 if model.tokens else np.int8
    xs = itertools.cycle([np.ascontiguousarray(p.reshape(-1), dtype=dtype) for p in pool])
    state = np.zeros((rows, hidden), dtype=np.int8)

    def step() -> object:
        return model.run_raw(state, next(xs), 1, None, 0, None)

    return step


def sequence_fns(
    model: EdgeRNN,
    f_sess: Any,
    i_sess: Any,
    c_model: CModel,
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rows: int,
    hidden: int,
    to_raw: Callable[[np.ndarray], np.ndarray] = lambda x: x,
    as_steps: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]] = lambda x, n: (x, n),
) -> dict[str, Callable[[], object]]:
    """Whole padded batches, cycled: one callable per backend, each call = one batch. `to_raw`
    turns the normalized float batch into what model.onnx takes (raw features), `as_steps` the
    int8 batch into the steps PREFIX_run reads (edgernn.frame.steps_numpy), before timing."""
    f_name, i_name = f_sess.get_inputs()[0].name, i_sess.get_inputs()[0].name
    t_batches = [(torch.from_numpy(xf), torch.from_numpy(lens)) for xf, _, lens in batches]
    f_feeds = [
        {f_name: to_raw(xf), "lengths": lens, "h0": np.zeros((rows, len(lens), hidden), np.float32)}
        for xf, _, lens in batches
    ]
    i_feeds = [
        {i_name: xi, "lengths": lens, "h0": np.zeros((rows, len(lens), hidden), np.int8)}
        for _, xi, lens in batches
    ]
    c_batches = [as_steps(xi, lens) for _, xi, lens in batches]
    t_it, f_it, i_it, c_it = (itertools.cycle(v) for v in (t_batches, f_feeds, i_feeds, c_batches))
    record = c_model.info["directions"] == 2  # a bidirectional run needs its buffer

    def c_run() -> object:
        xi, lens = next(c_it)
        return c_model.run(xi, lens, record=record)

    return {
        "torch-float": lambda: model(*next(t_it)),
        "ort-float": lambda: f_sess.run(["logits", "h_n"], next(f_it)),
        "ort-int8": lambda: i_sess.run(["logits", "h_n"], next(i_it)),
        "c-ctypes": c_run,
    }
