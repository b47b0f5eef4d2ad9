"""Files, sessions and drivers for the integer ONNX graphs.

`run_sequence` runs `model.int8.onnx` on a padded batch; `run_steps` and `generate_steps`
reproduce `int_forward` and `int_generate` with only `model.step.int8.onnx` (numpy selects, masks
and reorders; every integer comes from the graph). Results are IntResults, like the reference's.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import onnx
import torch

from edgernn.artifacts import write_bytes
from edgernn.config import Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult
from edgernn.errors import InputError
from edgernn.frame import steps_numpy


def save_model(model: onnx.ModelProto, path: str | os.PathLike[str]) -> None:
    """Write atomically: a temp file in the same directory, fsync, then os.replace."""
    write_bytes(path, model.SerializeToString(deterministic=True))  # edgernn.artifacts: the one writer


def make_session(model: onnx.ModelProto | str | os.PathLike[str]) -> Any:
    """A CPU session with one thread per pool: reproducible timings, no contention with xdist."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    src = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    return ort.InferenceSession(src, sess_options=opts, providers=["CPUExecutionProvider"])


# ---------------------------------------------------------------------------------------------
# Drivers


def _np(a: torch.Tensor | np.ndarray) -> np.ndarray:
    return a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)


def _prepare(
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check and convert driver inputs to the graph's dtypes: x int8 / tokens int64, lengths int64
    in 1..T, h0 int8 (L*D, B, H) (zeros when None)."""
    cfg = qm.config
    xa, lens = _np(x), _np(lengths)
    rank, want = (2, "(B, T)") if cfg.tokens else (3, f"(B, T, {cfg.sample_size})")
    if xa.ndim != rank or (not cfg.tokens and xa.shape[2] != cfg.sample_size):
        raise InputError(f"x must have shape {want}, got {xa.shape}")
    if not (np.issubdtype(xa.dtype, np.integer) and np.issubdtype(lens.dtype, np.integer)):
        raise InputError("the integer graphs take integer x and lengths (quantize float inputs first)")
    lens = lens.astype(np.int64)
    b, steps = xa.shape[0], xa.shape[1]
    if lens.shape != (b,) or steps < 1 or (b and (lens.min() < 1 or lens.max() > steps)):
        raise InputError(f"lengths must have shape ({b},) with values in 1..{steps}")
    if cfg.tokens:
        if xa.size and (xa.min() < 0 or xa.max() >= cfg.vocab_size):
            raise InputError(f"tokens must be in 0..{cfg.vocab_size - 1}")
        xa = xa.astype(np.int64)
    else:
        if xa.size and (xa.min() < -128 or xa.max() > 127):
            raise InputError("x must be int8 values")
        xa = xa.astype(np.int8)
    shape = (cfg.num_layers * cfg.directions, b, cfg.hidden_size)
    if h0 is None:
        h = np.zeros(shape, dtype=np.int8)
    else:
        h = _np(h0)
        if h.shape != shape or (h.size and (h.min() < -128 or h.max() > 127)):
            raise InputError(f"h0 must be int8 of shape {shape}")
        h = h.astype(np.int8)
    return np.ascontiguousarray(xa), lens, np.ascontiguousarray(h)


def _result(hidden: np.ndarray, h_n: np.ndarray, logits: np.ndarray) -> IntResult:
    return IntResult(
        hidden=torch.from_numpy(np.ascontiguousarray(hidden, dtype=np.int8)),
        h_n=torch.from_numpy(np.ascontiguousarray(h_n, dtype=np.int8)),
        logits=torch.from_numpy(np.ascontiguousarray(logits, dtype=np.int32)),
    )


def run_sequence(
    session: Any,
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None = None,
) -> IntResult:
    """Run `model.int8.onnx` on a padded batch; same shapes and dtypes as `int_forward`."""
    xa, lens, h = _prepare(qm, x, lengths, h0)
    feed = {"tokens" if qm.config.tokens else "x": xa, "lengths": lens, "h0": h}
    logits, h_n, hidden = session.run(["logits", "h_n", "hidden"], feed)
    return _result(hidden, h_n, logits)


def run_raw_sequence(session: Any, qm: QuantizedModel, raw: np.ndarray, lengths: np.ndarray) -> IntResult:
    """Run `model.raw.int8.onnx` (raw float32 features in, zero initial state) on a padded batch;
    same shapes and dtypes as `int_forward`."""
    cfg = qm.config
    xa, lens = np.ascontiguousarray(raw, dtype=np.float32), np.asarray(lengths, dtype=np.int64)
    if xa.ndim != 3 or xa.shape[2] != cfg.sample_size:
        raise InputError(f"raw x must have shape (B, T, {cfg.sample_size}), got {xa.shape}")
    h0 = np.zeros((cfg.num_layers * cfg.directions, xa.shape[0], cfg.hidden_size), dtype=np.int8)
    logits, h_n, hidden = session.run(["logits", "h_n", "hidden"], {"x": xa, "lengths": lens, "h0": h0})
    return _result(hidden, h_n, logits)


def _step(
    session: Any, qm: QuantizedModel, inp: np.ndarray, h: np.ndarray, layer_in: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    feed = {"token" if qm.config.tokens else "x": inp, "h": h}
    if layer_in is not None:
        feed["layer_in"] = layer_in
    h_new, logits = session.run(["h_new", "logits"], feed)
    return h_new, logits


def _run_steps_unidirectional(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h: np.ndarray
) -> IntResult:
    cfg = qm.config
    b, steps = xa.shape[0], xa.shape[1]
    hidden = np.zeros((cfg.num_layers, b, steps, cfg.hidden_size), dtype=np.int8)
    seq_logits = np.zeros((b, steps, cfg.num_classes), dtype=np.int32)
    last_logits = np.zeros((b, cfg.num_classes), dtype=np.int32)
    for t in range(steps):
        valid = t < lens  # (B,)
        h_new, logits = _step(session, qm, np.ascontiguousarray(xa[:, t]), h)
        h = np.where(valid[None, :, None], h_new, h)  # a finished sequence keeps its state
        hidden[:, :, t] = np.where(valid[None, :, None], h_new, 0)
        seq_logits[:, t] = np.where(valid[:, None], logits, 0)
        last_logits = np.where(valid[:, None], logits, last_logits)
    return _result(hidden, h, last_logits if cfg.task == Task.MANY_TO_ONE else seq_logits)


def _bank_inputs(
    qm: QuantizedModel, layer: int, src: np.ndarray, fwd_t: np.ndarray, bwd_t: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None]:
    """Step-model inputs that feed layer `layer`'s forward cell src[:, fwd_t] and its backward cell
    src[:, bwd_t] (per sequence); the other layers' cells get zeros, their outputs are ignored."""
    cfg = qm.config
    rows = np.arange(src.shape[0])
    pair = np.stack([src[rows, fwd_t], src[rows, bwd_t]], axis=1)  # (B, 2, ...)
    b = src.shape[0]
    if layer == 0:
        x_step = pair
    else:
        shape = (b, 2) if cfg.tokens else (b, 2, cfg.input_size)
        x_step = np.zeros(shape, dtype=np.int64 if cfg.tokens else np.int8)
    layer_in = None
    if cfg.num_layers > 1:
        layer_in = np.zeros((cfg.num_layers - 1, b, 2, 2 * cfg.hidden_size), dtype=np.int8)
        if layer > 0:
            layer_in[layer - 1] = pair
    return np.ascontiguousarray(x_step), layer_in


def _run_steps_bidirectional(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h0: np.ndarray
) -> IntResult:
    """Layer by layer over the bank: at call t the forward cell reads t and the backward cell
    reads len-1-t; after len calls both have finished their sequence (states then frozen)."""
    cfg = qm.config
    b, steps, hsz, layers = xa.shape[0], xa.shape[1], cfg.hidden_size, cfg.num_layers
    h = h0.copy()
    hidden = np.zeros((layers, b, steps, 2 * hsz), dtype=np.int8)
    last_logits = np.zeros((b, cfg.num_classes), dtype=np.int32)
    rows = np.arange(b)
    src = xa
    for layer in range(layers):
        cells = [2 * layer, 2 * layer + 1]
        for t in range(steps):
            valid = t < lens
            rev_t = np.where(valid, lens - 1 - t, t)
            x_step, layer_in = _bank_inputs(qm, layer, src, np.full(b, t), rev_t)
            h_new, logits = _step(session, qm, x_step, h, layer_in)
            h[cells] = np.where(valid[None, :, None], h_new[cells], h[cells])
            hidden[layer, :, t, :hsz] = np.where(valid[:, None], h_new[cells[0]], 0)
            hidden[layer, rows[valid], rev_t[valid], hsz:] = h_new[cells[1]][valid]
            if layer == layers - 1:  # both top cells took their last step together at t = len-1
                last_logits = np.where(valid[:, None], logits, last_logits)
        src = hidden[layer]
    if cfg.task == Task.MANY_TO_ONE and not cfg.last_output:
        return _result(hidden, h, last_logits)
    per_step = _bidirectional_head_pass(session, qm, xa, lens, h0, hidden)
    if cfg.task == Task.MANY_TO_ONE:  # Readout.LAST_OUTPUT: the logits at the last valid step
        return _result(hidden, h, per_step[rows, lens - 1])
    return _result(hidden, h, per_step)


def _bidirectional_head_pass(
    session: Any, qm: QuantizedModel, xa: np.ndarray, lens: np.ndarray, h0: np.ndarray, hidden: np.ndarray
) -> np.ndarray:
    """Many-to-many logits at position p need head(concat(fwd[p], bwd[p])), but one pass never has
    both top cells at the same position. So recompute each position once more with the step model:
    the forward top cell from fwd[p-1] (h0 at p=0) and the backward top cell from bwd[p+1] (h0 at
    p=len-1), both reading the layer input at p; h_new[-2:] are then fwd[p] and bwd[p] and the
    step model's own logits output is the many-to-many logit at p. No integer op outside ORT."""
    cfg = qm.config
    b, steps, hsz, top = xa.shape[0], xa.shape[1], cfg.hidden_size, cfg.num_layers - 1
    src = xa if top == 0 else hidden[top - 1]
    out = np.zeros((b, steps, cfg.num_classes), dtype=np.int32)
    h = h0.copy()
    fwd, bwd = hidden[top][..., :hsz], hidden[top][..., hsz:]
    for p in range(steps):
        valid = p < lens
        h[2 * top] = fwd[:, p - 1] if p > 0 else h0[2 * top]
        has_next = p + 1 < lens
        nxt = bwd[:, min(p + 1, steps - 1)]
        h[2 * top + 1] = np.where(has_next[:, None], nxt, h0[2 * top + 1])
        pos = np.full(b, p)
        x_step, layer_in = _bank_inputs(qm, top, src, pos, pos)
        _, logits = _step(session, qm, x_step, h, layer_in)
        out[:, p] = np.where(valid[:, None], logits, 0)
    return out


def run_steps(
    session: Any,
    qm: QuantizedModel,
    x: torch.Tensor | np.ndarray,
    lengths: torch.Tensor | np.ndarray,
    h0: torch.Tensor | np.ndarray | None = None,
) -> IntResult:
    """Reproduce `int_forward` on a padded batch using only `model.step.int8.onnx`.

    Unidirectional: one call per time step for the whole batch; numpy only masks (a finished
    sequence keeps its state, padded outputs are 0) and keeps each sequence's logits of its last
    valid step (many-to-one). Bidirectional: layer by layer, forward cells reading t and backward
    cells reading len-1-t; many-to-many logits come from one more pass of step calls (see
    `_bidirectional_head_pass`). Every integer of the result is computed by the step graph; numpy
    only selects, masks and reorders.
    """
    xa, lens, h = _prepare(qm, x, lengths, h0)
    xa, lens = steps_numpy(qm.config, xa, lens)  # one call per step: frames, and pad steps
    if qm.config.bidirectional:
        return _run_steps_bidirectional(session, qm, xa, lens, h)
    return _run_steps_unidirectional(session, qm, xa, lens, h)


def generate_steps(session: Any, qm: QuantizedModel, start: int, end: int, max_len: int) -> list[int]:
    """Greedy generation with the step model (ties -> lowest index, like `int_generate` and C)."""
    cfg = qm.config
    if not cfg.tokens or cfg.bidirectional or cfg.num_classes != cfg.vocab_size:
        raise InputError("generation needs a unidirectional token model that predicts tokens")
    h = np.zeros((cfg.num_layers, 1, cfg.hidden_size), dtype=np.int8)
    token, out = int(start), []
    for _ in range(max_len):
        h, logits = _step(session, qm, np.array([token], dtype=np.int64), h)
        token = int(np.argmax(logits[0]))  # np.argmax returns the first maximum
        if token == end:
            break
        out.append(token)
    return out
