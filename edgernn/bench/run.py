"""`edgernn bench`: measured speed of every backend of one export directory, side by side.

Measured in one run, on one machine, single-threaded everywhere (torch.set_num_threads(1); ONNX
Runtime intra_op = inter_op = 1), so the ratios compare the code and not the thread pools:

* streaming latency per step at batch 1 -- torch float (EdgeRNN.forward with T=1 and h carried,
  and a bare nn.RNN + nn.Linear step), ORT float (model.onnx, T=1, h carried), the ORT int8 step
  model, the C step timed natively inside the C harness (`eh_bench_step_ns`, no FFI in the loop)
  at the harness's -O2 and at -O3, and the C step through ctypes (one call per step);
* whole-sequence throughput on test sequences at batch 1 and 64;
* host instructions per step of the C step under callgrind (a standalone driver,
  c_runtime/bench/bench_driver.c; two step counts differenced so start-up and set-up cancel),
  and the Cortex-M figures of report.json's "mcu" section when `edgernn mcu` has run;
* scaling with hidden size (random models) and with sequence length (the export's model).

Every timing is `repeats` blocks of back-to-back calls after a warm-up, each block sized to take
about `block_s`; a block's time / calls is one sample, reported as median, IQR and min/max.
The measurement functions return plain dicts (json-ready); `run_bench` assembles them.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch

from edgernn.artifacts import write_text
from edgernn.backends.c.codegen import c_runtime_dir, generate_header, model_sizes
from edgernn.backends.c.host import CModel, compile_model
from edgernn.config import ModelConfig
from edgernn.contract.quant import QuantizedModel
from edgernn.errors import InputError
from edgernn.pipeline import (
    FLOAT_ONNX,
    HEADER,
    INT_ONNX,
    STEP_ONNX,
    exclusive,
    int8_inputs,
    load_data,
    load_quantized,
)
from edgernn.synthetic import random_quantized
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.model import EdgeRNN

BENCH_JSON = "bench.json"
SCHEMA = "edgernn-bench-v1"
DRIVER_SOURCE = Path("bench") / "bench_driver.c"
# The harness (cbackend.STRICT_FLAGS) builds at -O2; -O3 is what a host application may well use,
# and it is where GCC vectorizes the matvec. Flags are appended, so the last -O wins.
C_BUILDS: dict[str, tuple[str, ...]] = {"O2": (), "O3": ("-O3",)}
DRIVER_FLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-D_POSIX_C_SOURCE=199309L")
CALLGRIND_FIRST = 16  # the smaller of the two step counts callgrind differences
POOL_STEPS = 64  # distinct inputs cycled through by the streaming loops


@dataclass(frozen=True)
class Settings:
    repeats: int  # timed blocks per measurement
    block_s: float  # target wall time of one block
    warmup_s: float  # untimed calls first (at least 3)
    hidden_sizes: tuple[int, ...]
    lengths: tuple[int, ...]
    callgrind_steps: int  # most steps between the two callgrind runs
    batches: tuple[int, ...] = (1, 64)


FULL = Settings(15, 0.04, 0.05, (16, 32, 64, 128, 256), (10, 30, 100, 300, 1000), 1024)
# Smoke-test sizes: every code path, tiny repetitions; the numbers mean little.
QUICK = Settings(3, 0.002, 0.002, (8, 16), (10, 40), 32, (1, 4))


# ---------------------------------------------------------------------------------------------
# Timing primitives


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


# ---------------------------------------------------------------------------------------------
# The machine


def _first_line(cmd: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return "unavailable"
    text = (out.stdout or out.stderr).strip()
    return text.splitlines()[0] if text else "unavailable"


def cpuinfo() -> tuple[str, set[str]]:
    """The CPU model and feature flags of the first core in /proc/cpuinfo (Linux); else platform's."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    cpu = fields.get("model name") or platform.processor() or platform.machine()
    return cpu, set(fields.get("flags", fields.get("Features", "")).split())


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on (recorded in bench.json and printed with every table)."""
    import numpy
    import onnxruntime

    cpu, flags = cpuinfo()

    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "simd": [f for f in ("sse4_2", "avx2", "avx512f", "avx512_vnni", "avx_vnni", "asimd") if f in flags],
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
        "cc": _first_line([os.environ.get("CC", "cc"), "--version"]),
        "valgrind": _first_line(["valgrind", "--version"]) if shutil.which("valgrind") else None,
        "torch_threads": torch.get_num_threads(),
        "ort_intra_op_threads": 1,
        "ort_inter_op_threads": 1,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


# ---------------------------------------------------------------------------------------------
# C: builds, the driver, callgrind


def header_prefix(text: str) -> str:
    """The C prefix of a generated header, from its state typedef."""
    m = re.search(r"^\}\s*(\w+)_state_t;", text, re.MULTILINE)
    if m is None:
        raise InputError("this model.h has no PREFIX_state_t: not a header generated by edgernn")
    return m.group(1)


def build_driver(header: Path, prefix: str, workdir: Path, extra_flags: Sequence[str] = ()) -> Path:
    """Compile c_runtime/bench/bench_driver.c against one model header into an executable."""
    cc = os.environ.get("CC", "cc")
    if shutil.which(cc) is None:
        raise InputError(f"no C compiler {cc!r} on PATH (install gcc or clang, or set CC)")
    exe = workdir / f"bench_driver_{prefix}{''.join(extra_flags).replace('-', '_')}"
    cmd = [
        cc,
        *DRIVER_FLAGS,
        *extra_flags,
        f"-DEDGERNN_H_PREFIX={prefix}",
        f"-DEDGERNN_H_PREFIX_UPPER={prefix.upper()}",
        f'-DEDGERNN_MODEL_HEADER="{header.resolve()}"',
        str(c_runtime_dir() / DRIVER_SOURCE),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise InputError(f"cannot build the bench driver for {header}:\n{proc.stderr[-2000:]}")
    return exe


def callgrind_instructions(exe: Path, args: Sequence[str]) -> int:
    """Instructions the whole process executes under callgrind (deterministic: no timing involved)."""
    with tempfile.TemporaryDirectory(prefix="edgernn-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(exe), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0:
            raise InputError(f"callgrind failed on {exe.name} {' '.join(args)}:\n{proc.stderr[-2000:]}")
        m = re.search(r"^(?:summary|totals):\s+(\d+)", out.read_text(), re.MULTILINE)
    if m is None:
        raise InputError("callgrind wrote no instruction total")
    return int(m.group(1))


def insns_per_step(exe: Path, mode: str, steps: int) -> float:
    """Per-step instructions: step/head modes difference two step counts; run mode subtracts `prep`
    (the same set-up without PREFIX_run), which leaves the run's own cost, call overhead included."""
    if mode == "run":
        pair = (["prep", str(steps)], ["run", str(steps)])
    else:
        pair = ([mode, str(CALLGRIND_FIRST)], [mode, str(CALLGRIND_FIRST + steps)])
    # The two runs are independent and their counts do not depend on load: run them side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        lo, hi = pool.map(lambda args: callgrind_instructions(exe, args), pair)
    return (hi - lo) / steps


def driver_block(exe: Path, steps: int) -> Block:
    """Native ns per step of back-to-back PREFIX_run calls of `steps` steps each, timed inside the
    driver process (no Python). n steps round up to whole runs; each process times a warm-up block
    first and reports the second."""

    def block(n: int) -> float:
        runs = max(1, -(-n // steps))
        cmd = [str(exe), "time-run", str(steps), "2", str(runs)]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise InputError(f"the bench driver failed: {proc.stderr.strip()[-500:]}")
        values = [float(line) for line in proc.stdout.splitlines() if not line.startswith("checksum")]
        return values[-1]

    return block


@dataclass
class CBuild:
    """One model header compiled with one flag set: the ctypes harness and the standalone driver."""

    flags: tuple[str, ...]
    model: CModel
    driver: Path


def build_c(header: Path, prefix: str, workdir: Path) -> dict[str, CBuild]:
    out = {}
    for name, flags in C_BUILDS.items():
        sub = workdir / name
        sub.mkdir(parents=True, exist_ok=True)
        model = compile_model(header, prefix, sub, extra_flags=flags)
        out[name] = CBuild(flags, model, build_driver(header, prefix, sub, flags))
    return out


def callgrind_steps(macs: int, s: Settings) -> int:
    """Steps between the two callgrind runs: ~4 M MACs (a few seconds under callgrind), 64..limit."""
    return int(min(s.callgrind_steps, max(64, 4_000_000 // max(macs, 1))))


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


# ---------------------------------------------------------------------------------------------
# Inputs


@dataclass(frozen=True)
class Workload:
    """What every backend is fed: float inputs for the float backends, int8 (or token ids) for the
    integer ones, both from the same test sequences."""

    x_float: np.ndarray  # (N, T, I) float32 or (N, T) int64 tokens
    x_int: np.ndarray  # (N, T, I) int8 or (N, T) int64 tokens
    lengths: np.ndarray  # (N,) int64


def split_workload(qm: QuantizedModel, split: Any) -> Workload:
    x = split.x if qm.config.tokens else split.x.astype(np.float32)
    return Workload(np.asarray(x), np.asarray(int8_inputs(qm, split)), split.lengths.astype(np.int64))


def step_pool(w: Workload, tokens: bool) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """POOL_STEPS consecutive valid steps of the test sequences: float (1, 1, I) and int (1, I)."""
    idx = [(i, t) for i in range(len(w.lengths)) for t in range(int(w.lengths[i]))][:POOL_STEPS]
    floats = [np.ascontiguousarray(w.x_float[i : i + 1, t : t + 1]) for i, t in idx]
    ints = [np.ascontiguousarray(w.x_int[i, t : t + 1] if tokens else w.x_int[i : i + 1, t]) for i, t in idx]
    return floats, ints


def random_workload(cfg: ModelConfig, qm: QuantizedModel, batch: int, steps: int, seed: int = 0) -> Workload:
    from edgernn.contract.quant import quantize_inputs

    rng = np.random.default_rng(seed)
    if cfg.tokens:
        tok = rng.integers(1, cfg.vocab_size, size=(batch, steps)).astype(np.int64)
        return Workload(tok, tok, np.full(batch, steps, np.int64))
    x = rng.normal(size=(batch, steps, cfg.input_size)).astype(np.float32)
    return Workload(x, quantize_inputs(x, qm.input_scale), np.full(batch, steps, np.int64))


# ---------------------------------------------------------------------------------------------
# Backends as zero-argument callables (state carried in closures)


def torch_step(model: EdgeRNN, pool: list[np.ndarray]) -> Callable[[], object]:
    """EdgeRNN.forward on one step (T=1) with the state carried: what the edgernn model gives you."""
    xs = itertools.cycle([torch.from_numpy(p) for p in pool])
    one = torch.ones(1, dtype=torch.int64)
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
        y, h = model.rnn(emb(x) if emb is not None else x, h)
        return model.head(y[:, -1])

    return step


def ort_float_step(sess: Any, pool: list[np.ndarray], state_shape: tuple[int, ...]) -> Callable[[], object]:
    name = sess.get_inputs()[0].name
    xs = itertools.cycle(pool)
    one = np.ones(1, dtype=np.int64)
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


def _batches(w: Workload, batch: int, total: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """The first `total` sequences in batches of `batch`, each cut to its longest sequence."""
    out = []
    for i in range(0, total, batch):
        lens = w.lengths[i : i + batch]
        t = int(lens.max())
        out.append((w.x_float[i : i + batch, :t], w.x_int[i : i + batch, :t], lens))
    return out


def sequence_fns(
    model: EdgeRNN,
    f_sess: Any,
    i_sess: Any,
    c_model: CModel,
    batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    rows: int,
    hidden: int,
) -> dict[str, Callable[[], object]]:
    """Whole padded batches, cycled: one callable per backend, each call = one batch."""
    f_name, i_name = f_sess.get_inputs()[0].name, i_sess.get_inputs()[0].name
    t_batches = [(torch.from_numpy(xf), torch.from_numpy(lens)) for xf, _, lens in batches]
    f_feeds = [
        {f_name: xf, "lengths": lens, "h0": np.zeros((rows, len(lens), hidden), np.float32)}
        for xf, _, lens in batches
    ]
    i_feeds = [
        {i_name: xi, "lengths": lens, "h0": np.zeros((rows, len(lens), hidden), np.int8)}
        for _, xi, lens in batches
    ]
    t_it, f_it, i_it, c_it = (itertools.cycle(v) for v in (t_batches, f_feeds, i_feeds, batches))
    record = c_model.info["directions"] == 2  # a bidirectional run needs its buffer

    def c_run() -> object:
        _, xi, lens = next(c_it)
        return c_model.run(xi, lens, record=record)

    return {
        "torch-float": lambda: model(*next(t_it)),
        "ort-float": lambda: f_sess.run(["logits", "h_n"], next(f_it)),
        "ort-int8": lambda: i_sess.run(["logits", "h_n"], next(i_it)),
        "c-ctypes": c_run,
    }


# ---------------------------------------------------------------------------------------------
# The measurements


@dataclass
class Context:
    out_dir: Path
    model: EdgeRNN
    qm: QuantizedModel
    prefix: str
    test: Workload
    sizes: dict[str, int]
    meta: dict[str, Any]

    @property
    def cfg(self) -> ModelConfig:
        return self.qm.config

    @property
    def rows(self) -> int:
        return self.cfg.num_layers * self.cfg.directions


def load_context(out_dir: str | os.PathLike[str]) -> Context:
    out = Path(out_dir)
    for name in (FLOAT_ONNX, INT_ONNX, STEP_ONNX, HEADER):
        if not (out / name).exists():
            raise InputError(f"{out} has no {name}; run `edgernn export {out}` first")
    ckpt = load_checkpoint(out)
    qm = load_quantized(out)
    ds = load_data(ckpt.meta.get("data", {}))
    prefix = header_prefix((out / HEADER).read_text(encoding="utf-8"))
    test = split_workload(qm, ds.test)
    return Context(out, ckpt.model.eval(), qm, prefix, test, model_sizes(qm), ckpt.meta)


LATENCY_ROWS: dict[str, str] = {
    "torch-float": "EdgeRNN.forward, T=1, h carried (packing + head)",
    "torch-float-bare": "nn.RNN + nn.Linear on one step, h carried",
    "ort-float": "model.onnx, T=1, h carried (+ head)",
    "ort-int8-step": "model.step.int8.onnx, h carried (+ head)",
    "c-ctypes": "PREFIX_run(steps=1) via ctypes, -O2, state in/out",
    "c-native": "PREFIX_step in C (eh_bench_step_ns), -O2 (harness default)",
    "c-native-O3": "PREFIX_step in C (eh_bench_step_ns), -O3",
}


def streaming_latency(ctx: Context, c: dict[str, CBuild], s: Settings) -> dict[str, Any]:
    """Per-step latency at batch 1 of every backend that can stream (not bidirectional models)."""
    from edgernn.backends.onnx.float_graph import session

    if ctx.cfg.bidirectional:
        return {"skipped": "a bidirectional model has no streaming step (its backward pass needs the end)"}
    floats, ints = step_pool(ctx.test, ctx.cfg.tokens)
    state = (ctx.rows, 1, ctx.cfg.hidden_size)
    blocks: dict[str, Block] = {
        "torch-float": python_block(torch_step(ctx.model, floats), inference=True),
        "torch-float-bare": python_block(torch_bare_step(ctx.model, floats), inference=True),
        "ort-float": python_block(ort_float_step(session(ctx.out_dir / FLOAT_ONNX), floats, state)),
        "ort-int8-step": python_block(ort_int8_step(session(ctx.out_dir / STEP_ONNX), ints, state)),
        "c-ctypes": python_block(c_ctypes_step(c["O2"].model, ints, ctx.rows, ctx.cfg.hidden_size)),
        "c-native": c["O2"].model.bench_step_ns,  # times itself in C: n steps -> ns per step
        "c-native-O3": c["O3"].model.bench_step_ns,
    }
    rows = time_blocks(blocks, s)
    for name, r in rows.items():
        r["what"] = LATENCY_ROWS[name]
    base = rows["c-native"]["median_ns"]
    base3 = rows["c-native-O3"]["median_ns"]
    return {
        "rows": rows,
        # How many times faster the C step is than each backend (each backend's median / C's).
        "c_speedup": {k: v["median_ns"] / base for k, v in rows.items()},
        "c_O3_speedup": {k: v["median_ns"] / base3 for k, v in rows.items()},
        "head_included": ["torch-float", "torch-float-bare", "ort-float", "ort-int8-step"],
    }


def throughput(ctx: Context, c: dict[str, CBuild], s: Settings) -> dict[str, Any]:
    """Whole sequences of the test split: the same first N sequences at every batch size, and the
    driver's native runs of the mean length for reference."""
    from edgernn.backends.onnx.float_graph import session

    f_sess, i_sess = session(ctx.out_dir / FLOAT_ONNX), session(ctx.out_dir / INT_ONNX)
    total = min(max(s.batches), len(ctx.test.lengths))
    steps = int(ctx.test.lengths[:total].sum())
    mean_len = max(1, round(steps / total))
    blocks: dict[tuple[str, int], Block] = {}
    n_batches = {}
    for batch in (b for b in s.batches if b <= total):
        batches = _batches(ctx.test, batch, total)
        n_batches[batch] = len(batches)
        fns = sequence_fns(ctx.model, f_sess, i_sess, c["O2"].model, batches, ctx.rows, ctx.cfg.hidden_size)
        for name, fn in fns.items():
            blocks[(name, batch)] = python_block(fn, inference=name.startswith("torch"))
    for name, b in c.items():
        blocks[(f"c-native-{name}", 1)] = driver_block(b.driver, mean_len)
    stats = time_blocks(blocks, s)
    rows = []
    for (name, batch), st in stats.items():
        if name.startswith("c-native"):  # ns per step
            per_s = 1e9 / st["median_ns"]
        else:  # ns per call of one batch; all `total` sequences take n_batches calls
            per_s = steps / (st["median_ns"] * n_batches[batch]) * 1e9
        rows.append({"backend": name, "batch": batch, **st, "steps_per_s": per_s})
    return {"sequences": total, "steps": steps, "mean_length": steps / total, "rows": rows}


def callgrind_default(ctx: Context, c: dict[str, CBuild], s: Settings) -> dict[str, Any]:
    """Host instructions per step of the export's own model, at -O2 and -O3, with and without head."""
    if not have_valgrind():
        return {"skipped": "valgrind not found on PATH (apt-get install valgrind)"}
    macs = ctx.sizes["macs"]
    steps = callgrind_steps(macs, s)
    rows = {}
    for name, b in c.items():
        if ctx.cfg.bidirectional:
            step = insns_per_step(b.driver, "run", steps)
            head = None
        else:
            step = insns_per_step(b.driver, "step", steps)
            head = insns_per_step(b.driver, "head", steps)
        rows[name] = {
            "flags": list(b.flags or DRIVER_FLAGS[:1]),
            "insns_per_step": step,
            "insns_per_mac": step / macs,
            "insns_per_step_with_head": head,
        }
    return {
        "macs_per_step": macs,
        "head_macs": ctx.sizes["head_macs"],
        "steps_differenced": steps,
        "builds": rows,
    }


def linear_fit(x: Sequence[float], y: Sequence[float]) -> dict[str, float]:
    """Least squares y = slope x + intercept, and R^2."""
    xa, ya = np.asarray(x, np.float64), np.asarray(y, np.float64)
    slope, intercept = np.polyfit(xa, ya, 1)
    resid = ya - (slope * xa + intercept)
    ss_tot = float(((ya - ya.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / ss_tot if ss_tot > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2}


def sweep_config(cfg: ModelConfig, hidden: int) -> ModelConfig:
    """The export's input kind and classes, one unidirectional layer of `hidden` units."""
    return ModelConfig(
        task="many-to-one",
        input_size=cfg.input_size,
        hidden_size=hidden,
        num_classes=cfg.num_classes,
        vocab_size=cfg.vocab_size,
        embed_dim=cfg.embed_dim,
    )


def hidden_scaling(ctx: Context, s: Settings, workdir: Path) -> dict[str, Any]:
    from edgernn.backends.onnx.int_graph import build_step_model, make_session

    rows = []
    cg = have_valgrind()
    workdir.mkdir(parents=True, exist_ok=True)
    for hidden in s.hidden_sizes:
        cfg = sweep_config(ctx.cfg, hidden)
        model, qm = random_quantized(cfg)
        sizes = model_sizes(qm)
        prefix = f"bench_h{hidden}"
        header = workdir / f"{prefix}.h"
        header.write_text(generate_header(qm, prefix), encoding="utf-8")
        builds = build_c(header, prefix, workdir / prefix)
        row: dict[str, Any] = {"hidden": hidden, "macs_per_step": sizes["macs"]}
        for name, b in builds.items():
            insns = insns_per_step(b.driver, "step", callgrind_steps(sizes["macs"], s)) if cg else None
            row[f"insns_{name}"] = insns
            row[f"insns_per_mac_{name}"] = insns / sizes["macs"] if insns is not None else None
        floats, ints = step_pool(random_workload(cfg, qm, 1, POOL_STEPS), cfg.tokens)
        blocks: dict[str, Block] = {f"c_{name}": b.model.bench_step_ns for name, b in builds.items()}
        step_model = make_session(build_step_model(qm))
        blocks["ort_int8_step"] = python_block(ort_int8_step(step_model, ints, (1, 1, hidden)))
        blocks["torch_float"] = python_block(torch_step(model, floats), inference=True)
        row.update(time_blocks(blocks, s))
        rows.append(row)
    fits: dict[str, Any] = {}
    macs = [r["macs_per_step"] for r in rows]
    for name in C_BUILDS:
        if len(rows) >= 2:
            fits[f"time_{name}"] = linear_fit(macs, [r[f"c_{name}"]["median_ns"] for r in rows])
            if cg:
                fits[f"insns_{name}"] = linear_fit(macs, [r[f"insns_{name}"] for r in rows])
    shape = {k: v for k, v in sweep_config(ctx.cfg, 1).to_dict().items() if k != "hidden_size"}
    return {"config": shape, "rows": rows, "fits": fits}


def length_scaling(ctx: Context, c: dict[str, CBuild], s: Settings) -> dict[str, Any]:
    """Batch 1, one sequence of T random steps, the export's own model: per-step cost against T."""
    from edgernn.backends.onnx.float_graph import session

    f_sess, i_sess = session(ctx.out_dir / FLOAT_ONNX), session(ctx.out_dir / INT_ONNX)
    cg = have_valgrind()
    rows = []
    for steps in s.lengths:
        w = random_workload(ctx.cfg, ctx.qm, 1, steps)
        fns = sequence_fns(
            ctx.model, f_sess, i_sess, c["O2"].model, _batches(w, 1, 1), ctx.rows, ctx.cfg.hidden_size
        )
        blocks = {name: python_block(fn, inference=name.startswith("torch")) for name, fn in fns.items()}
        for name, b in c.items():
            blocks[f"c-native-{name}"] = driver_block(b.driver, steps)  # already per step
        row: dict[str, Any] = {"steps": steps}
        for name, st in time_blocks(blocks, s).items():
            per_call = not name.startswith("c-native")  # one call is a whole sequence: make it per step
            row[name] = {k: v / steps if per_call and k.endswith("_ns") else v for k, v in st.items()}
        for name, b in c.items():
            row[f"insns_{name}"] = insns_per_step(b.driver, "run", steps) if cg else None
        rows.append(row)
    return {"rows": rows}


def mcu_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The Cortex-M figures `edgernn mcu` left in report.json, reduced to what the bench shows."""
    keep = (
        "target",
        "compiler",
        "kernel",
        "emulator",
        "flash_bytes",
        "ram_bytes",
        "insns_per_step",
        "insns_per_mac",
        "mismatches",
    )
    rows = report.get("mcu")
    if not isinstance(rows, list):
        return []
    return [{k: r.get(k) for k in keep} for r in rows if isinstance(r, dict)]


# ---------------------------------------------------------------------------------------------
# The whole run


def run_bench(
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    save: bool = True,
    echo: Callable[[str], None] | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Measure everything for one export directory; write DIR/bench.json and report.json "bench"."""
    from edgernn.report.store import read_report

    say = echo or (lambda _msg: None)
    s = settings or (QUICK if quick else FULL)
    ctx = load_context(out_dir)
    started = time.perf_counter()
    with single_threaded(), tempfile.TemporaryDirectory(prefix="edgernn-bench-") as tmp:
        work = Path(tmp)
        say("bench: compiling the C harness and driver (-O2, -O3)")
        c = build_c(ctx.out_dir / HEADER, ctx.prefix, work / "model")
        machine = machine_info()
        say("bench: streaming latency per step (batch 1)")
        latency = streaming_latency(ctx, c, s)
        say(f"bench: whole-sequence throughput (batch {', '.join(map(str, s.batches))})")
        thr = throughput(ctx, c, s)
        say("bench: callgrind instructions per step")
        cg = callgrind_default(ctx, c, s)
        say(f"bench: scaling with sequence length {list(s.lengths)}")
        lengths = length_scaling(ctx, c, s)
        say(f"bench: scaling with hidden size {list(s.hidden_sizes)} (random models)")
        hidden = hidden_scaling(ctx, s, work / "sweep")
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "quick": quick,
        "directory": str(ctx.out_dir),
        "machine": machine,
        "settings": {
            "repeats": s.repeats,
            "block_s": s.block_s,
            "warmup_s": s.warmup_s,
            "statistic": "median of per-block means; spread as IQR (p25-p75) and min/max",
            "schedule": "warm-up, then `repeats` rounds of one block per backend (interleaved)",
            "c_builds": {k: list(v or DRIVER_FLAGS[:1]) for k, v in C_BUILDS.items()},
            "harness_flags": "cbackend.STRICT_FLAGS (-O2 ...) + the build's flags",
        },
        "model": {
            "dataset": ctx.meta.get("dataset"),
            "config": ctx.cfg.to_dict(),
            "macs_per_step": ctx.sizes["macs"],
            "head_macs": ctx.sizes["head_macs"],
            "flash_bytes": ctx.sizes["weight"] + ctx.sizes["lut"],
            "state_bytes": ctx.sizes["state"],
        },
        "latency": latency,
        "throughput": thr,
        "callgrind": cg,
        "mcu": mcu_rows(read_report(ctx.out_dir)),
        "scaling": {"hidden": hidden, "length": lengths},
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if save:
        save_bench(ctx.out_dir, result)
    return result


def summary(result: dict[str, Any]) -> dict[str, Any]:
    """The few numbers report.json carries; the rest stays in bench.json."""
    m = result["machine"]
    out: dict[str, Any] = {
        "file": BENCH_JSON,
        "quick": result["quick"],
        "machine": f"{m['cpu']}, {m['usable_cpus']} usable CPUs, 1 thread per backend",
        "recorded_at": m["recorded_at"],
    }
    lat = result["latency"]
    if "rows" in lat:
        out["c_step_ns"] = {k: lat["rows"][k]["median_ns"] for k in ("c-native", "c-native-O3")}
        out["c_speedup"] = lat["c_speedup"]
        out["c_O3_speedup"] = lat["c_O3_speedup"]
    cg = result["callgrind"]
    if "builds" in cg:
        out["host_insns_per_step"] = {k: v["insns_per_step"] for k, v in cg["builds"].items()}
        out["host_insns_per_mac"] = {k: v["insns_per_mac"] for k, v in cg["builds"].items()}
    out["scaling_fits"] = result["scaling"]["hidden"]["fits"]
    return out


def save_bench(out_dir: Path, result: dict[str, Any]) -> None:
    from edgernn.report.store import update_report

    with exclusive(out_dir):
        write_text(out_dir / BENCH_JSON, json.dumps(result, indent=2, sort_keys=True) + "\n")
    update_report(out_dir, {"bench": summary(result)})


def load_bench(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    p = Path(out_dir) / BENCH_JSON
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


# ---------------------------------------------------------------------------------------------
# Tables (markdown: readable in a terminal, pasteable into README / report.md)


def _us(ns: float | None) -> str:
    if ns is None:
        return "-"
    us = ns / 1000.0
    return f"{us:.3f}" if us < 10 else f"{us:.2f}" if us < 100 else f"{us:.1f}" if us < 1000 else f"{us:,.0f}"


def _spread(st: dict[str, Any]) -> tuple[str, str]:
    return f"{_us(st['p25_ns'])}–{_us(st['p75_ns'])}", f"{_us(st['min_ns'])}–{_us(st['max_ns'])}"


def signed(v: float) -> str:
    """'+ 12' or '− 12': the constant term of a fit, readable after a product."""
    return f"{'+' if v >= 0 else '−'} {abs(v):,.0f}"


def _n(v: float | None, fmt: str = ",.0f") -> str:
    return "-" if v is None else format(v, fmt)


def machine_text(result: dict[str, Any]) -> str:
    m, st = result["machine"], result["settings"]
    return (
        f"Machine: {m['cpu']} ({m['usable_cpus']} usable of {m['logical_cpus']} logical CPUs; "
        f"SIMD {', '.join(m['simd']) or 'n/a'}), {m['platform']}; Python {m['python']}, torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, numpy {m['numpy']}; C compiler: {m['cc']}; "
        f"{m['valgrind'] or 'no valgrind'}. "
        f"Threads: torch {m['torch_threads']}, ORT intra_op {m['ort_intra_op_threads']} / inter_op "
        f"{m['ort_inter_op_threads']}. Each figure: {st['repeats']} blocks of ~{st['block_s'] * 1000:.0f} ms "
        "after a warm-up, the backends of a table interleaved block by block; median, IQR and min–max "
        f"of the per-block means. Recorded {m['recorded_at']}"
        + (" (quick mode: smoke-test repetitions, not for quoting)" if result["quick"] else "")
        + "."
    )


def latency_table(result: dict[str, Any]) -> str:
    lat = result["latency"]
    if "rows" not in lat:
        return f"Streaming latency: {lat['skipped']}."
    lines = [
        "| backend | what is timed | µs/step (median) | IQR µs | min–max µs "
        "| C -O2 is × faster | C -O3 is × faster |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for name in [n for n in LATENCY_ROWS if n in lat["rows"]]:  # bench.json stores them key-sorted
        st = lat["rows"][name]
        iqr, rng = _spread(st)
        lines.append(
            f"| {name} | {st['what']} | {_us(st['median_ns'])} | {iqr} | {rng} | "
            f"{lat['c_speedup'][name]:,.1f}× | {lat['c_O3_speedup'][name]:,.1f}× |"
        )
    return "\n".join(lines)


def throughput_table(result: dict[str, Any]) -> str:
    thr = result["throughput"]
    lines = [
        f"The first {thr['sequences']} test sequences ({thr['steps']:,} valid steps, mean length "
        f"{thr['mean_length']:.1f}) per pass; c-native rows: the driver's PREFIX_run on sequences of the "
        "mean length, no Python (their µs column is per step).",
        "",
        "| backend | batch | µs per call (median) | IQR µs | steps/s |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in thr["rows"]:
        lines.append(
            f"| {r['backend']} | {r['batch']} | {_us(r['median_ns'])} | {_spread(r)[0]} | "
            f"{r['steps_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def callgrind_table(result: dict[str, Any]) -> str:
    cg = result["callgrind"]
    if "builds" not in cg:
        return f"Callgrind: {cg['skipped']}."
    lines = [
        f"{cg['macs_per_step']:,} MACs per step (+ {cg['head_macs']:,} for the head); per-step figures are "
        f"the difference of two runs {cg['steps_differenced']:,} steps apart.",
        "",
        "| build | instructions/step | instructions/MAC | with head: instructions/step |",
        "|---|---:|---:|---:|",
    ]
    for r in cg["builds"].values():
        lines.append(
            f"| host {' '.join(r['flags'])} | {r['insns_per_step']:,.0f} | {r['insns_per_mac']:.2f} | "
            f"{_n(r['insns_per_step_with_head'])} |"
        )
    for r in result.get("mcu", []):
        lines.append(
            f"| {r['target']} ({r['compiler']}, {r['kernel']}, {r['emulator']}) | "
            f"{_n(r['insns_per_step'])} | "
            f"{_n(r['insns_per_mac'], '.2f')} | - |"
        )
    return "\n".join(lines)


def hidden_table(result: dict[str, Any]) -> str:
    h = result["scaling"]["hidden"]
    lines = [
        "| hidden | MACs/step | C -O2 µs/step | C -O3 µs/step | instr/step -O2 | instr/MAC -O2 | "
        "instr/step -O3 | instr/MAC -O3 | ORT int8 step µs | torch float µs |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in h["rows"]:
        lines.append(
            f"| {r['hidden']} | {r['macs_per_step']:,} | {_us(r['c_O2']['median_ns'])} | "
            f"{_us(r['c_O3']['median_ns'])} | {_n(r['insns_O2'])} | {_n(r['insns_per_mac_O2'], '.2f')} | "
            f"{_n(r['insns_O3'])} | {_n(r['insns_per_mac_O3'], '.2f')} | "
            f"{_us(r['ort_int8_step']['median_ns'])} | "
            f"{_us(r['torch_float']['median_ns'])} |"
        )
    fits = h["fits"]
    for name in C_BUILDS:
        f = fits.get(f"insns_{name}")
        t = fits.get(f"time_{name}")
        if f is not None:
            lines.append("")
            lines.append(
                f"-{name}: instructions/step = {f['slope']:.3f} × MACs {signed(f['intercept'])} "
                f"(R² = {f['r2']:.5f})"
                + (
                    f"; time/step = {t['slope']:.3f} ns × MACs {signed(t['intercept'])} ns "
                    f"(R² = {t['r2']:.4f})"
                    if t
                    else ""
                )
            )
    return "\n".join(lines)


def length_table(result: dict[str, Any]) -> str:
    lines = [
        "| T | C -O2 native µs/step | C -O3 native µs/step | instr/step -O2 | instr/step -O3 | "
        "C via ctypes µs/step | ORT int8 µs/step | ORT float µs/step | torch float µs/step |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["scaling"]["length"]["rows"]:
        lines.append(
            f"| {r['steps']:,} | {_us(r['c-native-O2']['median_ns'])} | "
            f"{_us(r['c-native-O3']['median_ns'])} | "
            f"{_n(r['insns_O2'])} | {_n(r['insns_O3'])} | {_us(r['c-ctypes']['median_ns'])} | "
            f"{_us(r['ort-int8']['median_ns'])} | {_us(r['ort-float']['median_ns'])} | "
            f"{_us(r['torch-float']['median_ns'])} |"
        )
    return "\n".join(lines)


def markdown_tables(result: dict[str, Any], level: str = "###") -> str:
    cfg = result["model"]["config"]
    sweep = result["scaling"]["hidden"]["config"]
    inputs = f"{sweep['vocab_size']} tokens" if sweep.get("vocab_size") else f"{sweep['input_size']} inputs"
    parts = [
        machine_text(result),
        f"{level} Streaming latency per step, batch 1 ({result['model']['dataset']}: "
        f"{cfg['hidden_size']} hidden × {cfg['num_layers']} layer(s), "
        f"{result['model']['macs_per_step']:,} MACs/step)",
        latency_table(result),
        f"{level} Whole-sequence throughput",
        throughput_table(result),
        f"{level} Deterministic cost: instructions per step "
        "(callgrind on the host; Cortex-M from `edgernn mcu`)",
        callgrind_table(result),
        f"{level} Scaling with hidden size (random 1-layer models, {inputs}, batch 1)",
        hidden_table(result),
        f"{level} Scaling with sequence length "
        f"({result['model']['dataset']} model, batch 1, one sequence of T steps)",
        length_table(result),
    ]
    return "\n\n".join(parts) + "\n"
