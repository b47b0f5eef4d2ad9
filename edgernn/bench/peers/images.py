"""One image per peer, target and compiler, built with the toolchains and flags of `edgernn mcu`
(edgernn.targets.toolchain): the peer's library sources from the user's PATH, compiled with the
same code-generation flags as model.h but their own warnings silenced; the step glue of
c_runtime/peers/ (warnings as errors, as the project's own C); the driver and the freestanding
memcpy/memset. One image serves every shape up to its capacity (peer.h).

code_bytes is the machine code of the step as a firmware would link it: the kept text of the glue
and library objects, less the driver-facing set-up and state accessor, which an application would
not carry. Tables (CMSIS-NN's sigmoid table, NNoM's q7 tanh table) are data, not counted; the
memcpy/memset a step calls are shared C-library code, not counted either.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgernn.backends.c.codegen import c_runtime_dir
from edgernn.bench.peers.ports import Peer, Shape
from edgernn.bench.peers.sources import PeerSources
from edgernn.targets.elf import SHN_UNDEF, STB_LOCAL, Elf
from edgernn.targets.footprint import footprint, kept_sections
from edgernn.targets.toolchain import Toolchain

PEERS_DIR = "peers"  # c_runtime/peers
SUPPORT = ("peer_driver.c", "libc.c")
ENTRY = "peer_run"  # the driver: the zig image's entry, the gcc image's kept root
NOT_THE_STEP = ("peer_setup", "peer_state")  # glue functions only the driver calls


@dataclass(frozen=True)
class Capacity:
    """The largest shape and sequence an image's RAM buffers hold (peer.h's PEER_MAX_*); fixed:
    the image is built for exactly this shape (a peer whose shape is a compile-time constant)."""

    inputs: int
    hidden: int
    steps: int
    fixed: bool = False

    @property
    def defines(self) -> list[str]:
        out = [f"PEER_MAX_INPUTS={self.inputs}", f"PEER_MAX_HIDDEN={self.hidden}"]
        out.append(f"PEER_MAX_STEPS={self.steps}")
        if self.fixed:
            out += [f"PEER_INPUTS={self.inputs}", f"PEER_HIDDEN={self.hidden}"]
        return out

    def holds(self, shape: Shape, steps: int) -> bool:
        if self.fixed and (shape.inputs, shape.hidden) != (self.inputs, self.hidden):
            return False
        return shape.inputs <= self.inputs and shape.hidden <= self.hidden and steps <= self.steps


@dataclass(frozen=True)
class PeerImage:
    peer: Peer[Any]
    elf: Elf
    kernel: str  # the path the step's code takes, as the target reads it ("dsp", "plain")
    code_bytes: int
    capacity: Capacity


def peers_source_dir() -> Path:
    return c_runtime_dir() / PEERS_DIR


def build_peer_image(
    peer: Peer[Any], sources: PeerSources, tc: Toolchain, capacity: Capacity, workdir: Path
) -> PeerImage:
    """Compile and link one peer for tc's target (tc must keep ENTRY: toolchain(..., roots=(ENTRY,)))."""
    workdir.mkdir(parents=True, exist_ok=True)
    glue_dir = peers_source_dir()
    library = sources.library(peer.library) if peer.library else None
    # The freestanding headers first: a peer library's <string.h> must be ours (include/string.h).
    includes = [glue_dir / "include", glue_dir, *(glue_dir / d for d in peer.glue_includes)]
    if library is not None:
        includes += [library / d for d in peer.includes]
    defines = capacity.defines
    step_objects = [tc.compile(glue_dir / peer.glue, workdir / "glue.o", defines, includes)]
    for i, src in enumerate(peer.sources):
        assert library is not None  # a peer with sources names its library
        out = workdir / f"lib{i}_{Path(src).stem}.o"
        step_objects.append(tc.compile(library / src, out, defines, includes, strict=False))
    support = [tc.compile(glue_dir / f, workdir / f"{Path(f).stem}.o", defines, includes) for f in SUPPORT]
    objects = [*step_objects, *support]
    elf = Elf.read(tc.link(objects, workdir / "peer.elf", needs_runtime=_needs_runtime(objects)))
    step = [Elf.read(o) for o in step_objects]
    code = sum(footprint(o, elf).text for o in step) - sum(elf.symbol(n).size for n in NOT_THE_STEP)
    kept: list[bytes] = []
    for o in step:
        keep = kept_sections(o, elf)
        kept += [
            o.data[s.offset : s.offset + s.size]
            for i, s in enumerate(o.sections)
            if i in keep and s.kind == "text"
        ]
    return PeerImage(peer, elf, tc.target.kernel(kept), code, capacity)


def _needs_runtime(objects: list[Path]) -> bool:
    """Whether the objects call something none of them defines (a compiler-runtime helper such as
    __aeabi_lmul for CMSIS-NN's 64-bit requantization on Armv6-M)."""
    elves = [Elf.read(o) for o in objects]
    defined = {s.name for e in elves for s in e.symbols if s.shndx != SHN_UNDEF and s.bind != STB_LOCAL}
    return any(name not in defined for e in elves for name in e.undefined())
