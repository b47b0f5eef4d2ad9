"""Microcontroller targets: the generated model.h cross-compiled, run on emulated cores, measured.

The registry (edgernn.targets.registry) holds every target by name; the protocol a target
implements is edgernn.targets.base.Target. A new target family is a new module here that calls
`register(...)` for its cores, plus one import line below.
"""

# One line per target family: importing its module registers its cores.
from edgernn.targets import (
    avr,  # noqa: F401
    cortex_m,  # noqa: F401
    riscv,  # noqa: F401
)
from edgernn.targets.registry import TARGETS, compilers, default_targets, get, register

__all__ = ["TARGETS", "compilers", "default_targets", "get", "register"]
