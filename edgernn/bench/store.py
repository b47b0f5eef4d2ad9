"""bench.json: the full results of one run, and the summary that goes into report.json."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgernn.artifacts import write_text
from edgernn.pipeline import exclusive

BENCH_JSON = "bench.json"
SCHEMA = "edgernn-bench-v1"


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
    update_report(out_dir, {"bench": summary(result)}, wait=True)


def load_bench(out_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    p = Path(out_dir) / BENCH_JSON
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("schema") == SCHEMA else None


def mcu_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The microcontroller figures `edgernn mcu` left in report.json, reduced to what the bench shows
    (rows with an instruction count: a cycle-accurate target's rows are cycles, shown in report.md)."""
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
    return [{k: r.get(k) for k in keep} for r in rows if isinstance(r, dict) and r.get("insns_per_step")]
