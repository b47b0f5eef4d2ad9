"""Cross-backend verification of an export directory: the numbers behind report.json.

Level 1: torch float vs ONNX Runtime float (model.onnx on the raw features), max |diff| over the
         whole test split.
Level 2: the torch integer reference vs the ORT sequence graph vs the ORT step graph vs compiled C:
         every hidden state, final state and logit must be the same integer.
Level 3: int8 vs float accuracy and the fraction of predictions that agree.

Before any of that, the directory must hold one complete export: verify reads under the directory's
shared lock (no export can replace files meanwhile) and refuses, with CheckFailed (exit 1), a set
whose files do not match manifest.json (a killed export, a hand-edit, a retrained checkpoint) or
that has no manifest. Every failure is an EdgeRNNError with a one-line message, never a traceback.
"""

from __future__ import annotations

import hashlib
import io
import os
import shlex
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from edgernn.backends.registry import IntRunner, int_backends
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import IntResult, int_forward, int_generate
from edgernn.errors import CheckFailed, ToolchainError
from edgernn.manifest import check_manifest
from edgernn.metrics import predictions, task_metrics
from edgernn.pipeline import (
    FLOAT_ONNX,
    RAW_INT_ONNX,
    REQUIRED,
    checkpoint_data,
    int8_inputs,
    load_quantized,
    shared,
)
from edgernn.train.checkpoint import checkpoint_path, load_checkpoint
from edgernn.train.loop import predict_logits

# torch and ONNX Runtime sum in different orders, so float32 rounding differs; over hundreds of
# steps and a head with large weights it reaches 3e-5 on logits of magnitude 7 (basic_motions on
# an AVX-512 CPU). The bound is relative to the largest value compared (at least 1): an error in
# the graph shows up far above it, rounding does not.
FLOAT_TOLERANCE = 1e-5


@dataclass
class Verification:
    report: dict[str, Any]
    passed: bool
    notes: list[str] = field(default_factory=list)
    manifest_sha256: str = ""  # the manifest.json (so the export) the report describes


def float_parity(
    out_dir: Path,
    model: torch.nn.Module,
    x: np.ndarray,
    lengths: np.ndarray,
    qm: QuantizedModel | None = None,
) -> dict[str, Any]:
    """torch on the normalized split vs model.onnx on the raw features it takes: `x * std + mean`
    in float32 (the graph normalizes them again; the tolerance is relative). A model.onnx from
    before the normalization moved inside (its edgernn.input is not "raw") gets `x` itself."""
    from edgernn.backends.onnx.float_graph import run_float, session
    from edgernn.backends.onnx.metadata import INPUT_RAW

    sess = session(out_dir / FLOAT_ONNX)
    h0 = model.init_state(len(x)).numpy()  # type: ignore[operator]
    with torch.no_grad():
        t_logits, t_hn = model(torch.from_numpy(x), torch.from_numpy(lengths), torch.from_numpy(h0))
    feed = x
    takes_raw = sess.get_modelmeta().custom_metadata_map.get("edgernn.input") == INPUT_RAW
    if takes_raw and qm is not None and qm.norm_mean.size and x.dtype.kind == "f":
        mean, std = (a.astype(np.float32) for a in qm.sample_norm)
        feed = (x.astype(np.float32) * std + mean).astype(np.float32)
    o_logits, o_hn = run_float(sess, feed, lengths, h0)
    ref_logits, ref_hn = t_logits.numpy(), t_hn.numpy()
    diff = max(float(np.abs(o_logits - ref_logits).max()), float(np.abs(o_hn - ref_hn).max()))
    scale = max(1.0, float(np.abs(ref_logits).max()), float(np.abs(ref_hn).max()))
    tolerance = FLOAT_TOLERANCE * scale
    return {
        "a": "torch-float",
        "b": "ort-float",
        "max_abs_diff": diff,
        "tolerance": tolerance,
        "n": int(t_logits.numel() + t_hn.numel()),
        "passed": bool(diff <= tolerance),
    }


def int_parity(a: str, b: str, ref: IntResult, other: IntResult) -> dict[str, Any]:
    """Exact comparison of every integer both backends produced."""
    mismatches, n = 0, 0
    for name in ("hidden", "h_n", "logits"):
        r, o = np.asarray(getattr(ref, name)), np.asarray(getattr(other, name))
        if r.shape != o.shape:
            raise CheckFailed(f"{b} gives {name} of shape {o.shape}, {a} gives {r.shape}")
        mismatches += int((r != o).sum())
        n += r.size
    return {"a": a, "b": b, "mismatches": mismatches, "n": n, "passed": mismatches == 0}


def raw_parity(out: Path, qm: QuantizedModel, split: Any) -> dict[str, Any]:
    """model.raw.int8.onnx, the drop-in graph, on raw features (`x * std + mean` of the normalized
    split): normalisation and the float -> int8 rule inside the graph against the reference run on
    the same raw features through edgernn's own normalize + quantize_inputs, integer for integer."""
    from edgernn.backends.onnx.int_run import make_session, run_raw_sequence
    from edgernn.contract.quantize import quantize_inputs
    from edgernn.data.dataset import normalize

    x = np.asarray(split.x, dtype=np.float32)
    mean, std = (a.astype(np.float32) for a in qm.sample_norm)
    if mean.size:
        raw = (x * std + mean).astype(np.float32)
        xq = quantize_inputs(normalize(raw, split.lengths, mean, std), qm.sample_scale)
    else:
        raw, xq = x, quantize_inputs(x, qm.sample_scale)
    ref = int_forward(qm, xq, split.lengths)
    got = run_raw_sequence(make_session(out / RAW_INT_ONNX), qm, raw, split.lengths)
    return int_parity("torch-int8", "ort-int8-raw", ref, got)


def size_block(qm: QuantizedModel) -> dict[str, int]:
    """The figures model.h's size macros carry (one source: codegen.model_sizes)."""
    from edgernn.backends.c.codegen import model_sizes

    s = model_sizes(qm)
    return {
        "weights_bytes": s["weight"],
        "lut_bytes": s["lut"],
        "state_bytes": s["state"],
        "scratch_bytes": s["scratch"],
        "macs_per_step": s["macs"],
        "head_macs": s["head_macs"],
    }


GENERATE_MAX_LEN = 24


def generation_parity(qm: QuantizedModel, generators: dict[str, IntRunner]) -> list[dict[str, Any]]:
    """One-to-many: greedy generation from every token as the seed, token for token, in the torch
    integer reference and every backend that generates (the ORT step model driven from Python,
    the C generator)."""
    end = -1 if qm.meta.end_token is None else qm.meta.end_token  # -1: none, run to max_len
    starts = [t for t in range(1, qm.config.vocab_size) if t != end]
    ref = [int_generate(qm, s, end, GENERATE_MAX_LEN) for s in starts]
    others = {name: [g.generate(s, end, GENERATE_MAX_LEN) for s in starts] for name, g in generators.items()}
    rows = []
    for name, seqs in others.items():
        bad = sum(a != b for a, b in zip(ref, seqs, strict=True))
        rows.append(
            {
                "a": "torch-int8",
                "b": name,
                "what": "greedy generation",
                "mismatches": bad,
                "n": len(starts),
                "passed": bad == 0,
            }
        )
    return rows


def source_parity_row(
    out: Path, model: torch.nn.Module, test: Any, imported: dict[str, Any]
) -> dict[str, Any]:
    """An imported model: the float model against the source's answers recorded at import."""
    from edgernn.importer.api import SOURCE_OUTPUTS
    from edgernn.importer.prove import source_parity

    path = out / SOURCE_OUTPUTS
    try:
        data = path.read_bytes()
    except OSError:
        raise CheckFailed(
            f"{path} is missing; it holds the source's answers (run edgernn import again)"
        ) from None
    if hashlib.sha256(data).hexdigest() != imported.get("outputs_sha256"):
        raise CheckFailed(f"{path} is not the one edgernn import wrote (sha256 differs)")
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        outputs = z["outputs"]
    return source_parity(model, test, outputs)  # type: ignore[arg-type]


def c_compiler_available() -> bool:
    words = shlex.split(os.environ.get("CC") or "cc")
    return bool(words) and shutil.which(words[0]) is not None


def verify_dir(out_dir: str | os.PathLike[str], with_c: bool = True) -> Verification:
    """Run every check on the test split. The caller decides what to print; nothing is written here
    (store.record_verification writes the report, if the export is still the one verified)."""
    out = Path(out_dir)
    checkpoint_path(out)  # a missing directory or checkpoint: InputError, before any lock file
    with shared(out):
        return _verify_locked(out, with_c)


def _verify_locked(out: Path, with_c: bool) -> Verification:
    ckpt = load_checkpoint(out)
    digest = check_manifest(out, REQUIRED, ckpt.sha256)
    qm = load_quantized(out)
    ds = checkpoint_data(ckpt, out)
    test = ds.test
    cfg = qm.config
    notes: list[str] = []

    f_logits = predict_logits(ckpt.model, test)
    f_metrics = task_metrics(f_logits, test.y, cfg.task, cfg.num_classes)
    parity = [float_parity(out, ckpt.model, test.x, test.lengths, qm)]

    imported = ckpt.meta.get("import")
    if imported is not None:
        parity.insert(0, source_parity_row(out, ckpt.model, test, imported))

    xq = int8_inputs(qm, test)
    ref = int_forward(qm, xq, test.lengths)
    i_logits = ref.logits.numpy()
    i_metrics = task_metrics(i_logits * qm.head_scale, test.y, cfg.task, cfg.num_classes)
    agree = float((predictions(i_logits, test.y, cfg.task) == predictions(f_logits, test.y, cfg.task)).mean())
    i_metrics["agreement_with_float"] = agree

    backends = int_backends()
    if not with_c:
        notes.append("C parity skipped (--no-c)")
        backends = [b for b in backends if not b.needs_c_compiler]
    elif not c_compiler_available():
        raise ToolchainError(
            "no C compiler found to check the generated C: install gcc or clang, set CC, "
            "or skip the C check with --no-c"
        )
    with tempfile.TemporaryDirectory(prefix="edgernn-backends-") as work:
        runners = {b.name: b.open(out, qm, Path(work)) for b in backends}
        for name, runner in runners.items():
            parity.append(int_parity("torch-int8", name, ref, runner.run(xq, test.lengths)))
        if cfg.generative:
            generators = {b.name: runners[b.name] for b in backends if b.generates}
            parity += generation_parity(qm, generators)
    if not cfg.tokens and (out / RAW_INT_ONNX).exists():
        parity.append(raw_parity(out, qm, test))

    report: dict[str, Any] = {
        "dataset": ckpt.meta.get("dataset"),
        "task": cfg.task,
        "config": cfg.to_dict(),
        "train": ckpt.meta.get("train", {}),
        "data": {
            "source": ckpt.meta.get("source"),
            "licence": ckpt.meta.get("licence"),
            "n_train": len(ds.train),
            "n_val": len(ds.val),
            "n_test": len(test),
        },
        "metrics": {"float": f_metrics, "int8": i_metrics}
        | ({"source": ckpt.meta["metrics"]["source"]} if imported is not None else {}),
        "parity": parity,
        "size": size_block(qm),
        "checkpoint_sha256": ckpt.sha256,
        "manifest_sha256": digest,
    }
    return Verification(
        report=report, passed=all(p["passed"] for p in parity), notes=notes, manifest_sha256=digest
    )
