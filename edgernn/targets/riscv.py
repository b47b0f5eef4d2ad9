"""RISC-V RV32IMC targets (ESP32-C3 class: CH32V, GD32V, ESP32-C3/C6 run this code).

Everything RISC-V-specific lives here: the core's names for zig and gcc (RV32IMC, soft-float ilp32
ABI), one memory map for both toolchains' images, Unicorn's and capstone's RV32 modes, the QEMU
virt board, and the ISA check.

Two paths, as for Cortex-M: zig cc (`-target riscv32-freestanding-none -mcpu=generic_rv32+m+c`;
zig rejects -march) linked with riscv.ld and run in Unicorn; Debian's riscv64-unknown-elf-gcc
(`-march=rv32imc -mabi=ilp32`, which selects the rv32im/ilp32 picolibc multilib: Debian builds no
rv32imc one, and RV32IM code runs on an RV32IMC core) with picolibc's crt0 and semihosting, booted
on `qemu-system-riscv32 -M virt -bios none` (execution starts at 0x80000000, the start of the
board's DRAM, where picolibc's linker script puts crt0) and also run in Unicorn for its counts.

The ISA check. Neither emulator enforces RV32IMC: Unicorn's closest CPU model (SiFive E31) is
RV32IMAC (F/D and Zb* instructions happen to trap in it today, with the FPU off and no Zb* in its
QEMU 5 core; atomics run) and QEMU virt's default CPU is RV32GC, so code using the A extension
(atomics), F/D (hardware float, including the compressed c.flw/c.fld forms) or a Zb*
bit-manipulation instruction could run there and fault on an ESP32-C3. So every image is read
before it is run:
capstone decodes every function of it (the model's kept code, the harness, and whatever the C
runtime and compiler runtime linked in), and an instruction that is not RV32I, M or C -- or one
capstone does not know at all, such as Zba/Zbb -- fails the run (CheckFailed), naming the
instruction, its address and its function. Zicsr and Zifencei (csrr, fence.i: crt0 only) are
allowed: they were part of the base ISA (I) until the 2019 split of the spec, and every
machine-mode core has them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from edgernn.errors import CheckFailed
from edgernn.targets.base import Board, CrossCompiler, Emulator, MemoryMap, UnicornCore
from edgernn.targets.registry import register

if TYPE_CHECKING:
    from edgernn.targets.elf import Elf

# Both toolchains' images: "flash" at the start of QEMU virt's DRAM (where -bios none starts the
# hart) and RAM 4 MB above it; riscv.ld writes the same map for the zig images.
VIRT = MemoryMap(
    flash_base=0x8000_0000,
    flash_size=0x40_0000,
    ram_base=0x8040_0000,
    ram_size=0x40_0000,
    stack_size=0x4000,
    linker_script="riscv.ld",
)
GNU_TRIPLE = "riscv64-unknown-elf"  # Debian's multilib RISC-V gcc builds RV32 with -march/-mabi
MCU_TOOLS = (
    "`make mcu-tools` installs it"
    " (apt: gcc-riscv64-unknown-elf picolibc-riscv64-unknown-elf qemu-system-misc)"
)
# capstone's groups for instructions outside RV32IMC, and what to call them in the error.
_FOREIGN_GROUPS = {
    "RISCV_GRP_HASSTDEXTA": "the A extension (atomics)",
    "RISCV_GRP_HASSTDEXTF": "the F extension (single-precision float)",
    "RISCV_GRP_HASSTDEXTD": "the D extension (double-precision float)",
    "RISCV_GRP_ISRV64": "RV64",
    "RISCV_GRP_ISRV64A": "RV64",
    "RISCV_GRP_ISRV64C": "RV64",
    "RISCV_GRP_ISRV64D": "RV64",
    "RISCV_GRP_ISRV64F": "RV64",
    "RISCV_GRP_ISRV64M": "RV64",
}
_STT_OBJECT, _STT_FUNC = 1, 2


# The bit-manipulation extensions (Zba, Zbb, Zbc, Zbs), which clang and gcc emit for min/max,
# shifts-and-adds and bit tests when a -mcpu/-march has them, and which capstone 5 does not
# decode: named here from their encodings so that the error says which instruction it is.
# OP (0x33) by (funct7, funct3):
_BITMANIP_OP = {
    (0x20, 7): ("andn", "Zbb"),
    (0x20, 6): ("orn", "Zbb"),
    (0x20, 4): ("xnor", "Zbb"),
    (0x05, 4): ("min", "Zbb"),
    (0x05, 5): ("minu", "Zbb"),
    (0x05, 6): ("max", "Zbb"),
    (0x05, 7): ("maxu", "Zbb"),
    (0x04, 4): ("zext.h", "Zbb"),
    (0x30, 1): ("rol", "Zbb"),
    (0x30, 5): ("ror", "Zbb"),
    (0x05, 1): ("clmul", "Zbc"),
    (0x05, 2): ("clmulr", "Zbc"),
    (0x05, 3): ("clmulh", "Zbc"),
    (0x10, 2): ("sh1add", "Zba"),
    (0x10, 4): ("sh2add", "Zba"),
    (0x10, 6): ("sh3add", "Zba"),
    (0x14, 1): ("bset", "Zbs"),
    (0x24, 1): ("bclr", "Zbs"),
    (0x24, 5): ("bext", "Zbs"),
    (0x34, 1): ("binv", "Zbs"),
}
# OP-IMM (0x13) by (imm[11:0], funct3) for the unary ones, (imm[11:5], funct3) for the rest:
_BITMANIP_UNARY = {
    (0x600, 1): ("clz", "Zbb"),
    (0x601, 1): ("ctz", "Zbb"),
    (0x602, 1): ("cpop", "Zbb"),
    (0x604, 1): ("sext.b", "Zbb"),
    (0x605, 1): ("sext.h", "Zbb"),
    (0x287, 5): ("orc.b", "Zbb"),
    (0x698, 5): ("rev8", "Zbb"),
}
_BITMANIP_IMM = {
    (0x30, 5): ("rori", "Zbb"),
    (0x14, 1): ("bseti", "Zbs"),
    (0x24, 1): ("bclri", "Zbs"),
    (0x24, 5): ("bexti", "Zbs"),
    (0x34, 1): ("binvi", "Zbs"),
}


def _bitmanip(word: int) -> tuple[str | None, str]:
    """(mnemonic, extension) of a 32-bit bit-manipulation instruction, or (None, '')."""
    opcode, funct3 = word & 0x7F, (word >> 12) & 7
    if opcode == 0x33:
        return _BITMANIP_OP.get((word >> 25, funct3), (None, ""))
    if opcode == 0x13 and funct3 in (1, 5):
        found = _BITMANIP_UNARY.get((word >> 20, funct3)) or _BITMANIP_IMM.get((word >> 25, funct3))
        return found or (None, "")
    return None, ""


@dataclass(frozen=True)
class IsaViolation:
    address: int
    text: str  # the instruction as capstone prints it, or its bytes if capstone cannot decode it
    why: str  # which extension it belongs to
    function: str = ""

    def __str__(self) -> str:
        where = f" in {self.function}" if self.function else ""
        return f"{self.text} at {self.address:#010x}{where} ({self.why})"


@functools.cache
def _rv32_decoder() -> tuple[Any, frozenset[int], dict[int, str]]:
    try:
        import capstone
        from capstone import riscv_const as consts
    except ImportError:
        from edgernn.targets.toolchain import ToolMissing
        from edgernn.targets.unicorn_emu import PIP_HINT

        raise ToolMissing(f"capstone is not installed: {PIP_HINT}") from None
    md = capstone.Cs(capstone.CS_ARCH_RISCV, capstone.CS_MODE_RISCV32 | capstone.CS_MODE_RISCVC)
    md.detail = True
    foreign = {getattr(consts, g): why for g, why in _FOREIGN_GROUPS.items() if hasattr(consts, g)}
    return md, frozenset(foreign), foreign


def isa_violations(code: bytes, address: int = 0, function: str = "") -> list[IsaViolation]:
    """Every instruction in `code` (machine code only, no data) that an RV32IMC core lacks."""
    md, foreign, extension = _rv32_decoder()
    out: list[IsaViolation] = []
    offset = 0
    while offset < len(code):
        for insn in md.disasm(code[offset:], address + offset):
            offset += insn.size
            bad = [g for g in insn.groups if g in foreign]
            if bad:
                text = f"{insn.mnemonic} {insn.op_str}".strip()
                out.append(IsaViolation(insn.address, text, extension[bad[0]], function))
        if offset + 2 <= len(code) and code[offset : offset + 2] == b"\0\0":
            offset += 2  # c.unimp, the defined illegal instruction: the linker's padding
        elif offset < len(code):  # capstone stopped: an encoding it does not know (e.g. Zbb's clz)
            size = 4 if code[offset] & 3 == 3 else 2  # RISC-V's length encoding: 32-bit or compressed
            word = int.from_bytes(code[offset : offset + size], "little")
            name, ext = _bitmanip(word) if size == 4 else (None, "")
            text = f"{name} (0x{word:0{2 * size}x})" if name else f".insn 0x{word:0{2 * size}x}"
            why = f"the {ext} extension" if ext else "not RV32IMC: an encoding capstone does not know"
            out.append(IsaViolation(address + offset, text, why, function))
            offset += size
    return out


def _code_ranges(elf: Elf) -> list[tuple[int, int, str]]:
    """(start, end, function) of the machine code in a linked image's executable sections. Those
    sections may hold tables too (picolibc's linker script puts .rodata in .text), so code is what
    the symbols say is code: every sized function (STT_FUNC), plus every stretch that a `$x`
    mapping symbol (which assemblers put at the start of code) opens outside a sized function --
    assembly routines such as picolibc's semihosting call -- up to the next symbol that starts a
    function or marks data (`$d`, an object) or the end of the section."""
    out: list[tuple[int, int, str]] = []
    for index, sec in enumerate(elf.sections):
        if sec.kind != "text":
            continue
        syms = [s for s in elf.symbols if s.shndx == index and s.name]
        funcs = sorted(
            {(s.value, s.value + s.size): s.name for s in syms if s.type == _STT_FUNC and s.size}.items()
        )
        out += [(a, b, name) for (a, b), name in funcs]
        bounds = sorted(
            {a for (a, _), _ in funcs}
            | {s.value for s in syms if s.type == _STT_OBJECT or s.name.startswith("$d")}
            | {sec.addr + sec.size}
        )
        labels = {s.value: s.name for s in syms if not s.name.startswith(("$", ".L"))}
        for s in syms:
            if not s.name.startswith("$x") or any(a <= s.value < b for (a, b), _ in funcs):
                continue
            stop = next(b for b in bounds if b > s.value)
            out.append((s.value, stop, labels.get(s.value, "")))
    return out


def image_isa_violations(elf: Elf) -> list[IsaViolation]:
    """isa_violations over all the machine code of a linked image (_code_ranges)."""
    out: list[IsaViolation] = []
    for start, end, name in _code_ranges(elf):
        sec = next(s for s in elf.sections if s.kind == "text" and s.addr <= start < s.addr + s.size)
        offset = sec.offset + start - sec.addr
        out += isa_violations(elf.data[offset : offset + end - start], start, name)
    return out


def _refuse(what: str, found: Sequence[IsaViolation]) -> None:
    if found:
        shown = "; ".join(str(v) for v in found[:5])
        more = f" (and {len(found) - 5} more)" if len(found) > 5 else ""
        raise CheckFailed(f"{what} holds instructions an RV32IMC core does not have: {shown}{more}")


@dataclass(frozen=True)
class RiscV32:
    """One RV32 core (implements edgernn.targets.base.Target)."""

    name: str  # the CLI's name
    zig_cpu: str  # zig cc -mcpu: a generic RV32 plus extensions
    march: str  # riscv64-unknown-elf-gcc -march
    mabi: str  # and -mabi (ilp32: integer registers only, soft float)
    uc_cpu: str  # a unicorn.riscv_const UC_CPU_RISCV32_* name
    memory: MemoryMap = VIRT

    @property
    def compilers(self) -> dict[str, CrossCompiler]:
        return {
            "zig": CrossCompiler(("-target", "riscv32-freestanding-none", f"-mcpu={self.zig_cpu}")),
            "gcc": CrossCompiler(
                (f"-march={self.march}", f"-mabi={self.mabi}"), triple=GNU_TRIPLE, install=MCU_TOOLS
            ),
        }

    @property
    def board(self) -> Board:
        # -bios none: no OpenSBI at 0x80000000; the hart starts there, in machine mode, in crt0.
        return Board("qemu-system-riscv32", "virt", MCU_TOOLS, ("-bios", "none"))

    @property
    def plain_defines(self) -> tuple[str, ...]:
        return ()  # one kernel path: the RV32 matvec (EDGERNN_RV32), "plain" as Armv6-M's asm is

    @property
    def core(self) -> UnicornCore:
        return UnicornCore(
            uc_arch="UC_ARCH_RISCV",
            uc_mode=("UC_MODE_RISCV32",),
            uc_consts="unicorn.riscv_const",
            uc_cpu=self.uc_cpu,
            cs_arch="CS_ARCH_RISCV",
            cs_mode=("CS_MODE_RISCV32", "CS_MODE_RISCVC"),
            arg_regs=tuple(f"UC_RISCV_REG_A{i}" for i in range(8)),  # ilp32: a0..a7
            result_reg="UC_RISCV_REG_A0",
            sp_reg="UC_RISCV_REG_SP",
            link_reg="UC_RISCV_REG_RA",
            pc_reg="UC_RISCV_REG_PC",
            symbol_regs=(("UC_RISCV_REG_GP", "__global_pointer$"),),  # set by picolibc's crt0
        )

    def emulator(self, elf: Elf) -> Emulator:
        """The image in Unicorn, after the ISA check of every function in it (module docstring)."""
        from edgernn.targets.unicorn_emu import Machine

        _refuse(elf.name, image_isa_violations(elf))
        return Machine(elf, self.memory, self.core)

    def kernel(self, code: Sequence[bytes]) -> str:
        """'plain' (the only path: RV32IMC has no packed-SIMD MAC); the model's kept code must be
        RV32IMC, or the run fails."""
        found = [v for i, c in enumerate(code) for v in isa_violations(c, 0, f"kept text section {i}")]
        _refuse("the model's kept code", found)
        return "plain"


CORES = (RiscV32("riscv32imc", "generic_rv32+m+c", "rv32imc", "ilp32", "UC_CPU_RISCV32_SIFIVE_E31"),)
for _core in CORES:
    register(_core)
