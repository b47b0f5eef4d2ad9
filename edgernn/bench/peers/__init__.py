"""The peers of `edgernn bench --peers PATH`: the int8 RNN step of CMSIS-NN (its fully connected
path and its LSTM-gate path), of NNoM (its simple cell) and a naive C double loop, each built with
the compilers and flags of `edgernn mcu`, run on the same emulators and counted with the same
instruction counter as model.h, at the model's shape and (--sweep) over a grid of shapes.

The libraries are compiled from the user's PATH (never copied into the project); the glue that
calls them is c_runtime/peers/. One module per job:

    ports     each peer's parameters, its layout in RAM, and a numpy port of its arithmetic
    sources   the PATH: which libraries are there
    images    one image per peer, target and compiler (its code bytes, its kernel path)
    runs      one peer at one shape: run, counted, checked against its port -> PeerRow
    lab       every peer and model.h on every (target, compiler), built once, with what was skipped
    suite     the model's shape and the sweep, as bench.json's "peers", "peer_comparison", "sweep"
"""

from edgernn.bench.peers.ports import PEERS, Shape
from edgernn.bench.peers.sources import find_sources
from edgernn.bench.peers.suite import PeerOptions, peer_suites

__all__ = ["PEERS", "PeerOptions", "Shape", "find_sources", "peer_suites"]
