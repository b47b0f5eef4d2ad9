"""The whole-board check: boot a C-runtime (gcc + picolibc) image on the target's QEMU board.

picolibc's crt0 starts at the reset vector, copies .data, clears .bss and calls main (harness.c),
which prints one summary line over semihosting and returns the mismatch count; QEMU exits with
main's return value. Which QEMU and which board is the target's (edgernn.targets.base.Board).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgernn.targets.base import Board
from edgernn.targets.toolchain import ToolMissing
from edgernn.targets.unicorn_emu import EmulatorFault

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


def run_on_board(elf: Path, board: Board) -> BoardRun:
    if shutil.which(board.qemu) is None:
        raise ToolMissing(f"{board.qemu} is not installed: {board.install}")
    cmd = [
        board.qemu,
        "-M",
        board.machine,
        *board.args,
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
    # Not build.run_tool: QEMU's exit status is main's mismatch count, a result rather than a failure.
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=QEMU_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise EmulatorFault(f"{elf} did not finish on QEMU {board.machine} in {QEMU_TIMEOUT} s") from None
    m = _SUMMARY.search(proc.stdout + proc.stderr)  # QEMU's semihosting console may use either
    if m is None:
        raise EmulatorFault(
            f"{elf} on QEMU {board.machine} printed no summary (exit {proc.returncode}):\n"
            f"{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    seqs, mismatches, stack, k, s, t, i = (int(g) for g in m.groups())
    if proc.returncode != min(mismatches, 125):
        raise EmulatorFault(
            f"QEMU exit status {proc.returncode} does not match main's {mismatches} mismatches"
        )
    return BoardRun(board.machine, proc.returncode, seqs, mismatches, stack, (k, s, t, i))
