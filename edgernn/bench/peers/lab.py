"""Every peer and model.h on every (target, compiler) of one run: the toolchains found once, each
peer's image built once per target and compiler (once per shape for a peer built for one shape)
and loaded on its emulator once, then measured at as many shapes as asked.

What cannot be measured is not an error but a `Skipped` row with its reason: a compiler that is
not installed, a peer library that is not under PATH, a peer that does not build or run on a core,
and every target whose emulator cannot call a function and count its instructions (AVR: simavr
runs whole images from reset and counts cycles).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edgernn.bench.peers.images import ENTRY, Capacity, PeerImage, build_peer_image
from edgernn.bench.peers.ports import PEERS, Peer, Shape
from edgernn.bench.peers.runs import PeerRow, measure_peer
from edgernn.bench.peers.sources import PeerSources
from edgernn.contract.model import QuantizedModel
from edgernn.errors import CheckFailed, ToolchainError
from edgernn.targets import TARGETS, get
from edgernn.targets.base import Emulator, SelfCheckingTarget
from edgernn.targets.check import McuResult, measure
from edgernn.targets.toolchain import COMPILERS, Toolchain, ToolMissing, toolchain
from edgernn.targets.vectors import Vectors

SELF_CHECKING_REASON = (
    "its emulator runs whole images from reset and counts cycles, not the instructions of one "
    "call; the peers would each need a self-timing image of their own"
)


@dataclass(frozen=True)
class Skipped:
    target: str
    compiler: str  # "" for every compiler
    what: str  # a peer's name, or "" for everything on the target / compiler
    reason: str

    def to_json(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Pair:
    """A target and a compiler that build for it: what every row is measured on."""

    target: str
    compiler: str  # the toolchain's name, e.g. zig
    version: str  # with version, e.g. "zig 0.17.1": the rows' compiler column


class PeerLab:
    def __init__(
        self,
        sources: PeerSources,
        workdir: Path,
        capacity: Capacity,
        targets: Sequence[str] | None = None,
        compilers: Sequence[str] = COMPILERS,
        echo: Callable[[str], None] | None = None,
    ) -> None:
        self.sources = sources
        self.workdir = workdir
        self.capacity = capacity  # of the images shared by every shape
        self.say = echo or (lambda _msg: None)
        self.skipped: list[Skipped] = []
        self.pairs: list[Pair] = []
        self._toolchains: dict[Pair, Toolchain] = {}
        self._images: dict[tuple[str, Pair, Shape | None], tuple[PeerImage, Emulator] | None] = {}
        for name in targets if targets is not None else tuple(TARGETS):
            self._add_target(name, compilers)
        for lib in {p.library for p in PEERS if p.library}:
            reason = sources.absent(lib)
            if reason:
                self.skipped += [Skipped("", "", p.name, reason) for p in PEERS if p.library == lib]

    def _add_target(self, name: str, compilers: Sequence[str]) -> None:
        target = get(name)
        if isinstance(target, SelfCheckingTarget):
            self.skipped.append(Skipped(name, "", "", SELF_CHECKING_REASON))
            return
        for compiler in (c for c in compilers if c in target.compilers):
            try:
                tc = toolchain(compiler, target, roots=(ENTRY,))
                pair = Pair(name, compiler, tc.version)
            except ToolMissing as e:
                self.skipped.append(Skipped(name, compiler, "", str(e)))
                continue
            self.pairs.append(pair)
            self._toolchains[pair] = tc

    def _drop(self, pair: Pair, reason: str) -> None:
        """A tool the whole pair needs is missing (picolibc, QEMU): nothing more is measured on it."""
        if pair in self.pairs:
            self.pairs.remove(pair)
            self.skipped.append(Skipped(pair.target, pair.compiler, "", reason))

    def _image(
        self, peer: Peer[Any], pair: Pair, shape: Shape, steps: int
    ) -> tuple[PeerImage, Emulator] | None:
        fixed = peer.fixed_shape
        key = (peer.name, pair, shape if fixed else None)
        if key not in self._images:
            cap = Capacity(shape.inputs, shape.hidden, steps, fixed=True) if fixed else self.capacity
            where = self.workdir / f"{pair.target}-{pair.compiler}" / peer.name
            if fixed:
                where = where / f"i{shape.inputs}_h{shape.hidden}"
            try:
                image = build_peer_image(peer, self.sources, self._toolchains[pair], cap, where)
                self._images[key] = (image, get(pair.target).emulator(image.elf))
            except ToolMissing:  # concerns the whole pair: peers() drops it
                raise
            except (ToolchainError, CheckFailed) as e:  # the library does not build (or load) there
                self.skipped.append(Skipped(pair.target, pair.compiler, peer.name, str(e).splitlines()[0]))
                self._images[key] = None
        return self._images[key]

    def peers(self, shape: Shape, pair: Pair, steps: int, seed: int = 0) -> list[PeerRow]:
        """Every available peer at the shape, each checked against its port (PeerRow.checked)."""
        rows = []
        for peer in PEERS:
            if peer.library and self.sources.absent(peer.library):
                continue
            try:
                built = self._image(peer, pair, shape, steps)
            except ToolMissing as e:
                self._drop(pair, str(e))
                return []
            if built is None:
                continue
            image, machine = built
            try:
                rows.append(measure_peer(image, machine, shape, pair.target, pair.version, steps, seed))
            except CheckFailed as e:  # faulted on the core: no row, the reason instead
                self.skipped.append(Skipped(pair.target, pair.compiler, peer.name, str(e).splitlines()[0]))
        return rows

    def edgernn(
        self, header: Path, qm: QuantizedModel, vectors: Vectors, pair: Pair, sequences: int
    ) -> McuResult | None:
        """model.h on the pair, checked and counted by `edgernn mcu`'s own measure."""
        where = self.workdir / f"{pair.target}-{pair.compiler}" / "edgernn" / header.stem
        try:
            return measure(header, qm, vectors, pair.target, pair.compiler, where, bench_sequences=sequences)
        except ToolMissing as e:
            self._drop(pair, str(e))
            return None
