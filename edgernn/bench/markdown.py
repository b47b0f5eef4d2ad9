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
        f"The first {thr['sequences']} test sequences ({thr['steps']:,} valid RNN steps, mean length "
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
    rows = [
        f"| host {' '.join(r['flags'])} | {r['insns_per_step']:,.0f} | {r['insns_per_mac']:.2f} | "
        f"{_n(r['insns_per_step_with_head'])} |"
        for r in cg.get("builds", {}).values()
    ]
    # The microcontroller rows come from `edgernn mcu`, not from valgrind: shown without it too.
    rows += [
        f"| {r['target']} ({r['compiler']}, {r['kernel']}, {r['emulator']}) | "
        f"{_n(r['insns_per_step'])} | {_n(r['insns_per_mac'], '.2f')} | - |"
        for r in result.get("mcu", [])
    ]
    if "builds" in cg:
        intro = (
            f"{cg['macs_per_step']:,} MACs per step (+ {cg['head_macs']:,} for the head); per-step figures "
            "are "
            + cg.get("method", f"the difference of two runs {cg['steps_differenced']:,} steps apart")
            + "."
        )
    else:
        intro = f"Callgrind: {cg['skipped']}."
    if not rows:
        return intro
    header = [
        "| build | instructions/step | instructions/MAC | with head: instructions/step |",
        "|---|---:|---:|---:|",
    ]
    return "\n".join([intro, "", *header, *rows])


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
        # Either fit alone is shown too: without valgrind there are timings but no instruction counts.
        parts = (
            [f"instructions/step = {f['slope']:.3f} × MACs {signed(f['intercept'])} (R² = {f['r2']:.5f})"]
            if f
            else []
        )
        if t:
            parts.append(
                f"time/step = {t['slope']:.3f} ns × MACs {signed(t['intercept'])} ns (R² = {t['r2']:.4f})"
            )
        if parts:
            lines += ["", f"-{name}: " + "; ".join(parts)]
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


def _peer_cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['insns_per_mac']:.2f}" + ("" if row["checked"] else " ✗")


def _skipped_text(skipped: list[dict[str, str]]) -> str:
    if not skipped:
        return ""
    items = []
    for s in skipped:
        where = "/".join(p for p in (s["target"], s["compiler"]) if p) or "every target"
        items.append(f"{s['what'] or 'everything'} on {where}: {s['reason']}")
    return "Not measured: " + "; ".join(items) + "."


def peer_table(result: dict[str, Any]) -> str:
    """model.h beside every peer at the model's shape, per target and compiler (insns/MAC)."""
    comp = result.get("peer_comparison") or {}
    if "ratios" not in comp:
        return f"Peers: {comp.get('skipped', 'not measured (bench.json predates them)')}."
    names = list(comp["what"])
    shape = comp["shape"]
    peers = {(r["target"], r["compiler"], r["name"]): r for r in result["peers"]}
    own = {(r["target"], r["compiler"]): r for r in comp["edgernn"]}
    lines = [
        f"Instructions per MAC of one step at the model's shape ({shape['inputs']} → {shape['hidden']}, "
        f"{shape['macs_per_step']:,} MACs), from the call's entry to its return on the same emulator "
        f"(Unicorn, counted per block as `edgernn mcu` counts), same compilers and flags. model.h: "
        f"{comp['edgernn_model']}, checked against the torch reference over {comp['edgernn_steps']} steps. "
        f"Peers (sources: `{comp['source']}`): random weights at the shape, each checked bit for bit "
        f"against a numpy port of its own arithmetic over {comp['peer_steps']} steps; ✗ = not checked, "
        "never quoted.",
        "",
        "| target | compiler | model.h | " + " | ".join(names) + " | best peer | model.h ÷ best |",
        "|---|---|---:|" + "---:|" * len(names) + "---|---:|",
    ]
    for r in comp["ratios"]:
        key = (r["target"], r["compiler"])
        mine = own.get(key)
        cells = [_peer_cell(peers.get((*key, n))) for n in names]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}×"
        mine_text = (
            "-" if mine is None else f"{mine['insns_per_mac']:.2f}" + (" ✗" if mine["mismatches"] else "")
        )
        lines.append(
            f"| {r['target']} | {r['compiler']} | {mine_text} | {' | '.join(cells)} | "
            f"{r['best_peer'] or '-'} | {ratio} |"
        )
    lines += [
        "",
        "Code bytes (model.h: the kept code of its object, kernels with the step, init and logits "
        "calls; a peer: its step glue and the library functions it reaches; tables not included):",
        "",
        "| target | compiler | model.h | " + " | ".join(names) + " |",
        "|---|---|---:|" + "---:|" * len(names),
    ]
    for r in comp["ratios"]:
        key = (r["target"], r["compiler"])
        mine = own.get(key)
        cells = [_n(peers[(*key, n)]["code_bytes"]) if (*key, n) in peers else "-" for n in names]
        mine_bytes = _n(mine["code_bytes"] if mine else None)
        lines.append(f"| {r['target']} | {r['compiler']} | {mine_bytes} | {' | '.join(cells)} |")
    lines += ["", *(f"- {n}: {what}" for n, what in comp["what"].items())]
    skipped = _skipped_text(comp.get("skipped", []))
    return "\n".join(lines + (["", skipped] if skipped else []))


def sweep_table(result: dict[str, Any]) -> str:
    """Per compiler: one row per shape, per target model.h / best peer insns/MAC and their ratio."""
    sweep = result["sweep"]
    rows = sweep["rows"]
    targets = list(dict.fromkeys(r["target"] for r in rows))
    parts = [
        f"A random one-layer model at each shape through the codegen (checked over {sweep['edgernn_steps']} "
        f"steps) beside every peer (checked over {sweep['peer_steps']}); each cell: model.h / best "
        "checked peer instructions per MAC, and their ratio."
    ]
    for compiler in dict.fromkeys(r["compiler"].split()[0] for r in rows):
        chosen = [r for r in rows if r["compiler"].split()[0] == compiler]
        versions = ", ".join(dict.fromkeys(r["compiler"] for r in chosen))  # Arm's gcc and RISC-V's
        by = {(r["inputs"], r["hidden"], r["target"]): r for r in chosen}
        lines = [
            f"{versions}:",
            "",
            "| I → H | MACs | " + " | ".join(targets) + " |",
            "|---|---:|" + "---|" * len(targets),
        ]
        for i in sweep["inputs"]:
            for h in sweep["hidden"]:
                cells = []
                for t in targets:
                    r = by.get((i, h, t))
                    if r is None or r["ratio"] is None:
                        cells.append("-")
                    else:
                        cells.append(
                            f"{r['edgernn_insns_per_mac']:.2f} / {r['best_peer_insns_per_mac']:.2f} "
                            f"({r['ratio']:.2f}×)"
                        )
                lines.append(f"| {i} → {h} | {h * (i + h):,} | {' | '.join(cells)} |")
        ranges = []
        for t in targets:
            ratios = [r["ratio"] for r in chosen if r["target"] == t and r["ratio"] is not None]
            if ratios:
                ranges.append(f"{t} {min(ratios):.2f}–{max(ratios):.2f}×")
        lines += ["", "model.h ÷ best peer over the sweep: " + ", ".join(ranges) + "."]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


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
        f"{level} Peers on the microcontrollers: model.h beside CMSIS-NN, NNoM and a naive loop",
        peer_table(result),
    ]
    if "sweep" in result:
        parts += [
            f"{level} Shape sweep on the microcontrollers: model.h vs the best peer",
            sweep_table(result),
        ]
    return "\n\n".join(parts) + "\n"
