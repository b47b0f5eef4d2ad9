"""report.json (merged: verify owns the checks, mcu/bench add their own sections) and report.md."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgernn.artifacts import write_text
from edgernn.pipeline import REPORT_JSON, exclusive

OWNED_BY_VERIFY = (
    "dataset",
    "task",
    "config",
    "train",
    "data",
    "metrics",
    "parity",
    "size",
    "checkpoint_sha256",
)


def read_report(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(out_dir) / REPORT_JSON
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def update_report(out_dir: str | os.PathLike[str], section: dict[str, Any]) -> dict[str, Any]:
    """Replace the given top-level keys, keep the rest (e.g. verify keeps `mcu` and `bench`)."""
    with exclusive(Path(out_dir)):
        report = {**read_report(out_dir), **section}
        write_text(Path(out_dir) / REPORT_JSON, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def parity_rows(report: dict[str, Any]) -> list[str]:
    rows = []
    for p in report.get("parity", []):
        if "what" in p:
            detail = f"{p['what']}: {p['mismatches']} of {p['n']} seeds differ"
        elif "max_abs_diff" in p:
            detail = f"max |diff| {p['max_abs_diff']:.2e} (tol {p['tolerance']:.0e}) over {p['n']:,} values"
        else:
            detail = f"{p['mismatches']} mismatches in {p['n']:,} integers"
        rows.append(f"{p['a']:>12} vs {p['b']:<14} {detail:<52} {'PASS' if p['passed'] else 'FAIL'}")
    return rows


def verify_table(report: dict[str, Any]) -> str:
    m = report.get("metrics", {})
    f, i = m.get("float", {}), m.get("int8", {})
    size = report.get("size", {})
    lines = [
        f"{report.get('dataset')} ({report.get('task')}), test split",
        f"  float accuracy {f.get('test_accuracy', 0):.4f}   int8 accuracy {i.get('test_accuracy', 0):.4f}   "
        f"agreement {i.get('agreement_with_float', 0):.4f}   balanced (float/int8) "
        f"{f.get('balanced_accuracy', 0):.4f}/{i.get('balanced_accuracy', 0):.4f}",
    ]
    if "nats_per_char" in f:
        lines.append(f"  nats/char float {f['nats_per_char']:.3f}   int8 {i.get('nats_per_char', 0):.3f}")
    lines += ["  " + r for r in parity_rows(report)]
    if size:
        lines.append(
            f"  weights {size['weights_bytes']:,} B + LUT {size['lut_bytes']:,} B flash, "
            f"state {size['state_bytes']} B RAM, "
            f"{size['macs_per_step']:,} MACs/step"
        )
    return "\n".join(lines)
