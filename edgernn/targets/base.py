"""What a microcontroller target is, as the check (edgernn.targets.check) asks for it.

A target is one core the generated model.h is proven on. It answers five questions, and the
check, the toolchains and the emulators ask only these:
- `compilers`: which toolchains (edgernn.targets.toolchain: "zig", "gcc") build for it, with the
  flags that select the core;
- `memory`: where flash and RAM are (every image is linked for this map) and the linker script of
  images linked without a C runtime;
- `emulator(elf)`: a machine that calls an image's functions and counts the instructions they
  issue (edgernn.targets.unicorn_emu runs any core Unicorn models, from a `UnicornCore`);
- `board`: a QEMU board that boots the C-runtime (gcc) image and lets it check itself, or None;
- `kernel(code)`: reading the model's machine code, which kernel path the compiler took ("dsp",
  "plain", ...), and `plain_defines`, the C defines that turn that fast path off.
A core no emulator can call functions on (AVR: simavr runs images from reset) is also a
`SelfCheckingTarget`, and measures itself.

Nothing here imports a compiler, Unicorn or capstone: the registry (edgernn.targets) is read by
the CLI's option list, which must load fast and without the optional tools.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from edgernn.contract.model import QuantizedModel
    from edgernn.targets.check import McuResult
    from edgernn.targets.elf import Elf
    from edgernn.targets.vectors import Vectors


@dataclass(frozen=True)
class MemoryMap:
    """One memory map for every image of a target, whichever toolchain links it."""

    flash_base: int
    flash_size: int
    ram_base: int
    ram_size: int
    stack_size: int  # what a C runtime's crt0 reserves (the gcc + picolibc image)
    linker_script: str  # in c_runtime/mcu/: this map for images linked without a C runtime (zig)


@dataclass(frozen=True)
class CrossCompiler:
    """How one toolchain builds for a target."""

    arch_flags: tuple[str, ...]  # select the core: on every compile and link command
    compile_flags: tuple[str, ...] = ()  # compile commands only (ABI choices)
    triple: str = ""  # a GNU cross toolchain's prefix: <triple>-gcc, picolibc's <triple> folder
    install: str = ""  # how to get it, for the message when it is missing


@dataclass(frozen=True)
class Board:
    """A QEMU machine that boots a C-runtime image, whose semihosting carries main's result out."""

    qemu: str  # the executable, e.g. qemu-system-arm
    machine: str  # its -M
    install: str  # how to get it, for the message when it is missing
    args: tuple[str, ...] = ()  # more QEMU options the board needs (RISC-V virt: -bios none)


@dataclass(frozen=True)
class UnicornCore:
    """How Unicorn and capstone model the core. Constant names, not values: unicorn and capstone
    are optional installs, resolved when an emulator starts (edgernn.targets.unicorn_emu)."""

    uc_arch: str  # a unicorn.UC_ARCH_* name
    uc_mode: tuple[str, ...]  # unicorn.UC_MODE_* names, or'ed together
    uc_consts: str  # the module of the architecture's registers and CPU models
    uc_cpu: str  # a CPU model in uc_consts
    cs_arch: str  # a capstone.CS_ARCH_* name
    cs_mode: tuple[str, ...]  # capstone.CS_MODE_* names, or'ed together
    arg_regs: tuple[str, ...]  # the calling convention's integer argument registers, in order
    result_reg: str
    sp_reg: str
    link_reg: str  # where a call leaves its return address
    pc_reg: str
    code_bit: int = 0  # set in code addresses by the ISA (Thumb: bit 0); cleared for the byte address
    # (register, linker symbol): what a C runtime's startup code sets before main and compiled code
    # relies on, set before every call when the image defines the symbol (RISC-V: gp, which
    # relaxed accesses to small data are relative to, = __global_pointer$)
    symbol_regs: tuple[tuple[str, str], ...] = ()


class Emulator(Protocol):
    """An image loaded on an emulated core (edgernn.targets.unicorn_emu.Machine)."""

    @property
    def name(self) -> str:
        """For the report's emulator column, e.g. unicorn."""
        ...

    def call(self, name: str, args: Sequence[int] = ()) -> int:
        """Call a function of the image with integer arguments; its integer result."""
        ...

    def read_s32(self, name: str) -> int:
        """A global int32 of the image, by symbol name."""
        ...

    def read_bytes(self, name: str, size: int) -> bytes:
        """The first `size` bytes of a global of the image, by symbol name."""
        ...

    def write_bytes(self, name: str, data: bytes) -> None:
        """Overwrite the start of a global of the image, by symbol name."""
        ...

    def count_calls(self, function: str, name: str, args: Sequence[int] = ()) -> tuple[int, list[int]]:
        """Call `name`; its result and the instructions of each call it made to `function`."""
        ...


class Target(Protocol):
    """One core the model is proven on (module docstring). Implementations: edgernn.targets.cortex_m."""

    @property
    def name(self) -> str:
        """The CLI's name, e.g. cortex-m4."""
        ...

    @property
    def memory(self) -> MemoryMap: ...

    @property
    def compilers(self) -> Mapping[str, CrossCompiler]:
        """Toolchain name (edgernn.targets.toolchain.TOOLCHAINS) -> how it builds for this core."""
        ...

    @property
    def board(self) -> Board | None: ...

    @property
    def plain_defines(self) -> tuple[str, ...]:
        """C defines that turn the core's fast kernel path off; () when there is none to turn off."""
        ...

    def emulator(self, elf: Elf) -> Emulator:
        """The image loaded on an emulated core, ready to call."""
        ...

    def kernel(self, code: Sequence[bytes]) -> str:
        """The kernel path that the model's kept machine code (its text sections) takes."""
        ...


@runtime_checkable
class SelfCheckingTarget(Protocol):
    """A Target whose emulator cannot call an image's functions (AVR on simavr): its images run
    from reset, check and time themselves and print the result. The check (edgernn.targets.check)
    hands such a target the whole measurement of one compiler; it answers with the same McuResult,
    and its own split of the vectors into images when the part's flash cannot hold them all.
    Implementation: edgernn.targets.avr."""

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
        """Every sequence of `vectors` checked on the target; flash, RAM and cycle figures."""
        ...
