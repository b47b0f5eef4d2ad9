"""`edgernn report`: DIR/report.md, one readable page per export directory.

Sections: model card (config, data source and licence), float vs int8 accuracy with confusion
matrices, the parity table, flash/RAM/MACs (and the Cortex-M table of `edgernn mcu`), a float vs
int8 hidden-state trace over one test sequence, generated samples (one-to-many), and the
benchmarks of `edgernn bench` when DIR/bench.json exists.

PNG figures need matplotlib (the `plot` extra); without it the page is text only and says so.
The text is deterministic: the same directory gives the same bytes (the only dates are the ones
bench.json recorded about its own run).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.artifacts import write_text
from edgernn.bench import BENCH_JSON, load_bench, markdown_tables
from edgernn.config import Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import int_forward, int_generate
from edgernn.errors import CheckFailed, InputError
from edgernn.frame import steps_torch
from edgernn.manifest import check_manifest, manifest_digest
from edgernn.metrics import IGNORE, confusion, predictions
from edgernn.pipeline import (
    FLOAT_ONNX,
    HEADER,
    INT_ONNX,
    QUANT_NAME,
    RAW_INT_ONNX,
    RAW_STEP_ONNX,
    REPORT_MD,
    STEP_ONNX,
    checkpoint_data,
    exclusive,
    int8_inputs,
    load_quantized,
)
from edgernn.report.plots import (
    NO_PLOT_NOTE,
    SCALING_PNG,
    SWEEP_PNG,
    TRACE_PNG,
    plot_scaling,
    plot_sweep,
    plot_trace,
    pyplot,
)
from edgernn.report.search import search_section
from edgernn.report.store import read_report
from edgernn.train.checkpoint import Checkpoint, load_checkpoint

SAMPLES = 10
SAMPLE_TEMPERATURE = 0.8
MAX_GENERATED = 20


@dataclass(frozen=True)
class Trace:
    """The top layer's hidden states over one test sequence, float and int8 (as h_q / 127)."""

    index: int
    float_h: np.ndarray  # (T, D*H)
    int_h: np.ndarray  # (T, D*H)

    @property
    def abs_err(self) -> np.ndarray:
        return np.abs(self.float_h - self.int_h)


def typical_sequence(lengths: np.ndarray) -> int:
    """The first test sequence at least as long as the median one: a trace worth looking at."""
    return int(np.argmax(lengths >= np.median(lengths)))


def hidden_trace(model: Any, qm: QuantizedModel, split: Any, index: int | None = None) -> Trace:
    index = typical_sequence(split.lengths) if index is None else index
    steps = int(split.lengths[index])
    x = split.x[index : index + 1, :steps]
    with torch.no_grad():
        # The steps the RNN reads (framed, padded, reversed as the model says), as int_forward does.
        xt, _ = steps_torch(qm.config, torch.from_numpy(np.ascontiguousarray(x)), torch.tensor([steps]))
        inp = model.embedding(xt) if model.embedding is not None else xt.float()
        out, _ = model.rnn(inp)
    xq = int8_inputs(qm, split)[index : index + 1, :steps]
    r = int_forward(qm, xq, np.array([steps]))
    int_h = r.hidden[-1][0].numpy().astype(np.float64) / 127.0
    return Trace(index, out[0].numpy().astype(np.float64), int_h)


@dataclass(frozen=True)
class Predictions:
    y: np.ndarray  # true class per counted item (sequence, or valid step)
    float_pred: np.ndarray
    int_pred: np.ndarray


def split_predictions(ckpt: Checkpoint, qm: QuantizedModel, split: Any) -> Predictions:
    from edgernn.train.loop import predict_logits

    task = qm.config.task
    f_logits = predict_logits(ckpt.model, split)
    i_logits = int_forward(qm, int8_inputs(qm, split), split.lengths).logits.numpy()
    y = np.asarray(split.y)
    flat_y = y if task == Task.MANY_TO_ONE else y[y != IGNORE]
    return Predictions(flat_y, predictions(f_logits, y, task), predictions(i_logits, y, task))


# ---------------------------------------------------------------------------------------------
# Sections


def _table(head: list[str], rows: list[list[str]], align: str = "") -> str:
    align = align or "l" + "r" * (len(head) - 1)
    rule = ["---:" if a == "r" else "---" for a in align]
    return "\n".join("| " + " | ".join(r) + " |" for r in [head, rule, *rows])


def _training_cell(meta: dict[str, Any], tr: dict[str, Any]) -> str:
    imported = meta.get("import")
    if isinstance(imported, dict):  # edgernn import: trained elsewhere, no epochs or rate of ours
        return f"imported from {imported.get('source')}, not trained by edgernn"
    return (
        f"{meta.get('epochs_run')} of at most {tr.get('epochs')} epochs (best {meta.get('best_epoch')}), "
        f"lr {tr.get('lr')}, batch {tr.get('batch_size')}, clip_grad_norm {tr.get('clip_grad_norm')}, "
        f"seed {tr.get('seed')}"
    )


def model_card(report: dict[str, Any], meta: dict[str, Any], qm: QuantizedModel) -> str:
    cfg = qm.config
    data = report.get("data", {})
    tr = report.get("train", {})
    if cfg.tokens:
        inputs = (
            f"token ids (vocabulary {cfg.vocab_size}), embedding {cfg.embed_dim} folded into an int32 table"
        )
    else:
        per_step = (
            f"{cfg.sample_size} float features per sample, {cfg.frame} samples a step"
            if cfg.frame > 1
            else f"{cfg.input_size} float features per step"
        )
        # An imported model reads its features as given (data.normalize false): no normalisation.
        normalised = meta.get("data", {}).get("normalize", True) is not False
        how = "normalised on the training split" if normalised else "used as given (no normalisation)"
        inputs = f"{per_step}, {how}, int8 with one scale per feature"
    names = meta.get("class_names") or []
    classes = f"{cfg.num_classes}" + (
        f" ({', '.join(map(str, names[:12]))}{', …' if len(names) > 12 else ''})" if names else ""
    )
    rows = [
        ["data set", f"{report.get('dataset')}"],
        ["source", str(data.get("source"))],
        ["licence", str(data.get("licence"))],
        ["task", cfg.task],
        ["input", inputs],
        [
            "RNN",
            f"tanh, {cfg.hidden_size} hidden × {cfg.num_layers} layer(s), "
            f"{'bidirectional' if cfg.bidirectional else 'unidirectional'}"
            + (f", dropout {cfg.dropout}" if cfg.dropout else ""),
        ],
        ["classes", classes],
        ["splits (train/val/test)", f"{data.get('n_train')} / {data.get('n_val')} / {data.get('n_test')}"],
        ["training", _training_cell(meta, tr)],
        ["checkpoint sha256", f"`{report.get('checkpoint_sha256')}`"],
        ["C prefix", f"`{qm.meta.get('c_prefix', '?')}`"],
    ]
    return _table(["", ""], [[f"**{k}**", v] for k, v in rows], "ll")


def import_section(report: dict[str, Any], meta: dict[str, Any]) -> str | None:
    """A model `edgernn import` brought in: its source, what was found, and how faithful it is."""
    imp = meta.get("import")
    if not imp:
        return None
    source = report.get("metrics", {}).get("source", {})
    rows = [
        ["source", f"`{imp['source']}` ({imp['kind']}), sha256 `{imp['sha256'][:16]}...`"],
        ["structure found", imp["structure"]],
        ["readout", f"the source reads `{imp['reading']}`; edgernn's readout `{imp['readout']}`"],
        [
            "source vs edgernn float",
            f"max scaled diff {imp['parity']['max_abs_diff']:.1e} (tolerance {imp['parity']['tolerance']:g}) "
            f"over {imp['parity']['n']:,} sequences, one at a time at their own length",
        ],
    ]
    if "test_accuracy" in source:
        rows.append(["source test accuracy", f"{source['test_accuracy']:.4f}"])
    if imp.get("labels") == "source":
        rows.append(
            ["labels", "none given: the source's own answers, so accuracy is agreement with the source"]
        )
    parts = [_table(["", ""], [[f"**{k}**", v] for k, v in rows], "ll")]
    parts += [f"> warning: {w}" for w in imp.get("warnings", [])]
    return "\n\n".join(parts)


def accuracy_section(report: dict[str, Any], preds: Predictions | None, names: list[str]) -> str:
    m = report.get("metrics", {})
    f, i = m.get("float", {}), m.get("int8", {})
    rows = [
        ["accuracy", f"{f.get('test_accuracy', 0):.4f}", f"{i.get('test_accuracy', 0):.4f}"],
        ["balanced accuracy", f"{f.get('balanced_accuracy', 0):.4f}", f"{i.get('balanced_accuracy', 0):.4f}"],
        ["NLL (nats)", f"{f.get('nll', 0):.4f}", f"{i.get('nll', 0):.4f}"],
        ["items scored", f"{f.get('n', 0):,}", f"{i.get('n', 0):,}"],
    ]
    delta = 100 * (i.get("test_accuracy", 0) - f.get("test_accuracy", 0))
    parts = [
        _table(["test split", "float", "int8"], rows),
        f"int8 changes test accuracy by {delta:+.2f} points; float and int8 make the same prediction on "
        f"{100 * i.get('agreement_with_float', 0):.2f} % of the test items.",
    ]
    if preds is not None:
        # A model that fits its training data can still have learned nothing that carries over:
        # said here, since the accuracy alone does not show it is at chance.
        counts = np.bincount(preds.y, minlength=len(names))
        common = int(counts.argmax())
        share = counts[common] / max(1, len(preds.y))
        if len(preds.y) and f.get("test_accuracy", 0) <= share:
            parts.append(
                f"> warning: test accuracy {f.get('test_accuracy', 0):.4f} is no better than always "
                f"answering the most common class ({common} {names[common]}: {share:.4f}); the model "
                "has not learned what tells the classes apart (more data, or another recipe: "
                "docs/training.md)"
            )
        k = len(names)
        fm, im = confusion(preds.float_pred, preds.y, k), confusion(preds.int_pred, preds.y, k)
        parts += [
            "Confusion matrices (rows: true class, columns: predicted class):",
            "**float**\n\n" + confusion_table(fm, names),
            "**int8**\n\n" + confusion_table(im, names),
            f"{int((fm != im).sum())} of {k * k} cells differ between float and int8.",
        ]
    return "\n\n".join(parts)


def confusion_table(m: np.ndarray, names: list[str]) -> str:
    head = ["true \\ predicted", *(str(c) for c in range(len(m)))]
    rows = [
        [f"{c} {names[c]}", *(f"**{v}**" if c == j else str(v) for j, v in enumerate(row))]
        for c, row in enumerate(m)
    ]
    return _table(head, rows)


def parity_section(report: dict[str, Any]) -> str:
    rows = []
    for p in report.get("parity", []):
        if "what" in p:  # a check of its own kind (greedy generation), counted in seeds as verify does
            detail = f"{p['what']}: {p['mismatches']:,} of {p['n']:,} seeds differ"
        elif "max_abs_diff" in p:
            diff, tol = p["max_abs_diff"], p["tolerance"]
            detail = f"max abs diff {diff:.2e} (tolerance {tol:.1e}) over {p['n']:,} values"
        else:
            detail = f"{p['mismatches']:,} mismatches in {p['n']:,} integers"
        rows.append([p["a"], p["b"], detail, "PASS" if p["passed"] else "**FAIL**"])
    return _table(["reference", "backend", "result", ""], rows, "llll")


def size_section(report: dict[str, Any], out_dir: Path) -> str:
    s = report.get("size", {})
    rows = [
        ["flash: weights, scales, biases", f"{s.get('weights_bytes', 0):,} B"],
        ["flash: tanh table (shared by all models)", f"{s.get('lut_bytes', 0):,} B"],
        ["flash: total tables (code extra)", f"{s.get('weights_bytes', 0) + s.get('lut_bytes', 0):,} B"],
        ["RAM: state (caller-owned)", f"{s.get('state_bytes', 0):,} B"],
        # The step's scratch, not its whole stack: `edgernn mcu` measures the stack high-water.
        ["stack: accumulators per step (part of the step's stack)", f"{s.get('scratch_bytes', 0):,} B"],
        ["MACs per step (RNN)", f"{s.get('macs_per_step', 0):,}"],
        ["MACs per head evaluation", f"{s.get('head_macs', 0):,}"],
    ]
    for name in (QUANT_NAME, FLOAT_ONNX, INT_ONNX, STEP_ONNX, RAW_INT_ONNX, RAW_STEP_ONNX, HEADER):
        p = out_dir / name
        if p.exists():
            rows.append([f"file `{name}`", f"{p.stat().st_size:,} B"])
    parts = [_table(["", ""], rows)]
    mcu = [r for r in report.get("mcu") or [] if isinstance(r, dict)]
    if mcu:
        parts.append(
            "Microcontrollers, cross-compiled and run on an emulator (`edgernn mcu`); cycles where the "
            "emulator is cycle-accurate (simavr), on Cortex-M4 rows an estimate from the M4's documented "
            "instruction timings (est., method in `c_runtime/mcu/README.md`), instructions elsewhere:"
        )
        parts.append(
            _table(
                [
                    "target",
                    "compiler",
                    "kernel",
                    "flash B",
                    "RAM B",
                    "instr/step",
                    "instr/MAC",
                    "cycles/step (µs at 16 MHz)",
                    "mismatches (sequences checked)",
                    "emulator",
                ],
                [
                    [
                        str(r["target"]),
                        str(r["compiler"]),
                        str(r["kernel"]),
                        f"{r['flash_bytes']:,}",
                        f"{r['ram_bytes']:,}",
                        f"{r['insns_per_step']:,.0f}" if r["insns_per_step"] else "-",
                        f"{r['insns_per_mac']:.2f}" if r["insns_per_mac"] else "-",
                        _cycles_cell(r),
                        # How many were checked: `mcu --sequences 20` checks 20, not the split.
                        f"{r['mismatches']} ({r['sequences']:,})"
                        if "sequences" in r
                        else str(r["mismatches"]),
                        str(r["emulator"]),
                    ]
                    for r in mcu
                ],
                "lllrrrrrrl",
            )
        )
    else:
        parts.append("No microcontroller figures yet: `edgernn mcu DIR` adds them.")
    return "\n\n".join(parts)


def _cycles_cell(r: dict[str, Any]) -> str:
    if r.get("cycles_per_step"):
        return f"{r['cycles_per_step']:,.0f} ({r['us_per_step_16mhz']:,.0f})"
    if r.get("est_m4_cycles_per_step"):
        return f"{r['est_m4_cycles_per_step']:,.0f} est."
    return "-"


def trace_section(trace: Trace, figure: str | None, note: str | None) -> str:
    err = trace.abs_err
    steps, units = err.shape
    per_step = err.max(axis=1)
    text = (
        f"Test sequence #{trace.index} ({steps} steps, {units} top-layer units): "
        f"|h_float − h_int8/127| is {err.max():.4f} at most and {err.mean():.4f} on average; "
        f"the largest per-step error is at step {int(per_step.argmax())}."
    )
    lines = [text]
    if figure:
        lines.append(f"![float vs int8 hidden states]({figure})")
    else:
        lines.append(
            f"_{note}._ Per-step max error: "
            + ", ".join(f"{v:.3f}" for v in per_step[:40])
            + (" …" if steps > 40 else "")
        )
    return "\n\n".join(lines)


def samples_section(ckpt: Checkpoint, qm: QuantizedModel) -> str:
    from edgernn.train.model import generate

    vocab = list(ckpt.meta.get("vocab", []))
    start = qm.meta.get("start_token", vocab.index("<s>") if "<s>" in vocab else 0)
    end = qm.meta.get("end_token", vocab.index("</s>") if "</s>" in vocab else -1)

    def text(tokens: list[int]) -> str:
        return "".join(vocab[t] if 0 <= t < len(vocab) else f"<{t}>" for t in tokens)

    samples = [
        text(generate(ckpt.model, start, end, MAX_GENERATED, SAMPLE_TEMPERATURE, seed))
        for seed in range(SAMPLES)
    ]
    return "\n".join(
        [
            f"- float, temperature {SAMPLE_TEMPERATURE}, seeds 0–{SAMPLES - 1}: "
            + ", ".join(f"`{s}`" for s in samples),
            f"- float, greedy: `{text(generate(ckpt.model, start, end, MAX_GENERATED))}`",
            f"- int8, greedy (`edgernn.contract.reference.int_generate`, = C `PREFIX_generate` with seed 0): "
            f"`{text(int_generate(qm, start, end, MAX_GENERATED))}`",
        ]
    )


FIGURE_TITLES = {
    SCALING_PNG: "scaling with hidden size and sequence length",
    SWEEP_PNG: "model.h vs the best peer over the shape sweep",
}


def bench_section(bench: dict[str, Any] | None, out_dir: Path, figures: list[str], note: str | None) -> str:
    if bench is None:
        return f"No {BENCH_JSON} yet: `edgernn bench {out_dir}` (or `make bench`) measures every backend."
    parts = [
        f"From {BENCH_JSON}, written by `edgernn bench{' --quick' if bench.get('quick') else ''} DIR`.",
        markdown_tables(bench, level="###"),
    ]
    parts += [f"![{FIGURE_TITLES[f]}]({f})" for f in figures]
    if not figures and note:
        parts.append(f"_{note}._")
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Figures


@dataclass
class ReportMd:
    text: str
    figures: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # file name -> writer
    note: str | None = None  # why there are no figures
    manifest_sha256: str = ""  # the export it describes


def build_report(out_dir: str | os.PathLike[str], plots: bool = True) -> ReportMd:
    """report.md's text and the figures it links; nothing is written here."""
    out = Path(out_dir)
    ckpt = load_checkpoint(out)  # first: a directory without one needs training, not verify
    report = read_report(out)
    if "metrics" not in report or "parity" not in report:
        raise InputError(f"{out}/report.json has no verification results; run `edgernn verify {out}` first")
    digest = check_manifest(out, (QUANT_NAME,), ckpt.sha256)
    if report.get("checkpoint_sha256") != ckpt.sha256:
        raise CheckFailed(
            f"{out}/report.json was verified on another checkpoint (retrained since?); "
            f"run `edgernn export {out}` and `edgernn verify {out}` again"
        )
    # Same checkpoint, another export (another prefix, another edgernn): verify checked other files.
    # A report.json verified before edgernn recorded the export has no digest to compare.
    if report.get("manifest_sha256", digest) != digest:
        raise CheckFailed(
            f"{out}/report.json was verified on an earlier export; run `edgernn verify {out}` again"
        )
    qm = load_quantized(out)
    ds = checkpoint_data(ckpt, out)
    cfg = qm.config
    plt = pyplot() if plots else None
    note = None if plt is not None else (NO_PLOT_NOTE if plots else "plots turned off (--no-plots)")
    figures: dict[str, Callable[[Path], None]] = {}

    names = [str(n) for n in (ckpt.meta.get("class_names") or range(cfg.num_classes))]
    preds = split_predictions(ckpt, qm, ds.test) if cfg.task != Task.ONE_TO_MANY else None
    trace = hidden_trace(ckpt.model, qm, ds.test)
    bench = load_bench(out)
    if plt is not None:
        figures[TRACE_PNG] = lambda p: plot_trace(plt, trace, p)
        if bench is not None:
            figures[SCALING_PNG] = lambda p: plot_scaling(plt, bench, p)
            if "sweep" in bench:
                figures[SWEEP_PNG] = lambda p: plot_sweep(plt, bench, p)

    imported = import_section(report, ckpt.meta)
    searched = search_section(ckpt.meta)
    sections = [
        f"# edgernn report: {report.get('dataset')}",
        "Generated by `edgernn report` from report.json (written by `edgernn verify`"
        + (", `edgernn mcu`" if "mcu" in report else "")
        + (", `edgernn bench`" if bench is not None else "")
        + "), the checkpoint and the quantized model, for the export whose manifest.json has sha256 "
        + f"`{digest}` (`edgernn export` removes this page when it writes another)."
        + (f" _{note.capitalize()}._" if note else ""),
        "## Model card",
        model_card(report, ckpt.meta, qm),
        *(["## Imported from", imported] if imported else []),
        *(["## Model search", searched] if searched else []),
        "## Accuracy: float vs int8",
        accuracy_section(report, preds, names),
        "## Parity across backends",
        parity_section(report),
        "## Size and compute",
        size_section(report, out),
        "## Float vs int8 over one sequence",
        trace_section(trace, TRACE_PNG if TRACE_PNG in figures else None, note),
    ]
    if cfg.task == Task.ONE_TO_MANY:
        sections += ["## Generated samples", samples_section(ckpt, qm)]
    sections += [
        "## Benchmarks",
        bench_section(bench, out, [f for f in (SCALING_PNG, SWEEP_PNG) if f in figures], note),
    ]
    return ReportMd("\n\n".join(sections) + "\n", figures, note, digest)


@dataclass(frozen=True)
class Written:
    files: list[Path]
    note: str | None


def write_report_md(out_dir: str | os.PathLike[str], plots: bool = True) -> Written:
    """Write DIR/report.md and its PNG figures, each atomically."""
    out = Path(out_dir)
    page = build_report(out, plots)
    files = []
    with exclusive(out):
        if manifest_digest(out) != page.manifest_sha256:
            raise CheckFailed(
                f"{out} was exported again while the report was built; run `edgernn verify {out}` again"
            )
        for name, draw in page.figures.items():
            draw(out / name)
            files.append(out / name)
        write_text(out / REPORT_MD, page.text)
        files.append(out / REPORT_MD)
    return Written(files, page.note)
