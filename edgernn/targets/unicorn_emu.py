"""Run functions of an image in Unicorn, in-process, and count the instructions they issue.

Any core Unicorn and capstone model: the target describes it (edgernn.targets.base.UnicornCore,
e.g. Thumb M-profile in edgernn.targets.cortex_m) and its memory map; nothing here is specific to
one architecture.

Instruction count (the one definition used everywhere in edgernn): the instructions issued from
the entry of a function to its return, callees included, counted per executed basic block: each
time Unicorn enters a translation block, capstone decodes the block's bytes and all of its
instructions are counted. An instruction inside an IT block counts whether or not its condition
passes (it is issued and occupies the pipeline either way; QEMU's counts agree), and the IT
instruction itself counts. Emulators give instructions, not cycles: on a real M4 an SMLAD is one
cycle, a taken branch two or three, a load from flash may stall on wait states.
"""

from __future__ import annotations

import functools
import importlib
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from edgernn.errors import CheckFailed
from edgernn.targets.base import MemoryMap, UnicornCore
from edgernn.targets.elf import Elf
from edgernn.targets.toolchain import ToolMissing

TIMEOUT_US = 120_000_000  # a runaway loop or a fault handler spinning is reported, not waited on
PIP_HINT = "pip install 'edgernn[mcu]' for the pip-only path"


class EmulatorFault(CheckFailed):
    """The code faulted or ran away on the emulator (exit 1: the C is wrong for this target)."""


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ToolMissing(f"{name.split('.')[0]} is not installed: {PIP_HINT}") from None


def _flags(module: Any, names: Sequence[str]) -> int:
    return functools.reduce(operator.or_, (getattr(module, n) for n in names), 0)


@functools.cache
def _disassembler(core: UnicornCore) -> Any:
    capstone = _import("capstone")
    return capstone.Cs(getattr(capstone, core.cs_arch), _flags(capstone, core.cs_mode))


def mnemonics(core: UnicornCore, code: bytes, address: int = 0) -> Iterator[str]:
    """The mnemonics of the instructions in `code`, as capstone decodes them for this core."""
    return (m for _, _, m, _ in _disassembler(core).disasm_lite(code, address))


@dataclass
class CallCounter:
    """Per-call instruction counts of one function, gathered while other code runs around it."""

    entry: int
    counts: list[int] = field(default_factory=list)
    _return: int = -1
    _current: int = 0


class Machine:
    """One core with the target's memory map and an image loaded at its run addresses
    (implements edgernn.targets.base.Emulator)."""

    name = "unicorn"

    def __init__(self, elf: Elf, memory: MemoryMap, core: UnicornCore) -> None:
        self._uc = _import("unicorn")
        consts = _import(core.uc_consts)
        self.elf = elf
        self.core = core
        self.uc = self._uc.Uc(getattr(self._uc, core.uc_arch), _flags(self._uc, core.uc_mode))
        self.uc.ctl_set_cpu_model(getattr(consts, core.uc_cpu))
        self.uc.mem_map(memory.flash_base, memory.flash_size)
        self.uc.mem_map(memory.ram_base, memory.ram_size)
        # What a reset handler would do: .data copied to its run address; .bss is mapped zero.
        for addr, data, _ in elf.loadable():
            self.uc.mem_write(addr, data)
        # Calls "return" here: an address in mapped, never-executed flash. emu_start stops on it.
        self.return_address = memory.flash_base + memory.flash_size - 0x100
        self.stack_top = memory.ram_base + memory.ram_size
        self._args = tuple(getattr(consts, r) for r in core.arg_regs)
        self._result, self._sp, self._link, self._pc = (
            getattr(consts, r) for r in (core.result_reg, core.sp_reg, core.link_reg, core.pc_reg)
        )
        defined = {s.name: s.value for s in elf.symbols if s.shndx}
        self._symbol_regs = [(getattr(consts, r), defined[s]) for r, s in core.symbol_regs if s in defined]
        self._cs = _disassembler(core)
        self._block_insns: dict[tuple[int, int], int] = {}
        self._fault: str | None = None
        self.uc.hook_add(self._uc.UC_HOOK_INTR, self._on_exception)

    def _on_exception(self, uc: Any, intno: int, _user: Any) -> None:
        # Any exception entry (HardFault, UsageFault on an undefined or unaligned instruction, ...)
        # means the code is wrong for this core: stop rather than run the image's non-handler.
        pc = uc.reg_read(self._pc)
        self._fault = f"exception {intno} at pc {pc:#010x}"
        uc.emu_stop()

    def address(self, name: str) -> int:
        """A symbol's byte address (a code symbol may carry the ISA's mode bit, e.g. Thumb's)."""
        return self.elf.symbol(name).value & ~self.core.code_bit

    def read_u32(self, name: str) -> int:
        return int.from_bytes(self.uc.mem_read(self.address(name), 4), "little")

    def read_s32(self, name: str) -> int:
        v = self.read_u32(name)
        return v - (1 << 32) if v >= 1 << 31 else v

    def read_bytes(self, name: str, size: int) -> bytes:
        return bytes(self.uc.mem_read(self.address(name), size))

    def write_bytes(self, name: str, data: bytes) -> None:
        """Overwrite the start of a global (the benchmark's peers take their weights this way);
        refuses to run past the symbol's size."""
        sym = self.elf.symbol(name)
        if len(data) > sym.size:
            raise ValueError(f"{len(data)} B do not fit {name} ({sym.size} B)")
        self.uc.mem_write(self.address(name), data)

    def call(self, name: str, args: Sequence[int] = ()) -> int:
        """Call a function with integer arguments in the argument registers; returns the result register."""
        if len(args) > len(self._args):
            raise ValueError(f"at most {len(self._args)} register arguments")
        for reg, value in zip(self._args[: len(args)], args, strict=True):
            self.uc.reg_write(reg, value & 0xFFFF_FFFF)
        self.uc.reg_write(self._sp, self.stack_top)
        self.uc.reg_write(self._link, self.return_address | self.core.code_bit)
        for reg, value in self._symbol_regs:
            self.uc.reg_write(reg, value)
        self._fault = None
        try:
            self.uc.emu_start(
                self.address(name) | self.core.code_bit, self.return_address, timeout=TIMEOUT_US
            )
        except Exception as e:  # unicorn.UcError: unmapped access, invalid instruction, ...
            pc = self.uc.reg_read(self._pc)
            raise EmulatorFault(f"{self.elf.name}: {name} stopped with {e} at pc {pc:#010x}") from None
        pc = self.uc.reg_read(self._pc)
        if self._fault or pc != self.return_address:
            raise EmulatorFault(f"{self.elf.name}: {name} did not return ({self._fault or f'pc {pc:#010x}'})")
        return int(self.uc.reg_read(self._result))

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
        (entry to return, callees included). Returns (result, one count per call)."""
        counter = CallCounter(self.address(function))
        link, code_bit = self._link, self.core.code_bit

        def on_block(uc: Any, address: int, size: int, _user: Any) -> None:
            if counter._return >= 0:
                if address == counter._return:  # back in the caller: the call is over
                    counter.counts.append(counter._current)
                    counter._return = -1
                else:
                    counter._current += self._insns(address, size)
            elif address == counter.entry:  # a call begins; the call instruction ends the caller's block
                counter._return = uc.reg_read(link) & ~code_bit
                counter._current = self._insns(address, size)

        hook = self.uc.hook_add(self._uc.UC_HOOK_BLOCK, on_block)
        # Translated blocks are cached with the hooks they were built under: flush on both sides,
        # or the counts silently read 0 (or hooks linger) on the next call.
        self.uc.ctl_flush_tb()
        try:
            result = self.call(name, args)
        finally:
            self.uc.hook_del(hook)
            self.uc.ctl_flush_tb()
        return result, counter.counts
