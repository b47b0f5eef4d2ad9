"""A model's data in C: its weight tables (defined once, under EDGERNN_IMPLEMENTATION), its cell
descriptors and its edgernn_model_t descriptor (static const in every file, so compilers fold the
shapes into the code)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from edgernn.backends.c.literals import FLASH, c_array, float_array
from edgernn.config import Task
from edgernn.contract.bounds import narrow_requant
from edgernn.contract.model import QuantizedModel


def _cell_name(prefix: str, index: int, directions: int) -> str:
    return f"{prefix}_l{index // directions}_d{index % directions}"


def dsp_order(w: np.ndarray) -> np.ndarray:
    """W [rows][cols] in the order the DSP kernels of edgernn_runtime.h read it (EDGERNN_DSP), same
    shape and bytes: each whole block of four rows is, per group of four columns, the four rows'
    words one after the other, then the last cols % 4 columns one after the other, each as its
    four rows' bytes; the last rows % 4 rows stay row-major."""
    rows, cols = w.shape
    groups = cols // 4
    parts = []
    for b in range(0, rows - rows % 4, 4):
        block = w[b : b + 4]
        parts.append(block[:, : 4 * groups].reshape(4, groups, 4).transpose(1, 0, 2).ravel())
        parts.append(block[:, 4 * groups :].T.ravel())
    parts.append(w[rows - rows % 4 :].ravel())
    return np.concatenate(parts).reshape(rows, cols)


def _weights(name: str, w: np.ndarray, comment: str) -> str:
    """A weight matrix: in the DSP kernels' order where EDGERNN_DSP, else row-major. One
    table is compiled either way: flash holds the same bytes (plus at most 3 of alignment)."""
    w = np.asarray(w, np.int8)
    plain = c_array("int8_t", name, w, comment).splitlines()
    dsp = c_array("int8_t", name, dsp_order(w), "").splitlines()
    head, rows = plain[:2], plain[2:-1]
    assert dsp[0] == plain[1], "the two layouts must declare the same table"
    return "\n".join(
        [
            *head,
            "#if EDGERNN_DSP /* four-row blocks, see edgernn.backends.c.tables.dsp_order */",
            *dsp[1:-1],
            "#else",
            *rows,
            "#endif",
            "};",
        ]
    )


def model_data(qm: QuantizedModel, prefix: str, up: str) -> ModelData:
    cfg = qm.config
    d = cfg.directions
    blocks = []
    descriptors = []
    size_terms = []
    for i, cell in enumerate(qm.cells):
        name = _cell_name(prefix, i, d)
        where = f"Layer {i // d}, {'backward' if i % d else 'forward'} direction"
        blocks.append(f"/* ---- {where} (shift n = {cell.shift}) ---- */")
        if cell.table is not None:
            blocks.append(
                c_array(
                    "int32_t",
                    f"{name}_table",
                    np.asarray(cell.table, np.int32),
                    "acc_x per token: W_ih E[token] + b folded, row = token id, each column at its own scale",
                )
            )
            w_ih, bias, table = "NULL", "NULL", f"&{name}_table[0][0]"
            size_terms.append(f"sizeof {name}_table")
        else:
            inp = "features (s_x folded into the columns)" if i < d else "the layer below's int8 states"
            blocks.append(
                _weights(
                    f"{name}_w_ih", cell.w_ih, f"W_ih, int8, row j at its own scale s_acc[j]; reads {inp}"
                )
            )
            blocks.append(
                c_array(
                    "int32_t",
                    f"{name}_bias",
                    np.asarray(cell.bias, np.int32),
                    "b_ih + b_hh at the scale of acc_x",
                )
            )
            w_ih, bias, table = f"&{name}_w_ih[0][0]", f"{name}_bias", "NULL"
            size_terms += [f"sizeof {name}_w_ih", f"sizeof {name}_bias"]
        blocks.append(_weights(f"{name}_w_hh", cell.w_hh, "W_hh, int8, row j at its own scale"))
        blocks.append(
            c_array(
                "int32_t",
                f"{name}_m_x",
                np.asarray(cell.m_x, np.int32),
                f"M_x = round(s_acc / 2^-7 * 2^{cell.shift}) < 2^30: acc_x to z",
            )
        )
        blocks.append(
            c_array(
                "int32_t",
                f"{name}_m_h",
                np.asarray(cell.m_h, np.int32),
                f"M_h = round(s_whh / (127 * 2^-7) * 2^{cell.shift}) < 2^30: acc_h to z",
            )
        )
        size_terms += [f"sizeof {name}_w_hh", f"sizeof {name}_m_x", f"sizeof {name}_m_h"]
        inp_size = 0 if cell.table is not None else cell.w_ih.shape[1]
        descriptors.append(
            f"    {{{w_ih}, &{name}_w_hh[0][0], {bias}, {table}, {name}_m_x, {name}_m_h, "
            f"{inp_size}, {cell.hidden}, {cell.shift}, {int(narrow_requant(cell))}}},"
        )
    blocks.append("/* ---- Head ---- */")
    blocks.append(
        _weights(
            f"{prefix}_head_w",
            qm.head_w,
            f"head weights, int8, one scale for the whole tensor (so integer argmax is exact); "
            f"reads [{'forward | backward' if d == 2 else 'top state'}]",
        )
    )
    blocks.append(
        c_array(
            "int32_t",
            f"{prefix}_head_b",
            np.asarray(qm.head_b, np.int32),
            f"head bias at scale {up}_HEAD_SCALE",
        )
    )
    size_terms += [f"sizeof {prefix}_head_w", f"sizeof {prefix}_head_b"]
    if not cfg.tokens:
        blocks.append("/* ---- Float input ---- */")
        inv = (np.float32(1.0) / np.asarray(qm.input_scale, dtype=np.float32)).astype(np.float32)
        blocks.append(
            float_array(
                f"{prefix}_input_inv_scale", inv, "1 / s_x per feature in float32: x_q = sat(round(x * this))"
            )
        )
        size_terms.append(f"sizeof {prefix}_input_inv_scale")
        if len(qm.norm_mean):
            blocks.append(float_array(f"{prefix}_norm_mean", qm.norm_mean, "training-data mean per feature"))
            blocks.append(float_array(f"{prefix}_norm_std", qm.norm_std, "training-data std per feature"))
            size_terms += [f"sizeof {prefix}_norm_mean", f"sizeof {prefix}_norm_std"]
    cells = (
        "/* Cells in torch's order: index = layer * DIRECTIONS + direction. Static in every file that\n"
        " * includes the header (36 bytes a cell), so a compiler folds the shapes into the code; not a\n"
        " * table (no EDGERNN_FLASH): its pointers lead to the tables, read through EDGERNN_READ_*. */\n"
        f"static const edgernn_cell_t {prefix}_cells[{up}_NUM_LAYERS * {up}_NUM_DIRECTIONS] = {{\n"
        "    /* w_ih, w_hh, bias, table, m_x, m_h, input, hidden, shift, narrow (bounds.narrow_requant) */\n"
        + "\n".join(descriptors)
        + "\n};"
    )
    terms = " +\n                                   ".join(size_terms)
    checks = (
        f"/* Compile-time proof that {up}_WEIGHT_BYTES and {up}_STATE_BYTES describe the arrays and the\n"
        " * state type (C99: a negative array size is an error). */\n"
        f"typedef char {prefix}_weight_bytes_check[({terms}) == {up}_WEIGHT_BYTES ? 1 : -1];\n"
        f"typedef char {prefix}_state_bytes_check[sizeof({prefix}_state_t) == {up}_STATE_BYTES ? 1 : -1];"
    )
    return ModelData("\n\n".join(blocks), cells, checks)


@dataclass(frozen=True)
class ModelData:
    tables: str  # the weight and scale arrays' definitions (EDGERNN_IMPLEMENTATION only)
    cells: str  # the static cell descriptors (every translation unit)
    checks: str  # compile-time size proofs

    def declarations(self) -> str:
        """`extern` declarations of the tables, so every file can point at the one definition (in
        flash: EDGERNN_FLASH, read through EDGERNN_READ_*)."""
        found = re.findall(rf"^{FLASH} const (\w+) (\w+)((?:\[\d+\])+) = \{{$", self.tables, re.MULTILINE)
        return "\n".join(f"extern {FLASH} const {ctype} {name}{dims};" for ctype, name, dims in found)


def descriptor(qm: QuantizedModel, prefix: str, up: str) -> str:
    """The model's edgernn_model_t, in flash, in the field order of edgernn_runtime.h."""
    cfg = qm.config
    features = not cfg.tokens
    norm = features and len(qm.norm_mean) > 0
    fields = [
        (f"{prefix}_cells", "cells"),
        (f"&{prefix}_head_w[0][0]", "head_w"),
        (f"{prefix}_head_b", "head_b"),
        (f"{prefix}_input_inv_scale" if features else "NULL", "input_inv_scale"),
        (f"{prefix}_norm_mean" if norm else "NULL", "norm_mean"),
        (f"{prefix}_norm_std" if norm else "NULL", "norm_std"),
        (f"{up}_HEAD_SCALE", "head_scale"),
        (f"{up}_SAMPLE_STEP" if cfg.task == Task.ONE_TO_MANY else "0u", "sample_step (generation only)"),
        (f"{up}_INPUT_SIZE" if features else "0", "input_size"),
        ("0" if features else f"{up}_VOCAB_SIZE", "vocab_size"),
        (f"{up}_END_TOKEN" if cfg.task == Task.ONE_TO_MANY else "-1", "end_token"),
        (f"{up}_HIDDEN_SIZE", "hidden_size"),
        (f"{up}_NUM_CLASSES", "num_classes"),
        (f"{up}_NUM_LAYERS", "num_layers"),
        (f"{up}_NUM_DIRECTIONS", "num_directions"),
        (f"{up}_TASK", "task"),
        (f"EDGERNN_READOUT_{cfg.readout.replace('-', '_').upper()}", "readout"),
    ]
    width = max(len(v) for v, _ in fields) + 1
    body = "\n".join(f"    {(v + ',').ljust(width)} /* {c} */" for v, c in fields)
    return (
        "/* The model for the prefix-free edgernn_* API. Static in every file (52 bytes where it is not\n"
        " * folded away): with the shapes known, a compiler specialises the kernels for this model.\n"
        " * Positional: C++11 has no designated initializers. */\n"
        f"static const edgernn_model_t {prefix}_model = {{\n{body}\n}};"
    )
