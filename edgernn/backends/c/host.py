"""Run a generated model.h natively: compile it with c_runtime/harness.c into a shared library and
call it through ctypes, with the same inputs and outputs as the torch integer reference."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.backends.c.build import STRICT_WARNINGS, Build, Compiler, cached
from edgernn.backends.c.codegen import c_runtime_dir, validate_prefix
from edgernn.backends.c.header import descriptor_name, header_macros, stage_header
from edgernn.config import Task
from edgernn.contract.reference import IntResult
from edgernn.errors import InputError, InternalError

HARNESS = "harness.c"
# The host library: the strict warning set a careful firmware build uses, as a shared object.
HOST_FLAGS: tuple[str, ...] = ("-O2", "-std=c99", *STRICT_WARNINGS, "-fPIC", "-shared")
# eh_info's order (c_runtime/harness.c): what the descriptor says.
INFO_FIELDS: tuple[str, ...] = (
    "runtime_version",
    "input_size",  # token models: the vocabulary size
    "token_input",
    "hidden",
    "layers",
    "directions",
    "classes",
    "task",
    "state_bytes",
    "run_buf_bytes_per_step",
    "end_token",
    "sample_step",
)
TASKS = {1: Task.MANY_TO_ONE, 2: Task.MANY_TO_MANY, 3: Task.ONE_TO_MANY}
ERR_MODEL = -4  # EDGERNN_ERR_MODEL: the call does not apply to this model kind
ERRORS = {
    -1: "run buffer too small",
    -2: "token id out of range",
    -3: "NULL pointer",
    ERR_MODEL: "not a call of this model kind",
    -100: "out of memory",
}


_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[Any, list[Any]]] = {
    "eh_info": (ctypes.c_int32, [_P, ctypes.c_int32]),
    "eh_run_batch": (
        ctypes.c_int32,
        [_P, _P, ctypes.c_int32, ctypes.c_int32, _P, _P, ctypes.c_size_t, _P, _P, _P],
    ),
    "eh_run_raw": (ctypes.c_int32, [_P, _P, ctypes.c_size_t, _P, ctypes.c_size_t, _P]),
    "eh_stream": (ctypes.c_int32, [_P, ctypes.c_int64, _P, _P]),
    "eh_classify": (ctypes.c_int32, [_P, _P]),
    "eh_generate": (ctypes.c_int64, [ctypes.c_int32, _P, ctypes.c_int64, ctypes.c_uint32]),
    "eh_quantize": (ctypes.c_int32, [_P, _P, ctypes.c_int64]),
    "eh_dequantize_logit": (ctypes.c_float, [ctypes.c_int32]),
    "eh_argmax": (ctypes.c_int32, [_P, ctypes.c_int32]),
    "eh_sample": (ctypes.c_int32, [_P, ctypes.c_int32, ctypes.c_uint32, _P]),
    "eh_lut": (None, [_P]),
    "eh_bench_step_ns": (ctypes.c_double, [ctypes.c_int64]),
}


def _ptr(a: np.ndarray | None) -> int | None:
    """The address of a's data. The caller must hold a reference to `a` for the whole C call: a
    temporary (e.g. `_ptr(x.astype(...))`) may be freed, and its memory reused, before C reads it."""
    return None if a is None else int(a.ctypes.data)


def _np(a: Any, dtype: Any) -> np.ndarray:
    if isinstance(a, torch.Tensor):
        a = a.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(a), dtype=dtype)


def _check_rc(rc: int, what: str) -> None:
    """Inputs are checked in Python before any call, so a C error code here is edgernn's own bug."""
    if rc == ERR_MODEL:
        raise InputError(f"{what}: this model kind has no such function")
    if rc != 0:
        raise InternalError(f"{what}: the C code returned {rc} ({ERRORS.get(rc, 'unknown error')})")


class CModel:
    """A compiled model.h. Methods mirror the integer reference, edgernn.contract.reference."""

    def __init__(self, lib_path: str | os.PathLike[str], macros: dict[str, int] | None = None) -> None:
        self.path = Path(lib_path)
        self.macros = dict(macros or {})  # the header's integer macros, e.g. macros["WEIGHT_BYTES"]
        self._lib = ctypes.CDLL(str(self.path))
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self._lib, name)
            fn.restype, fn.argtypes = restype, argtypes
        out = np.zeros(len(INFO_FIELDS), dtype=np.int64)
        count = self._lib.eh_info(_ptr(out), len(INFO_FIELDS))
        if count != len(INFO_FIELDS):
            raise InternalError(
                f"{self.path}: harness reports {count} info fields, expected {len(INFO_FIELDS)}"
            )
        self.info: dict[str, int] = {k: int(v) for k, v in zip(INFO_FIELDS, out, strict=True)}
        self.task = TASKS[self.info["task"]]
        self.tokens = bool(self.info["token_input"])

    # -- whole sequences ----------------------------------------------------------------------

    def _inputs(self, x: Any, steps: int | None = None) -> np.ndarray:
        if self.tokens:
            tok = _np(x, np.int64)
            if tok.size and (tok.min() < 0 or tok.max() >= self.info["input_size"]):
                raise InputError(f"token ids must be in [0, {self.info['input_size']})")
            return tok.astype(np.int32)
        xq = _np(x, np.int64)
        if xq.size and (xq.min() < -128 or xq.max() > 127):
            raise InputError("int8 inputs must be in [-128, 127]")
        if xq.shape[-1] != self.info["input_size"]:
            raise InputError(
                f"inputs have {xq.shape[-1]} features, the model reads {self.info['input_size']}"
            )
        return xq.astype(np.int8)

    def run(self, x: Any, lengths: Any, h0: Any = None, record: bool = True) -> IntResult:
        """Padded batch through PREFIX_run; same shapes and dtypes as edgernn.contract.reference.int_forward.
        record=False passes buf = NULL (unidirectional only): hidden is then left all zero."""
        info = self.info
        xs = self._inputs(x)
        lens = _np(lengths, np.int64)
        batch, steps = xs.shape[0], xs.shape[1]
        if lens.shape != (batch,) or (batch and (lens.min() < 1 or lens.max() > steps)):
            raise InputError(f"lengths must be ({batch},) with values in 1..{steps}")
        rows, hidden = info["layers"] * info["directions"], info["hidden"]
        h0_arr = None if h0 is None else _np(h0, np.int8)
        if h0_arr is not None and h0_arr.shape != (rows, batch, hidden):
            raise InputError(f"h0 must be ({rows}, {batch}, {hidden})")
        if not record and info["directions"] == 2:
            raise InputError("a bidirectional model needs its run buffer (record=True)")
        width = info["directions"] * hidden
        hid = np.zeros((info["layers"], batch, steps, width), dtype=np.int8)
        h_n = np.zeros((rows, batch, hidden), dtype=np.int8)
        per_step = self.task != Task.MANY_TO_ONE
        logits = np.zeros((batch, steps, info["classes"]) if per_step else (batch, info["classes"]), np.int32)
        buf_bytes = info["run_buf_bytes_per_step"] * steps
        buf = np.zeros(max(buf_bytes, 1), dtype=np.int8) if record else None
        lens32 = lens.astype(np.int32)
        rc = self._lib.eh_run_batch(
            _ptr(xs),
            _ptr(lens32),
            batch,
            steps,
            _ptr(h0_arr),
            _ptr(buf),
            buf_bytes if record else 0,
            _ptr(hid),
            _ptr(h_n),
            _ptr(logits),
        )
        _check_rc(rc, "run")
        return IntResult(
            hidden=torch.from_numpy(hid), h_n=torch.from_numpy(h_n), logits=torch.from_numpy(logits)
        )

    def run_raw(
        self,
        state: np.ndarray,
        x: np.ndarray | None,
        steps: int,
        buf: np.ndarray | None,
        buf_bytes: int,
        logits: np.ndarray | None,
    ) -> int:
        """PREFIX_run as is, for its error paths: returns its code; updates state (L*D, H) in place."""
        return int(self._lib.eh_run_raw(_ptr(state), _ptr(x), steps, _ptr(buf), buf_bytes, _ptr(logits)))

    # -- streaming and generation -------------------------------------------------------------

    def stream_with_logits(self, x_steps: Any) -> tuple[np.ndarray, np.ndarray]:
        """One stream from the zero state through PREFIX_step: (T, L, H) states and (T, C) logits."""
        xs = self._inputs(x_steps)
        steps = xs.shape[0]
        states = np.zeros(
            (steps, self.info["layers"] * self.info["directions"], self.info["hidden"]), np.int8
        )
        logits = np.zeros((steps, self.info["classes"]), np.int32)
        _check_rc(self._lib.eh_stream(_ptr(xs), steps, _ptr(states), _ptr(logits)), "stream")
        return states, logits

    def stream(self, x_steps: Any) -> np.ndarray:
        """The full state after every step of one long stream: (T, L, H) int8. Unidirectional only."""
        return self.stream_with_logits(x_steps)[0]

    def classify(self, state: Any) -> tuple[int, np.ndarray]:
        st = _np(state, np.int8)
        logits = np.zeros(self.info["classes"], np.int32)
        cls = int(self._lib.eh_classify(_ptr(st), _ptr(logits)))
        _check_rc(min(cls, 0), "classify")
        return cls, logits

    def generate(self, start: int, end: int, max_len: int, seed: int = 0) -> list[int]:
        """PREFIX_generate from the zero state. `end` must be the header's PREFIX_END_TOKEN."""
        if self.task != Task.ONE_TO_MANY:
            raise InputError("generate needs a one-to-many model")
        if end != self.info["end_token"]:
            raise InputError(f"this header was generated with end token {self.info['end_token']}, not {end}")
        out = np.zeros(max(max_len, 1), dtype=np.int32)
        n = int(self._lib.eh_generate(start, _ptr(out), max_len, seed & 0xFFFFFFFF))
        return [int(t) for t in out[:n]]

    # -- float wrappers and building blocks ---------------------------------------------------

    def quantize(self, x_float: Any) -> np.ndarray:
        """PREFIX_quantize_input over (..., INPUT_SIZE) floats -> int8 of the same shape."""
        raw = _np(x_float, np.float32)
        if self.tokens or raw.shape[-1] != self.info["input_size"]:
            raise InputError(f"quantize takes (..., {self.info['input_size']}) floats of a feature model")
        out = np.zeros(raw.shape, dtype=np.int8)
        _check_rc(self._lib.eh_quantize(_ptr(raw), _ptr(out), raw.size // raw.shape[-1]), "quantize")
        return out

    def dequantize_logit(self, logit_q: int) -> float:
        return float(self._lib.eh_dequantize_logit(logit_q))

    def argmax(self, values: Sequence[int] | np.ndarray) -> int:
        v = _np(values, np.int32)
        return int(self._lib.eh_argmax(_ptr(v), v.size))

    def sample(self, logits: Sequence[int] | np.ndarray, step: int, rng_state: int) -> tuple[int, int]:
        """edgernn_sample_s32 once: (class, new generator state)."""
        v = _np(logits, np.int32)
        rng = np.array([rng_state], dtype=np.uint32)
        cls = int(self._lib.eh_sample(_ptr(v), v.size, step, _ptr(rng)))
        return cls, int(rng[0])

    def lut(self) -> np.ndarray:
        out = np.zeros(1024, dtype=np.int8)
        self._lib.eh_lut(_ptr(out))
        return out

    def bench_step_ns(self, steps: int = 100_000) -> float:
        """Host nanoseconds per PREFIX_step (unidirectional models)."""
        return float(self._lib.eh_bench_step_ns(steps))


def compile_model(
    header_path: str | os.PathLike[str],
    prefix: str,
    workdir: str | os.PathLike[str],
    cc: str | None = None,
    extra_flags: Sequence[str] = (),
) -> CModel:
    """Build header + harness.c into a shared library in workdir (cached by content) and load it.
    cc: the compiler; None takes $CC, else cc."""
    text, local = stage_header(header_path, validate_prefix(prefix), workdir)
    work = local.parent
    build = Build(
        compiler=Compiler.discover(cc),
        sources=(c_runtime_dir() / HARNESS,),
        flags=(*HOST_FLAGS, *extra_flags),
        defines={"EDGERNN_MODEL_HEADER": f'"{local.name}"', "EDGERNN_MODEL": descriptor_name(text)},
        include_dirs=(work,),
    )
    lib = cached(build, work, f"edgernn_{prefix}", f"compiling {header_path} with the host harness", ".so")
    return CModel(lib, header_macros(text))
