"""`Runtime`: an export directory opened in one backend, raw floats (or token ids) in, classes out.

Backends:

| name        | runs                                   | inputs become                                  |
|-------------|----------------------------------------|------------------------------------------------|
| `c`         | model.h compiled for the host (ctypes) | int8 by the header's own float wrapper          |
| `onnx-int8` | model.int8.onnx / model.step.int8.onnx | int8 by `contract.quantize_inputs` (same rule)  |
| `onnx`      | model.onnx (float)                     | raw float32: the graph normalises              |
| `torch`     | checkpoint.pt (float)                  | normalised float32                             |

The two integer backends give the same integers bit for bit (the integer contract); their logits
are returned as int32 (`logits_q`) and dequantized (`logits = logits_q * head_scale`). The float
backends agree with each other within float tolerance.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.config import MAX_GENERATED, Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_inputs
from edgernn.data.dataset import normalize
from edgernn.errors import InputError
from edgernn.frame import check_frames, frame_numpy, steps_numpy
from edgernn.pipeline import FLOAT_ONNX, HEADER, INT_ONNX, QUANT_NAME, STEP_ONNX, load_quantized, shared

BACKENDS: tuple[str, ...] = ("c", "onnx-int8", "onnx", "torch")
INT_BACKENDS = ("c", "onnx-int8")
BATCH = 256  # sequences per call: bounds memory (the C run buffer is per step and sequence)


@dataclass(frozen=True)
class Prediction:
    """One sequence's answer. Many-to-one: `predicted` is a class id and `logits` (C,); many-to-many
    and one-to-many: one per valid step, `predicted` a list and `logits` (T_i, C)."""

    predicted: int | list[int]
    class_name: str | list[str]
    logits: np.ndarray  # float64: dequantized for the int8 backends
    logits_q: np.ndarray | None  # int32, the integer backends only
    per_step: bool


@dataclass(frozen=True)
class StepPrediction:
    """The prediction after one streamed step."""

    predicted: int
    class_name: str
    logits: np.ndarray  # (C,) float64
    logits_q: np.ndarray | None  # (C,) int32, integer backends only


@dataclass(frozen=True)
class Generation:
    """Greedy generation: `tokens` are the generated ids (the end token not included), `text`
    their text; `prompt` the ids fed first (the start token, or the prompt given) and `full_text`
    the prompt's text followed by the generated text."""

    tokens: list[int]
    text: str
    prompt: list[int] = field(default_factory=list)
    full_text: str = ""


def as_array(value: Any, what: str) -> np.ndarray:
    """A user's sequence, sample or batch as a numpy array: lists, numpy arrays and torch tensors
    (detached; a float type numpy lacks, such as bfloat16, as float32). Ragged nesting and values
    that are not numbers are InputErrors, not numpy's."""
    if type(value).__module__.startswith("torch"):
        import torch

        if isinstance(value, torch.Tensor):
            value = value.detach().cpu()
            if value.is_floating_point() and value.dtype not in (torch.float16, torch.float32, torch.float64):
                value = value.float()
            return np.asarray(value.numpy())
    try:
        return np.asarray(value)
    except ValueError as e:  # ragged: rows of different lengths
        raise InputError(f"{what} is ragged ({e}); give sequences as a list of (T_i, I) arrays") from None


def _check_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    return backend


def _check_export(out: Path, backend: str) -> None:
    """A directory `edgernn export` completed, and the files this backend reads match its manifest."""
    from edgernn.manifest import MANIFEST, check_manifest, checkpoint_sha256

    try:
        if not out.is_dir():
            raise InputError(f"{out} is not a directory; give an export directory (edgernn export DIR)")
    except OSError as e:
        raise InputError(f"cannot access {out}: {e.strerror or e}") from None
    if not (out / MANIFEST).is_file() or not (out / QUANT_NAME).is_file():
        raise InputError(f"{out} is not a complete export (no {MANIFEST}); run `edgernn export {out}` first")
    needed = {
        "c": (QUANT_NAME, HEADER),
        "onnx-int8": (QUANT_NAME, INT_ONNX, STEP_ONNX),
        "onnx": (QUANT_NAME, FLOAT_ONNX),
        "torch": (QUANT_NAME,),
    }[backend]
    # CheckFailed (exit 1) for a tampered or mixed set, or a checkpoint retrained since the export
    # (every backend: the artifacts would answer for the old model)
    check_manifest(out, needed, checkpoint_sha256(out))


class Runtime:
    """An exported model in one backend. See the module docstring for the backends.

    >>> rt = Runtime("export/japanese_vowels", backend="onnx-int8")
    >>> rt.predict([seq_a, seq_b])[0].class_name    # seq_*: raw (T_i, 12) float features
    >>> s = rt.stream(); [s.step(frame) for frame in seq_a][-1].predicted
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        backend: str = "onnx-int8",
        workdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.backend = _check_backend(backend)
        with shared(self.directory) if self.directory.is_dir() else _nothing():
            _check_export(self.directory, backend)
            self.qm: QuantizedModel = load_quantized(self.directory)
            self._impl = _open(self.directory, self.qm, backend, workdir)
        cfg = self.qm.config
        self.task = Task(cfg.task)
        self.tokens = bool(cfg.tokens)
        self.input_size = int(cfg.sample_size)  # features of one sample (a step reads frame of them)
        self.vocab: tuple[str, ...] = tuple(self.qm.meta.vocab or ())
        names = tuple(self.qm.meta.class_names or ())
        if self.task == Task.ONE_TO_MANY and len(self.vocab) == cfg.num_classes:
            names = self.vocab  # a generative model's classes are its tokens
        self.class_names: tuple[str, ...] = (
            names if len(names) == cfg.num_classes else tuple(str(i) for i in range(cfg.num_classes))
        )

    def close(self) -> None:
        """Release what the backend holds: the ONNX Runtime sessions, the C backend's temporary build
        directory. The loaded C library stays mapped until the process ends (ctypes cannot unload
        one safely). Using the Runtime afterwards is an InputError. Also `with Runtime(...) as rt:`."""
        impl, self._impl = self._impl, _Closed()
        impl.close()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inputs ---------------------------------------------------------------------------------

    def _batch(self, sequences: Any, lengths: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """Raw input -> padded (B, T, I) float32 / (B, T) int64 and lengths, checked."""
        rank = 2 if self.tokens else 3
        if type(sequences).__module__.startswith("torch"):
            sequences = as_array(sequences, "the batch")
        # An object array holds sequences of their own lengths: a list, read as one.
        if isinstance(sequences, np.ndarray) and sequences.dtype != object:
            if sequences.ndim == rank - 1:
                raise InputError(
                    f"got one sequence of shape {sequences.shape}; predict takes a batch: "
                    "pass [seq] or seq[None]"
                )
            if sequences.ndim != rank:
                raise InputError(
                    f"a padded batch has shape {'(B, T)' if self.tokens else f'(B, T, {self.input_size})'}, "
                    f"got {sequences.shape}"
                )
            x = sequences
            if x.shape[0] and x.shape[1] == 0:
                raise InputError(f"the batch has no steps (shape {x.shape}); a sequence needs at least one")
            lens = (
                np.full(x.shape[0], x.shape[1], np.int64) if lengths is None else as_array(lengths, "lengths")
            )
            if lens.shape != (x.shape[0],) or not np.issubdtype(lens.dtype, np.integer):
                raise InputError(f"lengths must be {x.shape[0]} integers, one per sequence")
            if x.shape[0] and (lens.min() < 1 or lens.max() > x.shape[1]):
                raise InputError(f"lengths must be in 1..{x.shape[1]}")
            seqs = [x[i, : int(n)] for i, n in enumerate(lens)]
        else:
            if lengths is not None:
                raise InputError(
                    "lengths go with a padded array (or tensor); a list of sequences carries its own"
                )
            if isinstance(sequences, (str, bytes)) or not hasattr(sequences, "__iter__"):
                raise InputError(
                    f"predict takes a list of sequences or a padded array, got {type(sequences).__name__}"
                )
            seqs = [as_array(s, f"sequence {i}") for i, s in enumerate(sequences)]
        if not seqs:
            raise InputError("no sequences to predict")
        return self._pad(seqs)

    def _pad(self, seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        for i, s in enumerate(seqs):
            self._check_sequence(s, f"sequence {i}")
        lens = np.array([len(s) for s in seqs], dtype=np.int64)
        t = int(lens.max())
        if self.tokens:
            x = np.zeros((len(seqs), t), np.int64)
        else:
            x = np.zeros((len(seqs), t, self.input_size), np.float32)
        for i, s in enumerate(seqs):
            x[i, : len(s)] = s
        return x, lens

    def _check_sequence(self, s: np.ndarray, what: str) -> None:
        if self.tokens:
            self._check_tokens(s, what, rank=1)
            return
        if s.ndim != 2 or s.shape[1] != self.input_size:
            got = s.shape[-1] if s.ndim >= 1 else "no"
            raise InputError(
                f"{what} has {got} features per step, the model reads {self.input_size} "
                f"(shape {s.shape}, expected (T, {self.input_size}))"
            )
        if len(s) < 1:
            raise InputError(f"{what} is empty; a sequence needs at least one step")
        if s.dtype.kind not in "iuf":
            raise InputError(f"{what}: features must be numbers, got dtype {s.dtype}")
        if not np.isfinite(s).all():
            raise InputError(f"{what} holds NaN or Inf")
        # Finite, but past float32 (or past it once normalised): the float backends would answer NaN
        # and the integer ones a class, so no backend answers. The normalisation is the backends' own.
        with np.errstate(over="ignore", invalid="ignore"):
            z = self._normalised(s[None], np.array([len(s)]))
        if not np.isfinite(z).all():
            raise InputError(
                f"{what} holds values too large for float32 features "
                f"(largest |x| {float(np.abs(s).max()):.3g})"
            )

    def _check_tokens(self, s: np.ndarray, what: str, rank: int) -> None:
        v = self.qm.config.vocab_size
        if s.ndim != rank or len(s) < 1:
            raise InputError(f"{what} must be a non-empty list of token ids")
        if s.dtype.kind not in "iu" and not (
            s.dtype.kind == "f" and np.isfinite(s).all() and (s == np.round(s)).all()
        ):
            raise InputError(f"{what}: token ids must be integers, got dtype {s.dtype}")
        if s.size and (s.min() < 1 or s.max() >= v):
            bad = s[(s < 1) | (s >= v)].flat[0]
            raise InputError(
                f"{what}: token id {int(bad)} is outside the vocabulary (1..{v - 1}; 0 is padding)"
            )

    def _normalised(self, x: np.ndarray, lens: np.ndarray) -> np.ndarray:
        mean, std = self.qm.sample_norm
        if len(mean):
            return normalize(x, lens, mean, std)
        return x.astype(np.float32)

    def quantize(self, x: np.ndarray, lens: np.ndarray) -> np.ndarray:
        """Raw padded features -> int8 as the C float wrapper does (normalise, then the input rule);
        token ids unchanged. Padding stays 0."""
        if self.tokens:
            return x.astype(np.int64)
        return quantize_inputs(self._normalised(x, lens), self.qm.sample_scale)

    # -- answers --------------------------------------------------------------------------------

    def predict(self, sequences: Any, lengths: Any = None) -> list[Prediction]:
        """Raw (B, T, I) floats with lengths, or a list of (T_i, I) arrays (token models: (B, T) or
        lists of ids) -> one Prediction per sequence."""
        x, lens = self._batch(sequences, lengths)
        check_frames(self.qm.config, lens)  # here, so that every backend refuses alike
        out: list[Prediction] = []
        for i in range(0, len(lens), BATCH):
            xb, lb = x[i : i + BATCH], lens[i : i + BATCH]
            steps = int(lb.max())
            xb = xb[:, :steps]
            logits, logits_q = self._impl.run(self, xb, lb)
            for j, n in enumerate(lb):
                out.append(self._prediction(logits[j], None if logits_q is None else logits_q[j], int(n)))
        return out

    def _prediction(self, logits: np.ndarray, logits_q: np.ndarray | None, n: int) -> Prediction:
        per_step = self.task != Task.MANY_TO_ONE
        if per_step:
            logits = logits[:n]
            logits_q = None if logits_q is None else logits_q[:n]
        scores = logits if logits_q is None else logits_q  # integers decide the int8 backends' argmax
        cls = np.argmax(scores, axis=-1)
        if per_step:
            ids = [int(c) for c in cls]
            return Prediction(ids, [self.class_names[c] for c in ids], logits, logits_q, True)
        return Prediction(int(cls), self.class_names[int(cls)], logits, logits_q, False)

    def stream(self) -> Stream:
        """A stream from the zero state: `.step(raw_sample)` after each sample (a framed model:
        `.push(raw_sample)`, which steps once a frame is full), `.reset()`."""
        if self.qm.config.bidirectional:
            raise InputError(
                "a bidirectional model cannot stream: its backward direction reads each sequence "
                "from its end, so no answer exists before the whole sequence is in; use predict"
            )
        if self.qm.config.reverse:
            raise InputError(
                "this model reads each sequence from its last step to its first, so no answer exists "
                "before the whole sequence is in; use predict"
            )
        if self.qm.config.pad_to:
            raise InputError(
                f"this model reads each sequence with pad steps after it (pad_to {self.qm.config.pad_to}), "
                "so its answer exists only once the sequence has ended; use predict (in C: PREFIX_finish)"
            )
        return Stream(self)

    def generate(
        self,
        start_token: int | None = None,
        max_len: int = 32,
        seed: int = 0,
        prompt: Sequence[int] | np.ndarray | None = None,
    ) -> Generation:
        """One-to-many models: greedy generation (seed 0). From `start_token` (default: the model's
        start token), or with `prompt` (token ids, fed in order from the zero state) continuing
        from the prompt's state: each step's argmax is the next token, fed back in, until the end
        token or max_len generated tokens. `prompt=[t]` is `start_token=t`. A non-zero seed samples
        (C only, from a start token)."""
        if self.task != Task.ONE_TO_MANY:
            raise InputError(f"generate needs a one-to-many model; this one is {self.task}")
        if prompt is not None and start_token is not None:
            raise InputError("give start_token or prompt, not both")
        if prompt is None:
            start = self.qm.meta.start_token if start_token is None else start_token
            if start is None:
                raise InputError("this model records no start token; pass start_token or prompt")
            ids = np.array([start])
            self._check_tokens(ids, "start_token", rank=1)
        else:
            ids = np.asarray(prompt)
            self._check_tokens(ids, "prompt", rank=1)
        toks = [int(t) for t in ids]
        if (
            isinstance(max_len, bool)
            or not isinstance(max_len, (int, np.integer))
            or not 0 <= max_len <= MAX_GENERATED
        ):
            raise InputError(f"max_len must be an integer in 0..{MAX_GENERATED:,}, got {max_len!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2**32:
            raise InputError(f"seed must be an integer in 0..2^32-1 (0: greedy), got {seed!r}")
        if seed and self.backend != "c":
            raise InputError("sampling (seed != 0) is the C runtime's; use backend='c' or seed=0")
        if seed and len(toks) > 1:
            raise InputError("sampling (seed != 0) starts from one start token; give a prompt with seed=0")
        end = self.qm.meta.end_token
        end = -1 if end is None else end
        if len(toks) == 1:
            tokens = self._impl.generate(self, toks[0], int(end), int(max_len), int(seed))
        else:
            tokens = self._impl.continue_prompt(self, toks, int(end), int(max_len))
        return Generation(tokens, self.text(tokens), toks, self.text(toks + tokens))

    def text(self, tokens: Sequence[int]) -> str:
        if not self.vocab:
            return " ".join(str(t) for t in tokens)
        return "".join(self.vocab[t] for t in tokens)

    def _answer(self, logits: np.ndarray, logits_q: np.ndarray | None) -> StepPrediction:
        cls = int(np.argmax(logits if logits_q is None else logits_q))
        return StepPrediction(cls, self.class_names[cls], logits, logits_q)

    def dequantize(self, logits_q: np.ndarray) -> np.ndarray:
        return np.asarray(logits_q, dtype=np.float64) * self.qm.head_scale


class Stream:
    """One stream through the model, one sample at a time (unidirectional models)."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt
        self.reset()

    def reset(self) -> None:
        self._state = self._rt._impl.zero_state(self._rt)
        self._frame: list[np.ndarray] = []
        self.steps = 0  # model steps taken (a framed model: one per full frame)

    def step(self, raw_sample: Any) -> StepPrediction:
        """Feed one raw sample ((I,) floats, or one token id); the prediction after this step."""
        rt = self._rt
        if rt.qm.config.frame > 1:
            raise InputError(
                f"this model steps once per {rt.qm.config.frame} samples: feed it with push(sample), "
                "which returns a prediction when a frame is full (as PREFIX_push_sample in C)"
            )
        s = as_array(raw_sample, "the sample")
        x: np.ndarray
        if rt.tokens:
            if s.size != 1:
                raise InputError("a token model streams one token id per step")
            rt._check_tokens(s.reshape(1), "the sample", rank=1)
            x = s.reshape(1, 1).astype(np.int64)
        else:
            x = self._sample(raw_sample)[None, None]
        return self._run(x)

    def push(self, raw_sample: Any) -> StepPrediction | None:
        """Feed one raw sample ((I,) floats) of a feature model: once `frame` samples are in, the
        model steps on them and the prediction after that step is returned; until then None (the
        state is unchanged). For an unframed model every sample is a step."""
        if self._rt.tokens:
            raise InputError("a token model streams one token id per step: use step(token)")
        self._frame.append(self._sample(raw_sample))
        if len(self._frame) < self._rt.qm.config.frame:
            return None
        x, self._frame = np.stack(self._frame)[None], []
        return self._run(x)

    def _sample(self, raw_sample: Any) -> np.ndarray:
        rt = self._rt
        s = as_array(raw_sample, "the sample")
        rt._check_sequence(s.reshape(1, -1) if s.ndim == 1 else s, "the sample")
        if s.ndim != 1:
            raise InputError(f"a sample is ({rt.input_size},) floats, got shape {s.shape}")
        return s.astype(np.float32)

    def _run(self, x: np.ndarray) -> StepPrediction:
        """One model step on x: (1, 1) token, or (1, frame, I) raw samples."""
        rt = self._rt
        self._state, logits, logits_q = rt._impl.step(rt, x, self._state)
        self.steps += 1
        return rt._answer(logits, logits_q)


def _samples(x: np.ndarray) -> np.ndarray:
    """The length of a streamed step's input (1, samples[, I]): one, or a frame's samples."""
    return np.array([x.shape[1]], np.int64)


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


# ---------------------------------------------------------------------------------------------
# Backends: run(rt, x, lens) -> (float logits, int32 logits | None); zero_state; step; generate.


class _Impl:
    def run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Release sessions and files (Runtime.close)."""

    def zero_state(self, rt: Runtime) -> np.ndarray:
        cfg = rt.qm.config
        return np.zeros((cfg.num_layers * cfg.directions, 1, cfg.hidden_size), np.int8)

    def step(
        self, rt: Runtime, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        raise NotImplementedError

    def generate(self, rt: Runtime, start: int, end: int, max_len: int, seed: int) -> list[int]:
        return self.continue_prompt(rt, [start], end, max_len)

    def continue_prompt(self, rt: Runtime, prompt: Sequence[int], end: int, max_len: int) -> list[int]:
        """Feed the prompt from the zero state, then greedy: the argmax (integer logits for the
        int8 backends; ties -> lowest id) is the next token, fed back, until `end` or max_len."""
        state = self.zero_state(rt)
        for token in prompt[:-1]:
            state, _, _ = self.step(rt, np.array([[token]], dtype=np.int64), state)
        out: list[int] = []
        token = prompt[-1]
        for _ in range(max_len):
            state, logits, logits_q = self.step(rt, np.array([[token]], dtype=np.int64), state)
            token = int(np.argmax(logits if logits_q is None else logits_q))
            if token == end:
                break
            out.append(token)
        return out


class _Closed(_Impl):
    """A closed Runtime's backend: every use is refused."""

    def _refuse(self) -> InputError:
        return InputError("this Runtime is closed; open the export again")

    def run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        raise self._refuse()

    def zero_state(self, rt: Runtime) -> np.ndarray:
        raise self._refuse()

    def step(
        self, rt: Runtime, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        raise self._refuse()

    def generate(self, rt: Runtime, start: int, end: int, max_len: int, seed: int) -> list[int]:
        raise self._refuse()


class _C(_Impl):
    def __init__(self, out: Path, qm: QuantizedModel, workdir: str | os.PathLike[str] | None) -> None:
        from edgernn.backends.c.host import compile_model

        self._cleanup: weakref.finalize[Any, Any] | None = None
        if workdir is None:
            work = Path(tempfile.mkdtemp(prefix="edgernn-runtime-"))
            self._cleanup = weakref.finalize(self, shutil.rmtree, work, True)
        else:
            work = Path(workdir)
            try:
                work.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise InputError(f"workdir {work}: {e.strerror or e}") from None
        self.cm = compile_model(out / HEADER, qm.meta.c_prefix or "edgernn_model", work)

    def _quantize(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> np.ndarray:
        if rt.tokens:
            return x.astype(np.int64)
        # The header's own float wrapper (normalise, scale, round, saturate), over rows of one step.
        # A framed model's step is `frame` samples whose positions share the scales, so samples
        # laid end to end quantize as whole steps do.
        width = rt.qm.config.input_size
        flat = np.ascontiguousarray(x, dtype=np.float32).reshape(-1)
        rows = np.zeros(-(-flat.size // width) * width, np.float32)
        rows[: flat.size] = flat
        xq = self.cm.quantize(rows.reshape(-1, width)).reshape(-1)[: flat.size].reshape(x.shape)
        xq[np.arange(x.shape[1])[None, :] >= lens[:, None]] = 0
        return xq

    def run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        # The pad steps of a pad_to model, appended as firmware appends them (edgernn.pad).
        q = self.cm.run(*steps_numpy(rt.qm.config, self._quantize(rt, x, lens), lens)).logits.numpy()
        return rt.dequantize(q), q

    def step(
        self, rt: Runtime, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        lens = _samples(x)
        r = self.cm.run(*frame_numpy(rt.qm.config, self._quantize(rt, x, lens), lens), h0=state)
        q = r.logits.numpy().reshape(-1)
        return r.h_n.numpy(), rt.dequantize(q), q

    def generate(self, rt: Runtime, start: int, end: int, max_len: int, seed: int) -> list[int]:
        return self.cm.generate(start, end, max_len, seed)  # refuses an end the header does not have

    def close(self) -> None:
        if self._cleanup is not None:
            self._cleanup()  # runs once: the finalizer is then dead


class _OnnxInt(_Impl):
    def __init__(self, out: Path, qm: QuantizedModel) -> None:
        from edgernn.backends.onnx import make_session

        self.seq = make_session(out / INT_ONNX)
        self.step_session = make_session(out / STEP_ONNX)

    def run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        from edgernn.backends.onnx import run_sequence

        q = run_sequence(self.seq, rt.qm, rt.quantize(x, lens), lens).logits.numpy()
        return rt.dequantize(q), q

    def step(
        self, rt: Runtime, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        xq = rt.quantize(x, _samples(x))  # (1, 1) token, or (1, frame, I) int8: one step's input
        xq = xq[:, 0] if rt.tokens else xq.reshape(1, -1)
        feed = {"token" if rt.tokens else "x": np.ascontiguousarray(xq), "h": state}
        h_new, logits = self.step_session.run(["h_new", "logits"], feed)
        q = np.asarray(logits, dtype=np.int32).reshape(-1)
        return np.asarray(h_new, dtype=np.int8), rt.dequantize(q), q


class _Float(_Impl):
    """The float backends: a padded batch or one step through `_run` (float32 state carried)."""

    def _run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray, h0: np.ndarray) -> tuple[Any, Any]:
        raise NotImplementedError

    def run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        cfg = rt.qm.config
        h0 = np.zeros((cfg.num_layers * cfg.directions, len(lens), cfg.hidden_size), np.float32)
        logits, _ = self._run(rt, x, lens, h0)
        return np.asarray(logits, dtype=np.float64), None

    def zero_state(self, rt: Runtime) -> np.ndarray:
        return super().zero_state(rt).astype(np.float32)

    def step(
        self, rt: Runtime, x: np.ndarray, state: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        logits, h_n = self._run(rt, x, _samples(x), state)
        return h_n, np.asarray(logits, dtype=np.float64).reshape(-1), None


class _OnnxFloat(_Float):
    def __init__(self, out: Path) -> None:
        from edgernn.backends.onnx.float_graph import session
        from edgernn.backends.onnx.metadata import INPUT_RAW

        self.sess = session(out / FLOAT_ONNX)
        # model.onnx normalises inside; an export from before that took normalised features
        meta = self.sess.get_modelmeta().custom_metadata_map
        self.takes_raw = meta.get("edgernn.input") in (INPUT_RAW, "tokens")

    def _run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray, h0: np.ndarray) -> tuple[Any, Any]:
        from edgernn.backends.onnx.float_graph import run_float

        inp = x if rt.tokens or self.takes_raw else rt._normalised(x, lens)
        return run_float(self.sess, inp, lens, h0)


class _Torch(_Float):
    def __init__(self, out: Path) -> None:
        from edgernn.train.checkpoint import load_checkpoint

        self.model = load_checkpoint(out).model.eval()

    def _run(self, rt: Runtime, x: np.ndarray, lens: np.ndarray, h0: np.ndarray) -> tuple[Any, Any]:
        import torch

        inp = x if rt.tokens else rt._normalised(x, lens)
        with torch.no_grad():
            logits, h_n = self.model(torch.from_numpy(inp), torch.from_numpy(lens), torch.from_numpy(h0))
        return logits.numpy(), h_n.numpy()


def _open(out: Path, qm: QuantizedModel, backend: str, workdir: str | os.PathLike[str] | None) -> _Impl:
    if backend == "c":
        return _C(out, qm, workdir)
    if backend == "onnx-int8":
        return _OnnxInt(out, qm)
    if backend == "onnx":
        return _OnnxFloat(out)
    return _Torch(out)
