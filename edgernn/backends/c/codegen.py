"""The C backend's generator: a QuantizedModel -> one dependency-free C99 header (model.h).

The header is three parts, in this order:
- the hand-written kernels of `c_runtime/edgernn_runtime.h`, embedded verbatim (include-guarded,
  so several model headers share one translation unit);
- the model's data, written here: size macros, weights, biases, multipliers, tables, with a
  provenance comment;
- the hand-written per-model API of `c_runtime/model_api.h.in`, with the prefix filled in and
  only the sections that apply to this model (features/tokens, uni/bidirectional, task).

Output is deterministic: the same model and prefix give the same bytes (no timestamps).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.artifacts import write_text
from edgernn.contract.quant import LUT_SIZE, Q_MAX, QuantizedModel, check_bounds, tanh_lut
from edgernn.errors import InputError

RUNTIME_HEADER = "edgernn_runtime.h"
API_TEMPLATE = "model_api.h.in"
RUNTIME_VERSION = 1  # must equal EDGERNN_RUNTIME_VERSION in the runtime header
MAX_PREFIX_LEN = 32  # the longest generated name adds ~20 characters; C99 guarantees 63 significant

# Keywords of C11 and C++20: a prefix must be usable from either language.
_C_KEYWORDS_TEXT = """auto break case char const continue default do double else enum extern float for
    goto if inline int long register restrict return short signed sizeof static struct switch typedef union
    unsigned void volatile while _Alignas _Alignof _Atomic _Bool _Complex _Generic _Imaginary
    _Noreturn _Static_assert _Thread_local"""
_CXX_KEYWORDS_TEXT = """alignas alignof and and_eq asm bitand bitor bool catch char8_t char16_t char32_t
    class compl concept consteval constexpr constinit const_cast co_await co_return co_yield decltype delete
    dynamic_cast explicit export false friend mutable namespace new noexcept not not_eq nullptr
    operator or or_eq private protected public reinterpret_cast requires static_assert static_cast
    template this thread_local throw true try typeid typename using virtual wchar_t xor xor_eq"""
_KEYWORDS = frozenset(_C_KEYWORDS_TEXT.split()) | frozenset(_CXX_KEYWORDS_TEXT.split())
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIRECTIVE = re.compile(r"/\*@(if|endif)\s*(\w*)\s*@\*/")


def validate_prefix(name: str) -> str:
    """Return `name` if it can prefix every public C symbol of a model header, else raise InputError."""
    if not isinstance(name, str) or not name:
        raise InputError("the C prefix must be a non-empty identifier such as 'jv' or 'gesture_model'")
    if not _IDENT.fullmatch(name):
        raise InputError(
            f"the C prefix {name!r} is not a C identifier: "
            "use letters, digits and '_', and do not start with a digit"
        )
    if name in _KEYWORDS:
        raise InputError(f"the C prefix {name!r} is a C or C++ keyword")
    if name.startswith("_") or "__" in name:
        raise InputError(f"the C prefix {name!r} is reserved (leading '_' or a double '__'); choose another")
    if name.lower() == "edgernn" or name.lower().startswith("edgernn_"):
        raise InputError(f"the C prefix {name!r} would collide with the runtime's edgernn_/EDGERNN_ names")
    if len(name) > MAX_PREFIX_LEN:
        raise InputError(f"the C prefix {name!r} is longer than {MAX_PREFIX_LEN} characters")
    return name


def c_runtime_dir() -> Path:
    """The folder holding the hand-written C: inside the installed package, else the repo's c_runtime/."""
    package = Path(__file__).resolve().parents[2]  # edgernn/backends/c/codegen.py -> edgernn/
    for candidate in (package / "c_runtime", package.parent / "c_runtime"):
        if (candidate / RUNTIME_HEADER).is_file():
            return candidate
    raise InputError(f"cannot find the C runtime ({RUNTIME_HEADER}) next to the edgernn package")


# ---------------------------------------------------------------------------------------------
# C literals


def _c_int(v: int) -> str:
    # -2147483648 is not an int literal in C (it is -(2147483648), a wider type).
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def _c_float(v: float) -> str:
    """A float32 literal that converts back to exactly the same float32 (9 significant digits)."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise InputError(f"cannot write the non-finite value {float(v)!r} into the C header")
    s = f"{float(f):.9g}"
    if not any(ch in s for ch in ".e"):
        s += ".0"
    return s + "f"


def _rows(values: Sequence[str], per_line: int, width: int) -> list[str]:
    cells = [v.rjust(width) for v in values]
    return [", ".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]


def _layout(a: np.ndarray) -> tuple[int, int]:
    """Values per line and column width: 16 int8 columns of 4, or 8 wider ones aligned over the array."""
    if a.dtype == np.int8:
        return 16, 4
    return 8, max((len(_c_int(int(v))) for v in (a.min(initial=0), a.max(initial=0))), default=1)


def _array(ctype: str, name: str, a: np.ndarray, comment: str) -> str:
    """`static const` 1-D or 2-D array; 2-D rows get their own braces (-Wall rejects flat ones)."""
    out = [f"/* {comment} */"] if comment else []
    per, width = _layout(a)
    if a.ndim == 1:
        out.append(f"static const {ctype} {name}[{a.shape[0]}] = {{")
        out += [f"    {line}," for line in _rows([_c_int(int(v)) for v in a], per, width)]
        out.append("};")
        return "\n".join(out)
    rows, cols = a.shape
    out.append(f"static const {ctype} {name}[{rows}][{cols}] = {{")
    for row in a:
        lines = _rows([_c_int(int(v)) for v in row], per, width)
        if len(lines) == 1:
            out.append(f"    {{{lines[0]}}},")
        else:
            out.append(f"    {{{lines[0]},")
            out += [f"     {line}," for line in lines[1:-1]]
            out.append(f"     {lines[-1]}}},")
    out.append("};")
    return "\n".join(out)


def _float_array(name: str, values: np.ndarray, comment: str) -> str:
    lits = [_c_float(float(v)) for v in np.asarray(values, dtype=np.float32)]
    body = [f"    {line}," for line in _rows(lits, 6, max(len(s) for s in lits))]
    return "\n".join([f"/* {comment} */", f"static const float {name}[{len(lits)}] = {{", *body, "};"])


def _comment_text(text: str) -> str:
    """Make arbitrary text safe inside a C block comment (no terminator, nesting or trigraphs)."""
    text = text.replace("*/", "* /").replace("/*", "/ *")
    while "??" in text:
        text = text.replace("??", "? ?")
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= 200 else text[:197] + "..."


def _meta_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return format(v, ".6g")
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, sort_keys=True, default=str)


# ---------------------------------------------------------------------------------------------
# The model


def _check_model(qm: QuantizedModel) -> None:
    cfg = qm.config
    check_bounds(qm)  # |acc| < 2^31, |v| < 2^61, M < 2^30, 1 <= shift <= 40, or QuantizationError
    if not np.array_equal(np.asarray(qm.lut), tanh_lut()) or len(qm.lut) != LUT_SIZE:
        raise InputError(
            "the model's tanh table differs from the contract's; the C runtime has the standard one"
        )
    if len(qm.cells) != cfg.num_layers * cfg.directions:
        raise InputError(
            f"the model has {len(qm.cells)} cells, its config needs {cfg.num_layers * cfg.directions}"
        )
    for i, cell in enumerate(qm.cells):
        layer = i // cfg.directions
        inp = cfg.input_size if layer == 0 else cfg.directions * cfg.hidden_size
        token = layer == 0 and cfg.tokens
        if cell.w_hh.shape != (cfg.hidden_size, cfg.hidden_size) or (token and cell.table is None):
            raise InputError(f"cell {i} does not match the model config")
        if token and cell.table is not None and cell.table.shape != (cfg.vocab_size, cfg.hidden_size):
            raise InputError(f"cell {i}: the token table is not (vocab, hidden)")
        if not token and (cell.table is not None or cell.w_ih.shape != (cfg.hidden_size, inp)):
            raise InputError(f"cell {i}: W_ih is not (hidden, {inp})")
    if qm.head_w.shape != (cfg.num_classes, cfg.directions * cfg.hidden_size):
        raise InputError("the head weights do not match the model config")
    if not cfg.tokens:
        if len(qm.input_scale) != cfg.input_size or not (np.asarray(qm.input_scale) > 0).all():
            raise InputError("a feature model needs one positive input scale per feature")
        n_mean, n_std = len(qm.norm_mean), len(qm.norm_std)
        if (n_mean, n_std) not in ((0, 0), (cfg.input_size, cfg.input_size)):
            raise InputError("norm_mean and norm_std must both be empty or both have one value per feature")
    if cfg.task == "one-to-many" and "end_token" in qm.meta:
        end = qm.meta["end_token"]
        if not isinstance(end, int) or not 0 <= end < cfg.num_classes:
            raise InputError(f"meta end_token {end!r} is not a class id")


def _cell_name(prefix: str, index: int, directions: int) -> str:
    return f"{prefix}_l{index // directions}_d{index % directions}"


def model_sizes(qm: QuantizedModel) -> dict[str, int]:
    cfg = qm.config
    h, d = cfg.hidden_size, cfg.directions
    weight = macs = 0
    for cell in qm.cells:
        weight += cell.w_hh.size + 4 * 2 * h  # W_hh, then the two int32 multiplier rows
        macs += h * h
        if cell.table is not None:
            weight += 4 * cell.table.size
        else:
            weight += cell.w_ih.size + 4 * h  # W_ih and the int32 bias
            macs += cell.w_ih.size
    weight += qm.head_w.size + 4 * cfg.num_classes
    if not cfg.tokens:
        weight += 4 * cfg.input_size + 4 * len(qm.norm_mean) + 4 * len(qm.norm_std)
    return {
        "weight": weight,
        "lut": LUT_SIZE,
        "state": cfg.num_layers * d * h,
        "scratch": 4 * 2 * h,
        "macs": macs,
        "head_macs": cfg.num_classes * d * h,
    }


def _sample_step(head_scale: float) -> int:
    """Logit units (int32) of a factor 2^(1/4) in probability at temperature 1: ln(2) / 4 / scale."""
    step = math.floor(math.log(2.0) / 4.0 / head_scale + 0.5)
    return min(max(step, 1), 2**31 - 1)


def _provenance(qm: QuantizedModel, prefix: str, sizes: dict[str, int]) -> str:
    cfg = qm.config
    kind = (
        f"{cfg.vocab_size} token ids (embedding {cfg.embed_dim})"
        if cfg.tokens
        else f"{cfg.input_size} features"
    )
    dirs = "bidirectional" if cfg.bidirectional else "unidirectional"
    lines = [
        f"{prefix}: an int8 tanh RNN generated by edgernn from a QuantizedModel. Do not edit; regenerate.",
        "",
        f"Model:   {cfg.task}, {kind} per step",
        f"         -> {cfg.hidden_size} hidden x {cfg.num_layers} layer(s), {dirs}",
        f"         -> {cfg.num_classes} classes",
    ]
    if qm.meta:
        lines += ["", "Provenance (QuantizedModel.meta):"]
        lines += [
            f"  {_comment_text(str(k))}: {_comment_text(_meta_value(qm.meta[k]))}" for k in sorted(qm.meta)
        ]
    lines += ["", "Quantization (integer contract: DESIGN.md):"]
    for i, cell in enumerate(qm.cells):
        name = f"layer {i // cfg.directions} {'backward' if i % cfg.directions else 'forward'}"
        src = "token table (W_ih E + b folded)" if cell.table is not None else "int8 W_ih"
        lines.append(f"  {name}: shift n = {cell.shift}, input via {src}")
    if not cfg.tokens:
        s = np.asarray(qm.input_scale, dtype=np.float64)
        lines.append(
            f"  input scales s_x: {len(s)} per feature, min {s.min():.6g}, max {s.max():.6g};"
            " x_q = sat127(round(x / s_x))"
        )
        lines.append(
            f"  input normalisation: {'(raw - mean) / std, stored' if len(qm.norm_mean) else 'none stored'}"
        )
    lines += [
        f"  hidden state: int8 at scale 1/{Q_MAX}; head scale {qm.head_scale:.9g} (logit = logit_q * scale)",
        "",
        "Memory:",
        f"  flash: {sizes['weight']} B model tables + {sizes['lut']} B tanh table = "
        f"{sizes['weight'] + sizes['lut']} B, plus code (about 2 KB on Cortex-M)",
        f"  RAM:   {sizes['state']} B state (caller-owned) + {sizes['scratch']} B stack per step",
        f"Compute: {sizes['macs']} MACs per step + {sizes['head_macs']} per head evaluation",
    ]
    body = "\n".join((" * " + line).rstrip() for line in lines)
    return f"/*\n{body}\n */"


def _macros(qm: QuantizedModel, up: str, sizes: dict[str, int]) -> str:
    cfg = qm.config
    task = cfg.task.replace("-", "_").upper()
    per_step = cfg.num_layers * cfg.directions * cfg.hidden_size
    if cfg.tokens:
        first = (f"{up}_VOCAB_SIZE", str(cfg.vocab_size), "input token ids are 0 .. VOCAB_SIZE - 1")
    else:
        first = (f"{up}_INPUT_SIZE", str(cfg.input_size), "int8 features per step")
    groups: list[tuple[str, list[tuple[str, str, str]]]] = [
        (
            "Shape",
            [
                first,
                (f"{up}_TOKEN_INPUT", "1" if cfg.tokens else "0", "1: steps read token ids, 0: int8 vectors"),
                (f"{up}_HIDDEN_SIZE", str(cfg.hidden_size), "hidden units per layer and direction"),
                (f"{up}_NUM_LAYERS", str(cfg.num_layers), ""),
                (f"{up}_NUM_DIRECTIONS", str(cfg.directions), "2: bidirectional (only _run, no _step)"),
                (f"{up}_NUM_CLASSES", str(cfg.num_classes), "head outputs"),
                (f"{up}_TASK", f"EDGERNN_TASK_{task}", ""),
            ],
        ),
        (
            "Memory and compute",
            [
                (f"{up}_WEIGHT_BYTES", str(sizes["weight"]), "this model's const tables (checked below)"),
                (f"{up}_LUT_BYTES", str(sizes["lut"]), "the tanh table, shared by all models in a program"),
                (f"{up}_FLASH_BYTES", str(sizes["weight"] + sizes["lut"]), "weights + LUT; code is extra"),
                (f"{up}_STATE_BYTES", str(sizes["state"]), "the caller's RAM per stream (the state struct)"),
                (f"{up}_SCRATCH_BYTES", str(sizes["scratch"]), "stack accumulators during a step or run"),
                (f"{up}_MACS_PER_STEP", str(sizes["macs"]), "int8 MACs of the RNN per time step (no head)"),
                (f"{up}_HEAD_MACS", str(sizes["head_macs"]), "int8 MACs of one head evaluation"),
                (
                    f"{up}_RUN_BUF_BYTES(T)",
                    f"((size_t)(T) * {per_step}u)",
                    "run buffer: every layer's states",
                ),
            ],
        ),
        (
            "Output scale: a logit as a float is logit_q * HEAD_SCALE (the exact scale rounded to float32)",
            [(f"{up}_HEAD_SCALE", _c_float(qm.head_scale), "")],
        ),
    ]
    if cfg.task == "one-to-many":
        gen = []
        if "start_token" in qm.meta:
            gen.append(
                (f"{up}_START_TOKEN", str(int(qm.meta["start_token"])), "the token that begins a sequence")
            )
        end = qm.meta.get("end_token")
        if isinstance(end, int):
            gen.append((f"{up}_END_TOKEN", str(end), "generation stops when it produces this token"))
        else:
            gen.append((f"{up}_END_TOKEN", "(-1)", "none recorded: generation always runs to max_len"))
        step = f"{_sample_step(qm.head_scale)}u"
        gen.append((f"{up}_SAMPLE_STEP", step, "logit_q units per factor 2^(1/4) at temperature 1"))
        groups.append(("Generation", gen))
    width = max(len(name) for _, rows in groups for name, _, _ in rows) + 1
    out = []
    for title, rows in groups:
        out.append(f"/* {title} */")
        for name, value, comment in rows:
            line = f"#define {name.ljust(width)}{value}"
            out.append(f"{line.ljust(max(width + 24, len(line) + 1))}/* {comment} */" if comment else line)
        out.append("")
    return "\n".join(out).rstrip("\n")


def _data(qm: QuantizedModel, prefix: str, up: str) -> str:
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
                _array(
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
                _array(
                    "int8_t",
                    f"{name}_w_ih",
                    np.asarray(cell.w_ih, np.int8),
                    f"W_ih, int8, row j at its own scale s_acc[j]; reads {inp}",
                )
            )
            blocks.append(
                _array(
                    "int32_t",
                    f"{name}_bias",
                    np.asarray(cell.bias, np.int32),
                    "b_ih + b_hh at the scale of acc_x",
                )
            )
            w_ih, bias, table = f"&{name}_w_ih[0][0]", f"{name}_bias", "NULL"
            size_terms += [f"sizeof {name}_w_ih", f"sizeof {name}_bias"]
        blocks.append(
            _array(
                "int8_t", f"{name}_w_hh", np.asarray(cell.w_hh, np.int8), "W_hh, int8, row j at its own scale"
            )
        )
        blocks.append(
            _array(
                "int32_t",
                f"{name}_m_x",
                np.asarray(cell.m_x, np.int32),
                f"M_x = round(s_acc / 2^-7 * 2^{cell.shift}) < 2^30: acc_x to z",
            )
        )
        blocks.append(
            _array(
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
            f"{inp_size}, {cell.hidden}, {cell.shift}}},"
        )
    blocks.append("/* ---- Head ---- */")
    blocks.append(
        _array(
            "int8_t",
            f"{prefix}_head_w",
            np.asarray(qm.head_w, np.int8),
            f"head weights, int8, one scale for the whole tensor (so integer argmax is exact); "
            f"reads [{'forward | backward' if d == 2 else 'top state'}]",
        )
    )
    blocks.append(
        _array(
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
            _float_array(
                f"{prefix}_input_inv_scale", inv, "1 / s_x per feature in float32: x_q = sat(round(x * this))"
            )
        )
        size_terms.append(f"sizeof {prefix}_input_inv_scale")
        if len(qm.norm_mean):
            blocks.append(_float_array(f"{prefix}_norm_mean", qm.norm_mean, "training-data mean per feature"))
            blocks.append(_float_array(f"{prefix}_norm_std", qm.norm_std, "training-data std per feature"))
            size_terms += [f"sizeof {prefix}_norm_mean", f"sizeof {prefix}_norm_std"]
    blocks.append(
        "/* Cells in torch's order: index = layer * DIRECTIONS + direction. */\n"
        f"static const edgernn_cell_t {prefix}_cells[{up}_NUM_LAYERS * {up}_NUM_DIRECTIONS] = {{\n"
        "    /* w_ih, w_hh, bias, table, m_x, m_h, input, hidden, shift */\n"
        + "\n".join(descriptors)
        + "\n};"
    )
    terms = " +\n                                   ".join(size_terms)
    blocks.append(
        f"/* Compile-time proof that {up}_WEIGHT_BYTES describes the arrays above (C99: a negative\n"
        " * array size is an error). */\n"
        f"typedef char {prefix}_weight_bytes_check[({terms}) == {up}_WEIGHT_BYTES ? 1 : -1];"
    )
    return "\n\n".join(blocks)


def _usage(qm: QuantizedModel, p: str) -> str:
    cfg = qm.config
    lines = [
        "Usage (one header, nothing to link; C99 or C++; no malloc, stdio, libm, memset, memcpy):",
        f"    static {p}_state_t st;               // {p.upper()}_STATE_BYTES of RAM, caller-owned",
        f"    {p}_init(&st);",
    ]
    if cfg.bidirectional:
        inp = "tokens" if cfg.tokens else "x"
        lines += [
            f"    static int8_t buf[{p.upper()}_RUN_BUF_BYTES(T)];",
            f"    {p}_run(&st, {inp}, T, buf, sizeof buf, logits);   // whole sequence",
        ]
    elif cfg.tokens:
        lines += [f"    {p}_step_token(&st, token);          // once per input token"]
    else:
        lines += [
            f"    {p}_quantize_input(sample_f32, x);   // or produce int8 x directly",
            f"    {p}_step(&st, x);                    // once per sample, e.g. from a sensor task",
        ]
    if cfg.task == "one-to-many":
        lines.append(f"    n = {p}_generate(&st, start_token, out, max_len, seed);  // seed 0: greedy")
    elif not cfg.bidirectional:
        when = "after the last step" if cfg.task == "many-to-one" else "after any step"
        lines.append(f"    cls = {p}_classify(&st, logits);     // {when}")
    return "/*\n" + "\n".join((" * " + line).rstrip() for line in lines) + "\n */"


def _features(qm: QuantizedModel) -> set[str]:
    cfg = qm.config
    on = {"tokens" if cfg.tokens else "features", "bi" if cfg.bidirectional else "uni"}
    on.add("m2o" if cfg.task == "many-to-one" else "per_step")
    if not cfg.bidirectional or cfg.task == "many-to-one":
        on.add("logits_api")
    if cfg.task == "one-to-many":
        on.add("gen")
    if not cfg.tokens:
        on.add("norm" if len(qm.norm_mean) else "nonorm")
    return on


def render_template(text: str, enabled: Iterable[str], prefix: str) -> str:
    """Keep the sections of a c_runtime template whose condition is enabled; fill in the prefix."""
    on = set(enabled)
    keep = [True]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        m = _DIRECTIVE.fullmatch(line.strip())
        if m and m.group(1) == "if":
            keep.append(keep[-1] and m.group(2) in on)
        elif m:
            if len(keep) == 1:
                raise InputError(f"{API_TEMPLATE}:{lineno}: /*@endif@*/ without /*@if@*/")
            keep.pop()
        elif line.lstrip().startswith(("/*@", "*@")):
            continue  # a comment for template readers only
        elif keep[-1]:
            out.append(line)
    if len(keep) != 1:
        raise InputError(f"{API_TEMPLATE}: unclosed /*@if@*/")
    return "\n".join(out).replace("@p@", prefix).replace("@P@", prefix.upper()) + "\n"


def generate_header(qm: QuantizedModel, prefix: str = "edgernn_model") -> str:
    """The whole model.h as text. Deterministic: the same model and prefix give the same bytes."""
    prefix = validate_prefix(prefix)
    _check_model(qm)
    up = prefix.upper()
    sizes = model_sizes(qm)
    rt = c_runtime_dir()
    runtime = (rt / RUNTIME_HEADER).read_text(encoding="utf-8")
    api = render_template((rt / API_TEMPLATE).read_text(encoding="utf-8"), _features(qm), prefix)
    guard = f"{up}_MODEL_H"
    parts = [
        _provenance(qm, prefix, sizes),
        _GUARD_SLOT,
        _usage(qm, prefix),
        "/* ======== edgernn runtime (c_runtime/edgernn_runtime.h, embedded, shared by all models) ===== */\n"
        + runtime.rstrip("\n"),
        f"#if EDGERNN_RUNTIME_VERSION != {RUNTIME_VERSION}\n"
        '#error "model headers from different edgernn versions in one translation unit"\n#endif',
        f"/* ======== Model {prefix} ======== */",
        _macros(qm, up, sizes),
        _data(qm, prefix, up),
        api.rstrip("\n"),
        f"#endif /* {guard} */",
    ]
    text = "\n\n".join(parts) + "\n"
    return text.replace(_GUARD_SLOT, _open_guard(prefix, text), 1)


_GUARD_SLOT = "/*@guard@*/"


def _open_guard(prefix: str, text: str) -> str:
    """The include guard, plus a refusal of a *different* model with the same prefix.

    A plain guard would make the second of two same-prefix headers in one translation unit vanish
    silently, and code meant for it would run the first model. PREFIX_MODEL_ID (a hash of the
    rest of the header) tells a repeated include of the same header, which is harmless, from that.
    """
    up = prefix.upper()
    model_id = int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:7], 16)  # < 2^28: any preprocessor
    return "\n".join(
        [
            "/* One model per prefix and translation unit: a second, different model with this prefix",
            " * stops the build here (the guard would otherwise drop it without a word). */",
            f"#if defined({up}_MODEL_H) && {up}_MODEL_ID != {model_id}",
            f'#error "two different edgernn models use the C prefix {prefix} in one translation unit; '
            'regenerate one with another --prefix"',
            "#endif",
            f"#ifndef {up}_MODEL_H",
            f"#define {up}_MODEL_H",
            f"#define {up}_MODEL_ID {model_id} /* identifies this model (a hash of the header) */",
        ]
    )


def write_header(qm: QuantizedModel, path: str | os.PathLike[str], prefix: str = "edgernn_model") -> Path:
    """Write model.h atomically: a temp file in the same folder, then os.replace."""
    text = generate_header(qm, prefix)
    dest = Path(path)
    write_text(dest, text)  # one atomic writer for every artifact (edgernn.artifacts)
    return dest
