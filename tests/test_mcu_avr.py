"""Issue 13, item 1: the generated model.h on an Arduino Uno's ATmega328P (8-bit AVR, 16-bit int,
32 KB flash, 2 KB RAM), built with avr-gcc + avr-libc and run on simavr, cycle-accurate.

The tables are in flash (EDGERNN_FLASH = PROGMEM, read through EDGERNN_READ_*); the image checks
and times itself and prints its summary on the UART (edgernn.targets.avr). The test split does
not fit the flash with the model, so it is checked in several images: every sequence still is.
Needs `make mcu-tools` (apt: gcc-avr avr-libc simavr); skipped otherwise.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import padded_batch, random_model

from edgernn.backends.c.codegen import write_header
from edgernn.config import ModelConfig, Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_model
from edgernn.targets import TARGETS
from edgernn.targets.avr import DoesNotFit, libgcc_bytes
from edgernn.targets.check import McuResult, check_dir, check_header, table_row

UNO_FLASH, UNO_RAM = 32_256, 2048
# What the model may take from libgcc on AVR: the 64-bit arithmetic of the requantization
# (multiply, add, shifts; the general path for shifts n <= 32 also subtracts and compares in 64
# bits), and 16/32-bit multiplies.
AVR_HELPERS = {"__mulhisi3", "__umulhisi3", "__mulsi3"}


def _avr_helper(name: str) -> bool:
    return name in AVR_HELPERS or (name.startswith("__") and name.endswith(("di3", "di2")))


def _avr_tools() -> None:
    for exe in ("avr-gcc", "simavr"):
        if shutil.which(exe) is None:
            pytest.skip(
                f"AVR path (avr-gcc + avr-libc + simavr): {exe} missing; `make mcu-tools` installs it"
            )
    if not Path("/usr/lib/avr/include/avr/pgmspace.h").exists():
        pytest.skip("AVR path: avr-libc missing; `make mcu-tools` installs it")


def _assert_exact(r: McuResult, cells: int) -> None:
    where = f"avr: first mismatch {r.first_mismatch}, image {r.elf}"
    assert r.mismatches == 0, where
    assert r.target == "avr" and r.compiler.startswith("avr-gcc")
    assert all(_avr_helper(n) for n in r.undefined), r.undefined
    # The cell descriptors stay plain `static const` (RAM on AVR, 24 B a cell) where the compiler
    # cannot fold them away (a loop over several cells); the tables never are in RAM.
    assert r.static_ram_bytes <= 24 * cells, f"{r.static_ram_bytes} B of the model in RAM"
    assert r.flash_bytes == r.code_bytes + r.table_bytes + r.helper_bytes
    assert r.ram_bytes == r.static_ram_bytes + r.state_bytes + r.stack_bytes
    assert r.cycles_per_step is not None and r.cycles_per_step > r.macs_per_step
    assert r.us_per_step_16mhz == pytest.approx(r.cycles_per_step / 16)
    assert r.insns_per_step == 0.0  # simavr counts cycles, not instructions
    assert "cycles/step" in table_row(r)
    assert {"cycles_per_step", "us_per_step_16mhz", "images"} <= set(r.to_json())


def _token_bidirectional_model() -> tuple[QuantizedModel, np.ndarray, np.ndarray]:
    """2 layers, both directions, token input, an output per step; token ids 0 and vocab - 1 too."""
    cfg = ModelConfig(
        Task.MANY_TO_MANY, 8, 16, 5, num_layers=2, bidirectional=True, vocab_size=20, embed_dim=8
    )
    model = random_model(cfg, seed=1)
    calib, calib_len = padded_batch(cfg, [5, 9, 13], seed=0)
    qm = quantize_model(model, calib, calib_len)
    x, lengths = padded_batch(cfg, [1, 2, 7, 13, 12, 5, 9, 3], seed=3)
    x[2, :3] = [0, cfg.vocab_size - 1, 0]
    return qm, x, lengths


def test_avr_is_registered_with_gcc_only() -> None:
    avr = TARGETS["avr"]
    assert set(avr.compilers) == {"gcc"} and avr.board is None and avr.plain_defines == ()
    assert avr.memory.flash_size == UNO_FLASH and avr.memory.ram_size == UNO_RAM


def test_libgcc_bytes_reads_the_linker_map() -> None:
    link_map = (
        " .text.libgcc.mul\n"
        "                0x000000000000126c       0x1e /usr/lib/gcc/avr/5.4.0/avr5/libgcc.a(_mulsidi3.o)\n"
        " .text.libgcc   0x000000000000131c       0x12 /usr/lib/gcc/avr/5.4.0/avr5/libgcc.a(_adddi3.o)\n"
        " .fini9         0x0000000000001340        0x0 /usr/lib/gcc/avr/5.4.0/avr5/libgcc.a(_exit.o)\n"
        " .text          0x0000000000000100       0x40 model_unit.o\n"
    )
    assert libgcc_bytes(link_map) == 0x1E + 0x12


def test_default_model_bit_exact_on_the_uno(jv_export: Path) -> None:
    """Every test sequence of japanese_vowels, in as many images as the Uno's flash needs."""
    _avr_tools()
    (r,) = check_dir(jv_export, ("avr",), ("gcc", "zig"))  # zig has no AVR target: skipped
    _assert_exact(r, 1)
    assert r.static_ram_bytes == 0  # one cell: folded into the code
    assert r.sequences == 370 and r.images > 1
    assert r.flash_bytes < UNO_FLASH // 4 and r.ram_bytes < UNO_RAM // 4  # it fits, with room
    assert r.table_bytes > 1024  # the weights and the LUT are in flash (.progmem.data)


def test_bidirectional_two_layer_token_model_bit_exact_on_the_uno(tmp_path: Path) -> None:
    _avr_tools()
    qm, x, lengths = _token_bidirectional_model()
    header = write_header(qm, tmp_path / "model.h", "tok")
    (r,) = check_header(header, qm, x, lengths, ("avr",), ("gcc",), workdir=tmp_path / "mcu")
    _assert_exact(r, 4)
    assert r.sequences == len(lengths) and r.run_buf_bytes == 13 * 2 * 2 * 16


def test_a_model_larger_than_the_flash_is_a_clear_does_not_fit(tmp_path: Path) -> None:
    """160 hidden units: W_hh alone is 25.6 KB and W_ih 10 KB, more than the Uno's 31.5 KB."""
    _avr_tools()
    cfg = ModelConfig(Task.MANY_TO_ONE, 64, 160, 4)
    model = random_model(cfg, seed=2)
    calib, calib_len = padded_batch(cfg, [4, 6], seed=0)
    qm = quantize_model(model, calib, calib_len)
    header = write_header(qm, tmp_path / "model.h", "big")
    x = np.zeros((1, 3, 64), dtype=np.int8)
    with pytest.raises(DoesNotFit, match=r"does not fit the atmega328p .* avr-ld: .*overflowed by \d+ bytes"):
        check_header(header, qm, x, np.array([3]), ("avr",), ("gcc",), workdir=tmp_path / "mcu")
