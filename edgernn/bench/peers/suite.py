"""The peer suites of `edgernn bench DIR --peers PATH [--sweep]`, each returning json-ready dicts.

- At the model's own shape (I inputs, H hidden of its first layer): model.h and every peer on
  every (target, compiler), the peers checked against their ports, and per pair the ratio
  edgernn ÷ best checked peer in instructions per MAC. model.h is the export's own when the model
  is one unidirectional layer on features, and otherwise a random one-layer model at that shape
  (the peers implement one such layer).
- The shape sweep (--sweep): I × H over the Settings' grid, a random one-layer model at each shape
  through the real codegen (edgernn.backends.c.codegen) beside every peer, on every pair.

model.h is measured by `edgernn mcu`'s own check (edgernn.targets.check.measure): every integer
equal to the torch reference, instructions per step over the checked steps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.backends.c.codegen import generate_header
from edgernn.bench.peers.images import Capacity
from edgernn.bench.peers.lab import Pair, PeerLab
from edgernn.bench.peers.ports import PEERS, Shape
from edgernn.bench.peers.runs import PeerRow
from edgernn.bench.peers.sources import find_sources
from edgernn.contract.model import QuantizedModel
from edgernn.errors import ToolchainError
from edgernn.synthetic import random_quantized, small_config
from edgernn.targets.check import McuResult
from edgernn.targets.toolchain import COMPILERS
from edgernn.targets.vectors import Vectors, build_vectors

MODEL_STEPS = 8  # steps each peer runs (and is checked over) at the model's shape
SWEEP_STEPS = 4  # and at each swept shape
MODEL_SEQUENCES = 8  # test sequences model.h runs at the model's shape, as `edgernn mcu` counts
SWEEP_SEQUENCES = 2  # random sequences of SWEEP_STEPS for each swept model


@dataclass(frozen=True)
class PeerOptions:
    """What `--peers PATH [--sweep]` asks for; targets None: every registered target."""

    path: str | os.PathLike[str]
    sweep: bool = False
    targets: tuple[str, ...] | None = None
    compilers: tuple[str, ...] = COMPILERS


@dataclass(frozen=True)
class Subject:
    """The model.h measured at a shape, with the vectors it is checked on."""

    header: Path
    qm: QuantizedModel
    vectors: Vectors
    sequences: int  # of the vectors, all counted
    what: str


def random_subject(shape: Shape, workdir: Path, sequences: int, steps: int, seed: int = 0) -> Subject:
    """A random one-layer model at the shape, through the real codegen, and random int8 inputs."""
    cfg = small_config("many-to-one", shape.inputs, shape.hidden)
    _, qm = random_quantized(cfg, seed)
    workdir.mkdir(parents=True, exist_ok=True)
    header = workdir / f"i{shape.inputs}_h{shape.hidden}.h"
    header.write_text(generate_header(qm, f"sweep_i{shape.inputs}_h{shape.hidden}"), encoding="utf-8")
    x = np.random.default_rng(seed).integers(-127, 128, size=(sequences, steps, shape.inputs)).astype(np.int8)
    vectors = build_vectors(qm, x, np.full(sequences, steps, np.int64))
    return Subject(header, qm, vectors, sequences, "a random 1-layer model at the same shape")


def model_subject(
    header: Path, qm: QuantizedModel, x: np.ndarray, lengths: np.ndarray, workdir: Path
) -> tuple[Shape, Subject]:
    cfg = qm.config
    shape = Shape(cfg.embed_dim if cfg.tokens else cfg.input_size, cfg.hidden_size)
    if cfg.num_layers == 1 and not cfg.bidirectional and not cfg.tokens:
        n = min(MODEL_SEQUENCES, len(lengths))
        return shape, Subject(header, qm, build_vectors(qm, x[:n], lengths[:n]), n, "the export's model.h")
    subject = random_subject(shape, workdir, MODEL_SEQUENCES, MODEL_STEPS)
    why = "the export's model is not one unidirectional layer on features"
    return shape, replace(subject, what=f"{subject.what} ({why})")


def edgernn_json(r: McuResult) -> dict[str, Any]:
    return {
        "target": r.target,
        "compiler": r.compiler,
        "kernel": r.kernel,
        "insns_per_step": round(r.insns_per_step, 1),
        "insns_per_mac": round(r.insns_per_mac, 3),
        "code_bytes": r.code_bytes,
        "mismatches": r.mismatches,
    }


def best_peer(rows: Sequence[PeerRow]) -> PeerRow | None:
    """The checked peer with the fewest instructions per MAC (an unchecked one is never quoted)."""
    checked = [r for r in rows if r.checked]
    return min(checked, key=lambda r: r.insns_per_mac) if checked else None


def ratio(pair: Pair, e: McuResult | None, rows: Sequence[PeerRow]) -> dict[str, Any]:
    """edgernn ÷ best checked peer on one pair (None when either side has no quotable figure)."""
    best = best_peer(rows)
    quoted = e if e is not None and e.mismatches == 0 else None
    return {
        "target": pair.target,
        "compiler": pair.version,
        "edgernn_insns_per_mac": round(quoted.insns_per_mac, 3) if quoted else None,
        "best_peer": best.name if best else None,
        "best_peer_insns_per_mac": round(best.insns_per_mac, 3) if best else None,
        "ratio": round(quoted.insns_per_mac / best.insns_per_mac, 3) if quoted and best else None,
    }


def _measure(
    lab: PeerLab, subject: Subject, shape: Shape, steps: int
) -> list[tuple[Pair, McuResult | None, list[PeerRow]]]:
    out = []
    for pair in list(lab.pairs):
        lab.say(f"bench: model.h and the peers at {shape} on {pair.target} ({pair.version})")
        e = lab.edgernn(subject.header, subject.qm, subject.vectors, pair, subject.sequences)
        rows = lab.peers(shape, pair, steps)
        if pair in lab.pairs:  # a tool the pair needs may have turned out missing
            out.append((pair, e, rows))
    return out


def model_comparison(lab: PeerLab, shape: Shape, subject: Subject) -> dict[str, Any]:
    measured = _measure(lab, subject, shape, MODEL_STEPS)
    return {
        "peers": [r.to_json() for _, _, rows in measured for r in rows],
        "peer_comparison": {
            "source": lab.sources.given,
            "shape": {"inputs": shape.inputs, "hidden": shape.hidden, "macs_per_step": shape.macs},
            "edgernn_model": subject.what,
            "edgernn": [edgernn_json(e) for _, e, _ in measured if e is not None],
            "ratios": [ratio(pair, e, rows) for pair, e, rows in measured],
            "peer_steps": MODEL_STEPS,
            "edgernn_steps": int(subject.vectors.lengths.sum()),
            "what": {p.name: p.what for p in PEERS},
        },
    }


def shape_sweep(lab: PeerLab, shapes: Sequence[Shape]) -> dict[str, Any]:
    rows = []
    for shape in shapes:
        subject = random_subject(shape, lab.workdir / "sweep", SWEEP_SEQUENCES, SWEEP_STEPS)
        for pair, e, peers in _measure(lab, subject, shape, SWEEP_STEPS):
            r = ratio(pair, e, peers)
            rows.append(
                {
                    "inputs": shape.inputs,
                    "hidden": shape.hidden,
                    "macs_per_step": shape.macs,
                    **r,
                    "edgernn_mismatches": e.mismatches if e else None,
                    "peers": {p.name: round(p.insns_per_mac, 3) if p.checked else None for p in peers},
                }
            )
    return {
        "inputs": sorted({s.inputs for s in shapes}),
        "hidden": sorted({s.hidden for s in shapes}),
        "peer_steps": SWEEP_STEPS,
        "edgernn_steps": SWEEP_SEQUENCES * SWEEP_STEPS,
        "rows": rows,
    }


def peer_suites(
    options: PeerOptions,
    header: Path,
    qm: QuantizedModel,
    x: np.ndarray,
    lengths: np.ndarray,
    sweep_shapes: Sequence[Shape],
    workdir: Path,
    echo: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """bench.json's "peers", "peer_comparison" and (with options.sweep) "sweep"."""
    sources = find_sources(options.path)
    shape, subject = model_subject(header, qm, x, lengths, workdir / "model")
    shapes = [shape, *(sweep_shapes if options.sweep else ())]
    capacity = Capacity(
        max(s.inputs for s in shapes), max(s.hidden for s in shapes), max(MODEL_STEPS, SWEEP_STEPS)
    )
    lab = PeerLab(sources, workdir, capacity, options.targets, options.compilers, echo)
    out = model_comparison(lab, shape, subject)
    if not lab.pairs:
        reasons = "; ".join(sorted({s.reason for s in lab.skipped if not s.what}))
        raise ToolchainError(f"the peers could not be measured on any target: {reasons}")
    if options.sweep:
        out["sweep"] = shape_sweep(lab, sweep_shapes)
    # a peer that fails on a core fails at every shape: one row says so
    out["peer_comparison"]["skipped"] = [s.to_json() for s in dict.fromkeys(lab.skipped)]
    return out
