"""The C side of the bench: the model compiled twice (-O2, -O3) as the ctypes harness and as the
standalone driver (c_runtime/bench/bench_driver.c), native timing inside the driver, and callgrind
instruction counts (two step counts differenced so start-up and set-up cancel).
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from edgernn.backends.c.build import Build, Compiler, cached, run_tool
from edgernn.backends.c.codegen import c_runtime_dir
from edgernn.backends.c.header import descriptor_name, stage_header
from edgernn.backends.c.host import CModel, compile_model
from edgernn.bench.timing import Block, Settings
from edgernn.errors import ToolchainError

DRIVER_SOURCE = Path("bench") / "bench_driver.c"
# The harness (host.HOST_FLAGS) builds at -O2; -O3 is what a host application may well use,
# and it is where GCC vectorizes the matvec. Flags are appended, so the last -O wins.
C_BUILDS: dict[str, tuple[str, ...]] = {"O2": (), "O3": ("-O3",)}
DRIVER_FLAGS = ("-O2", "-std=c99", "-Wall", "-Wextra", "-pedantic", "-D_POSIX_C_SOURCE=199309L")
CALLGRIND_FIRST = 16  # the smaller of the two step counts callgrind differences
CALLGRIND_TIMEOUT = 1800.0  # s, per process under callgrind
DRIVER_TIMEOUT = 600.0  # s, per timing process


def build_driver(
    header: Path,
    prefix: str,
    workdir: Path,
    extra_flags: Sequence[str] = (),
    compiler: Compiler | None = None,
) -> Path:
    """Compile c_runtime/bench/bench_driver.c against one model header into an executable, cached
    by content in workdir. compiler: None discovers $CC (else cc)."""
    text, local = stage_header(header, prefix, workdir)
    work = local.parent
    build = Build(
        compiler=compiler or Compiler.discover(),
        sources=(c_runtime_dir() / DRIVER_SOURCE,),
        flags=(*DRIVER_FLAGS, *extra_flags),
        defines={"EDGERNN_MODEL_HEADER": f'"{local.name}"', "EDGERNN_MODEL": descriptor_name(text)},
        include_dirs=(work,),
    )
    return cached(build, work, f"bench_driver_{prefix}", f"building the bench driver for {header}")


def callgrind_instructions(exe: Path, args: Sequence[str]) -> int:
    """Instructions the whole process executes under callgrind (deterministic: no timing involved)."""
    with tempfile.TemporaryDirectory(prefix="edgernn-cg-") as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", str(exe), *args]
        run_tool(cmd, f"callgrind on {exe.name} {' '.join(args)}", CALLGRIND_TIMEOUT)
        try:
            text = out.read_text()
        except OSError as e:
            raise ToolchainError(f"callgrind wrote no output file for {exe.name}: {e.strerror}") from None
        m = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.MULTILINE)
    if m is None:
        raise ToolchainError("callgrind wrote no instruction total")
    return int(m.group(1))


def insns_per_step(exe: Path, mode: str, steps: int) -> float:
    """Per-step instructions: step/head modes difference two step counts; run mode subtracts `prep`
    (the same set-up without edgernn_run), which leaves the run's own cost, call overhead included."""
    if mode == "run":
        pair = (["prep", str(steps)], ["run", str(steps)])
    else:
        pair = ([mode, str(CALLGRIND_FIRST)], [mode, str(CALLGRIND_FIRST + steps)])
    # The two runs are independent and their counts do not depend on load: run them side by side.
    with ThreadPoolExecutor(max_workers=2) as pool:
        lo, hi = pool.map(lambda args: callgrind_instructions(exe, args), pair)
    return (hi - lo) / steps


def driver_block(exe: Path, steps: int) -> Block:
    """Native ns per step of back-to-back edgernn_run calls of `steps` steps each, timed inside the
    driver process (no Python). n steps round up to whole runs; each process times a warm-up block
    first and reports the second."""

    def block(n: int) -> float:
        runs = max(1, -(-n // steps))
        cmd = [str(exe), "time-run", str(steps), "2", str(runs)]
        stdout = run_tool(cmd, f"the bench driver {exe.name} (time-run {steps})", DRIVER_TIMEOUT)
        values = [float(line) for line in stdout.splitlines() if not line.startswith("checksum")]
        if not values:
            raise ToolchainError(f"the bench driver {exe.name} printed no timing:\n{stdout[-500:]}")
        return values[-1]

    return block


@dataclass
class CBuild:
    """One model header compiled with one flag set: the ctypes harness and the standalone driver."""

    flags: tuple[str, ...]
    model: CModel
    driver: Path


def build_c(header: Path, prefix: str, workdir: Path) -> dict[str, CBuild]:
    """The harness library and the driver for every build of C_BUILDS, with one compiler ($CC)."""
    compiler = Compiler.discover()
    out = {}
    for name, flags in C_BUILDS.items():
        sub = workdir / name
        sub.mkdir(parents=True, exist_ok=True)
        model = compile_model(header, prefix, sub, cc=compiler.name, extra_flags=flags)
        out[name] = CBuild(flags, model, build_driver(header, prefix, sub, flags, compiler))
    return out


def callgrind_steps(macs: int, s: Settings) -> int:
    """Steps between the two callgrind runs: ~4 M MACs (a few seconds under callgrind), 64..limit."""
    return int(min(s.callgrind_steps, max(64, 4_000_000 // max(macs, 1))))


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None
