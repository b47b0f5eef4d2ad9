"""The one registry of targets: the CLI's --target choices and defaults, and the check, read it.

A target family's module (edgernn.targets.cortex_m) registers its cores when imported;
edgernn/targets/__init__.py imports every family, one line each.
"""

from __future__ import annotations

from edgernn.errors import InputError
from edgernn.targets.base import Target

TARGETS: dict[str, Target] = {}
_DEFAULTS: list[str] = []


def register(target: Target, *, default: bool = False) -> Target:
    """Add a target under its name; default: one of the targets `edgernn mcu` checks unasked."""
    if target.name in TARGETS:
        raise ValueError(f"target {target.name!r} is registered twice")
    TARGETS[target.name] = target
    if default:
        _DEFAULTS.append(target.name)
    return target


def get(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise InputError(f"unknown target {name!r}; choose from {', '.join(TARGETS)}") from None


def default_targets() -> tuple[str, ...]:
    return tuple(_DEFAULTS)


def compilers() -> tuple[str, ...]:
    """Every toolchain some registered target can be built with (edgernn.targets.toolchain)."""
    return tuple(dict.fromkeys(c for t in TARGETS.values() for c in t.compilers))
