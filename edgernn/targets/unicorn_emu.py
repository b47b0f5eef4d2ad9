"""Run functions of a Cortex-M image in Unicorn, in-process, and count the instructions they issue.

Instruction count (the one definition used everywhere in edgernn): the instructions issued from
the entry of a function to its return, callees included, counted per executed basic block: each
time Unicorn enters a translation block, capstone decodes the block's bytes and all of its
instructions are counted. An instruction inside an IT block counts whether or not its condition
passes (it is issued and occupies the pipeline either way; QEMU's counts agree), and the IT
instruction itself counts. Emulators give instructions, not cycles: on a real M4 an SMLAD is one
cycle, a taken branch two or three, a load from flash may stall on wait states.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from edgernn.errors import EdgeRNNError
from edgernn.targets.elf import Elf
from edgernn.targets.toolchain import FLASH_BASE, FLASH_SIZE, RAM_BASE, RAM_SIZE, Target, ToolMissing

# Calls "return" here: an address in mapped, never-executed flash. emu_start stops on reaching it.
RETURN_ADDRESS = FLASH_BASE + FLASH_SIZE - 0x100
TIMEOUT_US = 120_000_000  # a runaway loop or a fault handler spinning is reported, not waited on


class EmulatorFault(EdgeRNNError):
    """The code faulted or ran away on the emulator (exit 1: the C is wrong for this target)."""

    exit_code = 1


def _unicorn() -> Any:
    try:
        import unicorn
    except ImportError:
        raise ToolMissing(
            "unicorn is not installed: pip install 'edgernn[mcu]' for the pip-only path"
        ) from None
    return unicorn


@dataclass
class CallCounter:
    """Per-call instruction counts of one function, gathered while other code runs around it."""

    entry: int
    counts: list[int] = field(default_factory=list)
    _return: int = -1
    _current: int = 0


class Machine:
    """One Cortex-M core with the MPS2 memory map and an image loaded at its run addresses."""

    def __init__(self, elf: Elf, target: Target) -> None:
        uc_mod = _unicorn()
        import capstone
        from unicorn import arm_const

        self.elf = elf
        self.uc = uc_mod.Uc(uc_mod.UC_ARCH_ARM, uc_mod.UC_MODE_THUMB | uc_mod.UC_MODE_MCLASS)
        self.uc.ctl_set_cpu_model(getattr(arm_const, target.uc_cpu))
        self.uc.mem_map(FLASH_BASE, FLASH_SIZE)
        self.uc.mem_map(RAM_BASE, RAM_SIZE)
        # What a reset handler would do: .data copied to its run address; .bss is mapped zero.
        for addr, data, _ in elf.loadable():
            self.uc.mem_write(addr, data)
        self._regs = arm_const
        self._cs = capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
        self._block_insns: dict[tuple[int, int], int] = {}
        self._fault: str | None = None
        self.uc.hook_add(uc_mod.UC_HOOK_INTR, self._on_exception)

    def _on_exception(self, uc: Any, intno: int, _user: Any) -> None:
        # Any exception entry (HardFault, UsageFault on an undefined or unaligned instruction, ...)
        # means the code is wrong for this core: stop rather than run the image's non-handler.
        pc = uc.reg_read(self._regs.UC_ARM_REG_PC)
        self._fault = f"exception {intno} at pc {pc:#010x}"
        uc.emu_stop()

    def address(self, name: str) -> int:
        return self.elf.symbol(name).value & ~1  # a Thumb function's symbol has bit 0 set

    def read_u32(self, name: str) -> int:
        return int.from_bytes(self.uc.mem_read(self.address(name), 4), "little")

    def read_s32(self, name: str) -> int:
        v = self.read_u32(name)
        return v - (1 << 32) if v >= 1 << 31 else v

    def call(self, name: str, args: Sequence[int] = ()) -> int:
        """Call a function with up to four integer arguments (AAPCS: r0-r3); returns r0."""
        if len(args) > 4:
            raise ValueError("at most four register arguments")
        r = self._regs
        regs = (r.UC_ARM_REG_R0, r.UC_ARM_REG_R1, r.UC_ARM_REG_R2, r.UC_ARM_REG_R3)
        for reg, value in zip(regs[: len(args)], args, strict=True):
            self.uc.reg_write(reg, value & 0xFFFF_FFFF)
        self.uc.reg_write(r.UC_ARM_REG_SP, RAM_BASE + RAM_SIZE)
        self.uc.reg_write(r.UC_ARM_REG_LR, RETURN_ADDRESS | 1)
        self._fault = None
        try:
            self.uc.emu_start(self.address(name) | 1, RETURN_ADDRESS, timeout=TIMEOUT_US)
        except Exception as e:  # unicorn.UcError: unmapped access, invalid instruction, ...
            pc = self.uc.reg_read(r.UC_ARM_REG_PC)
            raise EmulatorFault(f"{self.elf.name}: {name} stopped with {e} at pc {pc:#010x}") from None
        pc = self.uc.reg_read(r.UC_ARM_REG_PC)
        if self._fault or pc != RETURN_ADDRESS:
            raise EmulatorFault(f"{self.elf.name}: {name} did not return ({self._fault or f'pc {pc:#010x}'})")
        return int(self.uc.reg_read(r.UC_ARM_REG_R0))

    def _insns(self, address: int, size: int) -> int:
        key = (address, size)
        n = self._block_insns.get(key)
        if n is None:
            code = bytes(self.uc.mem_read(address, size))
            n = sum(1 for _ in self._cs.disasm_lite(code, address))
            self._block_insns[key] = n
        return n

    def count_calls(self, function: str, name: str, args: Sequence[int] = ()) -> tuple[int, list[int]]:
        """Call `name`, and count the instructions of every call it makes to `function`
        (entry to return, callees included). Returns (r0, one count per call)."""
        counter = CallCounter(self.address(function))
        lr = self._regs.UC_ARM_REG_LR

        def on_block(uc: Any, address: int, size: int, _user: Any) -> None:
            if counter._return >= 0:
                if address == counter._return:  # back in the caller: the call is over
                    counter.counts.append(counter._current)
                    counter._return = -1
                else:
                    counter._current += self._insns(address, size)
            elif address == counter.entry:  # a call begins; bl/blx ends the caller's block
                counter._return = uc.reg_read(lr) & ~1
                counter._current = self._insns(address, size)

        unicorn = _unicorn()
        hook = self.uc.hook_add(unicorn.UC_HOOK_BLOCK, on_block)
        # Translated blocks are cached with the hooks they were built under: flush on both sides,
        # or the counts silently read 0 (or hooks linger) on the next call.
        self.uc.ctl_flush_tb()
        try:
            result = self.call(name, args)
        finally:
            self.uc.hook_del(hook)
            self.uc.ctl_flush_tb()
        return result, counter.counts
