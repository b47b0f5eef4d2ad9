"""C source text for numbers, arrays and comments: exact float32 literals, aligned tables, and
arbitrary text made safe inside a block comment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np

from edgernn.errors import InputError


def c_int(v: int) -> str:
    # -2147483648 is not an int literal in C (it is -(2147483648), a wider type).
    return "(-2147483647 - 1)" if v == -(2**31) else str(v)


def c_float(v: float) -> str:
    """A float32 literal that converts back to exactly the same float32 (9 significant digits)."""
    f = np.float32(v)
    if not np.isfinite(f):
        raise InputError(f"cannot write the non-finite value {float(v)!r} into the C header")
    s = f"{float(f):.9g}"
    if not any(ch in s for ch in ".e"):
        s += ".0"
    return s + "f"


def table_rows(values: Sequence[str], per_line: int, width: int) -> list[str]:
    cells = [v.rjust(width) for v in values]
    return [", ".join(cells[i : i + per_line]) for i in range(0, len(cells), per_line)]


def layout(a: np.ndarray) -> tuple[int, int]:
    """Values per line and column width: 16 int8 columns of 4, or 8 wider ones aligned over the array."""
    if a.dtype == np.int8:
        return 16, 4
    return 8, max((len(c_int(int(v))) for v in (a.min(initial=0), a.max(initial=0))), default=1)


# Every table is defined with the runtime's storage macro (edgernn_runtime.h): PROGMEM on AVR, so
# the table stays in flash; nothing elsewhere. The code reads tables through EDGERNN_READ_*.
FLASH = "EDGERNN_FLASH"


def c_array(ctype: str, name: str, a: np.ndarray, comment: str) -> str:
    """A `const` 1-D or 2-D array in flash (EDGERNN_FLASH) with external linkage, defined once per
    program (the translation unit with EDGERNN_IMPLEMENTATION); 2-D rows get their own braces
    (-Wall rejects flat ones)."""
    out = [f"/* {comment} */"] if comment else []
    per, width = layout(a)
    if a.ndim == 1:
        out.append(f"{FLASH} const {ctype} {name}[{a.shape[0]}] = {{")
        out += [f"    {line}," for line in table_rows([c_int(int(v)) for v in a], per, width)]
        out.append("};")
        return "\n".join(out)
    rows, cols = a.shape
    out.append(f"{FLASH} const {ctype} {name}[{rows}][{cols}] = {{")
    for row in a:
        lines = table_rows([c_int(int(v)) for v in row], per, width)
        if len(lines) == 1:
            out.append(f"    {{{lines[0]}}},")
        else:
            out.append(f"    {{{lines[0]},")
            out += [f"     {line}," for line in lines[1:-1]]
            out.append(f"     {lines[-1]}}},")
    out.append("};")
    return "\n".join(out)


def float_array(name: str, values: np.ndarray, comment: str) -> str:
    lits = [c_float(float(v)) for v in np.asarray(values, dtype=np.float32)]
    body = [f"    {line}," for line in table_rows(lits, 6, max(len(s) for s in lits))]
    return "\n".join([f"/* {comment} */", f"{FLASH} const float {name}[{len(lits)}] = {{", *body, "};"])


def comment_text(text: str) -> str:
    """Make arbitrary text safe inside a C block comment (no terminator, nesting or trigraphs)."""
    text = text.replace("*/", "* /").replace("/*", "/ *")
    while "??" in text:
        text = text.replace("??", "? ?")
    text = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in text)
    return text if len(text) <= 200 else text[:197] + "..."


def meta_value(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, float):
        return format(v, ".6g")
    if isinstance(v, (int, str)):
        return str(v)
    return json.dumps(v, sort_keys=True, default=str)


def c_string(s: str) -> str:
    """A C string literal of s: printable ASCII as is, anything else as octal escapes of its UTF-8
    (octal, not hex: a hex escape would swallow the digits after it)."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~" and ch != "?":  # '?' could start a trigraph
            out.append(ch)
        else:
            out.append("".join(f"\\{b:03o}" for b in ch.encode("utf-8")))
    return '"' + "".join(out) + '"'
