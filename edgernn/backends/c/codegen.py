"""The C backend's generator: a QuantizedModel -> one dependency-free C99 header (model.h).

The header is, in this order:
- the hand-written generic core of `c_runtime/edgernn_runtime.h`, embedded verbatim: the
  descriptor type edgernn_model_t and the prefix-free edgernn_* API (always), the kernels and the
  API's definitions (only where EDGERNN_IMPLEMENTATION is defined; include-guarded, so several
  model headers share one translation unit);
- the model, written here: size macros, the state type, the descriptor's declaration and the
  one-line PREFIX_* wrappers (edgernn.backends.c.wrappers), then -- under EDGERNN_IMPLEMENTATION
  -- its weights, biases, multipliers and tables and the descriptor PREFIX_model itself.

Output is deterministic: the same model and prefix give the same bytes (no timestamps).
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path

import numpy as np

from edgernn.artifacts import write_text
from edgernn.backends.c.literals import c_float, c_string, comment_text, meta_value
from edgernn.backends.c.tables import descriptor, model_data
from edgernn.backends.c.wrappers import state_type, usage, wrappers
from edgernn.config import Task
from edgernn.contract.bounds import check_bounds
from edgernn.contract.constants import LUT_SIZE, Q_MAX, tanh_lut
from edgernn.contract.model import QuantizedModel
from edgernn.errors import InputError, InternalError

RUNTIME_HEADER = "edgernn_runtime.h"
RUNTIME_GUARD_END = "#endif /* EDGERNN_RUNTIME_H */"
RUNTIME_VERSION = 4  # must equal EDGERNN_RUNTIME_VERSION in the runtime header
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
    raise InternalError(f"cannot find the C runtime ({RUNTIME_HEADER}) next to the edgernn package")


# ---------------------------------------------------------------------------------------------
# C literals


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
    # edgernn_model_t keeps these in narrow fields (int16 / int8): flash for every model.
    for what, value, limit in (
        ("hidden size", cfg.hidden_size, 2**15 - 1),
        ("number of classes", cfg.num_classes, 2**15 - 1),
        ("number of layers", cfg.num_layers, 2**7 - 1),
    ):
        if value > limit:
            raise InputError(f"the C runtime supports a {what} of at most {limit}, the model has {value}")
    if not cfg.tokens:
        if len(qm.input_scale) != cfg.input_size or not (np.asarray(qm.input_scale) > 0).all():
            raise InputError("a feature model needs one positive input scale per feature")
        n_mean, n_std = len(qm.norm_mean), len(qm.norm_std)
        if (n_mean, n_std) not in ((0, 0), (cfg.input_size, cfg.input_size)):
            raise InputError("norm_mean and norm_std must both be empty or both have one value per feature")
    end = qm.meta.end_token
    if cfg.task == Task.ONE_TO_MANY and end is not None and not 0 <= end < cfg.num_classes:
        raise InputError(f"meta end_token {end!r} is not a class id")


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
        "state": cfg.num_layers * d * h + frame_buffer_bytes(qm),
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
        "Licence: the code is edgernn's, MIT (SPDX-License-Identifier: MIT); the model's tables are",
        "trained on the data set named below, under its licence (Provenance: licence).",
        "",
        f"Model:   {cfg.task}, {kind} per step",
        f"         -> {cfg.hidden_size} hidden x {cfg.num_layers} layer(s), {dirs}",
        f"         -> {cfg.num_classes} classes",
    ]
    provenance = qm.meta.to_dict()
    if provenance:
        lines += ["", "Provenance (QuantizedModel.meta):"]
        lines += [
            f"  {comment_text(k)}: {comment_text(meta_value(v))}" for k, v in sorted(provenance.items())
        ]
        if "float_accuracy" in provenance or "int8_accuracy" in provenance:
            lines.append("  (the accuracies are on the data set's held-out test split)")
    lines += ["", "Quantization (integer contract: docs/integer-contract.md in edgernn):"]
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
        if cfg.input_clip:
            lines.append(
                f"  input clip: the float model clamps normalized inputs to +-{cfg.input_clip:g};"
                f" s_x = {cfg.input_clip:g} / {Q_MAX}, so sat127 is that clamp"
            )
        lines.append(
            f"  input normalisation: {'(raw - mean) / std, stored' if len(qm.norm_mean) else 'none stored'}"
        )
    lines += [
        f"  hidden state: int8 at scale 1/{Q_MAX}; head scale {qm.head_scale:.9g} (logit = logit_q * scale)",
        "",
        "Memory:",
        f"  flash: {sizes['weight']} B model tables + {sizes['lut']} B tanh table = "
        f"{sizes['weight'] + sizes['lut']} B, plus code",
        f"  RAM:   {sizes['state']} B state (caller-owned); a step takes {sizes['scratch']} B of stack",
        "         for its accumulators, plus its call frames",
        "  (the demo model's code is 0.3-1.8 KB and its whole stack 340-380 B on Cortex-M and RISC-V;",
        "  `edgernn mcu DIR` measures this model's on each core)",
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
                (
                    f"{up}_SCRATCH_WORDS",
                    str(sizes["scratch"] // 4),
                    "the same, int32 words",
                ),
                (f"{up}_MACS_PER_STEP", str(sizes["macs"]), "int8 MACs of the RNN per time step (no head)"),
                (f"{up}_HEAD_MACS", str(sizes["head_macs"]), "int8 MACs of one head evaluation"),
                (
                    f"{up}_RUN_BUF_BYTES(T)",
                    f"(EDGERNN_SIZE(T) * {per_step}u)",
                    "run buffer: every layer's states",
                ),
            ],
        ),
        (
            "Output scale: a logit as a float is logit_q * HEAD_SCALE (the exact scale rounded to float32)",
            [(f"{up}_HEAD_SCALE", c_float(qm.head_scale), "")],
        ),
    ]
    if cfg.task == Task.ONE_TO_MANY:
        gen = []
        if qm.meta.start_token is not None:
            gen.append((f"{up}_START_TOKEN", str(qm.meta.start_token), "the token that begins a sequence"))
        end = qm.meta.end_token
        if end is not None:
            gen.append((f"{up}_END_TOKEN", str(end), "generation stops when it produces this token"))
        else:
            gen.append((f"{up}_END_TOKEN", "(-1)", "none recorded: generation always runs to max_len"))
        step = f"{_sample_step(qm.head_scale)}u"
        gen.append((f"{up}_SAMPLE_STEP", step, "logit_q units per factor 2^(1/4) at temperature 1"))
        gen.append(
            (
                f"{up}_GENERATE_SCRATCH_WORDS",
                str(sizes["scratch"] // 4 + cfg.num_classes),
                "stack words of PREFIX_generate",
            )
        )
        groups.append(("Generation", gen))
    if cfg.frame > 1:
        frame = [
            (f"{up}_FRAME", str(cfg.frame), "samples per step: PREFIX_push_sample steps every FRAME samples"),
            (
                f"{up}_SAMPLE_SIZE",
                str(cfg.sample_size),
                "int8 features per sample (INPUT_SIZE = FRAME x this)",
            ),
        ]
        groups.append(("Framing (edgernn train --frame): samples grouped into steps", frame))
    elif cfg.streams_samples:
        frame = [
            (f"{up}_FRAME", "1", "samples per step: unframed, PREFIX_push_sample steps on every sample"),
            (f"{up}_SAMPLE_SIZE", str(cfg.sample_size), "int8 features per sample (= INPUT_SIZE)"),
        ]
        groups.append(("Framing: none (edgernn train --frame K groups K samples into a step)", frame))
    if cfg.pad_to:
        pad = [
            (f"{up}_PAD_TO", f"{cfg.pad_to}u", "a sequence is read with pad steps after it up to this many")
        ]
        groups.append(
            ("Pad steps (edgernn import --pad-to): as the model was trained on padded batches", pad)
        )
    width = max(len(name) for _, rows in groups for name, _, _ in rows) + 1
    names = qm.meta.class_names or ()
    if names:
        listed = ", ".join(c_string(n) for n in names)
        if len(listed) > 80:  # one name a line past a screen's width
            listed = " \\\n    " + ", \\\n    ".join(c_string(n) for n in names) + " \\\n"
        groups.append(
            (
                "Class names, index = class id, as an initializer (no flash unless used):\n"
                f" * static const char *const names[{up}_NUM_CLASSES] = {up}_CLASS_NAMES;",
                [(f"{up}_CLASS_NAMES", f"{{{listed}}}", "")],
            )
        )
    out = []
    for title, rows in groups:
        out.append(f"/* {title} */")
        for name, value, comment in rows:
            line = f"#define {name.ljust(width)}{value}"
            out.append(f"{line.ljust(max(width + 24, len(line) + 1))}/* {comment} */" if comment else line)
        out.append("")
    return "\n".join(out).rstrip("\n")


def frame_buffer_bytes(qm: QuantizedModel) -> int:
    """RAM a framed model's state adds: the frame being filled and its uint16 fill count, with
    the byte that keeps the count at an even offset (PREFIX_state_t: h, frame, reserved, filled)."""
    cfg = qm.config
    if cfg.frame == 1:
        return 0
    used = cfg.num_layers * cfg.directions * cfg.hidden_size + cfg.input_size
    return cfg.input_size + used % 2 + 2


def generate_header(qm: QuantizedModel, prefix: str = "edgernn_model") -> str:
    """The whole model.h as text. Deterministic: the same model and prefix give the same bytes."""
    prefix = validate_prefix(prefix)
    _check_model(qm)
    up = prefix.upper()
    sizes = model_sizes(qm)
    runtime = (c_runtime_dir() / RUNTIME_HEADER).read_text(encoding="utf-8")
    # The runtime's own table goes after the model's guard, beside the model's tables: a file that
    # included model.h before defining EDGERNN_IMPLEMENTATION gets both from a second include.
    core, end, runtime_tables = runtime.partition(RUNTIME_GUARD_END)
    assert end, f"{RUNTIME_HEADER} lost its {RUNTIME_GUARD_END!r} line"
    data = model_data(qm, prefix, up)
    parts = [
        _provenance(qm, prefix, sizes),
        _CXX_QUIET_PUSH,
        _GUARD_SLOT,
        usage(qm, prefix),
        "/* ======== edgernn runtime (c_runtime/edgernn_runtime.h, embedded, shared by all models) ===== */\n"
        + core
        + end,
        f"#if EDGERNN_RUNTIME_VERSION != {RUNTIME_VERSION}\n"
        '#error "model headers from different edgernn versions in one translation unit"\n#endif',
        f"/* ======== Model {prefix} ======== */",
        _macros(qm, up, sizes),
        state_type(qm, prefix),
        data.renames,
        "/* The tables, defined once per program (where EDGERNN_IMPLEMENTATION is defined). */\n"
        '#ifdef __cplusplus\nextern "C" {\n#endif\n'
        + data.declarations()
        + "\n#ifdef __cplusplus\n}\n#endif",
        data.cells,
        descriptor(qm, prefix, up),
        wrappers(qm, prefix),
        f"#endif /* {up}_MODEL_H */",
        f"/* ======== Model {prefix}: the tables (EDGERNN_IMPLEMENTATION only) ======== */\n"
        f"#if defined(EDGERNN_IMPLEMENTATION) && !defined({up}_MODEL_IMPLEMENTED)\n"
        f"#define {up}_MODEL_IMPLEMENTED",
        data.tables,
        data.checks,
        f"#endif /* {up}_MODEL_IMPLEMENTED */",
        runtime_tables.strip("\n"),
        _CXX_QUIET_POP,
    ]
    text = "\n\n".join(parts) + "\n"
    return text.replace(_GUARD_SLOT, _open_guard(prefix, text), 1)


_GUARD_SLOT = "/*@guard@*/"

# C99 has no C++ casts, so a C++ file with -Wold-style-cast (or GCC's -Wuseless-cast, where int32_t
# is int) would drown in this header's casts. Silenced for the header's own lines only, every
# include balanced: the includer's code keeps its warnings.
_CXX_QUIET_PUSH = """#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wold-style-cast"
#pragma GCC diagnostic ignored "-Wzero-as-null-pointer-constant"
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuseless-cast"
#endif
#endif"""
_CXX_QUIET_POP = """#if defined(__cplusplus) && defined(__GNUC__)
#pragma GCC diagnostic pop
#endif"""


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
