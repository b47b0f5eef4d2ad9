"""The peers' RNN steps as the benchmark drives them: the parameters each takes, laid out in the
image's RAM as its library wants them, and a numpy port of its own arithmetic.

A peer's instruction count is quoted only if its image gives, for random parameters at the shape,
exactly the states its port computes (edgernn.bench.peers.runs): a wrong build, a wrong weight
layout or a misread library fails that check instead of producing a number. The ports follow the
C of the libraries line by line (CMSIS-NN's requantization and int16 tanh, NNoM's shifts and
saturation); tables the libraries define themselves (CMSIS-NN's sigmoid table, NNoM's q7 tanh) are
read from the image, so a port checks the arithmetic, not a copy of the tables.

Parameters are random, drawn so that every path is exercised: pre-activations spread over the
whole int8 or int16 range, some saturating.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np

# peer_tanh (peer.h): index z + 128 holds round(127 tanh(z / TANH_INPUT_STEPS)), z an int8.
TANH_INPUT_STEPS = 32.0
# Typical size of a sum of n products of two int8 drawn uniformly from [-127, 127]: each product
# has a standard deviation of 127^2 / 3.
PRODUCT_SPREAD = 127.0**2 / 3.0


@dataclass(frozen=True)
class Shape:
    """One RNN layer: I inputs, H hidden units."""

    inputs: int
    hidden: int

    @property
    def macs(self) -> int:
        """Multiply-accumulates of one step: W x and U h."""
        return self.hidden * (self.inputs + self.hidden)

    def __str__(self) -> str:
        return f"{self.inputs} → {self.hidden}"


def round_half_away(a: np.ndarray) -> np.ndarray:
    return np.sign(a) * np.floor(np.abs(a) + 0.5)


def int8_tanh_table() -> np.ndarray:
    z = np.arange(-128, 128, dtype=np.float64)
    return round_half_away(127.0 * np.tanh(z / TANH_INPUT_STEPS)).astype(np.int64)


def q31_multiplier(scale: float) -> tuple[int, int]:
    """(multiplier, shift) with scale = multiplier / 2^31 * 2^shift and multiplier in [2^30, 2^31),
    as TensorFlow Lite (and so CMSIS-NN's callers) encode a positive real scale."""
    mantissa, shift = math.frexp(scale)
    multiplier = math.floor(mantissa * 2**31 + 0.5)
    if multiplier == 2**31:
        multiplier, shift = multiplier // 2, shift + 1
    return multiplier, shift


def spread(n: int) -> float:
    return PRODUCT_SPREAD * math.sqrt(n)


def shift_for(n: int, target: float) -> int:
    """The right shift that brings a sum of n int8 products to about `target`."""
    return max(1, round(math.log2(spread(n) / target)))


def saturate(a: np.ndarray, bits: int) -> np.ndarray:
    return np.clip(a, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def scalar(v: int) -> np.ndarray:
    """A C int32 global's value."""
    return np.array(v, dtype=np.int32)


def int8s(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.integers(-127, 128, size=shape, dtype=np.int64)


def int32s(rng: np.random.Generator, bound: float, *shape: int) -> np.ndarray:
    b = int(bound)
    return rng.integers(-b, b + 1, size=shape, dtype=np.int64)


P = TypeVar("P")
Tables = Mapping[str, np.ndarray]


class Peer(ABC, Generic[P]):
    """One peer step. `library`: the folder of the peers PATH its sources are in (None: no
    library); `sources` and `includes`: paths inside it; `glue`: its step in c_runtime/peers/,
    `glue_includes`: folders there that stand in for parts of the library it does not build."""

    name: ClassVar[str]
    what: ClassVar[str]
    library: ClassVar[str | None]
    sources: ClassVar[tuple[str, ...]]
    includes: ClassVar[tuple[str, ...]]
    glue: ClassVar[str]
    glue_includes: ClassVar[tuple[str, ...]] = ()
    fixed_shape: ClassVar[bool] = False  # its glue takes the shape at compile time: one image per shape
    # Tables the library defines itself, read from the image for the port: symbol -> (dtype, count)
    tables: ClassVar[Mapping[str, tuple[Any, int]]] = {}

    @abstractmethod
    def random_params(self, shape: Shape, rng: np.random.Generator) -> P: ...

    @abstractmethod
    def symbols(self, p: P) -> dict[str, np.ndarray]:
        """What to write into the image: global name -> its values, in the global's C type."""

    @abstractmethod
    def step(self, p: P, tables: Tables, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        """The numpy port: the int8 state after one step from state h on input x (int64 arrays)."""


# ---------------------------------------------------------------------------------------------
# CMSIS-NN


def cmsis_requantize(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """arm_nn_requantize (the default, double-rounding branch): a left shift, the rounding doubling
    high multiply (arm_nn_doubling_high_mult_no_sat), then a rounding right shift with midpoints
    away from zero (arm_nn_divide_by_power_of_two)."""
    left, right = max(shift, 0), max(-shift, 0)
    v = acc * (1 << left)
    high = (v * multiplier + (1 << 30)) >> 31
    mask = (1 << right) - 1
    result = high >> right
    threshold = (mask >> 1) + (result < 0)
    return result + ((high & mask) > threshold)


def cmsis_tanh_s16(x: np.ndarray, sigmoid: np.ndarray) -> np.ndarray:
    """arm_nn_activation_s16 with ARM_TANH and left_shift 0: Q3.12 in, Q0.15 out, interpolated in
    the sigmoid table (tanh(x) = 2 sigmoid(2x) - 1), in the C's uint32 arithmetic."""
    u32 = 0xFFFF_FFFF
    data = x * 3
    magnitude = np.abs(data)
    uh = magnitude >> 8
    inside = uh < 255
    ua = sigmoid[np.minimum(uh, 254)].astype(np.int64)
    ub = sigmoid[np.minimum(uh + 1, 255)].astype(np.int64)
    result = np.where(inside, (ua << 8) + (magnitude & 0xFF) * (ub - ua), 0xFFFF << 8) & u32
    result = np.where(data >= 0, result - (1 << 23) + (1 << 7), -result + (1 << 23) + (1 << 7) - 1) & u32
    out = (result >> 8) & 0xFFFF
    return np.where(out >= 1 << 15, out - (1 << 16), out)


@dataclass(frozen=True)
class FcParams:
    weights: np.ndarray  # (H, I + H): [W | U], the rows of arm_fully_connected_s8's filter
    bias: np.ndarray  # (H,) int32
    multiplier: int
    shift: int
    tanh: np.ndarray  # (256,) int8: peer_tanh


class CmsisFc(Peer[FcParams]):
    name = "cmsis-nn-fc"
    what = "arm_fully_connected_s8 over [x; h], per-tensor requantization, int8 tanh table"
    library = "cmsis-nn"
    sources = (
        "Source/FullyConnectedFunctions/arm_fully_connected_s8.c",
        "Source/NNSupportFunctions/arm_nn_vec_mat_mult_t_s8.c",
    )
    includes = ("Include",)
    glue = "cmsis_fc.c"

    def random_params(self, shape: Shape, rng: np.random.Generator) -> FcParams:
        n = shape.inputs + shape.hidden
        multiplier, shift = q31_multiplier(48.0 / spread(n))  # int8 outputs spread to about +-48
        return FcParams(
            weights=int8s(rng, shape.hidden, n),
            bias=int32s(rng, spread(n), shape.hidden),
            multiplier=multiplier,
            shift=shift,
            tanh=int8_tanh_table(),
        )

    def symbols(self, p: FcParams) -> dict[str, np.ndarray]:
        return {
            "fc_weights": p.weights.astype(np.int8),
            "fc_bias": p.bias.astype(np.int32),
            "fc_multiplier": scalar(p.multiplier),
            "fc_shift": scalar(p.shift),
            "peer_tanh": p.tanh.astype(np.int8),
        }

    def step(self, p: FcParams, tables: Tables, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        acc = p.bias + p.weights @ np.concatenate([x, h])
        z = saturate(cmsis_requantize(acc, p.multiplier, p.shift), 8)
        return p.tanh[z + 128]


@dataclass(frozen=True)
class GateParams:
    input_weights: np.ndarray  # (H, I)
    hidden_weights: np.ndarray  # (H, H)
    input_bias: np.ndarray  # (H,) int32 effective bias of W x
    hidden_bias: np.ndarray  # (H,) int32 effective bias of U h
    input_multiplier: int
    input_shift: int
    hidden_multiplier: int
    hidden_shift: int


class CmsisLstmGate(Peer[GateParams]):
    name = "cmsis-nn-lstm-gate"
    what = "arm_nn_lstm_calculate_gate_s8_s16 (ARM_TANH): W x and U h into int16, interpolated int16 tanh"
    library = "cmsis-nn"
    sources = (
        "Source/NNSupportFunctions/arm_nn_lstm_calculate_gate_s8_s16.c",
        "Source/NNSupportFunctions/arm_nn_vec_mat_mul_result_acc_s8_s16.c",
        "Source/ActivationFunctions/arm_nn_activation_s16.c",
        "Source/NNSupportFunctions/arm_nntables.c",
    )
    includes = ("Include",)
    glue = "cmsis_lstm_gate.c"
    tables: ClassVar[Mapping[str, tuple[Any, int]]] = {"sigmoid_table_uint16": (np.uint16, 256)}

    def random_params(self, shape: Shape, rng: np.random.Generator) -> GateParams:
        # Each half brings the Q3.12 pre-activation to about +-1.5 (6144), so that their sum now and
        # then reaches the end of the table, where the tanh saturates (3 |x| >= 255 * 256: 5.3).
        im, ish = q31_multiplier(6144.0 / spread(shape.inputs))
        hm, hsh = q31_multiplier(6144.0 / spread(shape.hidden))
        return GateParams(
            input_weights=int8s(rng, shape.hidden, shape.inputs),
            hidden_weights=int8s(rng, shape.hidden, shape.hidden),
            input_bias=int32s(rng, spread(shape.inputs), shape.hidden),
            hidden_bias=int32s(rng, spread(shape.hidden), shape.hidden),
            input_multiplier=im,
            input_shift=ish,
            hidden_multiplier=hm,
            hidden_shift=hsh,
        )

    def symbols(self, p: GateParams) -> dict[str, np.ndarray]:
        return {
            "gate_input_weights": p.input_weights.astype(np.int8),
            "gate_hidden_weights": p.hidden_weights.astype(np.int8),
            "gate_input_bias": p.input_bias.astype(np.int32),
            "gate_hidden_bias": p.hidden_bias.astype(np.int32),
            "gate_input_multiplier": scalar(p.input_multiplier),
            "gate_input_shift": scalar(p.input_shift),
            "gate_hidden_multiplier": scalar(p.hidden_multiplier),
            "gate_hidden_shift": scalar(p.hidden_shift),
        }

    def step(self, p: GateParams, tables: Tables, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        wx = cmsis_requantize(p.input_bias + p.input_weights @ x, p.input_multiplier, p.input_shift)
        uh = cmsis_requantize(p.hidden_bias + p.hidden_weights @ h, p.hidden_multiplier, p.hidden_shift)
        gate = saturate(saturate(wx, 16) + uh, 16)  # memset to 0, then each product accumulated
        return cmsis_tanh_s16(gate, tables["sigmoid_table_uint16"]) >> 8


# ---------------------------------------------------------------------------------------------
# NNoM


def nnom_interleave(m: np.ndarray) -> np.ndarray:
    """NNoM's "x4 q7 opt" weight order, which local_*_q7_opt read: for each block of four rows, per
    four columns c..c+3 the sixteen weights in the order its inner loop consumes them, then the
    block's remaining columns four rows at a time; the rows past the last block of four as they are."""
    rows, cols = m.shape
    full_rows, full_cols = rows - rows % 4, cols - cols % 4
    out: list[int] = []
    for r in range(0, full_rows, 4):
        b = m[r : r + 4]
        for c in range(0, full_cols, 4):
            for k in (c, c + 1):  # rows 0-1 then 2-3, each at columns k and k + 2
                for rows_ in (b[0:2], b[2:4]):
                    out += [rows_[0, k], rows_[1, k], rows_[0, k + 2], rows_[1, k + 2]]
        for c in range(full_cols, cols):
            out += list(b[:, c])
    out += list(m[full_rows:].ravel())
    return np.asarray(out, dtype=np.int64)


@dataclass(frozen=True)
class NnomParams:
    input_weights: np.ndarray  # (H, I), natural order (interleaved when written)
    hidden_weights: np.ndarray  # (H, H)
    bias: np.ndarray  # (H,) int8, shifted left by bias_shift
    bias_shift: int
    input_shift: int
    hidden_shift: int
    tanh_int_bits: int  # local_tanh_q7's int_width: its table is read at (s >> (3 - bits))


def nnom_round(shift: int) -> int:
    return (1 << shift) >> 1


class NnomCell(Peer[NnomParams]):
    name = "nnom-simple-cell"
    what = "NNoM simple_cell: local_dot_q7_opt, local_fully_connected_q7_opt, local_add_q7, local_tanh_q7"
    library = "nnom"
    sources = ("src/backends/nnom_local.c",)
    includes = ("inc", "port")
    glue = "nnom_cell.c"
    glue_includes = ("nnom",)  # nnom.h: the types nnom_local.c takes from NNoM's model API header
    tables: ClassVar[Mapping[str, tuple[Any, int]]] = {"nnom_tanh_table_q7": (np.int8, 256)}

    def random_params(self, shape: Shape, rng: np.random.Generator) -> NnomParams:
        input_shift = shift_for(shape.inputs, 32.0)
        return NnomParams(
            input_weights=int8s(rng, shape.hidden, shape.inputs),
            hidden_weights=int8s(rng, shape.hidden, shape.hidden),
            bias=int8s(rng, shape.hidden),
            bias_shift=max(input_shift - 2, 0),
            input_shift=input_shift,
            hidden_shift=shift_for(shape.hidden, 32.0),
            tanh_int_bits=2,
        )

    def symbols(self, p: NnomParams) -> dict[str, np.ndarray]:
        return {
            "nnom_input_weights": nnom_interleave(p.input_weights).astype(np.int8),
            "nnom_hidden_weights": nnom_interleave(p.hidden_weights).astype(np.int8),
            "nnom_bias": p.bias.astype(np.int8),
            "nnom_bias_shift": scalar(p.bias_shift),
            "nnom_input_shift": scalar(p.input_shift),
            "nnom_hidden_shift": scalar(p.hidden_shift),
            "nnom_tanh_int_bits": scalar(p.tanh_int_bits),
        }

    def step(self, p: NnomParams, tables: Tables, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        uh = saturate((nnom_round(p.hidden_shift) + p.hidden_weights @ h) >> p.hidden_shift, 8)
        acc = (p.bias << p.bias_shift) + nnom_round(p.input_shift) + p.input_weights @ x
        wx = saturate(acc >> p.input_shift, 8)
        total = saturate(wx + uh, 8)  # local_add_q7 with out_shift 0
        index = (total >> (3 - p.tanh_int_bits)) & 0xFF  # (uint8_t)(in >> shift_size)
        return tables["nnom_tanh_table_q7"][index].astype(np.int64)


# ---------------------------------------------------------------------------------------------
# No library


@dataclass(frozen=True)
class NaiveParams:
    input_weights: np.ndarray  # (H, I)
    hidden_weights: np.ndarray  # (H, H)
    bias: np.ndarray  # (H,) int32
    shift: int
    tanh: np.ndarray  # (256,) int8: peer_tanh


class NaiveC(Peer[NaiveParams]):
    name = "naive-c"
    what = "a double loop per row into int32, a rounding shift, a clamp, the int8 tanh table"
    library = None
    sources = ()
    includes = ()
    glue = "naive.c"
    fixed_shape = True

    def random_params(self, shape: Shape, rng: np.random.Generator) -> NaiveParams:
        n = shape.inputs + shape.hidden
        return NaiveParams(
            input_weights=int8s(rng, shape.hidden, shape.inputs),
            hidden_weights=int8s(rng, shape.hidden, shape.hidden),
            bias=int32s(rng, spread(n), shape.hidden),
            shift=shift_for(n, 48.0),
            tanh=int8_tanh_table(),
        )

    def symbols(self, p: NaiveParams) -> dict[str, np.ndarray]:
        return {
            "naive_input_weights": p.input_weights.astype(np.int8),
            "naive_hidden_weights": p.hidden_weights.astype(np.int8),
            "naive_bias": p.bias.astype(np.int32),
            "naive_shift": scalar(p.shift),
            "peer_tanh": p.tanh.astype(np.int8),
        }

    def step(self, p: NaiveParams, tables: Tables, h: np.ndarray, x: np.ndarray) -> np.ndarray:
        acc = p.bias + p.input_weights @ x + p.hidden_weights @ h
        z = saturate((acc + (1 << (p.shift - 1))) >> p.shift, 8)
        return p.tanh[z + 128]


PEERS: tuple[Peer[Any], ...] = (CmsisFc(), CmsisLstmGate(), NnomCell(), NaiveC())
