"""`edgernn demo`: the demo data sets (or chosen bundled ones) through train -> export -> verify,
one summary table."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from edgernn.config import Task
from edgernn.data.bundled import BUNDLED, DEMO
from edgernn.errors import InputError, StaleExportWarning
from edgernn.pipeline import export_dir, train_to_dir
from edgernn.report.markdown import write_report_md
from edgernn.report.store import record_verification, verify_table
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.model import generate
from edgernn.verify import verify_dir


def sample_names(out_dir: Path, count: int = 10, temperature: float = 0.8) -> list[str]:
    """Seeded temperature samples from the float model (seeds 0..count-1)."""
    ckpt = load_checkpoint(out_dir)
    vocab = ckpt.meta["vocab"]
    start, end = vocab.index("<s>"), vocab.index("</s>")
    return [
        "".join(vocab[t] for t in generate(ckpt.model, start, end, 20, temperature, seed))
        for seed in range(count)
    ]


def run_demo(root: Path, names: Iterable[str] | None, progress: bool, echo: Callable[[str], None]) -> bool:
    chosen = list(names or DEMO)
    unknown = [n for n in chosen if n not in BUNDLED]
    if unknown:
        raise InputError(f"unknown data set {unknown[0]!r}; bundled: {', '.join(BUNDLED)}")
    rows, ok = [], True
    for name in chosen:
        out = root / name
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            # The demo exports again at once: the older export it trains beside is not left stale.
            warnings.simplefilter("ignore", StaleExportWarning)
            train_to_dir(out, dataset=name, progress=progress)
        t_train = time.perf_counter() - t0
        export_dir(out)
        v = verify_dir(out)
        record_verification(out, v)
        write_report_md(out)
        echo(verify_table(v.report))
        if v.report["task"] == Task.ONE_TO_MANY:
            echo("  samples (float, temperature 0.8, seeds 0-9): " + ", ".join(sample_names(out)))
        took = time.perf_counter() - t0
        echo(f"  report: {out / 'report.md'} ({t_train:.0f} s training, {took:.0f} s in all)\n")
        ok &= v.passed
        rows.append(v.report)
    echo(summary_table(rows))
    return ok


def summary_table(reports: list[dict[str, Any]]) -> str:
    head = (
        f"{'data set':<16} {'task':<13} {'float':>7} {'int8':>7} {'agree':>7} {'torch~ORT float':>16} "
        f"{'int8 mismatches (ORT/step/C)':>29} {'tables B':>8} {'state B':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in reports:
        f, i = r["metrics"]["float"], r["metrics"]["int8"]
        flt = next(p for p in r["parity"] if p["b"] == "ort-float")
        mism = "/".join(str(p["mismatches"]) for p in r["parity"] if "mismatches" in p and "what" not in p)
        size = r["size"]
        lines.append(
            f"{r['dataset']:<16} {r['task']:<13} {f['test_accuracy']:>7.4f} {i['test_accuracy']:>7.4f} "
            f"{i['agreement_with_float']:>7.4f} {flt['max_abs_diff']:>16.1e} {mism:>29} "
            f"{size['weights_bytes'] + size['lut_bytes']:>8,} {size['state_bytes']:>7}"
        )
    return "\n".join(lines)
