"""An estimate of Cortex-M4 cycles per call from the instructions an image issues in Unicorn.

Unicorn counts instructions, not cycles. This module replays a call in Unicorn, records the
executed basic blocks in order, and prices every instruction with the Cortex-M4 Technical Reference
Manual's instruction timings (ARM DDI 0439B, section 3.3, table 3-1), on the assumptions spelled
out in c_runtime/mcu/README.md ("Cycles on Cortex-M4, estimated"): zero-wait-state memory, a taken
branch or a call or return refills the pipeline for P = 2 cycles (the TRM gives 1 to 3), a
load or store that directly follows another one pipelines and costs one cycle less. It is an
estimate, labelled so wherever it is printed: the real figure also depends on flash wait states
and the flash accelerator, which no emulator models.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from edgernn.targets.unicorn_emu import Machine, _import

TIMED_TARGETS = ("cortex-m4",)  # the cores whose TRM these timings are (`edgernn mcu` rows)
PIPELINE_REFILL = 2  # P of the TRM's "1 + P" for a taken branch (P is 1..3)

_LOADS_STORES = ("ldr", "str")  # ldr, ldrb, ldrsh, ldrd, str, strd, ... (not ldm/stm/push/pop)
_MULTIPLE = ("ldm", "stm", "push", "pop")
_DIVIDES = ("sdiv", "udiv")  # 2..12 cycles: priced at the worst case


def _register_count(operands: str) -> int:
    """Registers in a register list such as "{r4, r5, r6, r7, lr}" (ranges as r4-r7)."""
    inside = operands[operands.index("{") + 1 : operands.index("}")]
    count = 0
    for item in inside.split(","):
        item = item.strip()
        if "-" in item:
            lo, hi = (int(r.strip().lstrip("r")) for r in item.split("-"))
            count += hi - lo + 1
        elif item:
            count += 1
    return count


def instruction_cycles(mnemonic: str, operands: str, after_memory: bool) -> tuple[int, bool]:
    """(cycles, is a memory access) of one issued instruction, branches not included (their
    refill is priced by the caller, which knows whether the branch was taken)."""
    base = mnemonic.split(".")[0]
    if base.startswith(_MULTIPLE):
        return 1 + _register_count(operands), True
    if base.startswith(_LOADS_STORES):
        words = 2 if base in ("ldrd", "strd") else 1
        return words + (0 if after_memory else 1), True
    if base in _DIVIDES:
        return 12, False
    return 1, False  # ALU, shifts, saturation, SXTB16, every multiply and MAC (SMLAD, SMLAL...)


def estimate_cycles(machine: Machine, function: str, caller: str, args: Sequence[int] = ()) -> list[float]:
    """Call `caller`; for every call it makes to `function` (entry to return, callees included),
    the estimated Cortex-M4 cycles. Same accounting of what a call is as Machine.count_calls."""
    uc_mod = _import("unicorn")
    entry = machine.address(function)
    code_bit = machine.core.code_bit
    priced: dict[tuple[int, int], tuple[int, bool, bool, int]] = {}
    state: dict[str, Any] = {"ret": -1, "cycles": 0.0, "next": -1, "mem": False}
    totals: list[float] = []

    def block_price(address: int, size: int) -> tuple[int, bool, bool, int]:
        """(cycles of the block's instructions, starts with a single load or store, ends with a
        memory access, the address after it)."""
        key = (address, size)
        if key not in priced:
            cycles, first_mem, prev_mem = 0, False, False
            decoded = list(machine._cs.disasm_lite(bytes(machine.uc.mem_read(address, size)), address))
            for i, (_, _, mnemonic, operands) in enumerate(decoded):
                c, mem = instruction_cycles(mnemonic, operands, prev_mem)
                if i == 0:  # priced as not pipelined; on_block takes the cycle off when it is
                    first_mem = mem and not mnemonic.startswith(_MULTIPLE)
                cycles += c
                prev_mem = mem
            priced[key] = (cycles, first_mem, prev_mem, address + size)
        return priced[key]

    def on_block(uc: Any, address: int, size: int, _user: Any) -> None:
        if state["ret"] >= 0:
            if address == state["ret"]:
                totals.append(state["cycles"] + PIPELINE_REFILL)  # the return
                state["ret"] = -1
                return
        elif address == entry:
            state["ret"] = uc.reg_read(machine._link) & ~code_bit
            state["cycles"], state["next"], state["mem"] = float(PIPELINE_REFILL), address, False
        else:
            return
        cycles, first_mem, last_mem, after = block_price(address, size)
        if first_mem and state["mem"]:
            cycles -= 1  # pipelined behind the previous block's last load or store
        if address != state["next"]:
            cycles += PIPELINE_REFILL  # the previous block ended in a taken branch
        state["cycles"] += cycles
        state["next"], state["mem"] = after, last_mem

    hook = machine.uc.hook_add(uc_mod.UC_HOOK_BLOCK, on_block)
    machine.uc.ctl_flush_tb()
    try:
        machine.call(caller, args)
    finally:
        machine.uc.hook_del(hook)
        machine.uc.ctl_flush_tb()
    return totals
