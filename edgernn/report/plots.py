"""The figures of report.md and of `edgernn bench`: PNGs drawn with matplotlib when it is installed
(the `plot` extra); without it the callers say so and stay text only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgernn.artifacts import atomic_path
from edgernn.bench.markdown import signed

if TYPE_CHECKING:
    from edgernn.report.markdown import Trace

TRACE_PNG = "report_trace.png"
SCALING_PNG = "bench_scaling.png"
SWEEP_PNG = "bench_sweep.png"
NO_PLOT_NOTE = "plots skipped: matplotlib is not installed (`pip install 'edgernn[plot]'`); text only"


def pyplot() -> Any | None:
    """matplotlib.pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(fig: Any, path: Path) -> None:
    """Atomic, and without the matplotlib version in the PNG metadata (same input, same bytes)."""
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, metadata={"Software": None})


# ---------------------------------------------------------------------------------------------
# Numbers computed here (everything else comes from report.json / bench.json)


def plot_trace(plt: Any, trace: Trace, path: Path) -> None:
    """Float (solid) vs int8 (dashed) for the four most active units, and the per-step max error."""
    fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(8, 5.5), sharex=True, height_ratios=[3, 1])
    units = np.argsort(-trace.float_h.std(axis=0), kind="stable")[:4]
    t = np.arange(len(trace.float_h))
    for k, u in enumerate(units):
        color = f"C{k}"
        ax.plot(t, trace.float_h[:, u], color=color, label=f"unit {u} float")
        ax.plot(t, trace.int_h[:, u], color=color, linestyle="--", marker=".", label=f"unit {u} int8")
    ax.set_ylabel("hidden state")
    ax.set_title(f"test sequence #{trace.index}: float (solid) vs int8 h_q/127 (dashed)")
    ax.legend(fontsize=7, ncol=2)
    ax_err.plot(t, trace.abs_err.max(axis=1), color="k")
    ax_err.set_ylabel("max |error|")
    ax_err.set_xlabel("step")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_scaling(plt: Any, bench: dict[str, Any], path: Path) -> None:
    """Instructions vs MACs with the linear fit; time per step vs MACs; time per step vs length."""
    hid = bench["scaling"]["hidden"]
    rows = hid["rows"]
    macs = np.array([r["macs_per_step"] for r in rows], dtype=np.float64)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    ax = axes[0]
    for k, name in enumerate(("O2", "O3")):
        insns = [r.get(f"insns_{name}") for r in rows]
        if None in insns:  # no valgrind on the benchmarking machine
            continue
        fit = hid["fits"].get(f"insns_{name}")  # needs two sizes or more
        label = (
            f"-{name}"
            if fit is None
            else (f"-{name}: {fit['slope']:.2f} instr/MAC {signed(fit['intercept'])}, R²={fit['r2']:.4f}")
        )
        ax.plot(macs, insns, "o", color=f"C{k}", label=label)
        if fit is not None:
            xs = np.linspace(0, macs.max(), 50)
            ax.plot(xs, fit["slope"] * xs + fit["intercept"], "-", color=f"C{k}")
    ax.set_xlabel("MACs per step")
    ax.set_ylabel("host instructions per step (callgrind)")
    ax.set_title("C step: instructions are linear in MACs")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax = axes[1]
    series = [
        ("C -O2 native", "c_O2"),
        ("C -O3 native", "c_O3"),
        ("ORT int8 step", "ort_int8_step"),
        ("torch float step", "torch_float"),
    ]
    for label, key in series:
        ax.loglog(macs, [r[key]["median_ns"] / 1000 for r in rows], "o-", label=label)
    ax.set_xlabel("MACs per step (hidden " + ", ".join(str(r["hidden"]) for r in rows) + ")")
    ax.set_ylabel("µs per step (median)")
    ax.set_title("streaming step latency vs model size")
    ax.legend(fontsize=8)
    ax = axes[2]
    lrows = bench["scaling"]["length"]["rows"]
    steps = [r["steps"] for r in lrows]
    for label, key in [
        ("C -O2 native", "c-native-O2"),
        ("C -O3 native", "c-native-O3"),
        ("C via ctypes", "c-ctypes"),
        ("ORT int8 sequence", "ort-int8"),
        ("ORT float", "ort-float"),
        ("torch float", "torch-float"),
    ]:
        ax.loglog(steps, [r[key]["median_ns"] / 1000 for r in lrows], "o-", label=label)
    ax.set_xlabel("sequence length T (one sequence, batch 1)")
    ax.set_ylabel("µs per step (median)")
    ax.set_title("whole-sequence cost per step vs length")
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def plot_sweep(plt: Any, bench: dict[str, Any], path: Path) -> None:
    """The peers' shape sweep: per target, model.h (dots) and the best checked peer (crosses) in
    instructions per MAC against MACs per step, one colour per compiler."""
    rows = [r for r in bench["sweep"]["rows"] if r["ratio"] is not None]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    compilers = list(dict.fromkeys(r["compiler"].split()[0] for r in rows))  # zig, gcc (any version)
    fig, axes = plt.subplots(1, len(targets), figsize=(4 * len(targets), 4), squeeze=False)
    for ax, target in zip(axes[0], targets, strict=True):
        for k, compiler in enumerate(compilers):
            mine = [r for r in rows if r["target"] == target and r["compiler"].split()[0] == compiler]
            macs = [r["macs_per_step"] for r in mine]
            for key, marker, who in (
                ("edgernn_insns_per_mac", "o", "model.h"),
                ("best_peer_insns_per_mac", "x", "best peer"),
            ):
                ax.semilogx(macs, [r[key] for r in mine], marker, color=f"C{k}", label=f"{who}, {compiler}")
        ax.set_title(target)
        ax.set_xlabel("MACs per step")
        ax.set_ylim(bottom=0)
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("instructions per MAC (emulated)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("model.h vs the best checked peer, I x H swept (random one-layer models)")
    fig.tight_layout()
    save_figure(fig, path)
    plt.close(fig)


def write_sweep_plot(out_dir: str | os.PathLike[str], bench: dict[str, Any]) -> Path | None:
    """DIR/bench_sweep.png when the bench ran the sweep, or None (no sweep, no matplotlib)."""
    plt = pyplot()
    if plt is None or "sweep" not in bench:
        return None
    path = Path(out_dir) / SWEEP_PNG
    plot_sweep(plt, bench, path)
    return path


def write_scaling_plot(out_dir: str | os.PathLike[str], bench: dict[str, Any]) -> Path | None:
    """DIR/bench_scaling.png, or None without matplotlib."""
    plt = pyplot()
    if plt is None:
        return None
    path = Path(out_dir) / SCALING_PNG
    plot_scaling(plt, bench, path)
    return path


# ---------------------------------------------------------------------------------------------
# The page
