"""Arm Cortex-M targets: M0+ (Armv6-M), M4 and M7 (Armv7E-M, with the DSP extension), M33
(Armv8-M Mainline with its DSP extension on).

Everything Arm-specific lives here: the cores' names for zig and gcc (Thumb code, soft-float ABI:
no FPU is switched on), the MPS2 memory map and its linker script, Unicorn's and capstone's Thumb
M-profile modes and CPU models, the QEMU MPS2 boards, and how to tell the DSP kernel from the
plain one in the machine code (SMLAD, the packed dual 16-bit MAC, appears only in the DSP path).

Cortex-M0+ has no QEMU board: its Armv6-M image runs on the Cortex-M3 board (AN385), whose
instruction set contains Armv6-M's; Unicorn's Cortex-M0 model enforces Armv6-M itself, so an
Armv7-M instruction in an M0+ image faults there.

Cortex-M33: the DSP extension is optional on the core (nRF53, STM32U5 and RP2350 have it). gcc's
`-mcpu=cortex-m33` includes it (`+nodsp` removes it); zig 0.17's `cortex_m33` does not, so
the zig build names it: `cortex_m33+dsp`. Its QEMU board, MPS2 AN505, is a TrustZone system whose
memory sits elsewhere than on the other MPS2 boards (AN505 below); the core leaves reset in the
Secure state with the SAU off, where every address is Secure, so a plain (non-TrustZone) image
linked at the Secure aliases runs as on any other core.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edgernn.targets.base import Board, CrossCompiler, Emulator, MemoryMap, UnicornCore
from edgernn.targets.registry import register

if TYPE_CHECKING:
    from edgernn.targets.elf import Elf

# The MPS2 boards' map (code memory at 0, SRAM at 0x20000000, 4 MB each), for both toolchains'
# images; cortex-m.ld writes the same map for the zig images.
MPS2 = MemoryMap(
    flash_base=0x0000_0000,
    flash_size=0x40_0000,
    ram_base=0x2000_0000,
    ram_size=0x40_0000,
    stack_size=0x4000,
    linker_script="cortex-m.ld",
)
# MPS2 AN505 (QEMU's Cortex-M33 board): the Secure aliases of its code SSRAM (4 MB at 0x10000000,
# where the reset vector table is read) and of SSRAM1 + SSRAM2 (2 MB each, contiguous at
# 0x38000000); cortex-m33.ld writes the same map for the zig images.
AN505 = MemoryMap(
    flash_base=0x1000_0000,
    flash_size=0x40_0000,
    ram_base=0x3800_0000,
    ram_size=0x40_0000,
    stack_size=0x4000,
    linker_script="cortex-m33.ld",
)
GNU_TRIPLE = "arm-none-eabi"
MCU_TOOLS = "`make mcu-tools` installs it (apt: gcc-arm-none-eabi picolibc-arm-none-eabi qemu-system-arm)"
# Floats stay in core registers on every core (no FPU is switched on).
SOFT_FLOAT = ("-mfloat-abi=soft",)


@dataclass(frozen=True)
class CortexM:
    """One Cortex-M core (implements edgernn.targets.base.Target)."""

    name: str  # the CLI's name
    zig_cpu: str  # zig cc -mcpu
    gcc_cpu: str  # arm-none-eabi-gcc -mcpu
    uc_cpu: str  # a unicorn.arm_const UC_CPU_ARM_* name
    qemu_machine: str  # an MPS2 board (M0+ has none in QEMU: the M3 board runs Armv6-M code)
    dsp: bool  # has the DSP extension (SMLAD, SXTB16): __ARM_FEATURE_DSP is defined
    memory: MemoryMap = MPS2

    @property
    def compilers(self) -> dict[str, CrossCompiler]:
        return {
            "zig": CrossCompiler(("-target", "thumb-freestanding-eabi", f"-mcpu={self.zig_cpu}"), SOFT_FLOAT),
            "gcc": CrossCompiler(
                (f"-mcpu={self.gcc_cpu}", "-mthumb"), SOFT_FLOAT, triple=GNU_TRIPLE, install=MCU_TOOLS
            ),
        }

    @property
    def board(self) -> Board:
        return Board("qemu-system-arm", self.qemu_machine, MCU_TOOLS)

    @property
    def plain_defines(self) -> tuple[str, ...]:
        return ("EDGERNN_NO_DSP=1",) if self.dsp else ()

    @property
    def core(self) -> UnicornCore:
        return UnicornCore(
            uc_arch="UC_ARCH_ARM",
            uc_mode=("UC_MODE_THUMB", "UC_MODE_MCLASS"),
            uc_consts="unicorn.arm_const",
            uc_cpu=self.uc_cpu,
            cs_arch="CS_ARCH_ARM",
            cs_mode=("CS_MODE_THUMB", "CS_MODE_MCLASS"),
            arg_regs=("UC_ARM_REG_R0", "UC_ARM_REG_R1", "UC_ARM_REG_R2", "UC_ARM_REG_R3"),  # AAPCS
            result_reg="UC_ARM_REG_R0",
            sp_reg="UC_ARM_REG_SP",
            link_reg="UC_ARM_REG_LR",
            pc_reg="UC_ARM_REG_PC",
            code_bit=1,  # Thumb: a code address has bit 0 set
        )

    def emulator(self, elf: Elf) -> Emulator:
        from edgernn.targets.unicorn_emu import Machine

        return Machine(elf, self.memory, self.core)

    def kernel(self, code: Sequence[bytes]) -> str:
        """'dsp' if the code issues SMLAD (the packed dual MAC), else 'plain'."""
        from edgernn.targets.unicorn_emu import mnemonics

        return "dsp" if any("smlad" in mnemonics(self.core, c) for c in code) else "plain"


CORES = (
    CortexM("cortex-m0plus", "cortex_m0plus", "cortex-m0plus", "UC_CPU_ARM_CORTEX_M0", "mps2-an385", False),
    CortexM("cortex-m4", "cortex_m4", "cortex-m4", "UC_CPU_ARM_CORTEX_M4", "mps2-an386", True),
    CortexM("cortex-m7", "cortex_m7", "cortex-m7", "UC_CPU_ARM_CORTEX_M7", "mps2-an500", True),
    CortexM("cortex-m33", "cortex_m33+dsp", "cortex-m33", "UC_CPU_ARM_CORTEX_M33", "mps2-an505", True, AN505),
)
DEFAULTS = ("cortex-m0plus", "cortex-m4")  # what `edgernn mcu` checks when no --target is given
for _core in CORES:
    register(_core, default=_core.name in DEFAULTS)
