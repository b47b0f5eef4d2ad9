"""Issue 14: every kernel path of c_runtime/edgernn_runtime.h gives the integer reference's integers
on shapes that exercise its edges -- I = 1, 3, 5 (input columns left over by 4- and 8-wide passes),
H not a multiple of 4 (rows left over by 4-row blocks), H < 4 (no block at all) -- on every target
that runs it:

- host x86-64: SSE2 (the default flags), SSE4.1, AVX2, and the portable C (EDGERNN_NO_SIMD);
- AArch64 NEON, cross-compiled with zig cc and run under qemu-aarch64 user mode;
- big-endian Cortex-M4, M0+ and AArch64 builds (zig cc, freestanding), under qemu user mode;
- Cortex-M4 and M33 (the DSP block kernels), M0+ (Armv6-M assembly), RISC-V (the RV32 C kernel,
  with zig and gcc) and AVR (portable C).

A missing tool skips, saying what installs it.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from test_c import assert_same_as_reference, make_qm, random_h0, random_inputs
from test_mcu import _assert_exact, _zig_path
from test_mcu_avr import _avr_helper
from test_mcu_riscv import _gcc_path as _gcc_riscv_path

from edgernn.backends.c.codegen import c_runtime_dir, write_header
from edgernn.backends.c.fuzz import with_shift
from edgernn.backends.c.host import compile_model
from edgernn.backends.c.tables import dsp_stream_cell, v6m_order
from edgernn.contract.bounds import narrow_requant
from edgernn.targets.check import check_header
from edgernn.targets.vectors import build_vectors

# (input, hidden): the 4-row blocks' leftover rows and columns, a model smaller than one block, the
# default shape and the BasicMotions one.
SHAPES = [(1, 4), (3, 13), (5, 7), (1, 1), (5, 2), (12, 32), (6, 32), (17, 33)]
# Host only: a row of 16- and 8-column groups with no leftover columns, and rows longer than one
# piece of x widened ahead (EDGERNN_SSE_PIECE = 512), which the SSE2 path also rescales per piece.
HOST_SHAPES = [*SHAPES, (24, 8), (601, 5)]
QEMU_HINT = "`make system-deps` (apt-get install qemu-user) installs it"
# Armv6-M: every count of rows the eight-row blocks leave over (0, 4, 7, 1, 6, 5: after one or more
# blocks, or with no block), of columns its four-column steps leave over (1, 2, 3, 0), and a
# one-column W_ih (I = 1: edgernn_column_v6m) with an even and an odd row count.
V6M_SHAPES = [(1, 8), (2, 12), (3, 15), (4, 17), (7, 22), (6, 5), (1, 13)]


def _model_and_inputs(inp: int, hidden: int, seed: int) -> tuple:
    qm = make_qm("many-to-many", inp, hidden, layers=2, seed=seed, scale=2.0)
    rng = np.random.default_rng(seed)
    x = random_inputs(qm, rng, batch=3, steps=9)
    return qm, x, np.array([9, 1, 6]), rng


def _cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    m = re.search(r"^flags\s*:(.*)$", text, re.MULTILINE)
    return set(m.group(1).split()) if m else set()


HOST_VARIANTS = {
    "sse2": ((), None),
    "sse4.1": (("-msse4.1",), "sse4_1"),
    "avx2": (("-mavx2",), "avx2"),
    "portable": (("-DEDGERNN_NO_SIMD",), None),
}


@pytest.mark.parametrize("variant", list(HOST_VARIANTS))
def test_host_simd_paths_are_bit_exact(tmp_path: Path, variant: str) -> None:
    flags, cpu_flag = HOST_VARIANTS[variant]
    if variant != "portable" and not re.match(r"x86_64|amd64", __import__("platform").machine().lower()):
        pytest.skip("the SSE/AVX2 paths are x86-64's")
    if cpu_flag is not None and cpu_flag not in _cpu_flags():
        pytest.skip(f"this CPU has no {cpu_flag}")
    for i, (inp, hidden) in enumerate(HOST_SHAPES):
        qm, x, lengths, rng = _model_and_inputs(inp, hidden, i)
        header = write_header(qm, tmp_path / f"m{i}.h", "m")
        cm = compile_model(header, "m", tmp_path, extra_flags=flags)
        assert_same_as_reference(qm, cm, x, lengths)
        assert_same_as_reference(qm, cm, x, lengths, random_h0(qm, rng, 3))


def _zig_linux_programs(
    tmp_path: Path, zig: list[str], flags: list[str], sources: list[Path]
) -> Iterator[tuple[tuple[int, int], Path]]:
    """The MCU harness with each of SHAPES' models, built by `zig` (zig cc and its target) as a
    static Linux program for qemu user mode: yields ((input, hidden), program)."""
    src = c_runtime_dir() / "mcu"
    for i, (inp, hidden) in enumerate(SHAPES):
        qm, x, lengths, _ = _model_and_inputs(inp, hidden, i)
        work = tmp_path / f"m{i}"
        work.mkdir()
        header = write_header(qm, work / "model.h", "m")
        vectors = build_vectors(qm, x, lengths)
        (work / "vectors.h").write_text(vectors.text)
        exe = work / "check"
        defines = [
            f'-DEDGERNN_MODEL_HEADER="{header}"',
            "-DEDGERNN_MODEL=m_model",
            f"-DMCU_SCRATCH_WORDS={vectors.macros['MCU_SCRATCH_WORDS']}",
            "-DMCU_BIDIRECTIONAL=0",
        ]
        harness = [str(src / "model_unit.c"), str(src / "harness.c"), *map(str, sources)]
        includes = [f"-I{work}", f"-I{src}"]
        command = [*zig, "-Wall", "-Wextra", "-Werror", "-static", *flags, *defines, *includes, *harness]
        subprocess.run([*command, "-o", str(exe)], check=True, capture_output=True, timeout=900)
        yield (inp, hidden), exe


def test_neon_path_is_bit_exact_under_qemu_aarch64(tmp_path: Path) -> None:
    """zig cc -target aarch64-linux-musl builds the MCU harness as a static Linux program (its
    hosted main, MCU_SEMIHOST) with the NEON kernels; qemu-aarch64 runs it."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig missing; pip install -e '.[mcu]' installs it")
    if shutil.which("qemu-aarch64") is None:
        pytest.skip(f"qemu-aarch64 (user mode) missing; {QEMU_HINT}")
    zig = [sys.executable, "-m", "ziglang", "cc", "-target", "aarch64-linux-musl", "-O2", "-std=c99"]
    for shape, exe in _zig_linux_programs(tmp_path, zig, ["-DMCU_SEMIHOST=1"], []):
        run = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True, timeout=120)
        assert "mismatches=0 " in run.stdout and run.returncode == 0, (shape, run.stdout, run.stderr)


# _start for a freestanding build run under qemu user mode: no libc to build for a big-endian
# core, the mismatch count (capped below the shell's 126) as the exit status.
LINUX_USER_START = """#include <stdint.h>
#include "vectors.h"
int32_t mcu_check(int32_t first, int32_t count);
__attribute__((noreturn, used)) void _start(void)
{
    int32_t m = mcu_check(0, MCU_NUM_SEQS);
#if defined(__aarch64__)
    register int64_t x0 __asm__("x0") = m > 125 ? 125 : m;
    __asm__ volatile("mov x8, #93\\n\\tsvc #0" : : "r"(x0) : "x8", "memory"); /* exit(x0) */
#else
    register int32_t r0 __asm__("r0") = m > 125 ? 125 : m;
    __asm__ volatile("movs r7, #1\\n\\tsvc #0" : : "r"(r0) : "memory"); /* exit(r0) */
#endif
    for (;;) {
    }
}
"""


QEMU_USER = {"thumbeb": "qemu-armeb", "thumb": "qemu-arm", "aarch64_be": "qemu-aarch64_be"}  # by zig's arch


@pytest.mark.parametrize(
    ("target", "cpu", "path"),
    [
        ("thumbeb-freestanding-eabi", "cortex_m4", "!EDGERNN_DSP"),  # the DSP kernels step aside
        ("thumbeb-freestanding-eabi", "cortex_m0plus", "EDGERNN_V6M_ASM"),  # byte loads: either order
        ("thumb-freestanding-eabi", "cortex_m4", "EDGERNN_DSP"),  # the same build little-endian
        ("aarch64_be-freestanding-none", "generic", "EDGERNN_SIMD == 2"),  # NEON loads elements
    ],
)
def test_big_endian_builds_are_bit_exact(tmp_path: Path, target: str, cpu: str, path: str) -> None:
    """A big-endian build gives the reference's integers. The Cortex-M DSP kernels load four int8
    weights as one word and take byte k as lane k; on a big-endian (BE8) core that reversed the
    lanes against the weights' layout, and every shape here mismatched (exit 125) until
    EDGERNN_DSP required little-endian. qemu-armeb / qemu-aarch64_be user mode runs the code;
    `path` is the kernel path the header must pick there."""
    if importlib.util.find_spec("ziglang") is None:
        pytest.skip("zig missing; pip install -e '.[mcu]' installs it")
    qemu = QEMU_USER[target.split("-")[0]]
    if shutil.which(qemu) is None:
        pytest.skip(f"{qemu} (user mode) missing; {QEMU_HINT}")
    zig = [sys.executable, "-m", "ziglang", "cc", "-target", target, f"-mcpu={cpu}", "-O2", "-std=c99"]
    probe = tmp_path / "probe.c"
    write_header(_model_and_inputs(*SHAPES[0], 0)[0], tmp_path / "model.h", "m")
    probe.write_text(f'#include "model.h"\n#if !({path})\n#error kernel path\n#endif\n')
    built = subprocess.run([*zig, "-c", str(probe), "-o", str(tmp_path / "probe.o")], capture_output=True)
    assert built.returncode == 0, f"not {path} on {target} {cpu}"
    start = tmp_path / "start.c"
    start.write_text(LINUX_USER_START)
    flags = ["-nostdlib", "-ffreestanding", "-DMCU_SEMIHOST=0"]
    for shape, exe in _zig_linux_programs(tmp_path, zig, flags, [start]):
        run = subprocess.run([qemu, str(exe)], capture_output=True, text=True, timeout=120)
        mismatches = f"{run.returncode} mismatches (125: or more)"
        assert run.returncode == 0, (target, cpu, shape, mismatches, run.stderr)


def _tools_for(target: str) -> None:
    _zig_path()
    if target == "avr":
        for exe in ("avr-gcc", "simavr"):
            if shutil.which(exe) is None:
                pytest.skip(f"AVR path: {exe} missing; `make mcu-tools` installs it")


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33", "cortex-m0plus", "riscv32imc", "avr"])
def test_mcu_kernel_paths_are_bit_exact(tmp_path: Path, target: str) -> None:
    _tools_for(target)
    compiler = "gcc" if target == "avr" else "zig"
    shapes = SHAPES if target != "avr" else [(1, 4), (3, 13), (5, 7)]  # AVR: one image a shape, slow
    for i, (inp, hidden) in enumerate(shapes):
        qm, x, lengths, _ = _model_and_inputs(inp, hidden, i)
        header = write_header(qm, tmp_path / f"m{i}" / "model.h", "m")
        results = check_header(header, qm, x, lengths, (target,), (compiler,), "auto", bench_sequences=1)
        if target == "avr":  # libgcc's 64-bit helpers are expected there (c_runtime/mcu/README.md)
            (r,) = results
            assert r.mismatches == 0, (inp, hidden, r.first_mismatch)
            assert all(_avr_helper(name) for name in r.undefined), r.undefined
        else:
            _assert_exact(results, f"{target} I={inp} H={hidden}")


def test_m0plus_wide_requantization_is_bit_exact(tmp_path: Path) -> None:
    """The Armv6-M 64-bit requantization, for cells whose bounds do not allow the 32-bit one
    (narrow = 0: a shift below 21, or accumulators too large): forced here by clearing the flag
    that the generator set, on the same shapes as the other kernel paths."""
    _tools_for("cortex-m0plus")
    for i, (inp, hidden) in enumerate(SHAPES):
        qm, x, lengths, _ = _model_and_inputs(inp, hidden, i)
        assert all(narrow_requant(c) for c in qm.cells)  # else the narrow path goes untested above
        header = write_header(qm, tmp_path / f"m{i}" / "model.h", "m")
        text = header.read_text(encoding="utf-8")
        wide = re.sub(r", 1\},\n", ", 0},\n", text)
        # a streamed cell has a descriptor for the DSP cores and one for the others
        assert wide.count(", 0},\n") == sum(2 if dsp_stream_cell(c) else 1 for c in qm.cells)
        header.write_text(wide, encoding="utf-8")
        results = check_header(
            header, qm, x, lengths, ("cortex-m0plus",), ("zig",), "auto", bench_sequences=1
        )
        _assert_exact(results, f"cortex-m0plus wide requantization I={inp} H={hidden}")


def _tools_for_compiler(target: str, compiler: str) -> None:
    if target == "riscv32imc" and compiler == "gcc":
        _gcc_riscv_path()
        return
    _tools_for(target)
    if compiler == "gcc" and shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc missing; `make mcu-tools` installs it")


# Kernels the zig runs above do not cover alone:
# - the RV32 matvec (edgernn_blocks_rv32: four-row passes, eight-column steps, a jump into the last
#   cols % 8 columns) as riscv64-unknown-elf-gcc schedules it, on the same shapes (the image also
#   boots on QEMU virt, whose mismatch count must agree);
# - the Armv6-M matvec (edgernn_dot8_passes_v6m over the v6m_order tables, the rows left over by
#   the four-row and smaller passes, a one-column matrix by edgernn_column_v6m) on every leftover
#   row and column count, for W_ih, W_hh and the head (9 classes: one block and a row), with both
#   compilers' assemblers.
COMPILER_CASES = [
    ("riscv32imc", "gcc", SHAPES),
    ("cortex-m0plus", "zig", V6M_SHAPES),
    ("cortex-m0plus", "gcc", V6M_SHAPES),
]


@pytest.mark.parametrize(("target", "compiler", "shapes"), COMPILER_CASES)
def test_kernel_paths_are_bit_exact_per_compiler(
    tmp_path: Path, target: str, compiler: str, shapes: list[tuple[int, int]]
) -> None:
    _tools_for_compiler(target, compiler)
    for i, (inp, hidden) in enumerate(shapes):
        qm, x, lengths, _ = _model_and_inputs(inp, hidden, i)
        header = write_header(qm, tmp_path / f"m{i}" / "model.h", "m")
        results = check_header(header, qm, x, lengths, (target,), (compiler,), "auto", bench_sequences=1)
        _assert_exact(results, f"{target} {compiler} I={inp} H={hidden}")


def test_v6m_order_is_blocks_of_eight_rows_by_column_offset_by_128() -> None:
    w = np.random.default_rng(0).integers(-127, 128, size=(19, 5)).astype(np.int8)
    v = v6m_order(w)
    assert v.shape == w.shape and v.dtype == np.int8
    flat = v.ravel()
    for b in range(2):  # byte 8 c + r of block b is row 8 b + r, column c, as w + 128 (uint8)
        block = flat[b * 40 : (b + 1) * 40].view(np.uint8).astype(np.int16) - 128
        assert (w[8 * b : 8 * b + 8] == block.reshape(5, 8).T).all()
    assert (flat[80:] == w[16:].ravel()).all()  # the last rows % 8 rows: row-major, signed
    assert (v6m_order(w[:7]) == w[:7]).all()  # no whole block: unchanged
    assert (v6m_order(w[:, :1]) == w[:, :1]).all()  # one column: unchanged (edgernn_column_v6m)


def test_narrow_requant_refuses_what_int32_cannot_hold() -> None:
    qm, _, _, _ = _model_and_inputs(12, 32, 0)
    cell = qm.cells[0]
    assert narrow_requant(cell)
    assert not narrow_requant(replace(cell, shift=20))  # 2^(n-1) is no multiple of 2^20
    big = replace(cell, bias=np.full_like(cell.bias, 2**21))  # |acc_x| + |acc_h| >= 2^21
    assert not narrow_requant(big)


# Each kernel's instructions-per-MAC ceiling at every swept input size with H = 32, zig (the zig and
# Unicorn wheels are pinned, so the counts are deterministic):
# - Cortex-M4, DSP: issue 14's <= 2.3 at every swept shape with H >= 32;
# - RV32IMC: 3.97-4.59 measured with the four-row, eight-column kernel; the two-row C loop took 7.2-7.9;
# - Cortex-M0+: 4.21-5.05 measured with the eight-row blocks; four-row passes took 4.43-5.45.
CEILINGS = [("cortex-m4", "dsp", 2.3), ("riscv32imc", "plain", 4.7), ("cortex-m0plus", "plain", 5.1)]


@pytest.mark.parametrize(("target", "kernel", "ceiling"), CEILINGS)
def test_insns_per_mac_ceiling_at_the_swept_input_sizes(
    tmp_path: Path, target: str, kernel: str, ceiling: float
) -> None:
    _zig_path()
    for inp in (1, 3, 6, 12, 40):
        qm = make_qm("many-to-one", inp, 32, seed=inp)
        x = random_inputs(qm, np.random.default_rng(inp), batch=2, steps=5)
        header = write_header(qm, tmp_path / f"i{inp}" / "model.h", "m")
        (r,) = check_header(header, qm, x, np.array([5, 5]), (target,), ("zig",), "auto")
        assert r.mismatches == 0 and r.kernel == kernel
        assert r.insns_per_mac <= ceiling, (inp, r.insns_per_mac)


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33"])
def test_dsp_cells_in_and_out_of_the_stream_are_bit_exact(tmp_path: Path, target: str) -> None:
    """The DSP cores run a feature cell stored as one stream (tables.dsp_stream_cell) through the
    fused kernel, and every other cell -- a token cell, a shift below 33 -- through the separate
    passes over the dsp_order tables; a bidirectional model's run also copies each new state into
    its buffer. Each on the leftover-row and -column shapes."""
    _zig_path()
    for i, (inp, hidden) in enumerate([(1, 4), (3, 13), (5, 7), (17, 33)]):
        feature, _, _, _ = _model_and_inputs(inp, hidden, i)
        models = {
            "shift 32": with_shift(feature, 32),
            "tokens": make_qm("many-to-many", inp, hidden, layers=2, vocab=11, seed=i),
            "bidirectional": make_qm("many-to-one", inp, hidden, layers=2, bi=True, seed=i),
        }
        streamed = {name: [dsp_stream_cell(c) for c in qm.cells] for name, qm in models.items()}
        assert not any(streamed["shift 32"]) and not streamed["tokens"][0] and all(streamed["bidirectional"])
        for name, qm in models.items():
            rng = np.random.default_rng(i)
            x = random_inputs(qm, rng, batch=3, steps=9)
            header = write_header(qm, tmp_path / f"m{i}_{name.replace(' ', '_')}" / "model.h", "m")
            results = check_header(
                header, qm, x, np.array([9, 1, 6]), (target,), ("zig",), "auto", bench_sequences=1
            )
            _assert_exact(results, f"{target} {name} I={inp} H={hidden}")
