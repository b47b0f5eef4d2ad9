"""Run an AVR image on simavr from reset and read the summary it prints on its UART.

simavr (Debian's `simavr` package, 1.6) is a cycle-accurate AVR simulator with no call API like
Unicorn's and, in Debian's build, no instruction trace (`-t` prints nothing: the package is built
without CONFIG_SIMAVR_TRACE). What it offers from the command line: load an ELF, run it from
reset at a given clock, show what the firmware writes to USART0 (on stderr, in colour, one line
at a time), and stop when the core sleeps with interrupts off. So the image checks itself and
times itself (c_runtime/mcu/avr_board.c prints one `edgernn-mcu-avr ...` line, then `cli; sleep`).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from edgernn.targets.toolchain import ToolMissing
from edgernn.targets.unicorn_emu import EmulatorFault

SIMAVR_TIMEOUT = 300  # s; simavr runs some tens of millions of AVR cycles a second
INSTALL = "`make mcu-tools` installs it (apt: gcc-avr avr-libc simavr)"
_FIELDS = (
    "mismatches",
    "stack",
    "first",
    "ram_free",
    "overhead",
    "isr",
    "bench_calls",
    "bench_cycles",
    "calls",
    "cycles",
    "min",
    "max",
)
_SUMMARY = re.compile(
    r"edgernn-mcu-avr " + " ".join(rf"{f}=([-0-9,]+)" for f in _FIELDS)
)  # simavr ends lines with "."


@dataclass(frozen=True)
class SimavrRun:
    """One image's summary (avr_board.c): the check of its sequences and its cycle counts."""

    mismatches: int
    stack_bytes: int
    first_mismatch: tuple[int, int, int, int]  # kind, sequence (in this image), step, index
    ram_free: int  # bytes between the end of .bss and main's stack pointer
    timing_overhead: int  # cycles of an empty BEGIN/END pair, taken off every call
    isr_cycles: int  # cycles of one Timer1 overflow interrupt, taken off per overflow
    bench_calls: int  # model calls over the benchmarked sequences
    bench_cycles: int
    calls: int  # model calls over every sequence of the image
    cycles: int
    min_cycles: int  # of one call
    max_cycles: int


def run_simavr(elf: Path, mcu: str, frequency: int) -> SimavrRun:
    exe = shutil.which("simavr")
    if exe is None:
        raise ToolMissing(f"simavr is not installed: {INSTALL}")
    cmd = [exe, "-m", mcu, "-f", str(frequency), str(elf)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=SIMAVR_TIMEOUT, check=False)
    except subprocess.TimeoutExpired:
        raise EmulatorFault(f"{elf} did not finish on simavr in {SIMAVR_TIMEOUT} s") from None
    said = proc.stdout + proc.stderr
    m = _SUMMARY.search(said)
    if m is None:
        raise EmulatorFault(f"{elf} on simavr printed no summary (exit {proc.returncode}):\n{said[-2000:]}")
    v = dict(zip(_FIELDS, m.groups(), strict=True))
    first = tuple(int(p) for p in v["first"].split(","))
    if len(first) != 4:
        raise EmulatorFault(f"{elf} on simavr: a malformed summary: {m.group(0)}")
    if int(v["isr"]) == 0xFFFF:
        raise EmulatorFault(f"{elf} on simavr: the Timer1 calibration failed: {m.group(0)}")
    return SimavrRun(
        mismatches=int(v["mismatches"]),
        stack_bytes=int(v["stack"]),
        first_mismatch=(first[0], first[1], first[2], first[3]),
        ram_free=int(v["ram_free"]),
        timing_overhead=int(v["overhead"]),
        isr_cycles=int(v["isr"]),
        bench_calls=int(v["bench_calls"]),
        bench_cycles=int(v["bench_cycles"]),
        calls=int(v["calls"]),
        cycles=int(v["cycles"]),
        min_cycles=int(v["min"]),
        max_cycles=int(v["max"]),
    )
