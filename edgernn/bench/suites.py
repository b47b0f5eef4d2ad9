"""The measurement suites of `edgernn bench`, each returning a plain json-ready dict, and
`run_bench`, which runs them all on one export directory and assembles bench.json.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.backends.c.codegen import generate_header, model_sizes
from edgernn.backends.c.header import header_prefix
from edgernn.bench.backends import (
    c_ctypes_step,
    ort_float_step,
    ort_int8_step,
    sequence_fns,
    torch_bare_step,
    torch_step,
)
from edgernn.bench.machine import machine_info
from edgernn.bench.native import (
    C_BUILDS,
    DRIVER_FLAGS,
    CBuild,
    build_c,
    callgrind_steps,
    driver_block,
    have_valgrind,
    insns_per_step,
)
from edgernn.bench.peers.ports import Shape
from edgernn.bench.peers.sources import find_sources
from edgernn.bench.peers.suite import PeerOptions, peer_suites
from edgernn.bench.store import SCHEMA, mcu_rows, save_bench
from edgernn.bench.timing import FULL, QUICK, Block, Settings, python_block, single_threaded, time_blocks
from edgernn.bench.workloads import (
    POOL_STEPS,
    Workload,
    in_batches,
    random_workload,
    raw_features,
    split_workload,
    step_pool,
)
from edgernn.config import ModelConfig, Task
from edgernn.contract.model import QuantizedModel
from edgernn.errors import InputError
from edgernn.frame import steps_numpy
from edgernn.pipeline import FLOAT_ONNX, HEADER, INT_ONNX, STEP_ONNX, checkpoint_data, load_quantized
from edgernn.synthetic import random_quantized
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.model import EdgeRNN


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

    def to_raw(self, x: np.ndarray) -> np.ndarray:
        """Normalized float inputs -> the raw features model.onnx takes (it normalizes inside)."""
        return raw_features(self.qm, x)

    def sequence_fns(
        self,
        f_sess: Any,
        i_sess: Any,
        c: dict[str, CBuild],
        batches: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    ) -> dict[str, Callable[[], object]]:
        """Every backend over whole padded batches of this export (bench.backends.sequence_fns)."""
        cfg = self.cfg
        return sequence_fns(
            self.model,
            f_sess,
            i_sess,
            c["O2"].model,
            batches,
            self.rows,
            cfg.hidden_size,
            self.to_raw,
            self.as_steps,
        )

    def as_steps(self, x: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """An int8 batch as PREFIX_run reads it: framed, padded, reversed (edgernn.frame)."""
        return steps_numpy(self.qm.config, x, lengths)

    def raw(self, pool: list[np.ndarray]) -> list[np.ndarray]:
        return [self.to_raw(x) for x in pool]


def load_context(out_dir: str | os.PathLike[str]) -> Context:
    out = Path(out_dir)
    for name in (FLOAT_ONNX, INT_ONNX, STEP_ONNX, HEADER):
        if not (out / name).exists():
            raise InputError(f"{out} has no {name}; run `edgernn export {out}` first")
    ckpt = load_checkpoint(out)
    qm = load_quantized(out)
    ds = checkpoint_data(ckpt, out)
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
    floats, ints = step_pool(ctx.test, ctx.cfg.tokens, ctx.cfg.frame)
    state = (ctx.rows, 1, ctx.cfg.hidden_size)
    blocks: dict[str, Block] = {
        "torch-float": python_block(torch_step(ctx.model, floats), inference=True),
        "torch-float-bare": python_block(torch_bare_step(ctx.model, floats), inference=True),
        "ort-float": python_block(ort_float_step(session(ctx.out_dir / FLOAT_ONNX), ctx.raw(floats), state)),
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
    # RNN steps, the unit of every row: a framed model steps once per `frame` samples (the last
    # partial frame is dropped), and the native driver runs mean_len RNN steps.
    steps = int((ctx.test.lengths[:total] // ctx.cfg.frame).sum())
    mean_len = max(1, round(steps / total))
    blocks: dict[tuple[str, int], Block] = {}
    n_batches = {}
    for batch in (b for b in s.batches if b <= total):
        batches = in_batches(ctx.test, batch, total)
        n_batches[batch] = len(batches)
        fns = ctx.sequence_fns(f_sess, i_sess, c, batches)
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
    method = (
        # A bidirectional model has no step call: its run's per-call overhead is in the figure.
        f"one PREFIX_run of {steps:,} steps less the same program without it, divided by {steps:,}"
        if ctx.cfg.bidirectional
        else f"the difference of two runs {steps:,} steps apart"
    )
    return {
        "macs_per_step": macs,
        "head_macs": ctx.sizes["head_macs"],
        "steps_differenced": steps,
        "method": method,
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
        task=Task.MANY_TO_ONE,
        input_size=cfg.input_size,
        hidden_size=hidden,
        num_classes=cfg.num_classes,
        vocab_size=cfg.vocab_size,
        embed_dim=cfg.embed_dim,
    )


def hidden_scaling(ctx: Context, s: Settings, workdir: Path) -> dict[str, Any]:
    from edgernn.backends.onnx import build_step_model, make_session

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
        floats, ints = step_pool(random_workload(cfg, qm, 1, POOL_STEPS), cfg.tokens, cfg.frame)
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
        batches = in_batches(w, 1, 1)
        fns = ctx.sequence_fns(f_sess, i_sess, c, batches)
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


NO_PEERS = "no --peers PATH: `edgernn bench DIR --peers PATH` measures CMSIS-NN and NNoM beside model.h"


def run_bench(
    out_dir: str | os.PathLike[str],
    quick: bool = False,
    save: bool = True,
    echo: Callable[[str], None] | None = None,
    settings: Settings | None = None,
    peers: PeerOptions | None = None,
) -> dict[str, Any]:
    """Measure everything for one export directory; write DIR/bench.json and report.json "bench".
    peers: also the peer libraries beside model.h on the microcontroller targets (and the sweep)."""
    from edgernn.report.store import read_report

    say = echo or (lambda _msg: None)
    s = settings or (QUICK if quick else FULL)
    if peers is not None:
        find_sources(peers.path)  # a wrong PATH fails now, not after the timings
    ctx = load_context(out_dir)
    # Read now: a corrupt report.json fails before the measurements, not after them.
    mcu = mcu_rows(read_report(ctx.out_dir))
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
        peer_results: dict[str, Any] = {"peers": [], "peer_comparison": {"skipped": NO_PEERS}}
        if peers is not None:
            sweep = [Shape(i, h) for i in s.sweep_inputs for h in s.sweep_hidden]
            header = ctx.out_dir / HEADER
            x, x_lengths = ctx.test.x_int, ctx.test.lengths
            peer_results = peer_suites(peers, header, ctx.qm, x, x_lengths, sweep, work / "peers", say)
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
            "harness_flags": "host.HOST_FLAGS (-O2 ...) + the build's flags",
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
        "mcu": mcu,
        "scaling": {"hidden": hidden, "length": lengths},
        **peer_results,
        "elapsed_s": round(time.perf_counter() - started, 1),
    }
    if save:
        save_bench(ctx.out_dir, result)
    return result
