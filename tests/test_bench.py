"""Smoke tests of `edgernn bench`: the machinery runs and its results are well formed.

Only `quick=True` (tiny repetitions and sizes). Nothing here compares a time with a threshold or
one backend's time with another's: wall-clock numbers on a shared test machine prove nothing.
Instruction counts from callgrind are deterministic, so those are checked for sanity.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgernn.backends.c.codegen import generate_header
from edgernn.bench import BENCH_JSON, QUICK, SCHEMA, load_bench, markdown_tables, run_bench
from edgernn.bench.native import C_BUILDS, build_driver, driver_block, have_valgrind
from edgernn.bench.suites import LATENCY_ROWS, linear_fit
from edgernn.bench.timing import summarize, time_calls
from edgernn.cli import main
from edgernn.config import ModelConfig
from edgernn.contract.reference import int_forward
from edgernn.errors import ToolchainError
from edgernn.report.store import read_report
from edgernn.synthetic import random_quantized

STAT_KEYS = {"median_ns", "p25_ns", "p75_ns", "min_ns", "max_ns", "repeats", "calls_per_repeat"}


def check_stats(st: dict, repeats: int = QUICK.repeats) -> None:
    assert set(st) >= STAT_KEYS
    assert all(math.isfinite(st[k]) and st[k] > 0 for k in STAT_KEYS)
    assert st["min_ns"] <= st["p25_ns"] <= st["median_ns"] <= st["p75_ns"] <= st["max_ns"]
    assert st["repeats"] == repeats and st["calls_per_repeat"] >= 1


def test_quick_bench_results_are_well_formed(jv_export, tmp_path):
    """One quick bench on a private copy of the default export (the shared one stays untouched).
    A single test on purpose: under pytest-xdist a module fixture would run once per worker."""
    d = tmp_path / "jv"
    shutil.copytree(jv_export, d)
    threads = torch.get_num_threads()
    r = run_bench(d, quick=True)
    assert torch.get_num_threads() == threads  # restored after the single-threaded run
    check_structure_and_machine(r)
    check_streaming_latency(r["latency"])
    check_throughput(r["throughput"])
    if have_valgrind():
        check_callgrind(r["callgrind"])
    check_scaling(r["scaling"])
    check_files(d, r)
    check_markdown(r)


def check_structure_and_machine(r: dict) -> None:
    assert r["schema"] == SCHEMA and r["quick"] is True
    m = r["machine"]
    assert m["cpu"] and m["logical_cpus"] >= 1 and m["python"] and m["torch"] and m["onnxruntime"]
    assert m["torch_threads"] == 1 and m["ort_intra_op_threads"] == 1 and m["ort_inter_op_threads"] == 1
    assert r["model"]["macs_per_step"] == 12 * 32 + 32 * 32  # the default model: 12 inputs, 32 hidden


def check_streaming_latency(lat: dict) -> None:
    assert set(lat["rows"]) == set(LATENCY_ROWS)
    for st in lat["rows"].values():
        check_stats(st)
    assert lat["c_speedup"]["c-native"] == 1.0 and lat["c_O3_speedup"]["c-native-O3"] == 1.0
    assert all(v > 0 for v in lat["c_speedup"].values())


def check_throughput(thr: dict) -> None:
    got = {(row["backend"], row["batch"]) for row in thr["rows"]}
    for batch in QUICK.batches:
        assert {(b, batch) for b in ("torch-float", "ort-float", "ort-int8", "c-ctypes")} <= got
    assert {f"c-native-{name}" for name in C_BUILDS} <= {b for b, _ in got}
    assert thr["steps"] >= thr["sequences"] == max(QUICK.batches)
    for row in thr["rows"]:
        check_stats({k: row[k] for k in STAT_KEYS})
        assert row["steps_per_s"] > 0


def check_callgrind(cg: dict) -> None:
    assert set(cg["builds"]) == set(C_BUILDS)
    for b in cg["builds"].values():
        assert b["insns_per_step"] > 100
        assert 0.1 < b["insns_per_mac"] < 100
        assert b["insns_per_step_with_head"] > b["insns_per_step"]  # the head is extra work


def check_scaling(sc: dict) -> None:
    rows = sc["hidden"]["rows"]
    assert [row["hidden"] for row in rows] == list(QUICK.hidden_sizes)
    macs = [row["macs_per_step"] for row in rows]
    assert macs == sorted(macs) and len(set(macs)) == len(macs)
    for row in rows:
        for name in C_BUILDS:
            check_stats(row[f"c_{name}"])
        check_stats(row["ort_int8_step"])
    for fit in sc["hidden"]["fits"].values():
        assert fit["r2"] <= 1.0 + 1e-12 and math.isfinite(fit["slope"])
    if have_valgrind():
        for name in C_BUILDS:
            insns = [row[f"insns_{name}"] for row in rows]
            assert insns == sorted(insns)  # more MACs, more instructions (deterministic)
    assert [row["steps"] for row in sc["length"]["rows"]] == list(QUICK.lengths)


def check_files(d, r: dict) -> None:
    assert load_bench(d) == json.loads(json.dumps(r))
    summary = read_report(d)["bench"]
    assert summary["file"] == BENCH_JSON and summary["quick"] is True
    assert set(summary["c_step_ns"]) == {"c-native", "c-native-O3"}
    assert not list(d.glob(".*.tmp"))


def check_markdown(r: dict) -> None:
    text = markdown_tables(r)
    for title in (
        "Streaming latency",
        "throughput",
        "instructions per step",
        "hidden size",
        "sequence length",
    ):
        assert title in text
    assert "quick mode" in text  # quick numbers say they are not for quoting


def test_summarize_and_linear_fit():
    st = summarize([4.0, 1.0, 3.0, 2.0, 5.0], calls=7)
    assert (st["min_ns"], st["median_ns"], st["max_ns"], st["calls_per_repeat"]) == (1.0, 3.0, 5.0, 7)
    assert st["p25_ns"] == 2.0 and st["p75_ns"] == 4.0
    fit = linear_fit([1, 2, 3, 4], [5, 7, 9, 11])
    assert fit["slope"] == pytest.approx(2.0) and fit["intercept"] == pytest.approx(3.0)
    assert fit["r2"] == pytest.approx(1.0)


def test_time_calls_counts_calls():
    calls = []
    st = time_calls(lambda: calls.append(1), QUICK)
    check_stats(st)
    assert len(calls) >= 3 + QUICK.repeats * st["calls_per_repeat"]  # warm-up (at least 3), blocks


def test_cli_bench_without_an_export_is_a_usage_error(tmp_path):
    res = CliRunner().invoke(main, ["bench", str(tmp_path / "nothing"), "--quick"])
    assert res.exit_code == 2 and "error:" in res.output and "Traceback" not in res.output


# -- the standalone driver (c_runtime/bench/bench_driver.c) ------------------------------------

DRIVER_MODELS = {
    "features-2-layers": ModelConfig(
        task="many-to-one", input_size=5, hidden_size=12, num_classes=3, num_layers=2
    ),
    "tokens": ModelConfig(
        task="many-to-many", input_size=4, hidden_size=8, num_classes=6, vocab_size=6, embed_dim=4
    ),
    "bidirectional": ModelConfig(
        task="many-to-one", input_size=3, hidden_size=8, num_classes=2, bidirectional=True
    ),
}


def driver_inputs(cfg: ModelConfig, rows: int) -> np.ndarray:
    """The driver's inputs (eb_inputs_alloc): xorshift32 from 0x2545F491, one value per token or feature."""
    s, values = 0x2545F491, []
    for _ in range(rows * (1 if cfg.tokens else cfg.input_size)):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        values.append(s % cfg.vocab_size if cfg.tokens else s % 255 - 127)
    shape = (1, rows) if cfg.tokens else (1, rows, cfg.input_size)
    return np.asarray(values, dtype=np.int64).reshape(shape)


def state_checksum(h_n: torch.Tensor) -> int:
    """eb_checksum over the state, rows layer * directions + direction."""
    total = 0
    for byte in h_n[:, 0, :].flatten().tolist():
        total = (total * 31 + (byte & 0xFF)) & 0xFFFFFFFF
    return total


def run_driver(exe, *args: object) -> subprocess.CompletedProcess:
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("kind", sorted(DRIVER_MODELS))
def test_driver_checksums_match_the_integer_reference(kind, tmp_path):
    """Every mode runs, and the state it ends in is the reference's: the driver calls the
    prefix-free API on the header's descriptor with the sizes the descriptor gives."""
    cfg = DRIVER_MODELS[kind]
    _, qm = random_quantized(cfg, seed=3)
    prefix = f"drv_{kind.replace('-', '_')}"
    header = tmp_path / "model.h"
    header.write_text(generate_header(qm, prefix), encoding="utf-8")
    exe = build_driver(header, prefix, tmp_path / "build")
    assert build_driver(header, prefix, tmp_path / "build") == exe  # cached by content
    steps = 40  # within the step pool (64 inputs), so `step` and `run` read the same inputs
    ref = int_forward(qm, driver_inputs(cfg, steps), np.array([steps]))
    checksum = str(state_checksum(ref.h_n))
    run = run_driver(exe, "run", steps)
    assert run.returncode == 0 and run.stdout.split() == ["checksum", checksum, "0"]
    prep = run_driver(exe, "prep", steps)
    assert prep.returncode == 0 and prep.stdout.strip() == "checksum 0 0"
    for mode in ("step", "head"):
        out = run_driver(exe, mode, steps)
        if cfg.bidirectional:
            assert out.returncode == 3 and "no streaming step" in out.stderr
        else:
            assert out.returncode == 0 and out.stdout.split()[:2] == ["checksum", checksum]
    timed = run_driver(exe, "time-run", 8, 3, 2)
    lines = timed.stdout.splitlines()
    assert timed.returncode == 0 and len(lines) == 4 and all(float(v) > 0 for v in lines[:3])
    assert driver_block(exe, 8)(16) > 0
    assert run_driver(exe, "nonsense", 1).returncode == 2
    assert run_driver(exe, "time-run", 8).returncode == 2


def test_driver_build_honours_cc(tmp_path, monkeypatch):
    _, qm = random_quantized(DRIVER_MODELS["features-2-layers"])
    header = tmp_path / "model.h"
    header.write_text(generate_header(qm, "cc_test"), encoding="utf-8")
    monkeypatch.setenv("CC", "edgernn-no-such-compiler")
    with pytest.raises(ToolchainError, match="edgernn-no-such-compiler"):
        build_driver(header, "cc_test", tmp_path / "build")
    monkeypatch.setenv("CC", "false")  # found, but every build fails
    with pytest.raises(ToolchainError, match="bench driver"):
        build_driver(header, "cc_test", tmp_path / "build")


def test_a_corrupt_report_json_fails_before_any_measurement(jv_export, tmp_path, monkeypatch):
    """bench merges `edgernn mcu`'s rows from report.json: a corrupt one is reported at once, not
    after the measurements (28 s in quick mode, minutes with --peers), and bench.json is not written."""
    import edgernn.bench.suites as suites
    from edgernn.errors import InputError

    d = tmp_path / "d"
    shutil.copytree(jv_export, d)
    (d / "report.json").write_text("{not json")
    (d / BENCH_JSON).unlink(missing_ok=True)

    def measured(*args, **kwargs):
        raise AssertionError("bench started measuring")

    monkeypatch.setattr(suites, "build_c", measured)
    with pytest.raises(InputError, match=r"report\.json"):
        run_bench(d, quick=True)
    assert not (d / BENCH_JSON).exists()


def test_without_valgrind_the_mcu_rows_and_the_time_fit_stay():
    """The microcontroller rows come from `edgernn mcu` and the time fit from timings: neither
    needs valgrind, so neither disappears with it."""
    from edgernn.bench.markdown import callgrind_table, hidden_table

    mcu = {
        "target": "cortex-m4",
        "compiler": "zig",
        "kernel": "dsp",
        "emulator": "unicorn",
        "insns_per_step": 2341.0,
        "insns_per_mac": 1.66,
    }
    cg = callgrind_table({"callgrind": {"skipped": "valgrind not found on PATH"}, "mcu": [mcu]})
    assert "valgrind not found" in cg and "| cortex-m4 (zig, dsp, unicorn) | 2,341 | 1.66 | - |" in cg
    fit = {"slope": 0.1, "intercept": 5.0, "r2": 0.99}
    table = hidden_table({"scaling": {"hidden": {"rows": [], "fits": {f"time_{n}": fit for n in C_BUILDS}}}})
    assert "time/step = 0.100 ns × MACs" in table and "instructions/step =" not in table
