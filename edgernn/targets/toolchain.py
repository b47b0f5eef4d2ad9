"""Cross-compilers for the Cortex-M check: zig cc (pip) and arm-none-eabi-gcc + picolibc (apt).

Both build the same two translation units from c_runtime/mcu/: model_unit.c (the model, measured
on its own) and harness.c (the check). zig links with our linker script into an image that
Unicorn loads; gcc links with picolibc's crt0 and semihosting into an image that boots on a QEMU
MPS2 board, and that Unicorn can load as well (it only calls functions in it).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgernn.backends.c.codegen import c_runtime_dir
from edgernn.errors import EdgeRNNError, InputError

MCU_DIR = "mcu"
LINKER_SCRIPT = "cortex-m.ld"
COMPILE_TIMEOUT = 300  # s; zig builds its compiler-rt for a new CPU once (about 10 s), then caches it
# The MPS2 memory map (code at 0, SRAM at 0x20000000), the same for both toolchains' images.
FLASH_BASE, FLASH_SIZE = 0x0000_0000, 0x40_0000
RAM_BASE, RAM_SIZE = 0x2000_0000, 0x40_0000
GCC_STACK_SIZE = 0x4000


class ToolMissing(EdgeRNNError):
    """A cross-compiler or emulator is not installed (exit 2, with how to install it)."""

    exit_code = 2


class BuildError(EdgeRNNError):
    """A cross-compiler rejected the model or the harness (a bug worth reporting; exit 1)."""

    exit_code = 1


@dataclass(frozen=True)
class Target:
    name: str  # the CLI's name
    zig_cpu: str
    gcc_cpu: str
    uc_cpu: str  # a unicorn.arm_const UC_CPU_ARM_* name
    qemu_machine: str  # an MPS2 board: M0+ has none in QEMU, the M3 board runs ARMv6-M code
    dsp: bool  # has the DSP extension (SMLAD, SXTB16): __ARM_FEATURE_DSP is defined


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target(
            "cortex-m0plus", "cortex_m0plus", "cortex-m0plus", "UC_CPU_ARM_CORTEX_M0", "mps2-an385", False
        ),
        Target("cortex-m4", "cortex_m4", "cortex-m4", "UC_CPU_ARM_CORTEX_M4", "mps2-an386", True),
        Target("cortex-m7", "cortex_m7", "cortex-m7", "UC_CPU_ARM_CORTEX_M7", "mps2-an500", True),
    )
}
COMPILERS = ("zig", "gcc")

# Both compilers: C99, optimised for speed as a firmware would be, every warning an error (the
# generated header promises a clean build), no unwind tables, one section per function and object
# so the linker drops what nothing calls. Floats stay in core registers (no FPU is switched on).
# zig keeps a frame pointer unless told: on Armv6-M that takes one of the eight low registers.
COMMON_FLAGS: tuple[str, ...] = (
    "-std=c99",
    "-O2",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-mfloat-abi=soft",
    "-fomit-frame-pointer",
)


def mcu_source_dir() -> Path:
    return c_runtime_dir() / MCU_DIR


def _run(cmd: Sequence[str], what: str, cwd: Path) -> str:
    try:
        proc = subprocess.run(
            list(cmd), cwd=cwd, capture_output=True, text=True, timeout=COMPILE_TIMEOUT, check=False
        )
    except subprocess.TimeoutExpired:
        raise BuildError(f"{what} did not finish in {COMPILE_TIMEOUT} s") from None
    if proc.returncode != 0:
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n$ {' '.join(cmd)}\n{proc.stderr.strip()}")
    return proc.stderr


class Toolchain:
    """Compile a C file to an object, link objects into an image. Subclasses fill in the commands."""

    name = ""

    def __init__(self, target: Target) -> None:
        self.target = target

    @property
    def version(self) -> str:
        raise NotImplementedError

    def cc(self) -> list[str]:
        raise NotImplementedError

    def compile(
        self, source: Path, out: Path, defines: Sequence[str], includes: Sequence[Path], hosted: bool = False
    ) -> Path:
        """hosted: the harness may use the C library (gcc + picolibc); the model never does."""
        cmd = [*self.cc(), *COMMON_FLAGS, *self.arch_flags(), *self.lib_flags(hosted)]
        cmd += [f"-D{d}" for d in defines] + [f"-I{p}" for p in includes]
        _run([*cmd, "-c", str(source), "-o", str(out)], f"{self.name} compiling {source.name}", out.parent)
        return out

    def arch_flags(self) -> list[str]:
        raise NotImplementedError

    def lib_flags(self, hosted: bool) -> list[str]:
        return ["-ffreestanding"]

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        raise NotImplementedError


class ZigToolchain(Toolchain):
    """clang and ld.lld from the ziglang wheel: pip-installable, the same binary everywhere."""

    name = "zig"

    def cc(self) -> list[str]:
        try:
            import ziglang  # noqa: F401
        except ImportError:
            raise ToolMissing(
                "zig is not installed: pip install 'edgernn[mcu]' (the ziglang wheel) for the pip-only path"
            ) from None
        return [sys.executable, "-m", "ziglang", "cc"]

    @property
    def version(self) -> str:
        out = subprocess.run([sys.executable, "-m", "ziglang", "version"], capture_output=True, text=True)
        return f"zig {out.stdout.strip()}"

    def arch_flags(self) -> list[str]:
        # zig's default optimisation mode for cc is Debug-like with UBSan traps; -O2 above turns
        # that off, and the freestanding target keeps zig from looking for a libc.
        return ["-target", "thumb-freestanding-eabi", f"-mcpu={self.target.zig_cpu}"]

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        script = mcu_source_dir() / LINKER_SCRIPT
        # -nostdlib also leaves out zig's compiler-rt (which zig would build once per CPU, ~10 s):
        # link it only when an object calls a helper such as __aeabi_lmul.
        cmd = [*self.cc(), *self.arch_flags(), "-O2", *([] if needs_runtime else ["-nostdlib"])]
        cmd += [f"-Wl,-T,{script}", "-Wl,--gc-sections", "-Wl,--entry=mcu_check", "-Wl,-u,mcu_stack_probe"]
        _run([*cmd, *map(str, objects), "-o", str(out)], "zig linking", out.parent)
        return out


class GccToolchain(Toolchain):
    """Debian's arm-none-eabi-gcc with picolibc: `make mcu-tools` installs both (and QEMU)."""

    name = "gcc"
    EXE = "arm-none-eabi-gcc"

    def cc(self) -> list[str]:
        if shutil.which(self.EXE) is None:
            raise ToolMissing(
                f"{self.EXE} is not installed: `make mcu-tools` installs it (with picolibc and QEMU)"
            )
        return [self.EXE]

    @property
    def version(self) -> str:
        out = subprocess.run([*self.cc(), "-dumpversion"], capture_output=True, text=True)
        return f"gcc {out.stdout.strip()}"

    def arch_flags(self) -> list[str]:
        return [f"-mcpu={self.target.gcc_cpu}", "-mthumb"]

    def lib_flags(self, hosted: bool) -> list[str]:
        if hosted:
            return ["--specs=picolibc.specs", "-DMCU_SEMIHOST=1"]
        return ["-ffreestanding"]

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        if not Path("/usr/lib/picolibc/arm-none-eabi/picolibc.specs").exists() and not _picolibc_found():
            raise ToolMissing("picolibc is not installed: `make mcu-tools` installs picolibc-arm-none-eabi")
        # picolibc's own linker script and crt0 (which copies .data, clears .bss and calls main),
        # placed on the MPS2 map; semihosting carries printf and main's return value to QEMU.
        cmd = [
            *self.cc(),
            *self.arch_flags(),
            "-O2",
            "--specs=picolibc.specs",
            "--oslib=semihost",
            "--crt0=semihost",
        ]
        cmd += [
            f"-Wl,--defsym=__flash={FLASH_BASE:#x}",
            f"-Wl,--defsym=__flash_size={FLASH_SIZE:#x}",
            f"-Wl,--defsym=__ram={RAM_BASE:#x}",
            f"-Wl,--defsym=__ram_size={RAM_SIZE:#x}",
            f"-Wl,--defsym=__stack_size={GCC_STACK_SIZE:#x}",
            "-Wl,--gc-sections",
            "-Wl,-u,mcu_stack_probe",
        ]
        _run([*cmd, *map(str, objects), "-o", str(out)], "arm-none-eabi-gcc linking", out.parent)
        return out


def _picolibc_found() -> bool:
    try:
        out = subprocess.run(
            [GccToolchain.EXE, "-print-file-name=picolibc.specs"], capture_output=True, text=True
        )
    except OSError:
        return False
    return Path(out.stdout.strip()).is_absolute()


def toolchain(compiler: str, target: str) -> Toolchain:
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}; choose from {', '.join(TARGETS)}")
    if compiler == "zig":
        return ZigToolchain(TARGETS[target])
    if compiler == "gcc":
        return GccToolchain(TARGETS[target])
    raise InputError(f"unknown compiler {compiler!r}; choose from {', '.join(COMPILERS)}")
