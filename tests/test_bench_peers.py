"""Issue 14: CMSIS-NN, NNoM and a naive loop measured beside model.h on the emulated cores.

The peer libraries are not part of the project: the tests take them from ../shared/peers (or
$EDGERNN_PEERS), as `make bench` does, and skip saying so when they are absent. Building and
running them needs the pip-only toolchain path (zig + Unicorn), as tests/test_mcu.py does.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from test_mcu import _zig_path

from edgernn.bench import BENCH_JSON, QUICK, markdown_tables, run_bench
from edgernn.bench.peers import PEERS, PeerOptions, Shape, find_sources
from edgernn.bench.peers.images import ENTRY, Capacity, build_peer_image
from edgernn.bench.peers.ports import Peer, nnom_interleave
from edgernn.bench.peers.runs import measure_peer
from edgernn.bench.peers.sources import PeerSources
from edgernn.cli import main
from edgernn.errors import InputError
from edgernn.targets import get
from edgernn.targets.toolchain import toolchain

PEERS_PATH = Path(os.environ.get("EDGERNN_PEERS", Path(__file__).resolve().parents[2] / "shared" / "peers"))


def _peer_sources() -> Path:
    if not (PEERS_PATH / "cmsis-nn").is_dir() or not (PEERS_PATH / "nnom").is_dir():
        pytest.skip(
            f"peer sources not found at {PEERS_PATH}: set EDGERNN_PEERS to a folder holding checkouts "
            "of CMSIS-NN (cmsis-nn/) and NNoM (nnom/)"
        )
    _zig_path()
    return PEERS_PATH


# ---------------------------------------------------------------------------------------------
# No toolchain needed


@pytest.mark.parametrize(("rows", "cols"), [(4, 4), (8, 12), (32, 13), (6, 3), (3, 1)])
def test_nnom_interleave_is_what_its_opt_kernel_reads(rows, cols):
    """A port of local_fully_connected_q7_opt's read order over the interleaved weights gives W x."""
    rng = np.random.default_rng(rows * 100 + cols)
    m = rng.integers(-127, 128, size=(rows, cols))
    x = rng.integers(-127, 128, size=cols)
    flat = list(nnom_interleave(m))
    assert sorted(flat) == sorted(m.ravel().tolist())
    out, k = [], 0
    for _ in range(rows // 4):
        acc = [0, 0, 0, 0]
        for c in range(0, cols - cols % 4, 4):
            a1, a3, a2, a4 = x[c : c + 4]
            b = flat[k : k + 16]
            k += 16
            acc[0] += a1 * b[0] + a2 * b[2]
            acc[1] += a1 * b[1] + a2 * b[3]
            acc[2] += a1 * b[4] + a2 * b[6]
            acc[3] += a1 * b[5] + a2 * b[7]
            acc[0] += a3 * b[8] + a4 * b[10]
            acc[1] += a3 * b[9] + a4 * b[11]
            acc[2] += a3 * b[12] + a4 * b[14]
            acc[3] += a3 * b[13] + a4 * b[15]
        for c in range(cols - cols % 4, cols):
            for r in range(4):
                acc[r] += x[c] * flat[k + r]
            k += 4
        out += acc
    for _ in range(rows % 4):
        out.append(int(np.dot(x, flat[k : k + cols])))
        k += cols
    assert k == rows * cols
    assert out == (m @ x).tolist()


def test_missing_or_invalid_peers_path_is_a_usage_error(tmp_path):
    runner = CliRunner()
    for args, said in [
        (["--peers", str(tmp_path / "nowhere")], "no such folder"),
        (["--peers", str(tmp_path)], "holds neither a CMSIS-NN"),
        (["--sweep"], "give --peers PATH too"),
    ]:
        r = runner.invoke(main, ["bench", str(tmp_path / "export"), *args])
        assert r.exit_code == 2, r.output
        lines = r.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], r.output
    (tmp_path / "nnom").mkdir()  # a library folder without its sources is not a library
    with pytest.raises(InputError, match="holds neither"):
        find_sources(tmp_path)
    assert "lacks inc, port, src/backends/nnom_local.c" in str(
        PeerSources(tmp_path, str(tmp_path)).absent("nnom")
    )


# ---------------------------------------------------------------------------------------------
# Built and run on an emulated Cortex-M4 (zig + Unicorn)


def _perturbed(peer: Peer[Any]) -> Peer[Any]:
    """The peer, but its image receives eight weights off by 100: a wrong peer, as a wrong layout or
    a misread library would be. Its port still computes with the right weights."""

    class Wrong(type(peer)):  # type: ignore[misc]
        def symbols(self, p: Any) -> dict[str, np.ndarray]:
            out = dict(super().symbols(p))
            name = next(k for k in out if "weights" in k)
            w = out[name].astype(np.int64)
            w[:8] = (w[:8] + 100 + 128) % 256 - 128  # off by 100, wrapped into int8
            out[name] = w.astype(np.int8)
            return out

    return Wrong()


@pytest.mark.slow
@pytest.mark.parametrize("peer", PEERS, ids=[p.name for p in PEERS])
def test_port_check_passes_the_peer_and_catches_a_wrong_one(peer, tmp_path):
    sources = find_sources(_peer_sources())
    shape = Shape(5, 12)  # I and H not multiples of 4: every tail path of the kernels runs
    tc = toolchain("zig", get("cortex-m4"), roots=(ENTRY,))
    cap = Capacity(shape.inputs, shape.hidden, 6, fixed=peer.fixed_shape)
    image = build_peer_image(peer, sources, tc, cap, tmp_path)
    machine = get("cortex-m4").emulator(image.elf)
    right = measure_peer(image, machine, shape, "cortex-m4", "zig", steps=6, seed=3)
    assert right.checked and right.mismatches == 0
    assert right.insns_per_step > shape.macs and right.code_bytes > 0
    wrong = measure_peer(replace(image, peer=_perturbed(peer)), machine, shape, "cortex-m4", "zig", 6, seed=3)
    assert not wrong.checked and wrong.mismatches > 0


@pytest.mark.slow
def test_bench_with_peers_on_one_cortex_m_target(jv_export, tmp_path):
    """A quick bench with --peers on the M4 (zig): every peer checked, the ratio quoted, the tables
    printed, the sweep run on QUICK's two shapes, all in bench.json."""
    path = _peer_sources()
    d = tmp_path / "jv"
    shutil.copytree(jv_export, d)
    opts = PeerOptions(path, sweep=True, targets=("cortex-m4", "avr"), compilers=("zig",))
    r = run_bench(d, quick=True, peers=opts)
    rows = r["peers"]
    assert {p["name"] for p in rows} == {p.name for p in PEERS}
    for p in rows:
        assert p["target"] == "cortex-m4" and p["compiler"].startswith("zig") and p["checked"], p
        assert p["insns_per_step"] > 0 and p["insns_per_mac"] > 1 and p["code_bytes"] > 0
    comp = r["peer_comparison"]
    cfg = r["model"]["config"]
    assert comp["shape"] == {
        "inputs": cfg["input_size"],
        "hidden": cfg["hidden_size"],
        "macs_per_step": Shape(cfg["input_size"], cfg["hidden_size"]).macs,
    }
    (own,) = comp["edgernn"]
    assert own["mismatches"] == 0 and own["kernel"] == "dsp"
    (ratio,) = comp["ratios"]
    best = min(p["insns_per_mac"] for p in rows)
    assert ratio["best_peer_insns_per_mac"] == pytest.approx(best, abs=1e-3)
    assert ratio["ratio"] == pytest.approx(own["insns_per_mac"] / best, abs=2e-3)
    assert [s["target"] for s in comp["skipped"]] == ["avr"]
    sweep = r["sweep"]
    assert [(s["inputs"], s["hidden"]) for s in sweep["rows"]] == [
        (i, h) for i in QUICK.sweep_inputs for h in QUICK.sweep_hidden
    ]
    assert all(s["ratio"] is not None and s["edgernn_mismatches"] == 0 for s in sweep["rows"])
    saved = json.loads((d / BENCH_JSON).read_text())
    assert saved["peers"] == rows and saved["sweep"] == sweep
    text = markdown_tables(r)
    assert "model.h ÷ best" in text and "Shape sweep" in text and "cmsis-nn-fc" in text


def test_bench_without_peers_says_how_to_get_them():
    from edgernn.bench.markdown import peer_table

    assert "--peers PATH" in peer_table({"peers": [], "peer_comparison": {"skipped": "no --peers PATH: ..."}})
    assert "predates" in peer_table({})  # a bench.json written before the peers existed
