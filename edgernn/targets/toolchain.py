"""Cross-compilers for the microcontroller check: zig cc (pip) and a GNU cross gcc + picolibc (apt).

Both build the same two translation units from c_runtime/mcu/: model_unit.c (the model, measured
on its own) and harness.c (the check), for any target that lists them in its `compilers`
(edgernn.targets.base.Target), with the flags the target gives. zig links with the target's
linker script into an image that the emulator loads; gcc links with picolibc's crt0 and
semihosting, on the target's memory map, into an image that boots on the target's QEMU board, and
that the emulator can load as well (it only calls functions in it). Every command runs through
edgernn.backends.c.build, the project's one C build module; every failure is a ToolchainError
(exit 3): ToolMissing says what installs the missing tool, BuildError what the compiler said.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from edgernn.backends.c.build import Build, Compiler, compile_to, run_tool
from edgernn.backends.c.codegen import c_runtime_dir
from edgernn.errors import InputError, ToolchainError
from edgernn.targets.base import CrossCompiler, Target

MCU_DIR = "mcu"
COMPILE_TIMEOUT = 300  # s; zig builds its compiler-rt for a new CPU once (about 10 s), then caches it
ZIG_HINT = "pip install 'edgernn[mcu]' (the ziglang wheel) for the pip-only path"

# Every compiler, every target: C99, optimised for speed as a firmware would be, every warning an
# error (the generated header promises a clean build), no unwind tables, one section per function
# and object so the linker drops what nothing calls. The target adds the flags that select its
# core and ABI (CrossCompiler). zig keeps a frame pointer unless told: on Armv6-M that takes one
# of the eight low registers.
STRICT_WARNINGS: tuple[str, ...] = ("-Wall", "-Wextra", "-Werror")
CODEGEN_FLAGS: tuple[str, ...] = (
    "-std=c99",
    "-O2",
    "-fno-unwind-tables",
    "-fno-asynchronous-unwind-tables",
    "-ffunction-sections",
    "-fdata-sections",
    "-fomit-frame-pointer",
)
COMMON_FLAGS: tuple[str, ...] = (*CODEGEN_FLAGS, *STRICT_WARNINGS)
# What a check image keeps when linked with --gc-sections: its entry (zig images; gcc's is crt0's),
# then the functions an emulator calls by name.
HARNESS_ROOTS: tuple[str, ...] = ("mcu_check", "mcu_stack_probe")


class ToolMissing(ToolchainError):
    """A cross-compiler or emulator is not installed (exit 3, with what installs it)."""


class BuildError(ToolchainError):
    """A cross-compiler rejected the model or the harness (a bug worth reporting; exit 3)."""


def mcu_source_dir() -> Path:
    return c_runtime_dir() / MCU_DIR


class Toolchain:
    """Compile a C file to an object, link objects into an image, for one target. Subclasses name
    the compiler and fill in the library and link flags."""

    name = ""
    hosted = False  # links a C runtime (crt0 + libc): its images boot, so a board can run them

    def __init__(self, target: Target, roots: Sequence[str] = HARNESS_ROOTS) -> None:
        self.target = target
        self.spec: CrossCompiler = target.compilers[self.name]
        self.roots = tuple(roots)  # HARNESS_ROOTS, or another image's entry and called functions

    @property
    def version(self) -> str:
        raise NotImplementedError

    def compiler(self) -> Compiler:
        """The compiler command; ToolMissing if it is not installed."""
        raise NotImplementedError

    def lib_flags(self, hosted: bool) -> tuple[str, ...]:
        return ("-ffreestanding",)

    def compile(
        self,
        source: Path,
        out: Path,
        defines: Sequence[str],
        includes: Sequence[Path],
        hosted: bool = False,
        strict: bool = True,
    ) -> Path:
        """defines: NAME or NAME=VALUE. hosted: the harness may use the C library (a hosted
        toolchain's); the model never does. strict=False: someone else's library (the benchmark's
        peers), built with the same code-generation flags but its warnings silenced, not errors."""
        flags = (
            *(COMMON_FLAGS if strict else (*CODEGEN_FLAGS, "-w")),
            *self.spec.arch_flags,
            *self.spec.compile_flags,
            *self.lib_flags(hosted),
            "-c",
        )
        build = Build(
            self.compiler(),
            (source,),
            flags,
            dict(_define(d) for d in defines),
            tuple(includes),
        )
        return self._run(build, out, f"{self.name} compiling {source.name}")

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        """needs_runtime: an object calls a compiler-runtime helper (such as __aeabi_lmul)."""
        raise NotImplementedError

    def _run(self, build: Build, out: Path, what: str) -> Path:
        # Absolute paths: zig cc resolves a relative output path from another working directory.
        try:
            return compile_to(build, out.resolve(), what, timeout=COMPILE_TIMEOUT)
        except ToolchainError as e:
            raise BuildError(str(e)) from None


def _define(d: str) -> tuple[str, str | None]:
    name, eq, value = d.partition("=")
    return name, value if eq else None


class ZigToolchain(Toolchain):
    """clang and ld.lld from the ziglang wheel: pip-installable, the same binary everywhere. zig's
    default optimisation mode for cc is Debug-like with UBSan traps; -O2 turns that off, and a
    freestanding -target (the target's arch_flags) keeps zig from looking for a libc."""

    name = "zig"

    def compiler(self) -> Compiler:
        try:
            import ziglang  # noqa: F401
        except ImportError:
            raise ToolMissing(f"zig is not installed: {ZIG_HINT}") from None
        return Compiler((sys.executable, "-m", "ziglang", "cc"), "zig cc")

    @property
    def version(self) -> str:
        self.compiler()
        out = run_tool([sys.executable, "-m", "ziglang", "version"], "zig version", timeout=60)
        return f"zig {out.strip()}"

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        script = mcu_source_dir() / self.target.memory.linker_script
        # -nostdlib also leaves out zig's compiler-rt (which zig would build once per CPU, ~10 s):
        # link it only when an object calls a helper such as __aeabi_lmul.
        flags = (
            *self.spec.arch_flags,
            "-O2",
            *(() if needs_runtime else ("-nostdlib",)),
            f"-Wl,-T,{script}",
            "-Wl,--gc-sections",
            f"-Wl,--entry={self.roots[0]}",
            *(f"-Wl,-u,{name}" for name in self.roots[1:]),
        )
        return self._run(Build(self.compiler(), tuple(objects), flags), out, "zig linking")


class GccToolchain(Toolchain):
    """A GNU cross gcc (<triple>-gcc, e.g. Debian's arm-none-eabi-gcc) with picolibc."""

    name = "gcc"
    hosted = True

    @property
    def exe(self) -> str:
        return f"{self.spec.triple}-gcc"

    def compiler(self) -> Compiler:
        if shutil.which(self.exe) is None:
            raise ToolMissing(f"{self.exe} is not installed: {self.spec.install}")
        return Compiler((self.exe,), self.exe)

    @property
    def version(self) -> str:
        out = run_tool([*self.compiler().command, "-dumpversion"], f"{self.exe} -dumpversion", timeout=60)
        return f"gcc {out.strip()}"

    def lib_flags(self, hosted: bool) -> tuple[str, ...]:
        if hosted:
            return ("--specs=picolibc.specs", "-DMCU_SEMIHOST=1")
        return ("-ffreestanding",)

    def link(self, objects: Sequence[Path], out: Path, needs_runtime: bool) -> Path:
        cc = self.compiler()
        if not self._picolibc_found():
            raise ToolMissing(f"picolibc for {self.spec.triple} is not installed: {self.spec.install}")
        # picolibc's own linker script and crt0 (which copies .data, clears .bss and calls main),
        # placed on the target's memory map; semihosting carries printf and main's return value
        # to QEMU.
        mem = self.target.memory
        flags = (
            *self.spec.arch_flags,
            "-O2",
            "--specs=picolibc.specs",
            "--oslib=semihost",
            "--crt0=semihost",
            f"-Wl,--defsym=__flash={mem.flash_base:#x}",
            f"-Wl,--defsym=__flash_size={mem.flash_size:#x}",
            f"-Wl,--defsym=__ram={mem.ram_base:#x}",
            f"-Wl,--defsym=__ram_size={mem.ram_size:#x}",
            f"-Wl,--defsym=__stack_size={mem.stack_size:#x}",
            "-Wl,--gc-sections",
            *(f"-Wl,-u,{name}" for name in self.roots),  # crt0 is the entry: keep every root
        )
        return self._run(Build(cc, tuple(objects), flags), out, f"{self.exe} linking")

    def _picolibc_found(self) -> bool:
        if Path(f"/usr/lib/picolibc/{self.spec.triple}/picolibc.specs").exists():
            return True
        try:
            out = run_tool([self.exe, "-print-file-name=picolibc.specs"], "finding picolibc", timeout=60)
        except ToolchainError:
            return False
        return Path(out.strip()).is_absolute()


TOOLCHAINS: dict[str, type[Toolchain]] = {t.name: t for t in (ZigToolchain, GccToolchain)}
COMPILERS = tuple(TOOLCHAINS)


def toolchain(compiler: str, target: Target, roots: Sequence[str] = HARNESS_ROOTS) -> Toolchain:
    if compiler not in TOOLCHAINS:
        raise InputError(f"unknown compiler {compiler!r}; choose from {', '.join(COMPILERS)}")
    if compiler not in target.compilers:
        raise InputError(
            f"{target.name} cannot be built with {compiler}; choose from {', '.join(target.compilers)}"
        )
    return TOOLCHAINS[compiler](target, roots)
