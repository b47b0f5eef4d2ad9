"""The generated C header against the torch integer reference: identical integers, or the test fails.

Every model is compiled with the strict flags of edgernn.backends.c.host (-Werror -pedantic -Wconversion
...) into a shared library and compared with edgernn.contract.reference.int_forward / int_generate /
quantize_inputs element by element. Compiles are cached by header content for the session.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from edgernn.backends.c.build import STRICT_WARNINGS
from edgernn.backends.c.codegen import c_runtime_dir, generate_header, validate_prefix, write_header
from edgernn.backends.c.host import CModel, compile_model
from edgernn.config import ModelConfig
from edgernn.contract.constants import tanh_lut
from edgernn.contract.model import QuantCell, QuantizedModel
from edgernn.contract.quantize import quantize_inputs
from edgernn.contract.reference import int_forward, int_generate
from edgernn.errors import InputError, QuantizationError, ToolchainError
from edgernn.synthetic import random_quantized, small_config
from edgernn.targets.elf import Elf
from edgernn.targets.registry import get as get_target
from edgernn.targets.toolchain import toolchain

GOLDEN = Path(__file__).parent / "data" / "rnn_int8_golden.npz"
STRICT_C = ["-std=c99", *STRICT_WARNINGS, "-Wfloat-equal"]
STRICT_CXX = [
    "-x",
    "c++",
    "-std=c++11",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-Wfloat-equal",
    "-Wold-style-cast",
    "-Wuseless-cast",
    "-Wzero-as-null-pointer-constant",
]
CLANG_MISSING = "clang not found on PATH (make test installs clang)"
NASTY_META = {
    "dataset": "synthetic */ #error not a comment ??/",
    "float_accuracy": 0.9375,
    "int8_accuracy": 0.93125,
}


# ---------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cbuild")


def make_qm(
    task: str = "many-to-one",
    inp: int = 12,
    hidden: int = 32,
    layers: int = 1,
    bi: bool = False,
    classes: int = 9,
    vocab: int = 0,
    seed: int = 0,
    scale: float = 1.0,
    norm: bool = False,
    meta: dict[str, Any] | None = None,
) -> QuantizedModel:
    """A randomly initialised EdgeRNN (weights optionally scaled), quantized on random data."""
    cfg = small_config(task, inp, hidden, layers, bi, classes, vocab)
    return random_quantized(cfg, seed, scale, norm, meta)[1]


def build(qm: QuantizedModel, workdir: Path, prefix: str = "tm") -> CModel:
    text = generate_header(qm, prefix)
    path = workdir / f"{prefix}_{hashlib.sha256(text.encode()).hexdigest()[:16]}.h"
    if not path.exists():
        path.write_text(text)
    return compile_model(path, prefix, workdir)


def random_inputs(qm: QuantizedModel, rng: np.random.Generator, batch: int, steps: int) -> np.ndarray:
    cfg = qm.config
    if cfg.tokens:
        return rng.integers(0, cfg.vocab_size, size=(batch, steps)).astype(np.int64)
    return rng.integers(-127, 128, size=(batch, steps, cfg.input_size)).astype(np.int8)


def random_h0(qm: QuantizedModel, rng: np.random.Generator, batch: int) -> np.ndarray:
    cfg = qm.config
    return rng.integers(-127, 128, size=(cfg.num_layers * cfg.directions, batch, cfg.hidden_size)).astype(
        np.int8
    )


def assert_same_as_reference(
    qm: QuantizedModel, cm: CModel, x: np.ndarray, lengths: np.ndarray, h0: np.ndarray | None = None
) -> None:
    ref = int_forward(
        qm, torch.as_tensor(x), torch.as_tensor(lengths), None if h0 is None else torch.as_tensor(h0)
    )
    got = cm.run(x, lengths, h0)
    for field in ("hidden", "h_n", "logits"):
        a, b = getattr(ref, field), getattr(got, field)
        assert (a.dtype, tuple(a.shape)) == (b.dtype, tuple(b.shape)), field
        mismatches = int((a != b).sum())
        assert mismatches == 0, f"{field}: {mismatches} of {a.numel()} elements differ from int_forward"
    if qm.config.directions == 1:  # buf == NULL: same final state and logits, nothing recorded
        bare = cm.run(x, lengths, h0, record=False)
        assert torch.equal(bare.h_n, ref.h_n) and torch.equal(bare.logits, ref.logits)


def golden_cell(g: Any, key: str) -> QuantCell:
    return QuantCell(
        w_ih=g[f"{key}/Wq_ih"].astype(np.int8),
        w_hh=g[f"{key}/Wq_hh"].astype(np.int8),
        bias=g[f"{key}/b_q"].astype(np.int32),
        m_x=g[f"{key}/M_x"].astype(np.int64),
        m_h=g[f"{key}/M_h"].astype(np.int64),
        shift=int(g[f"{key}/n"]),
    )


def golden_model(cells: list[QuantCell]) -> QuantizedModel:
    """Per-step model around golden cells; the head is irrelevant (zeros)."""
    hidden, inp = cells[0].w_hh.shape[0], cells[0].w_ih.shape[1]
    cfg = ModelConfig(
        task="many-to-many", input_size=inp, hidden_size=hidden, num_classes=1, num_layers=len(cells)
    )
    return QuantizedModel(
        config=cfg,
        cells=tuple(cells),
        head_w=np.zeros((1, hidden), np.int8),
        head_b=np.zeros(1, np.int32),
        head_scale=1.0 / 127 / 127,
        input_scale=np.ones(inp, np.float32),
        norm_mean=np.zeros(0, np.float32),
        norm_std=np.zeros(0, np.float32),
    )


# ---------------------------------------------------------------------------------------------
# Golden vectors (computed independently of this project)


def test_runtime_lut_is_the_contracts(workdir: Path) -> None:
    g = np.load(GOLDEN)
    cm = build(golden_model([golden_cell(g, "small")]), workdir, "gl")
    assert np.array_equal(cm.lut(), tanh_lut())
    assert np.array_equal(cm.lut(), g["lut"]) and int(g["lut_zmin"]) == -512


@pytest.mark.parametrize("case", ["small", "saturating", "extreme_inputs", "tiny", "wide"])
def test_golden_single_layer(workdir: Path, case: str) -> None:
    g = np.load(GOLDEN)
    qm = golden_model([golden_cell(g, case)])
    cm = build(qm, workdir, "gs")
    x, h0, y = g[f"{case}/x_q"], g[f"{case}/h0"], g[f"{case}/y"]
    got = cm.run(x, np.full(x.shape[0], x.shape[1]), h0[None])
    assert np.array_equal(got.hidden[0].numpy(), y), (
        f"{case}: {int((got.hidden[0].numpy() != y).sum())} differ"
    )
    assert np.array_equal(got.h_n[0].numpy(), y[:, -1])


def test_golden_stacked(workdir: Path) -> None:
    g = np.load(GOLDEN)
    qm = golden_model([golden_cell(g, "stacked/layer1"), golden_cell(g, "stacked/layer2")])
    cm = build(qm, workdir, "gk")
    x = g["stacked/x_q"]
    got = cm.run(x, np.full(x.shape[0], x.shape[1]))
    assert np.array_equal(got.hidden[0].numpy(), g["stacked/y1"])
    assert np.array_equal(got.hidden[1].numpy(), g["stacked/y2"])


# ---------------------------------------------------------------------------------------------
# Parity with int_forward on random models

PARITY = [
    # task, inp, hidden, layers, bi, vocab
    ("many-to-one", 12, 32, 1, False, 0),
    ("many-to-one", 5, 17, 2, True, 0),
    ("many-to-one", 8, 9, 3, False, 0),
    ("many-to-many", 6, 16, 3, False, 0),
    ("many-to-many", 3, 11, 2, True, 0),
    ("many-to-one", 4, 10, 1, True, 23),
    ("many-to-many", 6, 12, 2, False, 30),
    ("many-to-many", 5, 8, 3, True, 15),
    ("one-to-many", 8, 24, 2, False, 28),
]


@pytest.mark.parametrize(("task", "inp", "hidden", "layers", "bi", "vocab"), PARITY)
def test_parity_random_models(
    workdir: Path, task: str, inp: int, hidden: int, layers: int, bi: bool, vocab: int
) -> None:
    seed = PARITY.index((task, inp, hidden, layers, bi, vocab))
    qm = make_qm(task, inp, hidden, layers, bi, classes=7, vocab=vocab, seed=seed, norm=not vocab)
    cm = build(qm, workdir, "pr")
    rng = np.random.default_rng(100 + seed)
    x = random_inputs(qm, rng, batch=6, steps=23)
    lengths = np.array([23, 1, 7, 23, 2, 16])
    assert_same_as_reference(qm, cm, x, lengths)
    assert_same_as_reference(qm, cm, x, lengths, random_h0(qm, rng, 6))
    ref = int_forward(qm, torch.as_tensor(x), torch.as_tensor(lengths))
    assert (ref.hidden != 0).float().mean() > 0.5, "degenerate test: the states are mostly zero"


def test_parity_detects_a_changed_weight(workdir: Path) -> None:
    """The comparison has teeth: one W_hh entry changed in the C model must show up."""
    qm = make_qm("many-to-many", 6, 16, 2, seed=3)
    cell = qm.cells[1]
    w_hh = cell.w_hh.copy()
    w_hh[3, 5] = -w_hh[3, 5] if w_hh[3, 5] else 100
    broken = dataclasses.replace(qm, cells=(qm.cells[0], dataclasses.replace(cell, w_hh=w_hh)))
    cm = build(broken, workdir, "br")
    x = random_inputs(qm, np.random.default_rng(0), 4, 20)
    with pytest.raises(AssertionError, match="differ from int_forward"):
        assert_same_as_reference(qm, cm, x, np.full(4, 20))


@pytest.mark.parametrize("bi", [False, True])
def test_adversarial_saturating(workdir: Path, bi: bool) -> None:
    """Weights 4x the default init and inputs all +-127: accumulators and states saturate."""
    qm = make_qm("many-to-many", 16, 32, 2, bi, seed=7, scale=4.0)
    cm = build(qm, workdir, "ad")
    rng = np.random.default_rng(7)
    x = np.where(rng.random((5, 40, 16)) < 0.5, -127, 127).astype(np.int8)
    x[0] = 127
    x[1] = -127
    lengths = np.array([40, 40, 1, 33, 40])
    assert_same_as_reference(qm, cm, x, lengths, random_h0(qm, rng, 5))
    ref = int_forward(qm, torch.as_tensor(x), torch.as_tensor(lengths))
    assert (ref.hidden.abs() == 127).float().mean() > 0.2, "not adversarial: few states saturate"


@pytest.mark.slow
def test_stream_10000_steps(workdir: Path) -> None:
    qm = make_qm("many-to-many", 12, 32, 2, seed=11, scale=2.0)
    cm = build(qm, workdir, "st")
    x = random_inputs(qm, np.random.default_rng(11), 1, 10_000)
    ref = int_forward(qm, torch.as_tensor(x), torch.as_tensor([10_000]))
    states, logits = cm.stream_with_logits(x[0])
    expected = ref.hidden[:, 0].numpy().transpose(1, 0, 2)  # (T, L, H)
    bad = np.nonzero((states != expected).any(axis=(1, 2)))[0]
    assert bad.size == 0, f"{bad.size} of 10000 steps differ, first at step {bad[:1]}"
    assert np.array_equal(logits, ref.logits[0].numpy())
    cls, cls_logits = cm.classify(states[-1])
    assert np.array_equal(cls_logits, logits[-1]) and cls == int(np.argmax(logits[-1]))


def test_stream_token_model(workdir: Path) -> None:
    qm = make_qm("many-to-many", 6, 12, 2, vocab=30, seed=6)
    cm = build(qm, workdir, "sk")
    x = random_inputs(qm, np.random.default_rng(6), 1, 300)
    ref = int_forward(qm, torch.as_tensor(x), torch.as_tensor([300]))
    states, logits = cm.stream_with_logits(x[0])
    assert np.array_equal(states, ref.hidden[:, 0].numpy().transpose(1, 0, 2))
    assert np.array_equal(logits, ref.logits[0].numpy())


# ---------------------------------------------------------------------------------------------
# Generation

OCTAVE = (32768, 27554, 23170, 19484)  # edgernn_sample_octave


def xorshift32(s: int) -> int:
    s ^= (s << 13) & 0xFFFFFFFF
    s ^= s >> 17
    s ^= (s << 5) & 0xFFFFFFFF
    return s


def sample_reference(logits: list[int], step: int, rng: int) -> tuple[int, int]:
    """The documented rule of edgernn_sample_s32, in Python."""
    top, unit = max(logits), max(step, 1)
    weights = [OCTAVE[k & 3] >> (k >> 2) for k in (min(64, (top - v) // unit) for v in logits)]
    rng = xorshift32(rng)
    r = (rng * sum(weights)) >> 32
    running = 0
    for c, w in enumerate(weights):
        running += w
        if r < running:
            return c, rng
    raise AssertionError("unreachable")


def generate_reference(
    qm: QuantizedModel, start: int, end: int, max_len: int, seed: int, step: int
) -> list[int]:
    h = torch.zeros(qm.config.num_layers, 1, qm.config.hidden_size, dtype=torch.int64)
    token, rng, out = start, seed, []
    for _ in range(max_len):
        r = int_forward(qm, torch.tensor([[token]]), torch.tensor([1]), h)
        h = r.h_n.long()
        logits = [int(v) for v in r.logits[0, 0]]
        token, rng = (int(np.argmax(logits)), rng) if seed == 0 else sample_reference(logits, step, rng)
        if token == end:
            break
        out.append(token)
    return out


@pytest.fixture(scope="module")
def generator(workdir: Path) -> tuple[QuantizedModel, CModel, int]:
    """A one-to-many model whose end token is one that greedy generation really produces."""
    qm = make_qm("one-to-many", 8, 24, 2, vocab=12, seed=5, scale=3.0)
    seqs = [int_generate(qm, s, -1, 12) for s in range(12)]
    counts = np.bincount([t for seq in seqs for t in seq[1:]], minlength=12)
    end = int(np.argmax(counts[1:]) + 1)  # the most frequent non-first token, never 0
    qm = dataclasses.replace(qm, meta={"start_token": 0, "end_token": end, "dataset": "synthetic"})
    return qm, build(qm, workdir, "gen"), end


def test_generate_greedy_equals_int_generate(generator: tuple[QuantizedModel, CModel, int]) -> None:
    qm, cm, end = generator
    stopped_early = 0
    for start in range(qm.config.vocab_size):
        for max_len in (0, 1, 12):
            ref = int_generate(qm, start, end, max_len)
            assert cm.generate(start, end, max_len) == ref, (start, max_len)
            stopped_early += max_len == 12 and len(ref) < 12
    assert stopped_early > 0, "the end token never stopped a generation: the stop path is untested"
    assert cm.generate(-1, end, 5) == [] and cm.generate(qm.config.vocab_size, end, 5) == []
    with pytest.raises(InputError, match="end token"):
        cm.generate(0, end + 1, 5)


def test_generate_sampling_follows_documented_rule(generator: tuple[QuantizedModel, CModel, int]) -> None:
    qm, cm, end = generator
    step = cm.info["sample_step"]
    assert abs(step - math.log(2.0) / 4.0 / qm.head_scale) <= 0.5
    outs = set()
    for seed in (1, 2, 3, 0xDEADBEEF, 0xFFFFFFFF):
        got = cm.generate(0, end, 15, seed=seed)
        assert got == generate_reference(qm, 0, end, 15, seed, step), seed
        assert got == cm.generate(0, end, 15, seed=seed)  # deterministic per seed
        outs.add(tuple(got))
    assert len(outs) > 1, "different seeds never gave different samples"


def test_sampler_distribution(generator: tuple[QuantizedModel, CModel, int]) -> None:
    """The C sampler is exactly the documented rule, and weights halve every 4 steps below the top."""
    _, cm, _ = generator
    rng_py = np.random.default_rng(0)
    for trial in range(2000):
        n = int(rng_py.integers(1, 20))
        if trial % 4 == 0:  # anywhere in int32, any step (0 is treated as 1)
            step = int(rng_py.integers(0, 2**31))
            logits = [int(v) for v in rng_py.integers(-(2**31), 2**31 - 1, size=n)]
        else:  # within the 64 steps where weights are non-zero: every class counts
            step = int(rng_py.integers(1, 1000))
            logits = [
                int(v) for v in rng_py.integers(-64 * step, 1, size=n) + int(rng_py.integers(-1000, 1000))
            ]
        state = int(rng_py.integers(1, 2**32))
        assert cm.sample(logits, step, state) == sample_reference(logits, step, state), (logits, step, state)
    # Two classes 4 steps apart: weights 32768 and 16384, so about 2:1.
    counts = np.zeros(2, int)
    state = 12345
    for _ in range(6000):
        c, state = cm.sample([4000, 0], 1000, state)
        counts[c] += 1
    assert 1.8 < counts[0] / counts[1] < 2.2


def test_argmax_ties_go_to_lowest_index(workdir: Path) -> None:
    cm = build(make_qm(seed=1), workdir, "am")
    assert cm.argmax([5, 7, 7, 1]) == 1
    assert cm.argmax([3, 3, 3]) == 0
    assert cm.argmax([-(2**31), -5, -(2**31)]) == 1
    assert cm.argmax([9]) == 0


# ---------------------------------------------------------------------------------------------
# The float wrapper


SCALES = np.array([1.0, 0.5, 0.25, 2.0, 0.3, 1e-3, 7.7, 0.0123], np.float32)  # the first four: exact 1/s


def edge_values() -> np.ndarray:
    ties = np.arange(-140, 141) + 0.5
    specials = [
        0.0,
        -0.0,
        126.5,
        -126.5,
        126.49999,
        -126.49999,
        127.0,
        -127.0,
        127.5,
        -127.5,
        1e30,
        -1e30,
        np.inf,
        -np.inf,
        1e-45,
        -1e-45,
        0.49999997,
        -0.49999997,
        0.5,
        -0.5,
        2.5,
        -2.5,
        3.5,
        -3.5,
    ]
    return np.concatenate([ties, ties / 2, ties / 4, ties * 2, specials]).astype(np.float32)


@pytest.mark.parametrize("fma", [False, True])
def test_quantize_wrapper_equals_quantize_inputs(workdir: Path, fma: bool) -> None:
    """Exact .5 ties (scales whose reciprocal is exact), saturation, +-inf; and with GCC allowed to
    contract float expressions into FMAs, which must not change a single value."""
    extra: tuple[str, ...] = ()
    if fma:
        cpu = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
        if platform.machine() not in ("x86_64", "AMD64") or " fma" not in cpu:
            pytest.skip("needs an x86-64 CPU with FMA")
        extra = ("-mfma", "-ffp-contract=fast")
    qm = dataclasses.replace(make_qm(inp=8, hidden=4, seed=2), input_scale=SCALES)
    text = generate_header(qm, "qz")
    path = workdir / f"qz_{hashlib.sha256(text.encode()).hexdigest()[:16]}.h"
    path.write_text(text)
    cm = compile_model(path, "qz", workdir, extra_flags=extra)
    vals = edge_values()
    raw = np.repeat(vals[:, None], 8, axis=1) * SCALES  # t = raw / s lands on the edge values
    rng = np.random.default_rng(0)
    raw = np.concatenate([raw.astype(np.float32), rng.normal(scale=200, size=(500, 8)).astype(np.float32)])
    with np.errstate(invalid="ignore", over="ignore"):
        expected = quantize_inputs(raw, qm.input_scale)
    got = cm.quantize(raw)
    assert int((got != expected).sum()) == 0, np.argwhere(got != expected)[:5]
    assert (np.abs(got) == 127).any() and (got == 0).any()
    assert cm.quantize(np.full((1, 8), np.nan, np.float32)).tolist() == [[0] * 8]  # documented: NaN -> 0


def test_quantize_wrapper_normalises_first(workdir: Path) -> None:
    qm = make_qm(inp=12, hidden=8, seed=4, norm=True)
    cm = build(qm, workdir, "qn")
    raw = np.random.default_rng(4).normal(scale=3, size=(2000, 12)).astype(np.float32)
    normed = ((raw - qm.norm_mean) / qm.norm_std).astype(np.float32)  # float32 ops, as the C
    assert np.array_equal(cm.quantize(raw), quantize_inputs(normed, qm.input_scale))


def test_dequantize_logit(workdir: Path) -> None:
    qm = make_qm(seed=1)
    cm = build(qm, workdir, "am")
    for q in (0, 1, -1, 123456, -(2**31), 2**31 - 1):
        assert cm.dequantize_logit(q) == float(np.float32(q) * np.float32(qm.head_scale))


# ---------------------------------------------------------------------------------------------
# PREFIX_run's contract at its edges


def test_run_error_codes_leave_state_untouched(workdir: Path) -> None:
    qm = make_qm("many-to-one", 6, 10, 2, seed=8)
    cm = build(qm, workdir, "er")
    rng = np.random.default_rng(8)
    state0 = random_h0(qm, rng, 1)[:, 0].copy()
    x = random_inputs(qm, rng, 1, 9)[0]
    need = cm.info["run_buf_bytes_per_step"] * 9
    logits = np.full(qm.config.num_classes, 77, np.int32)

    def call(
        xx: np.ndarray | None, steps: int, buf: np.ndarray | None, nbytes: int
    ) -> tuple[int, np.ndarray]:
        state = state0.copy()
        return cm.run_raw(state, xx, steps, buf, nbytes, logits), state

    rc, state = call(x, 9, np.zeros(need, np.int8), need - 1)
    assert rc == -1 and np.array_equal(state, state0)  # EDGERNN_ERR_BUFFER
    rc, state = call(x, 2**62, np.zeros(need, np.int8), need)
    assert rc == -1 and np.array_equal(state, state0)  # RUN_BUF_BYTES(T) would overflow size_t
    rc, state = call(None, 9, None, 0)
    assert rc == -3 and np.array_equal(state, state0)  # EDGERNN_ERR_NULL
    rc, state = call(None, 0, None, 0)
    assert rc == 0 and np.array_equal(state, state0) and (logits == 77).all()  # T == 0: no-op
    rc, state = call(x, 9, None, 0)
    ref = int_forward(qm, x[None], np.array([9]), state0[:, None])
    assert (
        rc == 0
        and np.array_equal(state, ref.h_n[:, 0].numpy())
        and np.array_equal(logits, ref.logits[0].numpy())
    )


def test_run_error_codes_bidirectional_tokens(workdir: Path) -> None:
    qm = make_qm("many-to-one", 4, 6, 1, True, vocab=9, seed=9)
    cm = build(qm, workdir, "eb")
    state0 = random_h0(qm, np.random.default_rng(9), 1)[:, 0].copy()
    tokens = np.array([1, 2, 3, 4], np.int32)
    need = cm.info["run_buf_bytes_per_step"] * 4
    state = state0.copy()
    assert cm.run_raw(state, tokens, 4, None, 0, None) == -1 and np.array_equal(state, state0)
    bad = np.array([1, 2, 9, 4], np.int32)
    assert cm.run_raw(state, bad, 4, np.zeros(need, np.int8), need, None) == -2
    assert np.array_equal(state, state0)
    assert cm.run_raw(state, tokens, 4, np.zeros(need, np.int8), need, None) == 0
    assert not np.array_equal(state, state0)
    with pytest.raises(InputError, match="token ids"):
        cm.run(np.array([[1, 9]]), np.array([2]))


# ---------------------------------------------------------------------------------------------
# The header as a C artifact


def driver_source(qm: QuantizedModel, header: Path, p: str) -> str:
    """A translation unit that calls every API function of the header (no main, no libc)."""
    cfg = qm.config
    intype = "int32_t" if cfg.tokens else "int8_t"
    lines = [
        "#define EDGERNN_IMPLEMENTATION",
        f'#include "{header}"',
        f"{p}_state_t drv_state;",
        f"int8_t drv_buf[{p.upper()}_RUN_BUF_BYTES(8)];",
        f"int32_t drv_logits[8 * {p.upper()}_NUM_CLASSES];",
        f"void drv_init(void) {{ {p}_init(&drv_state); }}",
        f"int drv_run(const {intype} *x, size_t steps) "
        f"{{ return {p}_run(&drv_state, x, steps, drv_buf, sizeof drv_buf, drv_logits); }}",
        f"float drv_dequantize(int32_t v) {{ return {p}_dequantize_logit(v); }}",
    ]
    if not cfg.bidirectional:
        if cfg.tokens:
            lines.append(f"int drv_step(int32_t t) {{ return {p}_step_token(&drv_state, t); }}")
        else:
            lines.append(f"void drv_step(const int8_t *x) {{ {p}_step(&drv_state, x); }}")
    if not cfg.bidirectional or cfg.task == "many-to-one":
        lines.append(f"int32_t drv_classify(void) {{ return {p}_classify(&drv_state, drv_logits); }}")
    if not cfg.tokens:
        lines.append(f"void drv_quantize(const float *r, int8_t *q) {{ {p}_quantize_input(r, q); }}")
    if cfg.task == "one-to-many":
        lines.append(
            f"size_t drv_generate(int32_t s, int32_t *o, size_t n, uint32_t seed) "
            f"{{ return {p}_generate(&drv_state, s, o, n, seed); }}"
        )
    return "\n".join(lines) + "\n"


DRIVER_MODELS: dict[str, dict[str, Any]] = {
    "uni_features_m2o": dict(task="many-to-one", inp=12, hidden=32, layers=1, norm=True, meta=NASTY_META),
    "bi_tokens_m2m": dict(task="many-to-many", inp=5, hidden=7, layers=2, bi=True, vocab=13),
    "uni_tokens_gen": dict(
        task="one-to-many", inp=6, hidden=9, layers=2, vocab=11, meta={"start_token": 1, "end_token": 2}
    ),
    "bi_features_m2o_1x1": dict(task="many-to-one", inp=1, hidden=1, layers=3, bi=True, classes=1),
}


@pytest.fixture(scope="module")
def drivers(workdir: Path) -> dict[str, tuple[QuantizedModel, Path]]:
    out = {}
    for name, kw in DRIVER_MODELS.items():
        qm = make_qm(seed=21, **kw)
        header = write_header(qm, workdir / "drivers" / f"{name}.h", "dv")
        src = workdir / "drivers" / f"{name}_driver.c"
        src.write_text(driver_source(qm, header, "dv"))
        out[name] = (qm, src)
    return out


def compile_object(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 and not proc.stderr, f"{' '.join(cmd)}\n{proc.stderr}"


@pytest.mark.parametrize("compiler", ["gcc", "clang", "g++"])
@pytest.mark.parametrize("model", list(DRIVER_MODELS))
def test_header_compiles_warning_free(
    drivers: dict[str, tuple[QuantizedModel, Path]], tmp_path: Path, compiler: str, model: str
) -> None:
    if shutil.which(compiler) is None:
        pytest.skip(CLANG_MISSING if compiler == "clang" else f"{compiler} not found on PATH")
    flags = STRICT_CXX if compiler == "g++" else STRICT_C
    compile_object([compiler, *flags, "-O2", "-c", str(drivers[model][1]), "-o", str(tmp_path / "d.o")])


@pytest.mark.parametrize("compiler", ["g++", "clang++"])
def test_cxx_includer_keeps_its_own_warnings(tmp_path: Path, compiler: str) -> None:
    """The header quiets -Wold-style-cast for its own C99 casts only (push/pop around every
    include, PREFIX_RUN_BUF_BYTES cast-free in C++): a cast in the includer's code still fails."""
    if shutil.which(compiler) is None:
        pytest.skip(CLANG_MISSING if compiler == "clang++" else "g++ not found on PATH")
    header = write_header(make_qm("many-to-one", 4, 6, 1, seed=49), tmp_path / "model.h", "cx")
    body = f'#define EDGERNN_IMPLEMENTATION\n#include "{header}"\n#include "{header}"\n'
    body += "static int8_t buf[CX_RUN_BUF_BYTES(3)];\nint8_t *b(void) { return buf; }\n"
    flags = [f for f in STRICT_CXX if compiler == "g++" or f != "-Wuseless-cast"]
    clean, mine = tmp_path / "clean.cpp", tmp_path / "mine.cpp"
    clean.write_text(body)
    mine.write_text(body + "int f(double d) { return (int)d; }\n")
    compile_object([compiler, *flags, "-O2", "-c", str(clean), "-o", str(tmp_path / "c.o")])
    proc = subprocess.run(
        [compiler, *flags, "-c", str(mine), "-o", str(tmp_path / "m.o")], capture_output=True, text=True
    )
    assert proc.returncode != 0 and "old-style-cast" in proc.stderr and "mine.cpp:" in proc.stderr, (
        proc.stderr
    )


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_integer_path_needs_no_libc(
    drivers: dict[str, tuple[QuantizedModel, Path]], tmp_path: Path, compiler: str
) -> None:
    """Hosted -O2/-O3 (where compilers do emit memset/memcpy for plain loops): nothing undefined."""
    if shutil.which(compiler) is None:
        pytest.skip(CLANG_MISSING)
    control = tmp_path / "control.c"
    control.write_text(
        "#include <stddef.h>\nvoid z(char *p, size_t n) { size_t i; for (i = 0; i < n; ++i) p[i] = 0; }\n"
    )
    compile_object([compiler, "-std=c99", "-O2", "-c", str(control), "-o", str(tmp_path / "c.o")])
    nm = shutil.which("nm")
    assert nm, "nm (binutils) is needed"
    assert (
        "memset" in subprocess.run([nm, "-u", str(tmp_path / "c.o")], capture_output=True, text=True).stdout
    ), "control: this compiler no longer turns a zeroing loop into memset; the check below proves nothing"
    for name, (_, src) in drivers.items():
        for opt in ("-O2", "-O3", "-Os"):
            obj = tmp_path / f"{name}{opt}.o"
            compile_object([compiler, "-std=c99", opt, "-c", str(src), "-o", str(obj)])
            undefined = subprocess.run(
                [nm, "-u", str(obj)], capture_output=True, text=True, check=True
            ).stdout.split()
            assert [s for s in undefined if s != "U"] == [], f"{name} {opt}: needs {undefined}"


# Soft-float helpers: EABI __aeabi_fadd, __aeabi_i2f, ...; libgcc/compiler-rt __addsf3, __fixsfsi, ...
SOFT_FLOAT_HELPER = re.compile(r"^__aeabi_(?:[fd]|u?[il]2[fd])|[sd]f\d?$|[sd]f[sd]i$|si[sd]f$")


@pytest.mark.parametrize(
    ("target", "compiler", "defines"),
    [
        ("cortex-m0plus", "zig", []),
        ("cortex-m0plus", "zig", ["EDGERNN_NO_V6M_ASM"]),
        ("cortex-m0plus", "gcc", []),
        ("cortex-m4", "zig", []),
        ("riscv32imc", "zig", []),
    ],
)
def test_every_call_needs_no_compiler_runtime_helper_on_a_core(
    drivers: dict[str, tuple[QuantizedModel, Path]],
    tmp_path: Path,
    target: str,
    compiler: str,
    defines: list[str],
) -> None:
    """Every API call, sampled generation included, is built to code that calls no integer helper:
    no __aeabi_lmul on Armv6-M (no 32 x 32 -> 64 multiply), no division helper anywhere. The float
    boundary (quantize_input, dequantize_logit) may call soft-float helpers on cores without an FPU."""
    if compiler == "zig" and importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig missing; pip install -e '.[mcu]' installs it")
    if compiler == "gcc" and shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc missing; `make mcu-tools` installs it")
    chain = toolchain(compiler, get_target(target))
    for name, (_, src) in drivers.items():
        needed = Elf.read(chain.compile(src, tmp_path / f"{name}.o", defines, [])).undefined()
        integer = sorted(n for n in needed if not SOFT_FLOAT_HELPER.search(n))
        assert integer == [], f"{name} on {target} needs {integer}"


@pytest.mark.parametrize("compiler", ["gcc", "clang", "arm-none-eabi-gcc"])
def test_a_file_that_only_includes_the_header_emits_no_kernel(tmp_path: Path, compiler: str) -> None:
    """At -O0 too (a debug build, often linked without --gc-sections): GCC emits a static function
    that is not inline in every file, called or not; the kernels are inline there."""
    if shutil.which(compiler) is None:
        pytest.skip(
            CLANG_MISSING if compiler == "clang" else f"{compiler} missing; `make mcu-tools` installs it"
        )
    header = write_header(make_qm("many-to-one", 5, 8, 2, seed=50), tmp_path / "model.h", "io")
    src = tmp_path / "user.c"
    src.write_text(
        f'#include "{header}"\nint classes(void);\nint classes(void) {{ return IO_NUM_CLASSES; }}\n'
    )
    arch = ["-mcpu=cortex-m4", "-mthumb"] if compiler.startswith("arm") else []
    for opt in ("-O0", "-Og", "-O2"):
        obj = tmp_path / f"user{opt}.o"
        compile_object([compiler, *STRICT_C, *arch, opt, "-c", str(src), "-o", str(obj)])
        nm = "arm-none-eabi-nm" if compiler.startswith("arm") else "nm"
        defined = subprocess.run([nm, "--defined-only", str(obj)], capture_output=True, text=True, check=True)
        kernels = {"edgernn_cell_step", "edgernn_matvec_s8"} & set(defined.stdout.split())
        assert not kernels, f"{compiler} {opt} emitted {sorted(kernels)}"


def test_two_models_in_one_program(workdir: Path, tmp_path: Path) -> None:
    qa = make_qm("many-to-one", 5, 8, 2, seed=31)
    qb = make_qm("many-to-many", 4, 6, 2, True, vocab=10, seed=32)
    ha, hb = write_header(qa, tmp_path / "alpha.h", "alpha"), write_header(qb, tmp_path / "beta.h", "beta")
    rng = np.random.default_rng(3)
    xa, tb = random_inputs(qa, rng, 1, 7)[0], random_inputs(qb, rng, 1, 7)[0]
    rows = ", ".join("{" + ", ".join(str(v) for v in row) + "}" for row in xa)
    main = tmp_path / "main.c"
    main.write_text(f"""#include <stdio.h>
#define EDGERNN_IMPLEMENTATION
#include "{ha}"
#include "{hb}"
static const int8_t xa[7][ALPHA_INPUT_SIZE] = {{{rows}}};
static const int32_t tb[7] = {{{", ".join(str(v) for v in tb)}}};
int main(void)
{{
    alpha_state_t sa;
    beta_state_t sb;
    static int8_t buf[BETA_RUN_BUF_BYTES(7)];
    int32_t la[ALPHA_NUM_CLASSES], lb[7 * BETA_NUM_CLASSES];
    size_t t, i;
    alpha_init(&sa);
    beta_init(&sb);
    for (t = 0; t < 7; ++t) alpha_step(&sa, xa[t]);
    printf("%d\\n", (int)alpha_classify(&sa, la));
    if (beta_run(&sb, tb, 7, buf, sizeof buf, lb) != EDGERNN_OK) return 1;
    for (i = 0; i < sizeof la / sizeof la[0]; ++i) printf("%ld ", (long)la[i]);
    printf("\\n");
    for (i = 0; i < sizeof lb / sizeof lb[0]; ++i) printf("%ld ", (long)lb[i]);
    printf("\\n");
    return 0;
}}
""")
    ra = int_forward(qa, xa[None], np.array([7]))
    rb = int_forward(qb, tb[None].astype(np.int64), np.array([7]))
    expected = [
        str(int(np.argmax(ra.logits[0].numpy()))),
        " ".join(str(v) for v in ra.logits[0].tolist()),
        " ".join(str(v) for v in rb.logits[0].flatten().tolist()),
    ]
    builds = {"strict": ["gcc", *STRICT_C, "-O2"]}
    # Out-of-bounds access or signed overflow anywhere in the C aborts the sanitized build's run.
    sanitize = ["gcc", "-std=c99", "-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
    probe = subprocess.run(
        [*sanitize, "-x", "c", "-", "-o", str(tmp_path / "probe")],
        input="int main(void){return 0;}",
        capture_output=True,
        text=True,
    )
    if probe.returncode == 0:
        builds["sanitized"] = sanitize
    for name, cmd in builds.items():
        exe = tmp_path / f"two_{name}"
        compile_object([*cmd, str(main), "-o", str(exe)])
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        assert run.returncode == 0, f"{name}: {run.stderr[-2000:]}"
        assert [line.strip() for line in run.stdout.splitlines()] == expected, name


def test_one_implementation_per_program(tmp_path: Path) -> None:
    """stb style: two files include model.h, one defines EDGERNN_IMPLEMENTATION; the linked
    program holds each weight table and the tanh table once, and both files run the same model."""
    qm = make_qm("many-to-one", 5, 8, 1, seed=41)
    header = write_header(qm, tmp_path / "model.h", "tu")
    impl, user, main = tmp_path / "impl.c", tmp_path / "user.c", tmp_path / "main.c"
    impl.write_text(
        f'#define EDGERNN_IMPLEMENTATION\n#include "{header}"\n'
        "int32_t classify_a(const int8_t *x, int n)\n"
        "{ tu_state_t s; int32_t l[TU_NUM_CLASSES]; int t; tu_init(&s);\n"
        "  for (t = 0; t < n; ++t) tu_step(&s, x + t * TU_INPUT_SIZE);\n  return tu_classify(&s, l); }\n"
    )
    user.write_text(
        f'#include "{header}"\n'
        "int32_t classify_b(const int8_t *x, int n)\n"
        "{ int8_t s[TU_STATE_BYTES]; int32_t scratch[TU_SCRATCH_WORDS], l[TU_NUM_CLASSES]; int t;\n"
        "  edgernn_init(&tu_model, s);\n"
        "  for (t = 0; t < n; ++t) (void)edgernn_step(&tu_model, s, x + t * TU_INPUT_SIZE, scratch);\n"
        "  return edgernn_classify(&tu_model, s, l); }\n"
    )
    rng = np.random.default_rng(5)
    x = random_inputs(qm, rng, 1, 6)[0]
    want = int(np.argmax(int_forward(qm, x[None], np.array([6])).logits[0].numpy()))
    values = ", ".join(str(int(v)) for v in x.flatten())
    main.write_text(
        "#include <stdint.h>\n#include <stdio.h>\n"
        "int32_t classify_a(const int8_t *x, int n);\nint32_t classify_b(const int8_t *x, int n);\n"
        f"static const int8_t x[] = {{{values}}};\n"
        'int main(void) { printf("%ld %ld\\n", (long)classify_a(x, 6), (long)classify_b(x, 6)); return 0; }\n'
    )
    objects = []
    for src in (impl, user, main):
        obj = tmp_path / f"{src.stem}.o"
        compile_object(["gcc", *STRICT_C, "-O2", "-c", str(src), "-o", str(obj)])
        objects.append(obj)
    exe = tmp_path / "two_tus"
    compile_object(["gcc", *map(str, objects), "-o", str(exe)])
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    assert run.stdout.split() == [str(want), str(want)]
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout.split()
    for table in ("tu_l0_d0_w_hh", "tu_l0_d0_w_ih", "tu_head_w", "edgernn_tanh_lut"):
        assert symbols.count(table) == 1, table
    defined = subprocess.run(
        ["nm", "--defined-only", str(tmp_path / "user.o")], capture_output=True, text=True, check=True
    ).stdout.split()
    assert not {"tu_l0_d0_w_hh", "tu_head_w", "edgernn_tanh_lut"} & set(defined)


def test_two_model_packages_in_one_program(tmp_path: Path) -> None:
    """Each firmware package defines EDGERNN_IMPLEMENTATION in a file of its own, so a program with
    two packages holds two definitions of the tanh table: they must link (one copy kept) and run."""
    qa, qb = make_qm("many-to-one", 5, 8, 1, seed=43), make_qm("many-to-one", 5, 6, 1, seed=44)
    ha, hb = write_header(qa, tmp_path / "pa.h", "pa"), write_header(qb, tmp_path / "pb.h", "pb")
    x = random_inputs(qa, np.random.default_rng(6), 1, 4)[0]
    values = ", ".join(str(int(v)) for v in x.flatten())
    sources = {
        "impl_a": f'#define EDGERNN_IMPLEMENTATION\n#include "{ha}"\n',
        "impl_b": f'#define EDGERNN_IMPLEMENTATION\n#include "{hb}"\n',
        "main": f"""#include <stdio.h>
#include "{ha}"
#include "{hb}"
static const int8_t x[20] = {{{values}}};
int main(void)
{{
    pa_state_t a;
    pb_state_t b;
    int32_t la[PA_NUM_CLASSES], lb[PB_NUM_CLASSES];
    int t;
    pa_init(&a);
    pb_init(&b);
    for (t = 0; t < 4; ++t) {{
        pa_step(&a, x + 5 * t);
        pb_step(&b, x + 5 * t);
    }}
    printf("%ld %ld\\n", (long)pa_classify(&a, la), (long)pb_classify(&b, lb));
    return 0;
}}
""",
    }
    objects = []
    for name, text in sources.items():
        (tmp_path / f"{name}.c").write_text(text)
        objects.append(tmp_path / f"{name}.o")
        compile_object(["gcc", *STRICT_C, "-O2", "-c", str(tmp_path / f"{name}.c"), "-o", str(objects[-1])])
    exe = tmp_path / "two_packages"
    compile_object(["gcc", *map(str, objects), "-o", str(exe)])
    run = subprocess.run([str(exe)], capture_output=True, text=True, check=True)
    want = [str(int(np.argmax(int_forward(q, x[None], np.array([4])).logits[0].numpy()))) for q in (qa, qb)]
    assert run.stdout.split() == want
    symbols = subprocess.run(["nm", str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert symbols.count("edgernn_tanh_lut") == 1


def test_implementation_after_a_plain_include(tmp_path: Path) -> None:
    """A file that included model.h before defining EDGERNN_IMPLEMENTATION (through another header,
    say) gets every table, the tanh table too, from a second include."""
    qm = make_qm("many-to-one", 5, 8, 1, seed=45)
    header = write_header(qm, tmp_path / "model.h", "ri")
    src = tmp_path / "main.c"
    src.write_text(
        f'#include "{header}"\n#define EDGERNN_IMPLEMENTATION\n#include "{header}"\n'
        "int main(void)\n{\n    ri_state_t s;\n    int8_t x[RI_INPUT_SIZE] = {0};\n"
        "    int32_t l[RI_NUM_CLASSES];\n    ri_init(&s);\n    ri_step(&s, x);\n"
        "    return ri_classify(&s, l) < 0;\n}\n"
    )
    exe = tmp_path / "reinclude"
    compile_object(["gcc", *STRICT_C, "-O2", str(src), "-o", str(exe)])
    subprocess.run([str(exe)], check=True)


@pytest.mark.parametrize(
    ("target", "switch"), [("cortex-m0plus", "EDGERNN_NO_V6M_ASM"), ("cortex-m4", "EDGERNN_NO_DSP")]
)
def test_a_file_built_for_another_weight_order_does_not_link(
    tmp_path: Path, target: str, switch: str
) -> None:
    """The weight order is chosen per file from its flags; a caller built with another choice than
    the file holding the tables must need symbols that file does not define (a link error), and
    with the same choice, none."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig missing; pip install -e '.[mcu]' installs it")
    qm = make_qm("many-to-one", 5, 8, 2, seed=46)
    header = write_header(qm, tmp_path / "model.h", "lo")
    impl, user = tmp_path / "impl.c", tmp_path / "user.c"
    impl.write_text(f'#define EDGERNN_IMPLEMENTATION\n#include "{header}"\n')
    user.write_text(
        f'#include "{header}"\nint32_t lo_demo(const int8_t *x);\n'
        "int32_t lo_demo(const int8_t *x)\n{\n    lo_state_t s;\n    int32_t l[LO_NUM_CLASSES];\n"
        "    lo_init(&s);\n    lo_step(&s, x);\n    return lo_classify(&s, l);\n}\n"
    )
    chain = toolchain("zig", get_target(target))

    def tables(src: Path, defines: list[str], out: str) -> tuple[set[str], set[str]]:
        elf = Elf.read(chain.compile(src, tmp_path / out, defines, []))
        defined = {s.name for s in elf.symbols if s.shndx != 0 and s.name.startswith("lo_")}
        return defined, {n for n in elf.undefined() if n.startswith("lo_")}

    defined_default, _ = tables(impl, [], "impl.o")
    defined_switched, _ = tables(impl, [switch], "impl_switched.o")
    _, needed_default = tables(user, [], "user.o")
    _, needed_switched = tables(user, [switch], "user_switched.o")
    assert needed_default and needed_default <= defined_default
    assert needed_switched and needed_switched <= defined_switched
    assert needed_default - defined_switched and needed_switched - defined_default


@pytest.mark.parametrize("cpu", ["cortex_m0plus", "cortex_m4", "cortex_m33+dsp"])
def test_header_is_pedantic_clean_under_clang_for_each_core(tmp_path: Path, cpu: str) -> None:
    """The host builds above never take the assembly paths; clang's -Wpedantic also flags their
    templates (a string literal past C99's 4095 characters) unless the runtime silences it."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig missing; pip install -e '.[mcu]' installs it")
    header = write_header(make_qm("many-to-one", 12, 32, 2, seed=47), tmp_path / "model.h", "pd")
    src = tmp_path / "impl.c"
    src.write_text(
        f'#define EDGERNN_IMPLEMENTATION\n#include "{header}"\nint32_t pd_demo(const int8_t *x);\n'
        "int32_t pd_demo(const int8_t *x)\n{\n    pd_state_t s;\n    int32_t l[PD_NUM_CLASSES];\n"
        "    pd_init(&s);\n    pd_step(&s, x);\n    return pd_classify(&s, l);\n}\n"
    )
    zig = [sys.executable, "-m", "ziglang", "cc", "-target", "thumb-freestanding-eabi", f"-mcpu={cpu}"]
    compile_object([*zig, *STRICT_C, "-Os", "-c", str(src), "-o", str(tmp_path / "impl.o")])


def test_class_names_macro_is_an_exact_initializer(tmp_path: Path) -> None:
    """PREFIX_CLASS_NAMES initializes a name table in C and C++: quotes, '??' (a trigraph in C99)
    and UTF-8 come out byte for byte."""
    names = ['caf\u00e9 "x"', "a??/b", "back\\slash", *(f"class {i}" for i in range(3))]
    qm = make_qm("many-to-one", 4, 6, 1, classes=len(names), seed=48, meta={"class_names": names})
    header = write_header(qm, tmp_path / "model.h", "cn")
    src = tmp_path / "names.c"
    src.write_text(
        f'#define EDGERNN_IMPLEMENTATION\n#include "{header}"\n#include <stdio.h>\n'
        "static const char *const names[CN_NUM_CLASSES] = CN_CLASS_NAMES;\n"
        'int main(void)\n{\n    int i;\n    for (i = 0; i < CN_NUM_CLASSES; ++i) printf("%s\\n", names[i]);\n'
        "    return 0;\n}\n"
    )
    for compiler, flags in (("gcc", STRICT_C), ("g++", STRICT_CXX)):
        exe = tmp_path / f"names_{compiler}"
        compile_object([compiler, *flags, "-O2", str(src), "-o", str(exe)])
        out = subprocess.run([str(exe)], capture_output=True, check=True).stdout.decode("utf-8")
        assert out.splitlines() == names, compiler


def test_header_is_deterministic_and_documented(workdir: Path, tmp_path: Path) -> None:
    qm = make_qm(
        seed=12,
        norm=True,
        meta={
            "dataset": "japanese_vowels",
            "float_accuracy": 0.9432,
            "int8_accuracy": 0.9405,
            "edgernn_version": "0.1.0",
        },
    )
    a, b = generate_header(qm, "jv"), generate_header(make_qm(seed=12, norm=True, meta=dict(qm.meta)), "jv")
    assert a == b
    path = write_header(qm, tmp_path / "out" / "model.h", "jv")
    assert path.read_text() == a and [p.name for p in path.parent.iterdir()] == ["model.h"]
    for needle in (
        "japanese_vowels",
        "0.9432",
        "0.9405",
        "shift n =",
        "#define JV_MACS_PER_STEP",
        "#define JV_FLASH_BYTES",
        "const int8_t jv_l0_d0_w_hh[32][32] = {",
        "static const edgernn_model_t jv_model = {",
        "#if defined(EDGERNN_IMPLEMENTATION) && !defined(JV_MODEL_IMPLEMENTED)",
        "jv_norm_std",
    ):
        assert needle in a, needle
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}:\d{2}", a)  # no date or time anywhere
    assert generate_header(qm, "other") != a


def test_size_macros_for_a_12_input_32_hidden_model(workdir: Path) -> None:
    qm = make_qm("many-to-one", 12, 32, 1, classes=9, seed=0, norm=True)
    cm = build(qm, workdir, "sz")
    info, macros = cm.info, cm.macros
    weights = 32 * 12 + 32 * 32 + 3 * 4 * 32  # W_ih, W_hh; bias, M_x, M_h as int32
    head = 9 * 32 + 4 * 9
    floats = 3 * 4 * 12  # 1/s_x, mean, std
    assert macros["MACS_PER_STEP"] == 32 * 12 + 32 * 32 == 1408
    assert macros["HEAD_MACS"] == 9 * 32
    assert macros["WEIGHT_BYTES"] == weights + head + floats == 2260  # the header proves it with sizeof
    assert macros["FLASH_BYTES"] == macros["WEIGHT_BYTES"] + 1024
    # the descriptor (what C computes) agrees with the macros; sizeof(sz_state_t) is checked in C
    assert info["state_bytes"] == macros["STATE_BYTES"] == 32
    assert macros["SCRATCH_BYTES"] == 4 * macros["SCRATCH_WORDS"] == 2 * 4 * 32
    assert info["run_buf_bytes_per_step"] == 32
    assert (info["hidden"], info["input_size"], info["classes"], info["layers"]) == (32, 12, 9, 1)


def test_compile_failure_is_reported(workdir: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.h"
    bad.write_text("this is not C\n")
    with pytest.raises(InputError, match="PREFIX_state_t"):
        compile_model(bad, "bad", workdir)  # not a generated header: refused before any compiler runs
    qm = make_qm(hidden=4, seed=0)
    broken = tmp_path / "broken.h"
    broken.write_text(generate_header(qm, "bad").replace("edgernn_init(&bad_model", "edgernn_init(bad_model"))
    with pytest.raises(ToolchainError, match="failed") as e:
        compile_model(broken, "bad", workdir)
    assert e.value.exit_code == 3
    with pytest.raises(ToolchainError, match="not found"):
        compile_model(broken, "bad", workdir, cc="no-such-compiler-edgernn")


# ---------------------------------------------------------------------------------------------
# Prefixes and locating the runtime


@pytest.mark.parametrize(
    "name", ["int", "9abc", "a-b", "", "class", "_x", "__y", "a__b", "edgernn_x", "EdgeRNN", "x" * 33, "a b"]
)
def test_bad_prefix_is_refused(name: str) -> None:
    with pytest.raises(InputError):
        validate_prefix(name)
    with pytest.raises(InputError):
        generate_header(make_qm(hidden=4, seed=0), name)


def test_good_prefixes_pass() -> None:
    for name in ("jv", "gesture_model", "M4_net", "x" * 32):
        assert validate_prefix(name) == name


def test_c_runtime_dir_has_the_hand_written_c() -> None:
    d = c_runtime_dir()
    assert {"edgernn_runtime.h", "harness.c"} <= {p.name for p in d.iterdir()}


def test_refuses_a_foreign_lut() -> None:
    qm = make_qm(hidden=4, seed=0)
    lut = tanh_lut().copy()
    lut[600] += 1
    with pytest.raises(InputError, match="tanh table"):
        generate_header(dataclasses.replace(qm, lut=lut), "lt")


# ---------------------------------------------------------------------------------------------
# Property: C == int_forward on random configurations


@st.composite
def configurations(draw: st.DrawFn) -> dict[str, Any]:
    tokens, bi = draw(st.booleans()), draw(st.booleans())
    task = draw(
        st.sampled_from(["many-to-one", "many-to-many"] + ([] if bi or not tokens else ["one-to-many"]))
    )
    batch = draw(st.integers(1, 3))
    return dict(
        task=task,
        inp=draw(st.integers(1, 64)),
        hidden=draw(st.integers(1, 128)),
        layers=draw(st.integers(1, 3)),
        bi=bi,
        classes=draw(st.integers(1, 12)),
        vocab=draw(st.integers(2, 40)) if tokens else 0,
        seed=draw(st.integers(0, 2**31 - 1)),
        scale=draw(st.sampled_from([1.0, 4.0])),
        lengths=draw(st.lists(st.integers(1, 200), min_size=batch, max_size=batch)),
        random_h0=draw(st.booleans()),
    )


@pytest.mark.slow
@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(conf=configurations())
def test_property_c_equals_int_forward(workdir: Path, conf: dict[str, Any]) -> None:
    lengths = np.array(conf.pop("lengths"))
    random_h0_ = conf.pop("random_h0")
    try:
        qm = make_qm(**conf)
    except QuantizationError:  # the converter refused the model: nothing to compare
        assume(False)
        return
    cm = build(qm, workdir, "hp")
    rng = np.random.default_rng(conf["seed"])
    x = random_inputs(qm, rng, len(lengths), int(lengths.max()))
    assert_same_as_reference(qm, cm, x, lengths, random_h0(qm, rng, len(lengths)) if random_h0_ else None)
