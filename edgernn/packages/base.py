"""What every package shares: the model it packages, the demo that runs it, and the safe write.

A package is a function from a `PackagedModel` to a tree of files (relative path -> bytes). The
trees are written under DIR/packages/<ecosystem>/ by `write_tree`, which refuses (InputError, exit
2) a folder holding any file the package would not write, and never deletes anything.
Every byte is a function of the export (model.h, model.int8.json, the data set's first test
sequence) and edgernn's version: regenerating gives byte-identical files, the zip included.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgernn import __version__
from edgernn.artifacts import TMP_SUFFIX, write_bytes
from edgernn.errors import InputError

Tree = dict[str, bytes]  # relative POSIX path -> content
MAX_DEMO_STEPS = 128  # the bundled sequence is cut to this many steps (it lives in the example)
PACKAGES_DIR = "packages"


@dataclass(frozen=True)
class PackagedModel:
    """Everything a package is made from."""

    name: str  # the C prefix: the library / component / target name, and <name>.h
    header: str  # model.h, verbatim
    header_sha256: str
    checkpoint_sha256: str
    dataset: str
    task: str
    tokens: bool
    # The demo runs PREFIX_run on the whole sequence (a bidirectional, padded or reversed model:
    # `demo` is then the steps the run reads); else it streams PREFIX_step, or PREFIX_push_sample.
    whole_sequence: bool
    licence: str
    class_names: tuple[str, ...]
    # The bundled sequence's steps: int8 (steps, INPUT_SIZE) or token ids (steps,); a framed
    # model's raw samples, (samples, SAMPLE_SIZE), as firmware pushes them.
    demo: np.ndarray
    expected_class: int  # the integer reference's class for it (last step for per-step tasks)
    framed: bool = False  # frame > 1: the demo pushes one sample at a time (PREFIX_push_sample)

    @property
    def version(self) -> str:
        """edgernn's version + the header's sha (semver build metadata)."""
        return f"{__version__}+{self.header_sha256[:12]}"

    @property
    def upper(self) -> str:
        return self.name.upper()

    @property
    def description(self) -> str:
        return (
            f"edgernn int8 tanh RNN ({self.task}) trained on {self.dataset}: one dependency-free C99 "
            f"header, bit-exact with its ONNX graphs."
        )

    @property
    def impl_c(self) -> str:
        """The one implementation unit (stb style): the weight tables and the tanh table."""
        return (
            f"/* The implementation unit of {self.name}.h: the weight tables and the tanh table are\n"
            " * defined here, once per program. Every other file just includes the header. */\n"
            "#define EDGERNN_IMPLEMENTATION\n"
            f'#include "{self.name}.h"\n'
        )


def demo_c(m: PackagedModel) -> str:
    """C (and C++) for the examples: the bundled sequence, in flash on AVR, and
    `demo_class()`, which runs the model over it and returns the class."""
    p, up, steps = m.name, m.upper, len(m.demo)
    width = f"{up}_SAMPLE_SIZE" if m.framed else f"{up}_INPUT_SIZE"
    count = "DEMO_SAMPLES" if m.framed else "DEMO_STEPS"
    lines = [
        f"/* The first test sequence of {m.dataset} ({steps} {'samples' if m.framed else 'steps'}), as the "
        "model takes it; the",
        f" * integer reference (edgernn.contract.reference.int_forward) gives class {m.expected_class}. */",
        "#if defined(__AVR__)",
        "#include <avr/pgmspace.h>",
        "#define DEMO_FLASH PROGMEM",
        "#define DEMO_S8(p) ((int8_t)pgm_read_byte(p))",
        "#define DEMO_S32(p) ((int32_t)pgm_read_dword(p))",
        "#else",
        "#define DEMO_FLASH",
        "#define DEMO_S8(p) (*(p))",
        "#define DEMO_S32(p) (*(p))",
        "#endif",
        f"#define {count} {steps}",
    ]
    if m.tokens:
        vals = ", ".join(str(int(v)) for v in m.demo)
        lines.append(f"static const int32_t demo_seq[DEMO_STEPS] DEMO_FLASH = {{{vals}}};")
    else:
        rows = ",\n    ".join("{" + ", ".join(str(int(v)) for v in row) + "}" for row in m.demo)
        decl = f"static const int8_t demo_seq[{count}][{width}] DEMO_FLASH"
        lines.append(f"{decl} = {{\n    {rows}}};")
    lines.append("")
    lines.append("static int32_t demo_class(void)")
    lines.append("{")
    lines.append(f"    static {p}_state_t st;")
    if not m.whole_sequence:
        lines += [f"    int32_t logits[{up}_NUM_CLASSES];", "    size_t t;"]
        if not m.tokens:
            lines += [f"    int8_t x[{width}];", "    size_t i;"]
        lines.append(f"    {p}_init(&st);")
        lines.append(f"    for (t = 0; t < {count}; ++t) {{ /* streaming: one sample at a time */")
        if m.tokens:
            lines.append(f"        (void){p}_step_token(&st, DEMO_S32(&demo_seq[t]));")
        else:
            lines.append(f"        for (i = 0; i < {width}; ++i) {{")
            lines.append("            x[i] = DEMO_S8(&demo_seq[t][i]);")
            lines.append("        }")
            # A step every FRAME samples; the class is read at the end, after the last full frame.
            lines.append(
                f"        (void){p}_push_sample(&st, x);" if m.framed else f"        {p}_step(&st, x);"
            )
        lines.append("    }")
        lines.append(f"    return {p}_classify(&st, logits);")
    else:
        per_step = m.task != "many-to-one"
        n_logits = f"DEMO_STEPS * {up}_NUM_CLASSES" if per_step else f"{up}_NUM_CLASSES"
        first = f"(DEMO_STEPS - 1) * {up}_NUM_CLASSES" if per_step else "0"
        if m.tokens:
            lines.append("    static int32_t seq[DEMO_STEPS];")
        else:
            lines.append(f"    static int8_t seq[DEMO_STEPS][{up}_INPUT_SIZE];")
        lines += [
            f"    static int8_t buf[{up}_RUN_BUF_BYTES(DEMO_STEPS)];",
            f"    static int32_t logits[{n_logits}];",
            "    size_t t, c, best;",
        ]
        if m.tokens:
            lines.append("    for (t = 0; t < DEMO_STEPS; ++t) seq[t] = DEMO_S32(&demo_seq[t]);")
        else:
            lines.append(
                f"    for (t = 0; t < DEMO_STEPS; ++t) for (c = 0; c < {up}_INPUT_SIZE; ++c) "
                "seq[t][c] = DEMO_S8(&demo_seq[t][c]);"
            )
        arg = "seq" if m.tokens else "&seq[0][0]"
        lines += [
            f"    {p}_init(&st);",
            f"    if ({p}_run(&st, {arg}, DEMO_STEPS, buf, sizeof buf, logits) != EDGERNN_OK) return -1;",
            "    best = 0; /* the last step's argmax; ties to the lowest class */",
            f"    for (c = 1; c < {up}_NUM_CLASSES; ++c) {{",
            f"        if (logits[{first} + c] > logits[{first} + best]) best = c;",
            "    }",
            "    return (int32_t)best;",
        ]
    lines.append("}")
    return "\n".join(lines) + "\n"


def class_name_c(m: PackagedModel) -> str:
    """`demo_class_name(c)`: the class names (model.h's PREFIX_CLASS_NAMES), "" when it has none."""
    names = f"{m.name.upper()}_CLASS_NAMES" if m.class_names else '{""}'
    return (
        f"static const char *const demo_names[] = {names};\n"
        "static const char *demo_class_name(int32_t c)\n"
        "{\n"
        "    size_t n = sizeof demo_names / sizeof demo_names[0];\n"
        '    return (c >= 0 && (size_t)c < n) ? demo_names[c] : "";\n'
        "}\n"
    )


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def text(s: str) -> bytes:
    return s.encode("utf-8")


def deterministic_zip(files: Mapping[str, bytes]) -> bytes:
    """A zip whose bytes depend on the files only: sorted entries, fixed time and modes."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        dirs = sorted({"/".join(p.split("/")[:i]) + "/" for p in files for i in range(1, p.count("/") + 1)})
        for d in dirs:
            info = zipfile.ZipInfo(d, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3  # Unix on every OS: the attributes below are Unix modes
            info.external_attr = (0o40755 << 16) | 0x10
            zf.writestr(info, b"")
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o100644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, files[path], compresslevel=9)
    return buf.getvalue()


def check_tree(root: Path, tree: Mapping[str, bytes]) -> None:
    """Refuse a root that holds a file or folder the tree does not have: it is the user's, and is
    never deleted. A temporary file of edgernn's own atomic writer, left by a killed run, is
    removed first (the caller holds the export directory's lock, so no writer owns it)."""
    if root.is_dir():
        for stale in root.rglob(f".*{TMP_SUFFIX}"):
            if stale.is_file() and not stale.is_symlink() and _is_own_temp(stale, tree, root):
                stale.unlink()
    foreign = _foreign(root, tree)
    if foreign:
        shown = ", ".join(str(p) for p in foreign[:3]) + (" ..." if len(foreign) > 3 else "")
        raise InputError(
            f"{root} holds files this package would not write ({shown}); move them or choose another "
            "export directory (no package file was written or deleted)"
        )


def _is_own_temp(path: Path, tree: Mapping[str, bytes], root: Path) -> bool:
    """`.NAME.XXXX.tmp` beside NAME, where NAME is a file of the tree: edgernn.artifacts' temp."""
    rel_dir = path.parent.relative_to(root).as_posix()
    m = re.fullmatch(r"\.(.+)\.[^.]+" + re.escape(TMP_SUFFIX), path.name)
    if m is None:
        return False
    name = m.group(1) if rel_dir == "." else f"{rel_dir}/{m.group(1)}"
    return name in tree


def write_tree(root: Path, tree: Mapping[str, bytes]) -> list[Path]:
    """Write `tree` under `root`, each file atomically, after check_tree: nothing is written into a
    folder that holds the user's files."""
    check_tree(root, tree)
    written = []
    for rel in sorted(tree):
        target = root / rel
        if not (target.is_file() and target.read_bytes() == tree[rel]):
            write_bytes(target, tree[rel])
        written.append(target)
    return written


def _foreign(root: Path, tree: Mapping[str, bytes]) -> list[Path]:
    if not root.exists():
        return []
    if not root.is_dir():
        return [root]
    dirs = {"/".join(p.split("/")[:i]) for p in tree for i in range(1, p.count("/") + 1)}
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_dir() and not p.is_symlink():
            if rel not in dirs:
                out.append(p)
        elif rel not in tree or p.is_symlink():
            out.append(p)
    # report only the top of a foreign folder, not everything inside it
    return [p for p in out if not any(q != p and q in p.parents for q in out)]


@dataclass(frozen=True)
class Package:
    """One ecosystem: its name (the --package choice), the folder it is written to, and its tree."""

    name: str
    summary: str
    build: Callable[[PackagedModel], Tree]

    def folder(self, out_dir: Path) -> Path:
        return out_dir / PACKAGES_DIR / self.name
