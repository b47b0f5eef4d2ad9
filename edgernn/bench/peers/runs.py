"""One peer at one shape on one emulated core: random parameters and inputs written into the
image, the step run over a short sequence with each call's instructions counted
(edgernn.targets.unicorn_emu's definition, the one `edgernn mcu` uses for model.h), and every
state compared with the peer's numpy port (edgernn.bench.peers.ports). A peer whose states differ
is reported with checked=false, and its count is not quoted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from edgernn.bench.peers.images import ENTRY, PeerImage
from edgernn.bench.peers.ports import Shape, scalar
from edgernn.errors import CheckFailed
from edgernn.targets.base import Emulator

STEP = "peer_step"  # the counted call (peer.h)


@dataclass(frozen=True)
class PeerRow:
    name: str
    target: str
    compiler: str  # with version, as the mcu rows
    kernel: str
    inputs: int
    hidden: int
    macs_per_step: int
    insns_per_step: float
    insns_per_mac: float
    code_bytes: int
    checked: bool  # every state equals the numpy port's
    mismatches: int  # state bytes that differ from the port's
    steps: int

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["insns_per_step"] = round(self.insns_per_step, 1)
        d["insns_per_mac"] = round(self.insns_per_mac, 3)
        return d


@dataclass(frozen=True)
class PeerRun:
    states: np.ndarray  # (steps, H): the state after each step, as the image left it
    insns: list[int]  # instructions of each step call


def _le(values: np.ndarray) -> bytes:
    """Little-endian bytes of a global's values (every emulated target is little-endian)."""
    a = np.asarray(values)
    return np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes()


def library_tables(image: PeerImage, machine: Emulator) -> dict[str, np.ndarray]:
    """The tables the peer's library defines, as the image holds them (for the port)."""
    out = {}
    for name, (dtype, count) in image.peer.tables.items():
        dt = np.dtype(dtype).newbyteorder("<")
        out[name] = np.frombuffer(machine.read_bytes(name, dt.itemsize * count), dtype=dt).astype(np.int64)
    return out


def run_image(image: PeerImage, machine: Emulator, shape: Shape, params: Any, xs: np.ndarray) -> PeerRun:
    """Write the shape, the parameters and the inputs (steps, I), run them, read every state."""
    steps = len(xs)
    if not image.capacity.holds(shape, steps):
        raise ValueError(f"{shape} over {steps} steps does not fit the image's {image.capacity}")
    machine.write_bytes("peer_inputs", _le(scalar(shape.inputs)))
    machine.write_bytes("peer_hidden", _le(scalar(shape.hidden)))
    for name, values in image.peer.symbols(params).items():
        machine.write_bytes(name, _le(values))
    machine.write_bytes("peer_x", _le(xs.astype(np.int8)))
    rc, insns = machine.count_calls(STEP, ENTRY, [steps])
    if rc != 0 or len(insns) != steps:
        raise CheckFailed(f"{image.peer.name}: peer_run returned {rc} after {len(insns)} of {steps} steps")
    out = np.frombuffer(machine.read_bytes("peer_out", steps * shape.hidden), dtype=np.int8)
    return PeerRun(out.reshape(steps, shape.hidden).astype(np.int64), insns)


def port_states(
    image: PeerImage, tables: Mapping[str, np.ndarray], shape: Shape, params: Any, xs: np.ndarray
) -> np.ndarray:
    """The numpy port over the same sequence, from the zero state that peer_setup leaves."""
    h = np.zeros(shape.hidden, dtype=np.int64)
    states = []
    for x in xs.astype(np.int64):
        h = image.peer.step(params, tables, h, x)
        states.append(h)
    return np.stack(states)


def measure_peer(
    image: PeerImage,
    machine: Emulator,
    shape: Shape,
    target: str,
    compiler: str,
    steps: int,
    seed: int = 0,
) -> PeerRow:
    """Random parameters and int8 inputs at the shape (by seed), run and checked: one row."""
    rng = np.random.default_rng(seed)
    params = image.peer.random_params(shape, rng)
    xs = rng.integers(-127, 128, size=(steps, shape.inputs), dtype=np.int64)
    run = run_image(image, machine, shape, params, xs)
    want = port_states(image, library_tables(image, machine), shape, params, xs)
    mismatches = int(np.count_nonzero(run.states != want))
    per_step = float(np.mean(run.insns))
    return PeerRow(
        name=image.peer.name,
        target=target,
        compiler=compiler,
        kernel=image.kernel,
        inputs=shape.inputs,
        hidden=shape.hidden,
        macs_per_step=shape.macs,
        insns_per_step=per_step,
        insns_per_mac=per_step / shape.macs,
        code_bytes=image.code_bytes,
        checked=mismatches == 0,
        mismatches=mismatches,
        steps=steps,
    )
