"""vectors.h: test sequences and the torch integer reference's every output, as C arrays in flash.

The on-target harness (c_runtime/mcu/harness.c) compares against these, so the same check runs
on Unicorn, on a QEMU board and on simavr without any host in the loop. The arrays are
`static const ... MCU_FLASH` (c_runtime/mcu/mcu_port.h: PROGMEM on AVR, read with pgm_read_*;
nothing elsewhere). A target whose flash cannot hold a whole test split (the ATmega328P's 32 KB)
checks it in slices, each its own image: `Vectors.slice`. Layout per sequence (packed, in
order; the harness walks them with running offsets):
  mcu_x             [steps][input width]           int8 features, or int32 token ids
  mcu_expect_h      unidirectional: [steps][layers][hidden], the state after each step;
                    bidirectional: [layers][steps][2 * hidden], the run buffer
  mcu_expect_hn     [layers * directions][hidden]  the final state (torch's h_n order)
  mcu_expect_logits many-to-one: [classes]; otherwise [steps][classes]
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from edgernn.config import Task
from edgernn.contract.model import QuantizedModel
from edgernn.contract.reference import int_forward
from edgernn.errors import InputError
from edgernn.frame import steps_numpy


@dataclass(frozen=True)
class Reference:
    """int_forward's integers, split per sequence: what any slice of the vectors is written from."""

    qm: QuantizedModel
    xs: list[np.ndarray]  # (steps, input width) per sequence
    hs: list[np.ndarray]  # the expected states (layout above) per sequence
    h_n: np.ndarray  # (sequences, layers * directions, hidden)
    logits: list[np.ndarray]
    lengths: np.ndarray


@dataclass(frozen=True)
class Vectors:
    text: str  # the C header
    sequences: int
    steps: int  # total time steps over all sequences
    max_steps: int
    lengths: np.ndarray  # steps of each sequence
    macros: dict[str, int]  # the MCU_ shape macros, also passed to model_unit.c
    reference: Reference | None = None  # what slice() writes from
    first: int = 0  # index of this file's first sequence in the whole set (a slice's offset)

    def slice(self, first: int, count: int) -> Vectors:
        """The vectors of sequences first .. first + count - 1 alone, as their own vectors.h."""
        if self.reference is None:
            raise ValueError("these vectors keep no reference to slice")
        return _render(self.reference, self.first + first, count)

    def sequence_bytes(self) -> np.ndarray:
        """Bytes each sequence adds to the arrays of vectors.h (its steps, inputs, expected
        states, final state and logits), for packing slices into a small flash."""
        m = self.macros
        per_step_states = m["MCU_LAYERS"] * m["MCU_DIRECTIONS"] * m["MCU_HIDDEN"]
        per_step = m["MCU_INPUT_WIDTH"] * (4 if m["MCU_TOKENS"] else 1) + per_step_states
        logits = 4 * m["MCU_CLASSES"]
        n = self.lengths.astype(np.int64)
        return (
            4
            + n * (per_step + (logits if m["MCU_PER_STEP"] else 0))
            + per_step_states
            + (0 if m["MCU_PER_STEP"] else logits)
        )


def shape_macros(qm: QuantizedModel) -> dict[str, int]:
    cfg = qm.config
    return {
        "MCU_TOKENS": int(cfg.tokens),
        "MCU_BIDIRECTIONAL": int(cfg.bidirectional),
        "MCU_PER_STEP": int(cfg.task != Task.MANY_TO_ONE),
    }


def _c_array(ctype: str, name: str, values: np.ndarray, per_line: int = 24) -> str:
    flat = [str(int(v)) for v in np.asarray(values).ravel()]
    if not flat:
        flat = ["0"]  # C forbids empty arrays; nothing indexes past the real data
    lines = (", ".join(flat[i : i + per_line]) for i in range(0, len(flat), per_line))
    body = ",\n    ".join(lines)
    return f"static const {ctype} {name}[{len(flat)}] MCU_FLASH = {{\n    {body},\n}};\n"


def build_vectors(qm: QuantizedModel, x: np.ndarray, lengths: np.ndarray) -> Vectors:
    """x: int8 (B, T, I) or token ids (B, T) as int_forward takes them; lengths (B,), each >= 1."""
    cfg = qm.config
    lengths = np.asarray(lengths, dtype=np.int64)
    if len(lengths) == 0 or lengths.min() < 1:
        raise InputError("the MCU check needs at least one sequence, each at least one step long")
    ref = int_forward(qm, x, lengths)
    # The device runs steps: frames of samples, and a pad_to model's pad steps (PREFIX_finish).
    x, lengths = steps_numpy(cfg, np.asarray(x), lengths)
    hidden = ref.hidden.numpy()  # (L, B, T, D*H)
    h_n = ref.h_n.numpy()  # (L*D, B, H)
    logits = ref.logits.numpy()
    xs, hs, ls = [], [], []
    for b, n in enumerate(lengths.tolist()):
        xs.append(np.asarray(x[b, :n]).reshape(n, -1))
        h = hidden[:, b, :n, :]  # (L, n, D*H)
        hs.append(h if cfg.bidirectional else h.transpose(1, 0, 2))
        ls.append(logits[b] if cfg.task == Task.MANY_TO_ONE else logits[b, :n])
    reference = Reference(qm, xs, hs, h_n.transpose(1, 0, 2), ls, lengths)
    return _render(reference, 0, len(lengths))


def _render(ref: Reference, first: int, count: int) -> Vectors:
    """vectors.h for sequences first .. first + count - 1 of the reference."""
    qm = ref.qm
    cfg = qm.config
    if not 0 <= first < first + count <= len(ref.lengths):
        raise ValueError(f"sequences {first}..{first + count - 1} are not in 0..{len(ref.lengths) - 1}")
    part = slice(first, first + count)
    lengths = ref.lengths[part]
    xs, hs, ls = ref.xs[part], ref.hs[part], ref.logits[part]
    width = 1 if cfg.tokens else cfg.input_size
    macros = {
        "MCU_NUM_SEQS": len(lengths),
        "MCU_MAX_STEPS": int(lengths.max()),
        "MCU_LAYERS": cfg.num_layers,
        "MCU_DIRECTIONS": cfg.directions,
        "MCU_HIDDEN": cfg.hidden_size,
        "MCU_CLASSES": cfg.num_classes,
        "MCU_INPUT_WIDTH": width,
        "MCU_STATE_BYTES": cfg.num_layers * cfg.directions * cfg.hidden_size,
        "MCU_SCRATCH_WORDS": 2 * cfg.hidden_size,  # EDGERNN_SCRATCH_WORDS: the caller's stack per call
        **shape_macros(qm),
    }
    parts = [
        "/* Generated by edgernn.targets.vectors from the torch integer reference. Do not edit. */",
        "#ifndef EDGERNN_MCU_VECTORS_H\n#define EDGERNN_MCU_VECTORS_H\n\n#include <stdint.h>\n",
        "\n".join(f"#define {k} {v}" for k, v in macros.items()) + "\n",
        f"typedef {'int32_t' if cfg.tokens else 'int8_t'} mcu_input_t;\n",
        '#include "mcu_port.h" /* MCU_FLASH, and how the harness reads these on this target */\n',
        _c_array("uint32_t", "mcu_steps", lengths),
        _c_array("mcu_input_t", "mcu_x", _cat(xs)),
        _c_array("int8_t", "mcu_expect_h", _cat(hs)),
        _c_array("int8_t", "mcu_expect_hn", ref.h_n[part]),
        _c_array("int32_t", "mcu_expect_logits", _cat(ls)),
        "#endif /* EDGERNN_MCU_VECTORS_H */",
    ]
    return Vectors(
        text="\n".join(parts) + "\n",
        sequences=len(lengths),
        steps=int(lengths.sum()),
        max_steps=int(lengths.max()),
        lengths=lengths,
        macros=macros,
        reference=ref,
        first=first,
    )


def _cat(arrays: Iterable[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a).ravel() for a in arrays])
