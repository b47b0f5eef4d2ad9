"""The peer libraries' sources: the folder a user points `edgernn bench --peers PATH` at.

PATH holds one folder per library, named as ../shared/peers does: `cmsis-nn/` (a checkout of
ARM-software/CMSIS-NN) and `nnom/` (majianjia/nnom). Their sources are compiled from there, never
copied into the project. A library that is absent leaves its peers out (with the reason in
bench.json); a PATH that holds neither is a usage error.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from edgernn.bench.peers.ports import PEERS
from edgernn.errors import InputError

LIBRARIES = ("cmsis-nn", "nnom")


@dataclass(frozen=True)
class PeerSources:
    root: Path  # resolved: the compilers run from other directories
    given: str  # as the user gave it, for bench.json: no absolute path of this machine recorded

    def library(self, name: str) -> Path:
        return self.root / name

    def absent(self, name: str) -> str | None:
        """Why the peers of library `name` cannot be built from PATH, or None when they can."""
        folder = self.library(name)
        if not folder.is_dir():
            return f"{folder} does not exist"
        needed = {f for p in PEERS if p.library == name for f in (*p.sources, *p.includes)}
        missing = sorted(f for f in needed if not (folder / f).exists())
        return f"{folder} lacks {', '.join(missing)}" if missing else None


def find_sources(path: str | os.PathLike[str]) -> PeerSources:
    """PATH checked: a folder holding at least one library with every file its peers compile."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise InputError(f"--peers {path}: no such folder; point it at a folder holding cmsis-nn/ and nnom/")
    sources = PeerSources(root.resolve(), str(path))
    if all(sources.absent(name) for name in LIBRARIES):
        raise InputError(
            f"--peers {path}: holds neither a CMSIS-NN (cmsis-nn/) nor an NNoM (nnom/) source tree "
            "with the files the peers compile"
        )
    return sources
