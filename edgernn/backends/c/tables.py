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
from edgernn.contract.model import QuantCell, QuantizedModel


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


V6M_BLOCK_ROWS = 8  # rows a pass of edgernn_dot8_passes_v6m (EDGERNN_V6M_ASM)


def v6m_order(w: np.ndarray) -> np.ndarray:
    """W [rows][cols] as the Armv6-M kernel of edgernn_runtime.h reads it (EDGERNN_V6M_ASM), same
    shape and bytes: each whole block of eight rows column by column, the eight rows' bytes of a
    column together and each offset by 128 (w + 128 as a uint8, stored as the int8 w ^ -128), so
    that one pointer with LDRB immediate offsets reaches all eight rows; the last rows % 8 rows stay
    row-major and signed, as does a matrix of one column (the kernel's C loop reads it)."""
    w = np.asarray(w, np.int8)
    rows, cols = w.shape
    whole = rows - rows % V6M_BLOCK_ROWS if cols > 1 else 0
    blocks = w[:whole].reshape(-1, V6M_BLOCK_ROWS, cols).transpose(0, 2, 1).ravel() ^ np.int8(-128)
    return np.concatenate([blocks, w[whole:].ravel()]).reshape(rows, cols)


# The cells the DSP kernels run as one stream (edgernn_runtime.h: EDGERNN_DSP_STREAM, the same test):
# feature cells with at least one four-row block, a shift whose rounding lies in the high word of
# the 64-bit sum, and shapes that fit the counts the kernel packs into one register.
DSP_STREAM_MIN_SHIFT = 33
DSP_STREAM_MAX_SHIFT = 40
DSP_STREAM_MAX_INPUT = 2047


def dsp_stream_cell(cell: QuantCell) -> bool:
    return (
        cell.table is None
        and cell.hidden >= 4
        and DSP_STREAM_MIN_SHIFT <= cell.shift <= DSP_STREAM_MAX_SHIFT
        and cell.w_ih.shape[1] <= DSP_STREAM_MAX_INPUT
    )


def _words(b: np.ndarray) -> np.ndarray:
    """Bytes as little-endian int32 words, the last one padded with zeros."""
    b = np.concatenate([np.asarray(b, np.int8).ravel(), np.zeros(-len(b.ravel()) % 4, np.int8)])
    return b.view("<i4").astype(np.int32)


@dataclass(frozen=True)
class DspStream:
    words: np.ndarray  # int32
    tail: int  # word offset of the last hidden % 4 rows' bias (then their M_x, M_h, W_hh, W_ih)
    tail_w_ih: int  # byte offset of their W_ih rows
    pad: int  # zero bytes after the last weight


def dsp_stream(cell: QuantCell) -> DspStream:
    """A feature cell as the fused DSP kernel reads it (edgernn_runtime.h, EDGERNN_DSP_STREAM),
    the same bytes as its five tables plus at most 3 of padding, as int32 words: for each whole
    block of four rows, in the order one pass over the block uses them,
        the rows' 4 biases, their W_ih and W_hh in the DSP order (dsp_order), M_x and M_h of each
        row as a pair (8 words);
    then the last rows % 4 rows: their biases, M_x, M_h, then W_hh and W_ih row-major."""
    w_ih, w_hh = np.asarray(cell.w_ih, np.int8), np.asarray(cell.w_hh, np.int8)
    rows, inputs = w_ih.shape
    whole = rows - rows % 4
    ih, hh = dsp_order(w_ih).ravel(), dsp_order(w_hh).ravel()
    bias, m_x, m_h = (np.asarray(v, np.int64) for v in (cell.bias, cell.m_x, cell.m_h))
    parts = []
    for b in range(0, whole, 4):
        parts += [
            bias[b : b + 4],
            _words(ih[b * inputs : (b + 4) * inputs]),
            _words(hh[b * rows : (b + 4) * rows]),
            np.stack([m_x[b : b + 4], m_h[b : b + 4]], axis=1).ravel(),
        ]
    tail = sum(len(p) for p in parts)
    int8_tail = np.concatenate([w_hh[whole:].ravel(), w_ih[whole:].ravel()])
    parts += [bias[whole:], m_x[whole:], m_h[whole:], _words(int8_tail)]
    words = np.concatenate(parts).astype(np.int32)
    tail_w_ih = 4 * (tail + 3 * (rows - whole)) + w_hh[whole:].size
    return DspStream(words, tail, tail_w_ih, -int8_tail.size % 4)


def _weights(name: str, w: np.ndarray, comment: str, dsp: bool = True) -> str:
    """A weight matrix: in the DSP kernels' order where EDGERNN_DSP (if dsp: else the table is
    already inside a choice for the other cores), in the Armv6-M kernel's order where
    EDGERNN_V6M_ASM, else row-major. One table is compiled either way: flash holds the same bytes
    (plus at most 3 of alignment)."""
    w = np.asarray(w, np.int8)
    plain = c_array("int8_t", name, w, comment).splitlines()
    head, rows = plain[:2], plain[2:-1]
    v6m = c_array("int8_t", name, v6m_order(w), "").splitlines()
    assert v6m[0] == plain[1], "the layouts must declare the same table"
    choice = ["#if EDGERNN_V6M_ASM /* eight-row blocks, see edgernn.backends.c.tables.v6m_order */"]
    if dsp:
        dsp_rows = c_array("int8_t", name, dsp_order(w), "").splitlines()
        assert dsp_rows[0] == plain[1], "the layouts must declare the same table"
        choice = [
            "#if EDGERNN_DSP /* four-row blocks, see edgernn.backends.c.tables.dsp_order */",
            *dsp_rows[1:-1],
            "#elif EDGERNN_V6M_ASM /* eight-row blocks, see edgernn.backends.c.tables.v6m_order */",
        ]
    return "\n".join([*head, *choice, *v6m[1:-1], "#else", *rows, "#endif", "};"])


def _multipliers(name: str, cell: QuantCell) -> list[str]:
    return [
        c_array(
            "int32_t",
            f"{name}_m_x",
            np.asarray(cell.m_x, np.int32),
            f"M_x = round(s_acc / 2^-7 * 2^{cell.shift}) < 2^30: acc_x to z",
        ),
        c_array(
            "int32_t",
            f"{name}_m_h",
            np.asarray(cell.m_h, np.int32),
            f"M_h = round(s_whh / (127 * 2^-7) * 2^{cell.shift}) < 2^30: acc_h to z",
        ),
    ]


def _descriptor(pointers: str, cell: QuantCell, inputs: int) -> str:
    return f"    {{{pointers}, {inputs}, {cell.hidden}, {cell.shift}, {int(narrow_requant(cell))}}},"


def _feature_tables(name: str, cell: QuantCell, first_layer: bool, dsp: bool) -> list[str]:
    """W_ih and the bias of a feature cell; dsp: with W_ih in the DSP order where EDGERNN_DSP (see
    _weights)."""
    inp = "features (s_x folded into the columns)" if first_layer else "the layer below's int8 states"
    comment = f"W_ih, int8, row j at its own scale s_acc[j]; reads {inp}"
    bias = np.asarray(cell.bias, np.int32)
    return [
        _weights(f"{name}_w_ih", cell.w_ih, comment, dsp),
        c_array("int32_t", f"{name}_bias", bias, "b_ih + b_hh at the scale of acc_x"),
    ]


def model_data(qm: QuantizedModel, prefix: str, up: str) -> ModelData:
    cfg = qm.config
    d = cfg.directions
    blocks = []
    descriptors = []
    dsp_ordered, v6m_ordered = [], []  # the matrices each core's kernels read in their own order
    size_terms = []  # the tables' sizes, without EDGERNN_DSP
    dsp_terms = []  # with it, where some cells are one stream (dsp_stream)
    dsp_pad = 0  # the streams' padding bytes
    for i, cell in enumerate(qm.cells):
        name = _cell_name(prefix, i, d)
        where = f"Layer {i // d}, {'backward' if i % d else 'forward'} direction"
        blocks.append(f"/* ---- {where} (shift n = {cell.shift}) ---- */")
        names = [f"{name}_w_hh", f"{name}_m_x", f"{name}_m_h"]
        plain = f"{name}_m_x, {name}_m_h"
        if cell.table is not None:
            blocks.append(
                c_array(
                    "int32_t",
                    f"{name}_table",
                    np.asarray(cell.table, np.int32),
                    "acc_x per token: W_ih E[token] + b folded, row = token id, each column at its own scale",
                )
            )
            names.insert(0, f"{name}_table")
            plain = f"NULL, &{name}_w_hh[0][0], NULL, &{name}_table[0][0], {plain}"
        else:
            names[:0] = [f"{name}_w_ih", f"{name}_bias"]
            plain = f"&{name}_w_ih[0][0], &{name}_w_hh[0][0], {name}_bias, NULL, {plain}"
        inputs = 0 if cell.table is not None else cell.w_ih.shape[1]
        terms = [f"sizeof {n}" for n in names]
        size_terms += terms
        matrices = [f"{name}_w_hh"] if cell.table is not None else [f"{name}_w_ih", f"{name}_w_hh"]
        v6m_ordered += matrices
        if not dsp_stream_cell(cell):
            dsp_ordered += matrices
            if cell.table is None:
                blocks += _feature_tables(name, cell, i < d, dsp=True)
            blocks.append(_weights(f"{name}_w_hh", cell.w_hh, "W_hh, int8, row j at its own scale"))
            blocks += _multipliers(name, cell)
            dsp_terms += terms
            descriptors.append(_descriptor(plain, cell, inputs))
            continue
        # Where EDGERNN_DSP, the cell is one stream; its descriptor's pointers lead to the last
        # hidden % 4 rows' tables in it (edgernn_runtime.h, EDGERNN_DSP_STREAM).
        stream = dsp_stream(cell)
        rest = cell.hidden % 4
        blocks += [
            "#if EDGERNN_DSP /* one stream for the fused kernel: edgernn.backends.c.tables.dsp_stream */",
            c_array("int32_t", f"{name}_dsp", stream.words, ""),
            "#else",
            *_feature_tables(name, cell, i < d, dsp=False),
            _weights(f"{name}_w_hh", cell.w_hh, "W_hh, int8, row j at its own scale", dsp=False),
            *_multipliers(name, cell),
            "#endif",
        ]
        dsp_terms.append(f"sizeof {name}_dsp")
        dsp_pad += stream.pad
        t = stream.tail
        streamed = (
            f"(const int8_t *){name}_dsp + {stream.tail_w_ih}, (const int8_t *){name}_dsp, &{name}_dsp[{t}], "
            f"NULL, &{name}_dsp[{t + rest}], &{name}_dsp[{t + 2 * rest}]"
        )
        descriptors += [
            "#if EDGERNN_DSP /* w_hh: the stream; w_ih, bias, m_x, m_h: its last hidden % 4 rows' tables",
            "                   in it (one past its end where hidden % 4 == 0: never read) */",
            _descriptor(streamed, cell, inputs),
            "#else",
            _descriptor(plain, cell, inputs),
            "#endif",
        ]
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
    dsp_ordered.append(f"{prefix}_head_w")
    v6m_ordered.append(f"{prefix}_head_w")
    head_terms = [f"sizeof {prefix}_head_w", f"sizeof {prefix}_head_b"]
    if not cfg.tokens:
        blocks.append("/* ---- Float input ---- */")
        inv = (np.float32(1.0) / np.asarray(qm.input_scale, dtype=np.float32)).astype(np.float32)
        blocks.append(
            float_array(
                f"{prefix}_input_inv_scale", inv, "1 / s_x per feature in float32: x_q = sat(round(x * this))"
            )
        )
        head_terms.append(f"sizeof {prefix}_input_inv_scale")
        if len(qm.norm_mean):
            blocks.append(float_array(f"{prefix}_norm_mean", qm.norm_mean, "training-data mean per feature"))
            blocks.append(float_array(f"{prefix}_norm_std", qm.norm_std, "training-data std per feature"))
            head_terms += [f"sizeof {prefix}_norm_mean", f"sizeof {prefix}_norm_std"]
    cells = (
        "/* Cells in torch's order: index = layer * DIRECTIONS + direction. Static in every file that\n"
        " * includes the header (36 bytes a cell), so a compiler folds the shapes into the code; not a\n"
        " * table (no EDGERNN_FLASH): its pointers lead to the tables, read through EDGERNN_READ_*. */\n"
        f"static const edgernn_cell_t {prefix}_cells[{up}_NUM_LAYERS * {up}_NUM_DIRECTIONS] = {{\n"
        "    /* w_ih, w_hh, bias, table, m_x, m_h, input, hidden, shift, narrow (bounds.narrow_requant) */\n"
        + "\n".join(descriptors)
        + "\n};"
    )
    sep = " +\n                                   "
    check = (
        f"typedef char {prefix}_weight_bytes_check[({sep.join(size_terms + head_terms)}) == "
        f"{up}_WEIGHT_BYTES ? 1 : -1];\n"
    )
    if dsp_terms != size_terms:  # the streams hold the same bytes, and their padding
        dsp_check = (
            f"typedef char {prefix}_weight_bytes_check[({sep.join(dsp_terms + head_terms)}) == "
            f"{up}_WEIGHT_BYTES{f' + {dsp_pad}' if dsp_pad else ''} ? 1 : -1];\n"
        )
        check = f"#if EDGERNN_DSP\n{dsp_check}#else\n{check}#endif\n"
    checks = (
        f"/* Compile-time proof that {up}_WEIGHT_BYTES and {up}_STATE_BYTES describe the arrays and the\n"
        " * state type (C99: a negative array size is an error). */\n"
        + check
        + f"typedef char {prefix}_state_bytes_check[sizeof({prefix}_state_t) == "
        f"{up}_STATE_BYTES ? 1 : -1];"
    )
    renames = "\n".join(
        [
            "/* The matrices' order follows the core (EDGERNN_DSP, EDGERNN_V6M_ASM), which each file",
            " * decides from its own compiler flags. Their names carry the order, so that a file built for",
            " * another order than the file defining the tables fails to link instead of misreading them. */",
            "#if EDGERNN_DSP",
            *(f"#define {n} {n}_dsp" for n in dsp_ordered),
            "#elif EDGERNN_V6M_ASM",
            *(f"#define {n} {n}_v6m" for n in v6m_ordered),
            "#endif",
        ]
    )
    return ModelData("\n\n".join(blocks), cells, checks, renames)


@dataclass(frozen=True)
class ModelData:
    tables: str  # the weight and scale arrays' definitions (EDGERNN_IMPLEMENTATION only)
    cells: str  # the static cell descriptors (every translation unit)
    checks: str  # compile-time size proofs
    renames: str  # the matrices' names per core order (every translation unit, before any use)

    def declarations(self) -> str:
        """`extern` declarations of the tables, so every file can point at the one definition (in
        flash: EDGERNN_FLASH, read through EDGERNN_READ_*)."""
        out, inside = [], False
        for line in self.tables.splitlines():
            found = re.fullmatch(rf"{FLASH} const (\w+) (\w+)((?:\[\d+\])+) = \{{", line)
            if found:
                ctype, name, dims = found.groups()
                out.append(f"extern {FLASH} const {ctype} {name}{dims};")
                inside = True
            elif line == "};":
                inside = False
            elif not inside and line.startswith("#"):  # a choice of tables (dsp_stream), not of rows
                out.append(line.split(" /*")[0])
        return "\n".join(out)


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
