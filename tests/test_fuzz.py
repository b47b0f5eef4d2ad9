"""The generated C under attack: libFuzzer + ASan + UBSan against the independent reference of
c_runtime/fuzz/fuzz_rnn.c, and the parity tests once more under the sanitizers.

`make fuzz` runs the same fuzzers for longer (python -m edgernn.backends.c.fuzz --seconds 60)."""

from __future__ import annotations

import dataclasses
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgernn.backends.c.build import Build, Compiler, compile_to
from edgernn.backends.c.codegen import write_header
from edgernn.backends.c.fuzz import FuzzModel, build_fuzzer, fuzz_models, libfuzzer_problem, main, run_fuzzer
from edgernn.backends.c.sanitized import (
    SANITIZE_FLAGS,
    SANITIZER_ENV,
    SanitizerReport,
    build_runner,
    sanitizer_problem,
)
from edgernn.contract.reference import IntResult, int_forward
from edgernn.pipeline import int8_inputs, load_data, load_quantized
from edgernn.train.checkpoint import load_checkpoint

FUZZ_SECONDS = 10  # in all, split over the models; `make fuzz` gives them 60


@pytest.fixture(scope="module")
def libfuzzer() -> None:
    problem = libfuzzer_problem()
    if problem:
        pytest.skip(problem)  # names the apt package, e.g. libclang-rt-14-dev


@pytest.fixture(scope="module")
def sanitizers() -> None:
    problem = sanitizer_problem()
    if problem:
        pytest.skip(problem)


def test_short_fuzz_run_finds_nothing(
    libfuzzer: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`python -m edgernn.backends.c.fuzz` end to end: every model built, fuzzed, and nothing found."""
    code = main(["--seconds", str(FUZZ_SECONDS), "--workdir", str(tmp_path), "--jobs", "2"])
    out = capsys.readouterr().out
    print(out)  # the summary table, for -s and for CI logs
    assert code == 0, out
    rows = {m.name: re.search(rf"^{m.name}\s+\d+\s+([\d,]+)\s", out, re.M) for m in fuzz_models()}
    assert all(rows.values()), out
    executions = {name: int(m.group(1).replace(",", "")) for name, m in rows.items() if m}
    assert min(executions.values()) > 500, f"a fuzzer barely ran: {executions}"
    assert re.search(rf"total: [\d,]+ executions in {FUZZ_SECONDS} s, 0 findings", out), out


def _broken(model: FuzzModel) -> FuzzModel:
    """The same model with one recurrent weight of the top cell changed by one."""
    cell = model.qm.cells[-1]
    w = cell.w_hh.copy()
    w[0, 0] = w[0, 0] + 1 if w[0, 0] < 127 else 126
    qm = dataclasses.replace(model.qm, cells=(*model.qm.cells[:-1], dataclasses.replace(cell, w_hh=w)))
    return dataclasses.replace(model, qm=qm)


@pytest.mark.parametrize("name", ["tok_bi_m2o", "feat_uni_m2o_shift20"])
def test_the_oracle_has_teeth(libfuzzer: None, tmp_path: Path, name: str) -> None:
    """model.h off by one weight from ref.h: the fuzzer must report it within seconds."""
    model = next(m for m in fuzz_models() if m.name == name)
    exe = build_fuzzer(model, tmp_path, header_qm=_broken(model).qm)
    result = run_fuzzer(exe, 5, tmp_path)
    assert not result.clean and result.findings, result.log_tail
    assert "differ" in result.reason, result.reason


# ---------------------------------------------------------------------------------------------
# Parity under ASan + UBSan (a standalone program: see c_runtime/fuzz/run_vectors.c)


def _mismatches(ref: IntResult, got: IntResult) -> dict[str, int]:
    return {f: int((getattr(ref, f) != getattr(got, f)).sum()) for f in ("hidden", "h_n", "logits")}


def test_sanitizers_are_armed(sanitizers: None, tmp_path: Path) -> None:
    """The flags and environment used below do stop a program at an overflow or a bad read."""
    src = tmp_path / "bad.c"
    src.write_text(
        "#include <limits.h>\n#include <stdlib.h>\n"
        "int main(int argc, char **argv) {\n"
        "    int *p = malloc(4 * sizeof *p);\n"
        "    int v = argv[1][0] == 'o' ? INT_MAX - 1 + argc : p[argc + 3];\n"
        "    free(p);\n"
        "    return v & 1;\n}\n"
    )
    exe = compile_to(Build(Compiler.discover(), (src,), SANITIZE_FLAGS), tmp_path / "bad", "bad.c")
    env = {**SANITIZER_ENV}
    overflow = subprocess.run([str(exe), "o"], capture_output=True, text=True, env=env)
    assert overflow.returncode != 0 and "signed integer overflow" in overflow.stderr
    oob = subprocess.run([str(exe), "r"], capture_output=True, text=True, env=env)
    # UBSan's object-size check or ASan, whichever sees the read past the allocation first.
    assert oob.returncode != 0 and re.search(
        r"heap-buffer-overflow|runtime error: load of address", oob.stderr
    )


def test_exported_model_parity_under_sanitizers(sanitizers: None, jv_export: Path, tmp_path: Path) -> None:
    """The real exported default model over its whole test split: 0 mismatches, no report."""
    qm = load_quantized(jv_export)
    test = load_data(load_checkpoint(jv_export).meta["data"]).test
    runner = build_runner(jv_export / "model.h", qm.meta["c_prefix"], tmp_path)
    x = int8_inputs(qm, test)
    ref = int_forward(qm, x, test.lengths)
    got = runner.run(x, test.lengths)  # raises SanitizerReport on any sanitizer output
    assert _mismatches(ref, got) == {"hidden": 0, "h_n": 0, "logits": 0}
    assert len(test) >= 300  # the whole split, not a sample


@pytest.mark.parametrize("task", ["many-to-one", "many-to-many"])
def test_bidirectional_token_model_parity_under_sanitizers(
    sanitizers: None, tmp_path: Path, task: str
) -> None:
    from edgernn.backends.c.fuzz import random_quantized_model

    qm = random_quantized_model(task, 6, 12, 2, True, 5, 17, seed=9, scale=2.0)
    header = write_header(qm, tmp_path / "model.h", "bt")
    runner = build_runner(header, "bt", tmp_path)
    rng = np.random.default_rng(9)
    lengths = np.array([1, 40, 17, 40, 2, 33, 9, 40])
    x = rng.integers(0, 17, size=(len(lengths), 40))
    h0 = rng.integers(-127, 128, size=(4, len(lengths), 12)).astype(np.int8)
    for start in (None, h0):
        ref = int_forward(qm, x, lengths, start)
        got = runner.run(x, lengths, start)
        assert _mismatches(ref, got) == {"hidden": 0, "h_n": 0, "logits": 0}


def test_streaming_under_sanitizers(sanitizers: None, tmp_path: Path) -> None:
    """PREFIX_step over 5,000 steps of a saturating model, state after every step compared."""
    from edgernn.backends.c.fuzz import random_quantized_model

    qm = random_quantized_model("many-to-many", 5, 16, 2, False, 4, 0, seed=3, scale=3.0)
    runner = build_runner(write_header(qm, tmp_path / "model.h", "sm"), "sm", tmp_path)
    x = np.random.default_rng(3).integers(-127, 128, size=(5000, 5)).astype(np.int8)
    states, logits = runner.stream(x)
    ref = int_forward(qm, x[None], np.array([5000]))
    assert np.array_equal(states, ref.hidden[:, 0].numpy().transpose(1, 0, 2))
    assert np.array_equal(logits, ref.logits[0].numpy())


def test_a_failing_run_is_reported(sanitizers: None, tmp_path: Path) -> None:
    from edgernn.backends.c.fuzz import random_quantized_model

    qm = random_quantized_model("many-to-one", 3, 4, 1, True, 2, 7, seed=1, scale=1.0)
    runner = build_runner(write_header(qm, tmp_path / "model.h", "fr"), "fr", tmp_path)
    with pytest.raises(SanitizerReport, match="run returned -2"):  # EDGERNN_ERR_TOKEN
        runner.run(np.array([[1, 7, 2]]), np.array([3]))
