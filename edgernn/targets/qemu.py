"""The whole-board check: boot a gcc + picolibc image on a QEMU MPS2 board with semihosting.

picolibc's crt0 starts at the reset vector, copies .data, clears .bss and calls main (harness.c),
which prints one summary line over semihosting and returns the mismatch count; QEMU exits with
main's return value. Cortex-M0+ has no QEMU board: its ARMv6-M image runs on the Cortex-M3 board
(AN385), whose instruction set contains ARMv6-M's (Unicorn's M0 model enforces ARMv6-M itself).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgernn.targets.toolchain import Target, ToolMissing
from edgernn.targets.unicorn_emu import EmulatorFault

QEMU = "qemu-system-arm"
QEMU_TIMEOUT = 120  # s
_SUMMARY = re.compile(
    r"edgernn-mcu sequences=(\d+) mismatches=(\d+) stack=(\d+) first=(-?\d+),(-?\d+),(-?\d+),(-?\d+)"
)


@dataclass(frozen=True)
class BoardRun:
    machine: str
    exit_status: int
    sequences: int
    mismatches: int
    stack_bytes: int
    first_mismatch: tuple[int, int, int, int]  # kind, sequence, step, index (harness.c)


def run_on_board(elf: Path, target: Target) -> BoardRun:
    if shutil.which(QEMU) is None:
        raise ToolMissing(f"{QEMU} is not installed: `make mcu-tools` installs it (with arm-none-eabi-gcc)")
    cmd = [
        QEMU,
        "-M",
        target.qemu_machine,
        "-nographic",
        "-monitor",
        "none",
        "-serial",
        "none",
        "-semihosting-config",
        "enable=on,target=native",
        "-kernel",
        str(elf),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise EmulatorFault(
            f"{elf} did not finish on QEMU {target.qemu_machine} in {QEMU_TIMEOUT} s"
        ) from None
    m = _SUMMARY.search(proc.stdout + proc.stderr)  # QEMU's semihosting console may use either
    if m is None:
        raise EmulatorFault(
            f"{elf} on QEMU {target.qemu_machine} printed no summary (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    seqs, mismatches, stack, *first = (int(g) for g in m.groups())
    if proc.returncode != min(mismatches, 125):
        raise EmulatorFault(
            f"QEMU exit status {proc.returncode} does not match main's {mismatches} mismatches"
        )
    return BoardRun(target.qemu_machine, proc.returncode, seqs, mismatches, stack, tuple(first))  # type: ignore[arg-type]
