"""AVR target: the ATmega328P of the Arduino Uno (8-bit, 16-bit `int`, 32 KB flash, 2 KB RAM) at
16 MHz, built with Debian's avr-gcc + avr-libc and run on simavr, which counts cycles.

What differs from the Cortex-M and RISC-V targets, and why:
- **No call API.** simavr runs an image from reset; it cannot call a function and count what it
  issues, as Unicorn does. So this target is a `SelfCheckingTarget` (edgernn.targets.base): its
  images check and time themselves (c_runtime/mcu/avr_board.c: main, Timer1, USART0) and print
  one summary line that simavr shows (edgernn.targets.simavr). Figures are **cycles** per step
  (simavr is cycle-accurate; Debian's build has no instruction trace, so no instruction count),
  and µs per step at 16 MHz = cycles / 16.
- **The test split does not fit.** The japanese_vowels test split's vectors are ~270 KB; the Uno
  has 32 KB of flash. So the sequences are checked in slices, each its own image: one image is
  built with a single sequence to learn what the model, the harness and avr-libc take, then the
  sequences are packed, in order, into as few images as fit the flash (and, for a bidirectional
  model, whose run buffer grows with the longest sequence, the RAM). Every sequence is checked
  once; mismatches add up over the images; the cycle figures come from the first image (the
  first `bench_sequences` sequences, as on the other targets).
- **Flash** is the model object's kept sections (edgernn.targets.footprint: its .text, and its
  tables, which EDGERNN_FLASH puts in .progmem.data) plus the libgcc helpers it pulls in, sized
  from the linker map of an image that holds the model alone (helper symbols carry no size).
- **RAM** is the model's static RAM (.data, .bss, and .rodata: avr-gcc copies plain `const` data
  to RAM) + the state + the painted stack high-water of a step, which includes the helpers' frames.
- **Fit.** The image is linked for the Uno: 32,256 B of flash (the 32 KB chip less the 512 B
  Optiboot boot loader) and 2,048 B of RAM at 0x100. A model that does not fit fails the link;
  that is reported as `DoesNotFit` (CheckFailed, exit 1) with what avr-ld said.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from edgernn.errors import CheckFailed, InputError, ToolchainError
from edgernn.targets.base import Board, CrossCompiler, Emulator, MemoryMap
from edgernn.targets.registry import register

if TYPE_CHECKING:
    from edgernn.contract.model import QuantizedModel
    from edgernn.targets.check import McuResult
    from edgernn.targets.elf import Elf
    from edgernn.targets.simavr import SimavrRun
    from edgernn.targets.toolchain import Toolchain
    from edgernn.targets.vectors import Vectors

MCU = "atmega328p"
CLOCK_HZ = 16_000_000
# The Uno: the chip's 32 KB of flash less Optiboot's 512 B, and 2 KB of SRAM at 0x100 (avr-ld's
# data addresses carry 0x800000).
UNO = MemoryMap(
    flash_base=0x0000,
    flash_size=32_256,
    ram_base=0x0100,
    ram_size=2048,
    stack_size=0,  # avr-libc's stack grows down from RAMEND into whatever .data and .bss leave
    linker_script="",  # avr-gcc's own, for -mmcu=atmega328p
)
INSTALL = "`make mcu-tools` installs it (apt: gcc-avr avr-libc simavr)"
# Bytes of flash kept free in a packed image beyond the vectors' own estimate (alignment).
FLASH_SLACK = 64
# Bytes of RAM kept free beyond the measured stack: main's and the harness's frames above the
# probe, and one Timer1 interrupt frame during the check.
RAM_SLACK = 64


class DoesNotFit(CheckFailed):
    """The model (with the harness's smallest image) does not fit the part's flash or RAM (exit 1)."""

    def __init__(self, message: str, overflow: int | None = None) -> None:
        super().__init__(message)
        self.overflow = overflow  # bytes by which avr-ld's `text` region overflowed, when it said


@dataclass(frozen=True)
class AvrTarget:
    """The ATmega328P (implements edgernn.targets.base.Target and SelfCheckingTarget)."""

    name: str = "avr"
    mcu: str = MCU
    clock_hz: int = CLOCK_HZ
    memory: MemoryMap = UNO

    @property
    def compilers(self) -> Mapping[str, CrossCompiler]:
        return {
            "gcc": CrossCompiler(
                (f"-mmcu={self.mcu}",), (f"-DF_CPU={self.clock_hz}UL",), triple="avr", install=INSTALL
            )
        }

    @property
    def board(self) -> Board | None:
        return None  # simavr, run by measure(): the image boots from reset there

    @property
    def plain_defines(self) -> tuple[str, ...]:
        return ()  # one kernel path: the portable C, tables read with LPM

    def kernel(self, code: Sequence[bytes]) -> str:
        return "plain"

    def emulator(self, elf: Elf) -> Emulator:
        raise ToolchainError(
            "simavr cannot call an image's functions; the AVR check runs whole images from reset "
            "(edgernn.targets.avr.AvrTarget.measure)"
        )

    def measure(
        self,
        header: Path,
        qm: QuantizedModel,
        vectors: Vectors,
        compiler: str,
        workdir: Path,
        plain: bool,
        bench_sequences: int,
    ) -> McuResult:
        """Every sequence of `vectors`, in as many images as the flash needs (module docstring)."""
        from edgernn.backends.c.header import header_macro
        from edgernn.targets.check import McuResult
        from edgernn.targets.elf import Elf
        from edgernn.targets.footprint import footprint

        if compiler not in self.compilers:
            raise InputError(f"{self.name} cannot be built with {compiler}; choose from gcc")
        tc = avr_toolchain(self)
        workdir.mkdir(parents=True, exist_ok=True)
        text = header.read_text(encoding="utf-8")
        macs = header_macro(text, "MACS_PER_STEP")
        state = header_macro(text, "STATE_BYTES")
        model_o, board_bench, board_rest = self._objects(tc, header, vectors, workdir, bench_sequences)
        model = Elf.read(model_o)

        # A one-sequence image: does the model fit at all, and what does everything but the
        # vectors take?
        probe = self._image(tc, vectors.slice(0, 1), model_o, board_rest, workdir / "probe")
        limits = self._limits(vectors, probe)

        # Images of as many sequences, in order, as the limits allow. The probe's single sequence
        # lets the compiler fold some of the harness's loops, so an image may still overflow by
        # some tens of bytes: the budget shrinks by that much and the image is packed again.
        slices: list[tuple[int, int]] = []
        runs: list[tuple[int, SimavrRun]] = []
        first_image: Elf | None = None
        first = 0
        while first < vectors.sequences:
            count = limits.fill(first)
            board_o = board_bench if not slices else board_rest
            try:
                elf_path = self._image(
                    tc, vectors.slice(first, count), model_o, board_o, workdir / f"image{len(slices)}"
                )
            except DoesNotFit as e:
                if count == 1 or e.overflow is None:
                    raise
                limits.budget -= e.overflow + FLASH_SLACK
                continue
            if not slices:
                first_image = Elf.read(elf_path)
            runs.append((first, _run(elf_path, self)))
            slices.append((first, count))
            first += count
        assert first_image is not None
        (workdir / "slices.txt").write_text("".join(f"{f} {c}\n" for f, c in slices), encoding="utf-8")

        kept = footprint(model, first_image)
        helpers = self._helper_bytes(tc, model_o, workdir, vectors.macros["MCU_BIDIRECTIONAL"])
        ram_rodata = _ram_rodata(model, first_image)
        static_ram = kept.data + kept.bss + ram_rodata
        mismatches = sum(r.mismatches for _, r in runs)
        first_bad = next(((f, r) for f, r in runs if r.mismatches), None)
        first_mismatch: list[int] = []
        if first_bad is not None:
            f, r = first_bad
            kind, seq, step, index = r.first_mismatch
            first_mismatch = [kind, seq + f, step, index]
        stack = max(r.stack_bytes for _, r in runs)
        for f, r in runs:
            if r.stack_bytes + RAM_SLACK // 2 > r.ram_free:
                raise DoesNotFit(
                    f"{self.name}: the stack of a step ({r.stack_bytes} B) leaves no room in the image "
                    f"of sequences from {f}: {r.ram_free} B lie between .bss and the stack pointer"
                )
        bench = runs[0][1]
        n_bench = min(bench_sequences, slices[0][1])
        bench_steps = int(vectors.lengths[:n_bench].sum())
        cycles = bench.bench_cycles / bench_steps if bench_steps else 0.0
        return McuResult.measured(
            target=self.name,
            compiler=tc.version,
            kernel="plain",
            emulator=f"simavr {self.mcu} ({len(slices)} images)",
            qm=qm,
            vectors=vectors,
            kept=kept,
            helper_bytes=helpers,
            static_ram_bytes=static_ram,
            state_bytes=state,
            stack_bytes=stack,
            macs_per_step=macs,
            mismatches=mismatches,
            first_mismatch=first_mismatch,
            bench_steps=bench_steps,
            elf=str(workdir / "image0" / "firmware.elf"),
            # insns_per_step stays 0: simavr counts cycles, not instructions (module docstring)
            cycles_per_step=cycles,
            us_per_step_16mhz=cycles / (self.clock_hz / 1e6),
            images=len(slices),
        )

    # ---- building ------------------------------------------------------------------------------

    def _objects(
        self, tc: Toolchain, header: Path, vectors: Vectors, workdir: Path, bench_sequences: int
    ) -> tuple[Path, Path, Path]:
        """model_unit.o, and avr_board.o with and without the benchmark run."""
        from edgernn.backends.c.header import descriptor_name
        from edgernn.targets.toolchain import mcu_source_dir

        src = mcu_source_dir()
        text = header.read_text(encoding="utf-8")
        model_defs = [
            f'EDGERNN_MODEL_HEADER="{header.resolve()}"',
            f"EDGERNN_MODEL={descriptor_name(text)}",
            f"MCU_SCRATCH_WORDS={vectors.macros['MCU_SCRATCH_WORDS']}",
            f"MCU_BIDIRECTIONAL={vectors.macros['MCU_BIDIRECTIONAL']}",
        ]
        model_o = tc.compile(src / "model_unit.c", workdir / "model_unit.o", model_defs, [src])
        board = src / "avr_board.c"
        bench = tc.compile(board, workdir / "avr_board.o", [f"MCU_BENCH_SEQS={bench_sequences}"], [src], True)
        rest = tc.compile(board, workdir / "avr_board_nobench.o", ["MCU_BENCH_SEQS=0"], [src], True)
        return model_o, bench, rest

    def _image(self, tc: Toolchain, part: Vectors, model_o: Path, board_o: Path, where: Path) -> Path:
        from edgernn.targets.toolchain import mcu_source_dir

        src = mcu_source_dir()
        where.mkdir(parents=True, exist_ok=True)
        (where / "vectors.h").write_text(part.text, encoding="utf-8")
        harness_o = tc.compile(src / "harness.c", where / "harness.o", [], [where, src], hosted=True)
        out = where / "firmware.elf"
        try:
            return tc.link([harness_o, model_o, board_o], out, needs_runtime=True)
        except ToolchainError as e:
            said = str(e)
            if "will not fit in region" in said or "is not within region" in said or "overflowed by" in said:
                over = re.search(r"region `text' overflowed by (\d+) bytes", said)
                raise DoesNotFit(
                    _fit_message(self, said, part), int(over.group(1)) if over else None
                ) from None
            raise

    def _limits(self, vectors: Vectors, probe: Path) -> _Limits:
        """What an image can hold beside the model, the harness and avr-libc: bytes of vectors
        (flash), and steps of the longest sequence (RAM, bidirectional). A sequence that does not
        fit an image of its own is DoesNotFit."""
        from edgernn.targets.elf import Elf

        image = Elf.read(probe)
        seq_bytes = vectors.sequence_bytes()
        sizes = image.sizes()
        used_flash = sizes["text"] + sizes["rodata"] + sizes["data"]  # .data's initial values are in flash
        fixed_flash = used_flash - int(seq_bytes[0])
        budget = self.memory.flash_size - fixed_flash - FLASH_SLACK
        ram = _ram_per_step(vectors)
        probe_run = _run(probe, self)
        # RAM: what the probe image leaves, less a stack, for each step of the longest sequence
        # beyond the probe's (bidirectional: run buffer, input copy, per-step logits).
        ram_left = probe_run.ram_free - probe_run.stack_bytes - RAM_SLACK
        max_steps = int(vectors.lengths[0]) + (ram_left // ram if ram else 1 << 30)
        for i, (b, n) in enumerate(zip(seq_bytes.tolist(), vectors.lengths.tolist(), strict=True)):
            if b > budget:
                raise DoesNotFit(
                    f"{self.name}: test sequence {vectors.first + i} ({n} steps) needs {b:,} B of vectors; "
                    f"beside the model, the harness and avr-libc ({fixed_flash:,} B) only {budget:,} B of "
                    f"the {self.memory.flash_size:,} B of flash are left"
                )
            if n > max_steps:
                raise DoesNotFit(
                    f"{self.name}: test sequence {vectors.first + i} has {n} steps; its run buffer and input "
                    f"({ram} B a step) do not fit the {self.memory.ram_size:,} B of RAM beside the harness "
                    f"and the stack: at most {max_steps} steps do"
                )
        return _Limits(seq_bytes.tolist(), vectors.lengths.tolist(), budget, max_steps)

    def _helper_bytes(self, tc: Toolchain, model_o: Path, workdir: Path, bidirectional: int) -> int:
        """Bytes of the libgcc helpers the model pulls in: its object linked alone (a main that
        calls it, no data) and the libgcc members in the linker map."""
        from edgernn.targets.toolchain import mcu_source_dir

        where = workdir / "model_alone"
        where.mkdir(parents=True, exist_ok=True)
        src = mcu_source_dir()
        define = f"MCU_BIDIRECTIONAL={bidirectional}"
        main_o = tc.compile(src / "avr_model_alone.c", where / "main.o", [define], [src], hosted=True)
        map_path = where / "model_alone.map"
        cast(Any, tc).link([main_o, model_o], where / "model_alone.elf", True, map_file=map_path)
        return libgcc_bytes(map_path.read_text(encoding="utf-8", errors="replace"))


@dataclass
class _Limits:
    seq_bytes: list[int]  # vector bytes of each sequence
    lengths: list[int]
    budget: int  # bytes of vectors an image can hold
    max_steps: int  # the longest sequence an image's RAM can run (bidirectional)

    def fill(self, first: int) -> int:
        """How many sequences from `first` one image holds (at least one)."""
        total, i = 0, first
        while i < len(self.seq_bytes) and (i == first or total + self.seq_bytes[i] <= self.budget):
            total += self.seq_bytes[i]
            i += 1
        return i - first


def _run(elf: Path, target: AvrTarget) -> SimavrRun:
    from edgernn.targets.simavr import run_simavr

    return run_simavr(elf, target.mcu, target.clock_hz)


def _ram_per_step(vectors: Vectors) -> int:
    """RAM of the harness that grows with a slice's longest sequence (bidirectional only)."""
    m = vectors.macros
    if not m["MCU_BIDIRECTIONAL"]:
        return 0
    per_step = m["MCU_LAYERS"] * m["MCU_DIRECTIONS"] * m["MCU_HIDDEN"]  # the run buffer
    per_step += m["MCU_INPUT_WIDTH"] * (4 if m["MCU_TOKENS"] else 1)  # the input copy
    if m["MCU_PER_STEP"]:
        per_step += 4 * m["MCU_CLASSES"]  # logits after every step
    return per_step


def _ram_rodata(model: Elf, image: Elf) -> int:
    """Bytes of the model's kept .rodata: avr-gcc's linker script copies it into RAM with .data."""
    from edgernn.targets.footprint import kept_sections

    kept = kept_sections(model, image)
    return sum(
        s.size
        for i, s in enumerate(model.sections)
        if i in kept and s.kind == "rodata" and s.name.startswith(".rodata")
    )


_MAP_INPUT = re.compile(r"^\s*(\S*)\s+0x([0-9a-fA-F]+)\s+0x([0-9a-fA-F]+)\s+(\S*libgcc\.a\(\S+\))\s*$")


def libgcc_bytes(link_map: str) -> int:
    """Total size of the code input sections from libgcc.a members in a GNU ld map (.text*)."""
    total = 0
    pending = ""
    for line in link_map.splitlines():
        stripped = line.strip()
        if stripped.startswith(".") and " " not in stripped:
            pending = stripped  # a long section name stands on its own line
            continue
        m = _MAP_INPUT.match(line)
        if m:
            name = m.group(1) or pending
            if name.startswith(".text"):
                total += int(m.group(3), 16)
        pending = ""
    return total


def _fit_message(target: AvrTarget, said: str, part: Vectors) -> str:
    lines = [
        re.sub(r"\S*/firmware\.elf", "firmware.elf", re.sub(r"^\S*ld: ", "", ln.strip()))
        for ln in said.splitlines()
        if "region" in ln or "overflowed" in ln
    ]
    what = "; ".join(dict.fromkeys(lines)) or said[-500:]
    seqs = part.sequences
    return (
        f"the model does not fit the {target.mcu} (Uno: {target.memory.flash_size:,} B flash, "
        f"{target.memory.ram_size:,} B RAM) in an image of {seqs} test sequence{'s' if seqs > 1 else ''}: "
        f"avr-ld: {what}"
    )


def _avr_toolchain_class() -> type[Toolchain]:
    from edgernn.backends.c.build import Build, Compiler, run_tool
    from edgernn.targets.toolchain import GccToolchain, ToolMissing

    class _AvrToolchain(GccToolchain):
        """Debian's avr-gcc with avr-libc: its crt, its linker script for the part, libgcc."""

        def lib_flags(self, hosted: bool) -> tuple[str, ...]:
            return () if hosted else ("-ffreestanding",)

        @property
        def version(self) -> str:
            out = run_tool([*self.compiler().command, "-dumpversion"], f"{self.exe} -dumpversion", timeout=60)
            return f"avr-gcc {out.strip()}"

        def compiler(self) -> Compiler:
            import shutil

            if shutil.which(self.exe) is None:
                raise ToolMissing(f"{self.exe} is not installed: {self.spec.install}")
            return Compiler((self.exe,), self.exe)

        def link(
            self, objects: Sequence[Path], out: Path, needs_runtime: bool, map_file: Path | None = None
        ) -> Path:
            mem = self.target.memory
            flags = (
                *self.spec.arch_flags,
                "-O2",
                "-Wl,--gc-sections",
                f"-Wl,--defsym=__TEXT_REGION_LENGTH__={mem.flash_size}",
                f"-Wl,--defsym=__DATA_REGION_LENGTH__={mem.ram_size}",
                *((f"-Wl,-Map,{map_file}",) if map_file is not None else ()),
            )
            return self._run(Build(self.compiler(), tuple(objects), flags), out, f"{self.exe} linking")

    return _AvrToolchain


def avr_toolchain(target: AvrTarget) -> Toolchain:
    """avr-gcc + avr-libc for the target (a GccToolchain whose link is avr-libc's, not picolibc's)."""
    return _avr_toolchain_class()(target)


TARGET = register(AvrTarget())
