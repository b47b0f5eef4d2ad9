"""The one registry of packages: `edgernn export --package`'s choices read it."""

from __future__ import annotations

from edgernn.errors import InputError
from edgernn.packages.base import Package

PACKAGES: dict[str, Package] = {}


def register(package: Package) -> Package:
    if package.name in PACKAGES:
        raise ValueError(f"package {package.name!r} is registered twice")
    PACKAGES[package.name] = package
    return package


def get(name: str) -> Package:
    try:
        return PACKAGES[name]
    except KeyError:
        raise InputError(f"unknown package {name!r}; choose from {', '.join(PACKAGES)} or all") from None
