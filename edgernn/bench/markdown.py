"""Markdown tables of a bench result: readable in a terminal, pasteable into README / report.md."""

from __future__ import annotations

from typing import Any

from edgernn.bench.native import C_BUILDS
from edgernn.bench.suites import LATENCY_ROWS


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
        "(callgrind on the host; microcontrollers from `edgernn mcu`)",
        callgrind_table(result),
        f"{level} Scaling with hidden size (random 1-layer models, {inputs}, batch 1)",
        hidden_table(result),
        f"{level} Scaling with sequence length "
        f"({result['model']['dataset']} model, batch 1, one sequence of T steps)",
        length_table(result),
    ]
    return "\n\n".join(parts) + "\n"
