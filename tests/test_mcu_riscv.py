"""Issue 13, item 2: the generated C on RISC-V RV32IMC (ESP32-C3 class), bit-exact, and nothing in
the image that an RV32IMC core lacks.

Two paths (c_runtime/mcu/README.md, edgernn/targets/riscv.py): zig cc + Unicorn (pip only, always
run) and riscv64-unknown-elf-gcc + picolibc, booted on `qemu-system-riscv32 -M virt` and also run
in Unicorn (`make mcu-tools`; skipped, saying so, when the tools are missing). Neither emulator
enforces RV32IMC, so the target reads every image's disassembly first; the last tests show that
check refusing A, F/D and Zb* code.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import padded_batch
from test_mcu import _assert_exact, _bidirectional_model, _zig_path

from edgernn.backends.c.codegen import write_header
from edgernn.contract.model import QuantizedModel
from edgernn.errors import CheckFailed
from edgernn.synthetic import random_quantized, small_config
from edgernn.targets import TARGETS, default_targets, get
from edgernn.targets.check import check_dir, check_header
from edgernn.targets.elf import Elf
from edgernn.targets.riscv import RiscV32, isa_violations
from edgernn.targets.toolchain import mcu_source_dir, toolchain

TARGET = "riscv32imc"
MAKE_HINT = (
    "`make mcu-tools` installs them (gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc)"
)


def _gcc_path() -> None:
    _zig_path()  # the gcc image is also run in Unicorn, for its instruction counts
    for exe in ("riscv64-unknown-elf-gcc", "qemu-system-riscv32"):
        if shutil.which(exe) is None:
            pytest.skip(f"classic path (gcc + picolibc + QEMU virt): {exe} missing; {MAKE_HINT}")
    if not Path("/usr/lib/picolibc/riscv64-unknown-elf/picolibc.specs").exists():
        pytest.skip(f"classic path (gcc + picolibc + QEMU virt): picolibc missing; {MAKE_HINT}")


def _bidirectional_token_model() -> tuple[QuantizedModel, np.ndarray, np.ndarray]:
    """A random 2-layer bidirectional token model (embedding in, a logit per step out), and token
    sequences: random, plus one holding every id of the vocabulary."""
    cfg = small_config("many-to-many", 8, 16, layers=2, bi=True, classes=5, vocab=23)
    _, qm = random_quantized(cfg, seed=2, scale=2.0)
    x, lengths = padded_batch(cfg, [1, 3, 8, 17, 26], seed=4)
    every = np.zeros((1, x.shape[1]), dtype=x.dtype)
    every[0, : cfg.vocab_size] = np.arange(cfg.vocab_size)
    return qm, np.concatenate([x, every]), np.concatenate([lengths, [cfg.vocab_size]])


@pytest.fixture(scope="module", params=["features", "tokens"])
def bi_header(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """2-layer bidirectional models: int8 feature input (test_mcu's) and token input."""
    qm, x, lengths = _bidirectional_model() if request.param == "features" else _bidirectional_token_model()
    assert qm.config.num_layers == 2 and qm.config.bidirectional
    out = tmp_path_factory.mktemp(f"mcu_rv_bi_{request.param}")
    return write_header(qm, out / "model.h", "bi"), qm, x, lengths


def test_riscv32imc_is_registered_but_not_a_default():
    tgt = get(TARGET)
    assert set(tgt.compilers) == {"zig", "gcc"}
    assert tgt.plain_defines == ()  # one kernel path (EDGERNN_RV32), as on Armv6-M: one build
    assert tgt.board is not None and tgt.board.qemu == "qemu-system-riscv32" and tgt.board.machine == "virt"
    assert TARGET not in default_targets()


def test_default_model_bit_exact_on_riscv32imc_zig_unicorn(jv_export):
    """Path: zig cc + Unicorn. The japanese_vowels model over its whole test split."""
    _zig_path()
    results = check_dir(jv_export, (TARGET,), ("zig",))
    _assert_exact(results, "zig+unicorn")
    (r,) = results
    assert (r.target, r.kernel, r.emulator, r.sequences) == (TARGET, "plain", "unicorn", 370)
    # Deterministic (pinned zig and Unicorn): a ceiling a little above what was measured
    # (4.40 instructions per MAC, 4,698 B flash for the reference export with the RV32 kernel,
    # edgernn_blocks_rv32; 7.56 and 3,742 B with the two-row C loop, 2026-12).
    assert r.insns_per_mac <= 4.5
    assert r.code_bytes <= 2048
    assert r.ram_bytes == r.state_bytes + r.stack_bytes


def test_bidirectional_two_layers_bit_exact_on_riscv32imc_zig_unicorn(bi_header):
    """Path: zig cc + Unicorn. 2 layers, both directions, random and saturating inputs."""
    _zig_path()
    header, qm, x, lengths = bi_header
    results = check_header(header, qm, x, lengths, (TARGET,), ("zig",), "both")
    _assert_exact(results, "zig+unicorn")
    assert [(r.target, r.kernel) for r in results] == [(TARGET, "plain")]
    assert results[0].run_buf_bytes > 0


def test_small_shifts_take_the_general_requantization_path_on_riscv32imc_zig_unicorn(tmp_path):
    """Path: zig cc + Unicorn. Shifts n <= 32: the 64-bit requantization, on RV32 (mulh), with no
    compiler-runtime helper."""
    _zig_path()
    qm, x, lengths = _bidirectional_model(scale=100.0)
    assert min(c.shift for c in qm.cells) <= 32
    header = write_header(qm, tmp_path / "model.h", "big")
    _assert_exact(check_header(header, qm, x, lengths, (TARGET,), ("zig",)), "zig+unicorn")


@pytest.mark.slow
def test_default_model_bit_exact_on_qemu_virt_gcc_picolibc(jv_export):
    """Path: riscv64-unknown-elf-gcc -march=rv32imc + picolibc, booted on QEMU virt; the board's
    own check must agree with Unicorn's on the same image (measure() raises otherwise)."""
    _gcc_path()
    results = check_dir(jv_export, (TARGET,), ("gcc",))
    _assert_exact(results, "gcc+qemu")
    (r,) = results
    assert r.emulator == "unicorn+qemu virt" and r.sequences == 370


@pytest.mark.slow
def test_bidirectional_two_layers_bit_exact_on_qemu_virt_gcc_picolibc(bi_header):
    """Path: riscv64-unknown-elf-gcc + picolibc + QEMU virt, the 2-layer bidirectional model."""
    _gcc_path()
    header, qm, x, lengths = bi_header
    results = check_header(header, qm, x, lengths, (TARGET,), ("gcc",))
    _assert_exact(results, "gcc+qemu")
    assert results[0].emulator == "unicorn+qemu virt"


# --- the ISA check ---------------------------------------------------------------------------------
# Encodings from riscv64-unknown-elf-as (binutils 2.40), little-endian as they sit in an image.
RV32IMC = {
    "addi a0, a0, 1": "13051500",
    "mul a0, a1, a2": "3385c502",
    "mulh a0, a1, a2": "3395c502",
    "div a0, a1, a2": "33c5c502",
    "csrr a0, mstatus": "73250030",  # Zicsr: crt0's, allowed (every machine-mode core has it)
    "fence.i": "0f100000",
    "ebreak": "73001000",
    "c.addi a0, 1": "0505",
    "c.lw a0, 0(a1)": "8841",
    "c.mv a0, a1": "2e85",
}
NOT_RV32IMC = {  # what the error must say: (mnemonic, extension)
    "2f25b600": ("amoadd.w", "A extension"),
    "2fa50510": ("lr.w", "A extension"),
    "07250500": ("flw", "F extension"),
    "53f5c500": ("fadd.s", "F extension"),
    "07350500": ("fld", "D extension"),
    "33f5c540": ("andn", "Zbb extension"),
    "13950560": ("clz", "Zbb extension"),
    "33a5c520": ("sh1add", "Zba extension"),
    "3375f50a": ("maxu", "Zbb extension"),
    "8861": ("c.flw", "F extension"),  # compressed float loads and stores
    "8821": ("c.fld", "D extension"),
    "2aa0": ("c.fsdsp", "D extension"),
}


def test_the_isa_check_accepts_rv32imc_and_names_what_is_not():
    """Unit: capstone decodes; A/F/D (compressed forms too) and the Zb* extensions, which capstone
    does not decode, are named with their extension; c.unimp padding (0x0000) is not code."""
    _zig_path()
    code = bytes.fromhex("".join(RV32IMC.values())) + b"\0\0"
    assert isa_violations(code, 0x8000_0000) == []
    for raw, (mnemonic, ext) in NOT_RV32IMC.items():
        found = isa_violations(bytes.fromhex("0100" + raw + "0100"), 0x100, "f")  # between two c.nop
        assert len(found) == 1, (raw, found)
        assert found[0].address == 0x102 and found[0].function == "f"
        assert found[0].text.startswith(mnemonic + " ") and ext in found[0].why, (raw, str(found[0]))


def test_a_model_built_with_zbb_and_zba_is_refused_naming_the_instruction(bi_header, monkeypatch):
    """Path: zig cc + Unicorn. The same model for a core that has Zba/Zbb (an -mcpu a user might
    copy from an ESP32-C6 or newer part): Unicorn would run it, so the check must fail the run."""
    _zig_path()
    monkeypatch.setitem(
        TARGETS,
        "rv32-zbb",
        RiscV32("rv32-zbb", "generic_rv32+m+c+zba+zbb", "rv32imc", "ilp32", "UC_CPU_RISCV32_SIFIVE_E31"),
    )
    header, qm, x, lengths = bi_header
    with pytest.raises(CheckFailed, match=r"RV32IMC core does not have: .*\(the Zb[ab] extension\)") as e:
        check_header(header, qm, x, lengths, ("rv32-zbb",), ("zig",))
    assert e.value.exit_code == 1


def test_an_image_with_atomics_and_float_is_refused_before_it_runs(tmp_path, monkeypatch):
    """Path: zig cc. The whole image is read, not only the model: a harness-side function using
    the A and F extensions (built for an RV32IMAFC core) makes the emulator refuse the image,
    naming the instruction and its function."""
    _zig_path()
    src = tmp_path / "foreign.c"
    src.write_text(
        "#include <stdint.h>\n"
        "volatile float mcu_f = 1.5f;\n"
        "volatile int32_t mcu_n;\n"
        "int32_t mcu_check(int32_t a, int32_t b) {\n"
        "    __atomic_fetch_add(&mcu_n, a, __ATOMIC_SEQ_CST);\n"
        "    mcu_f = mcu_f * (float)b;\n"
        "    return mcu_n;\n"
        "}\n"
        "uint32_t mcu_stack_probe(void) { return 0; }\n"
    )
    rv32imafc = RiscV32(
        "rv32imafc", "generic_rv32+m+a+f+c", "rv32imafc", "ilp32", "UC_CPU_RISCV32_SIFIVE_E31"
    )
    tc = toolchain("zig", rv32imafc)
    obj = tc.compile(src, tmp_path / "foreign.o", [], [mcu_source_dir()])
    image = Elf.read(tc.link([obj], tmp_path / "foreign.elf", needs_runtime=False))
    with pytest.raises(CheckFailed, match=r"amoadd\.w\S* .* in mcu_check \(the A extension") as e:
        get(TARGET).emulator(image)
    assert "fmul.s" in str(e.value) and "(the F extension" in str(e.value)
