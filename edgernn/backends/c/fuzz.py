"""Fuzz the generated C with libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer.

    python -m edgernn.backends.c.fuzz --seconds 60        # (`make fuzz`) prints executions and findings

A few models covering every shape of the generated API (feature and token input, uni- and
bidirectional, many-to-one, per-step and generative, both requantization paths) are generated
here, each written as model.h plus ref.h -- the same QuantizedModel as plain arrays for the
independent reference in c_runtime/fuzz/fuzz_rnn.c, which calls model.h only through the
prefix-free edgernn_* API on its descriptor -- and built into one libFuzzer binary through
edgernn.backends.c.build (cached by content: an unchanged model is not rebuilt). The fuzzing time
is split evenly between them. A finding is a crash, a sanitizer report, a failed oracle check, a
leak or a timeout; libFuzzer saves the input that caused it (rerun: BINARY FILE).

Exit codes as the CLI's: 0 nothing found, 1 findings, 2 bad options, 3 clang or its libFuzzer
runtime missing, or a build failed (the message names the Debian package to install).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import math
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn.artifacts import write_text
from edgernn.backends.c.build import NO_FMA, SANITIZERS, STRICT_WARNINGS, Build, Compiler, cached, compile_to
from edgernn.backends.c.codegen import c_runtime_dir, generate_header
from edgernn.backends.c.header import descriptor_name
from edgernn.backends.c.sanitized import last_line, runtime_package
from edgernn.config import Task
from edgernn.contract.bounds import check_bounds
from edgernn.contract.constants import round_half_away
from edgernn.contract.model import QuantizedModel
from edgernn.errors import ToolchainError

PREFIX = "fz"
HARNESS = Path("fuzz") / "fuzz_rnn.c"
# The host's strict warning set (the oracle is C too), the float rule checked bit for bit (no fused
# multiply-adds), ASan + UBSan with every report fatal (a crash, so a finding), and libFuzzer.
FUZZ_FLAGS: tuple[str, ...] = (
    "-g",
    "-O1",
    "-std=c99",
    *STRICT_WARNINGS,
    *NO_FMA,
    *SANITIZERS,
    "-fsanitize=fuzzer",
)
FUZZ_LIBS: tuple[str, ...] = ("-lm",)
PROBE_TIMEOUT = 120.0  # s
FINDING_PREFIXES = ("crash-", "leak-", "timeout-", "oom-", "slow-unit-")
_REASON = re.compile(r"check failed|runtime error|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)")


# ---------------------------------------------------------------------------------------------
# Models


@dataclass(frozen=True)
class FuzzModel:
    name: str
    what: str
    qm: QuantizedModel
    defines: tuple[tuple[str, str], ...] = ()  # (NAME, value): runtime paths a host would not take


def random_quantized_model(
    task: str, inp: int, hidden: int, layers: int, bi: bool, classes: int, vocab: int, seed: int, scale: float
) -> QuantizedModel:
    """A randomly initialised EdgeRNN (weights scaled by `scale`), quantized on random data."""
    from edgernn.synthetic import random_quantized, small_config

    cfg = small_config(task, inp, hidden, layers, bi, classes, vocab)
    meta = {"dataset": "fuzz", "start_token": 1, "end_token": 2} if task == Task.ONE_TO_MANY else {}
    return random_quantized(cfg, seed, scale, norm=not vocab, meta=meta)[1]


def with_shift(qm: QuantizedModel, shift: int) -> QuantizedModel:
    """The same model with every cell's shift lowered to `shift` (multipliers scaled to match).
    Converted models get n in 36..40, the runtime's 32-bit path; n < 33 takes its 64-bit path."""
    cells = []
    for c in qm.cells:
        k = 2.0 ** (c.shift - shift)
        m_x = round_half_away(c.m_x / k).astype(np.int64)
        m_h = round_half_away(c.m_h / k).astype(np.int64)
        cells.append(dataclasses.replace(c, m_x=m_x, m_h=m_h, shift=shift))
    out = dataclasses.replace(qm, cells=tuple(cells))
    check_bounds(out)
    return out


def fuzz_models() -> list[FuzzModel]:
    """Deterministic: the same models (and so the same binaries) on every run."""
    split = (("EDGERNN_SPLIT_MUL", "1"),)  # the Armv6-M 16 x 16 multiply path, forced on the host
    m2m = random_quantized_model(Task.MANY_TO_MANY, 5, 7, 2, False, 4, 0, seed=1, scale=3.0)
    m2o = random_quantized_model(Task.MANY_TO_ONE, 4, 5, 1, False, 3, 0, seed=5, scale=2.0)
    shift20 = with_shift(m2o, 20)
    return [
        FuzzModel(
            "feat_uni_m2m",
            "features, unidirectional, 2 layers, per-step outputs, normalisation, saturating weights",
            m2m,
        ),
        FuzzModel(
            "feat_bi_m2m",
            "features, bidirectional, 2 layers, per-step outputs",
            random_quantized_model(Task.MANY_TO_MANY, 3, 4, 2, True, 3, 0, seed=2, scale=1.0),
        ),
        FuzzModel(
            "tok_bi_m2o",
            "tokens, bidirectional, 2 layers, many-to-one",
            random_quantized_model(Task.MANY_TO_ONE, 4, 6, 2, True, 5, 11, seed=3, scale=2.0),
        ),
        FuzzModel(
            "tok_uni_gen",
            "tokens, unidirectional, 2 layers, one-to-many (generate, greedy and sampled)",
            random_quantized_model(Task.ONE_TO_MANY, 6, 8, 2, False, 0, 10, seed=4, scale=2.0),
        ),
        FuzzModel(
            "feat_uni_m2o_shift20",
            "features, unidirectional, 1 layer, many-to-one, shift 20 (the 64-bit requantization path)",
            shift20,
        ),
        FuzzModel(
            "feat_uni_m2m_split_mul",
            "feat_uni_m2m with EDGERNN_SPLIT_MUL=1 (Cortex-M0 arithmetic)",
            m2m,
            split,
        ),
        FuzzModel(
            "feat_uni_m2o_shift20_split_mul", "feat_uni_m2o_shift20 with EDGERNN_SPLIT_MUL=1", shift20, split
        ),
    ]


# ---------------------------------------------------------------------------------------------
# ref.h: the QuantizedModel as plain C arrays for the harness's reference


def _c_array(ctype: str, name: str, values: np.ndarray) -> str:
    flat = [str(int(v)) for v in np.asarray(values).reshape(-1)]
    if ctype == "int64_t":
        flat = [f"INT64_C({v})" for v in flat]
    return f"static const {ctype} {name}[{len(flat)}] = {{{', '.join(flat)}}};"


def _c_float(value: float) -> str:
    """A float32 literal: 9 digits give the float32 exactly; "2" becomes "2.0f", not "2f"."""
    text = f"{float(np.float32(value)):.9g}"
    return f"{text if any(ch in text for ch in '.e') else text + '.0'}f"


def _c_floats(name: str, values: np.ndarray) -> str:
    lits = [_c_float(v) for v in values]
    return f"static const float {name}[{len(lits)}] = {{{', '.join(lits)}}};"


def sample_step(head_scale: float) -> int:
    """The documented sampling unit (edgernn_model_t.sample_step): the logit distance of a
    factor 2^(1/4) at temperature 1, ln(2) / 4 / head_scale, rounded, in 1..2^31-1. Written
    again here rather than imported, so the harness checks the descriptor's sample_step."""
    return min(max(math.floor(math.log(2.0) / 4.0 / head_scale + 0.5), 1), 2**31 - 1)


def reference_header(qm: QuantizedModel) -> str:
    """ref.h for c_runtime/fuzz/fuzz_rnn.c, straight from the QuantizedModel (not from model.h).
    Its REF_* macros are what the descriptor in model.h must hold: the harness checks them."""
    cfg = qm.config
    norm = not cfg.tokens and len(qm.norm_mean) > 0
    generative = cfg.task == Task.ONE_TO_MANY
    end = qm.meta.end_token if generative and qm.meta.end_token is not None else -1  # -1: never
    lines = [
        "/* Generated by edgernn.backends.c.fuzz: model.h's model as plain arrays, for the reference. */",
        "#include <stdint.h>",
        f"#define REF_TOKENS {int(cfg.tokens)}",
        f"#define REF_INPUT {0 if cfg.tokens else cfg.input_size}",
        f"#define REF_VOCAB {cfg.vocab_size if cfg.tokens else 0}",
        f"#define REF_HIDDEN {cfg.hidden_size}",
        f"#define REF_LAYERS {cfg.num_layers}",
        f"#define REF_DIRS {cfg.directions}",
        f"#define REF_CLASSES {cfg.num_classes}",
        f"#define REF_TASK {('many-to-one', 'many-to-many', 'one-to-many').index(cfg.task) + 1}",
        f"#define REF_END_TOKEN ({int(end)})",
        f"#define REF_SAMPLE_STEP {sample_step(qm.head_scale) if generative else 0}",
        f"#define REF_HEAD_SCALE {_c_float(qm.head_scale)}",
        f"#define REF_NORM {int(norm)}",
        "typedef struct {",
        "    const int8_t *w_ih; /* [hidden][in], NULL for a token cell */",
        "    const int8_t *w_hh; /* [hidden][hidden] */",
        "    const int32_t *bias; /* [hidden], NULL for a token cell */",
        "    const int32_t *table; /* [vocab][hidden] for a token cell, else NULL */",
        "    const int64_t *m_x;",
        "    const int64_t *m_h;",
        "    int32_t in;",
        "    int32_t shift;",
        "} ref_cell_t;",
    ]
    entries = []
    for i, c in enumerate(qm.cells):
        lines.append(_c_array("int8_t", f"ref_w_hh_{i}", c.w_hh))
        lines.append(_c_array("int64_t", f"ref_m_x_{i}", c.m_x))
        lines.append(_c_array("int64_t", f"ref_m_h_{i}", c.m_h))
        if c.table is not None:
            lines.append(_c_array("int32_t", f"ref_table_{i}", c.table))
            entries.append(
                f"{{NULL, ref_w_hh_{i}, NULL, ref_table_{i}, ref_m_x_{i}, ref_m_h_{i}, 0, {c.shift}}}"
            )
        else:
            lines.append(_c_array("int8_t", f"ref_w_ih_{i}", c.w_ih))
            lines.append(_c_array("int32_t", f"ref_bias_{i}", c.bias))
            entries.append(
                f"{{ref_w_ih_{i}, ref_w_hh_{i}, ref_bias_{i}, NULL, ref_m_x_{i}, ref_m_h_{i}, "
                f"{c.w_ih.shape[1]}, {c.shift}}}"
            )
    lines.append(f"static const ref_cell_t ref_cells[{len(entries)}] = {{{', '.join(entries)}}};")
    lines.append(_c_array("int8_t", "ref_head_w", qm.head_w))
    lines.append(_c_array("int32_t", "ref_head_b", qm.head_b))
    lines.append(_c_array("int8_t", "ref_lut", qm.lut))
    if not cfg.tokens:
        # 1/s_x in float32 exactly as quantize_inputs computes it (x * inv, not x / s).
        inv = (np.float32(1.0) / np.asarray(qm.input_scale, dtype=np.float32)).astype(np.float32)
        lines.append(_c_floats("ref_inv_scale", inv))
        if norm:
            lines.append(_c_floats("ref_norm_mean", qm.norm_mean))
            lines.append(_c_floats("ref_norm_std", qm.norm_std))
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Build and run


def fuzz_compiler(cc: str | None = None) -> Compiler:
    """The compiler for libFuzzer: cc, else $FUZZ_CC, else clang."""
    try:
        return Compiler.discover(cc, env="FUZZ_CC", default="clang")
    except ToolchainError:
        spec = cc or os.environ.get("FUZZ_CC") or "clang"
        raise ToolchainError(
            f"{spec!r} not found on PATH: libFuzzer needs clang (apt-get install clang, or set $FUZZ_CC)"
        ) from None


def libfuzzer_problem(cc: str | None = None) -> str | None:
    """None if clang links a libFuzzer + ASan + UBSan binary here, else why not (naming the package)."""
    try:
        compiler = fuzz_compiler(cc)
    except ToolchainError as e:
        return str(e)
    with tempfile.TemporaryDirectory(prefix="edgernn-fuzz-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text(
            "#include <stddef.h>\n#include <stdint.h>\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
            "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n",
            encoding="utf-8",
        )
        try:
            compile_to(
                Build(compiler, (src,), FUZZ_FLAGS, link_flags=FUZZ_LIBS),
                Path(tmp) / "probe",
                "linking a libFuzzer probe",
                PROBE_TIMEOUT,
            )
        except ToolchainError as e:
            package = runtime_package(compiler)
            fix = (
                f"install the sanitizer runtimes: apt-get install {package}"
                if package.startswith("libclang-rt")
                else "libFuzzer needs clang (apt-get install clang, or set $FUZZ_CC)"
            )
            return f"{compiler.name} cannot link -fsanitize=fuzzer,address,undefined ({last_line(e)}); {fix}"
    return None


def _content_named(folder: Path, stem: str, text: str) -> Path:
    """folder/stem_<hash>.h holding text: an include whose name (so the build's cache key) changes
    with its content, and which no header beside fuzz_rnn.c can shadow."""
    path = folder / f"{stem}_{hashlib.sha256(text.encode('utf-8')).hexdigest()[:16]}.h"
    if not path.exists():
        write_text(path, text)
    return path


def build_fuzzer(
    model: FuzzModel, workdir: Path, cc: str | None = None, header_qm: QuantizedModel | None = None
) -> Path:
    """model.h + ref.h + fuzz_rnn.c -> workdir/<name>/fuzz_<name>_<key>, cached by content.
    header_qm (default: the model's) writes model.h from another model than ref.h: the test that
    the oracle has teeth."""
    d = Path(workdir).resolve() / model.name
    d.mkdir(parents=True, exist_ok=True)
    text = generate_header(header_qm or model.qm, PREFIX)
    header = _content_named(d, "model", text)
    ref = _content_named(d, "ref", reference_header(model.qm))
    build = Build(
        compiler=fuzz_compiler(cc),
        sources=(c_runtime_dir() / HARNESS,),
        flags=FUZZ_FLAGS,
        defines={
            "EDGERNN_MODEL_HEADER": f'"{header.name}"',
            "EDGERNN_MODEL": descriptor_name(text),
            "FUZZ_REF_HEADER": f'"{ref.name}"',
            **dict(model.defines),
        },
        include_dirs=(d,),
        link_flags=FUZZ_LIBS,
    )
    return cached(build, d, f"fuzz_{model.name}", f"building the fuzzer for {model.name}")


@dataclass(frozen=True)
class FuzzResult:
    model: str
    exe: Path  # the fuzzer binary (rerun a finding: EXE FILE)
    seconds: float
    executions: int
    coverage: int  # libFuzzer's "cov:" (edges reached)
    findings: tuple[Path, ...]  # saved by this run (earlier runs' stay in the folder, not counted)
    exit_code: int
    reason: str  # the first line saying what went wrong ("" when clean)
    log_tail: str

    @property
    def clean(self) -> bool:
        return self.exit_code == 0 and not self.findings


def _last_int(pattern: str, text: str) -> int:
    found = re.findall(pattern, text)
    return int(found[-1]) if found else 0


def _seed_corpus(corpus: Path, seed: int, count: int = 24) -> None:
    """Random inputs of a few hundred bytes: each already decodes to several calls, where
    libFuzzer alone would spend its first seconds on inputs of a handful of bytes."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        data = rng.integers(0, 256, size=int(rng.integers(16, 600)), dtype=np.uint8).tobytes()
        (corpus / f"seed-{i:02d}").write_bytes(data)


def run_fuzzer(exe: Path, seconds: float, workdir: Path, seed: int = 1) -> FuzzResult:
    """Run one fuzzer for `seconds` on its corpus in workdir/<name>/corpus (kept between runs)."""
    d = exe.parent
    corpus = d / "corpus"
    corpus.mkdir(exist_ok=True)
    if not any(corpus.iterdir()):
        _seed_corpus(corpus, seed)
    artifacts = d / "findings"
    artifacts.mkdir(exist_ok=True)
    budget = max(1, int(seconds))
    cmd = [
        str(exe),
        f"-max_total_time={budget}",
        f"-seed={seed}",
        "-timeout=10",  # seconds per input: any input this slow is a finding
        "-rss_limit_mb=2048",
        "-max_len=2048",
        "-print_final_stats=1",
        f"-artifact_prefix={artifacts}/",
        str(corpus),
    ]
    env = {
        **os.environ,
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=1",
        "UBSAN_OPTIONS": "print_stacktrace=1",
    }
    earlier = set(artifacts.iterdir())
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=budget + 120)
    except OSError as e:
        raise ToolchainError(f"cannot run the fuzzer {exe}: {e.strerror}") from None
    except subprocess.TimeoutExpired as e:  # libFuzzer ignored its own time limit: a hang
        said = e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else (e.stderr or "")
        proc = subprocess.CompletedProcess(
            cmd, -1, "", f"{said}\nfuzz.py: check failed: no exit within {budget + 120} s"
        )
    log = proc.stderr
    findings = tuple(
        sorted(p for p in artifacts.iterdir() if p.name.startswith(FINDING_PREFIXES) and p not in earlier)
    )
    return FuzzResult(
        model=d.name,
        exe=exe,
        seconds=float(budget),
        executions=_last_int(r"stat::number_of_executed_units:\s*(\d+)", log),
        coverage=_last_int(r"cov: (\d+)", log),
        findings=findings,
        exit_code=proc.returncode,
        reason=next((ln.strip() for ln in log.splitlines() if _REASON.search(ln)), ""),
        log_tail="\n".join(log.strip().splitlines()[-25:]),
    )


def fuzz(
    seconds: float,
    workdir: Path,
    jobs: int = 1,
    seed: int = 1,
    cc: str | None = None,
    models: Sequence[FuzzModel] | None = None,
    echo: Callable[[str], None] = print,
) -> list[FuzzResult]:
    """Build every model's fuzzer and run each for seconds / len(models); `jobs` at a time."""
    problem = libfuzzer_problem(cc)
    if problem:
        raise ToolchainError(problem)
    chosen = list(models or fuzz_models())
    workdir.mkdir(parents=True, exist_ok=True)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:  # subprocesses: threads suffice
        exes = list(pool.map(lambda m: build_fuzzer(m, workdir, cc), chosen))
        echo(f"built {len(exes)} fuzzers in {workdir}; fuzzing {seconds:g} s in all")
        budgets = split_seconds(seconds, len(exes))
        results = list(
            pool.map(lambda eb: run_fuzzer(eb[0], eb[1], workdir, seed), zip(exes, budgets, strict=True))
        )
    return results


def split_seconds(seconds: float, n: int) -> list[int]:
    """Whole seconds (libFuzzer's -max_total_time) summing to `seconds`, at least 1 each."""
    base, extra = divmod(max(round(seconds), n), n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def summary(results: Sequence[FuzzResult], models: Sequence[FuzzModel]) -> str:
    what = {m.name: m.what for m in models}
    w = max([5, *(len(r.model) for r in results)])
    lines = [f"{'model':<{w}} {'seconds':>7} {'executions':>11} {'exec/s':>8} {'edges':>6} {'findings':>8}"]
    for r in results:
        rate = r.executions / r.seconds if r.seconds else 0.0
        lines.append(
            f"{r.model:<{w}} {r.seconds:>7.0f} {r.executions:>11,} {rate:>8,.0f} {r.coverage:>6} "
            f"{len(r.findings) + (0 if r.exit_code == 0 or r.findings else 1):>8}"
        )
    total = sum(r.executions for r in results)
    bad = [r for r in results if not r.clean]
    lines.append(
        f"total: {total:,} executions in {sum(r.seconds for r in results):.0f} s, "
        f"{sum(len(r.findings) for r in results) + sum(1 for r in bad if not r.findings)} findings"
    )
    for r in results:
        lines.append(f"  {r.model}: {what.get(r.model, '')}")
    for r in bad:
        lines.append(f"FINDING in {r.model} (exit {r.exit_code}): {r.reason}")
        lines.append(f"  rerun: {r.exe} {' '.join(map(str, r.findings))}")
        lines.append(r.log_tail)
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edgernn.backends.c.fuzz", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, help="fuzzing time in all, split over the models"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("build") / "fuzz", help="binaries, corpora, findings"
    )
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1), help="fuzzers run at once")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.jobs < 1:
        parser.error("--seconds must be positive and --jobs at least 1")
    models = fuzz_models()
    try:
        results = fuzz(args.seconds, args.workdir, args.jobs, args.seed, models=models)
    except ToolchainError as e:  # clang or its runtimes missing, or a build failed
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    print(summary(results, models))
    return 0 if all(r.clean for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
