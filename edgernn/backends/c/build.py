"""The one place that turns C sources into objects, libraries and programs.

Every caller (the ctypes host harness, the benchmark driver, the sanitizer runner, the fuzzers and
the microcontroller images) describes a build as data -- a compiler, flags, defines, sources -- and
this module runs it: compiler discovery that honours `CC`, the flag sets the project's checks rely
on, content-keyed caching, and one error class for a tool that is missing or fails.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edgernn.errors import ToolchainError

# The warning set every host build of a model header must pass: what a careful firmware build uses.
STRICT_WARNINGS: tuple[str, ...] = (
    "-Wall",
    "-Wextra",
    "-Werror",
    "-pedantic",
    "-Wconversion",
    "-Wshadow",
)
# The float input rule is checked bit for bit: no fused multiply-adds anywhere.
NO_FMA: tuple[str, ...] = ("-ffp-contract=off",)
SANITIZERS: tuple[str, ...] = (
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",  # the first report ends the run with a non-zero status
)
DEFAULT_TIMEOUT = 600.0  # s; zig builds its compiler-rt for a new CPU once


@dataclass(frozen=True)
class Compiler:
    """A C compiler command: an executable plus the words that select its target (zig cc -target ...)."""

    command: tuple[str, ...]
    name: str  # what the user asked for, for messages

    @classmethod
    def discover(cls, cc: str | None = None, env: str = "CC", default: str = "cc") -> Compiler:
        """`cc` if given, else $env (CC by default, may hold words: "zig cc"), else `default`."""
        spec = cc or os.environ.get(env) or default
        words = shlex.split(spec)
        if not words:
            raise ToolchainError(f"${env} is empty: set it to a C compiler such as gcc or clang")
        path = shutil.which(words[0])
        if path is None:
            hint = f" (from ${env})" if not cc and os.environ.get(env) else ""
            raise ToolchainError(
                f"C compiler {words[0]!r}{hint} not found on PATH: install gcc or clang, or set ${env}"
            )
        return cls((path, *words[1:]), spec)

    def version(self) -> str:
        """The compiler's first --version line ('' if it prints none)."""
        try:
            out = subprocess.run([*self.command, "--version"], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else ""


@dataclass(frozen=True)
class Build:
    """One compiler invocation, described as data."""

    compiler: Compiler
    sources: tuple[Path, ...]
    flags: tuple[str, ...] = ()
    defines: Mapping[str, str | None] = field(default_factory=dict)
    include_dirs: tuple[Path, ...] = ()
    link_flags: tuple[str, ...] = ()  # after the sources: libraries, linker scripts

    def argv(self, out: Path) -> list[str]:
        defs = [f"-D{k}" if v is None else f"-D{k}={v}" for k, v in self.defines.items()]
        incs = [f"-I{d}" for d in self.include_dirs]
        return [
            *self.compiler.command,
            *self.flags,
            *defs,
            *incs,
            *(str(s) for s in self.sources),
            *self.link_flags,
            "-o",
            str(out),
        ]

    def key(self) -> str:
        """Content hash of everything that determines the output (sources by bytes, not by name)."""
        h = hashlib.sha256()
        for word in self.argv(Path("out")):
            h.update(word.encode() + b"\0")
        for src in self.sources:
            h.update(_read(src) + b"\0")
        return h.hexdigest()[:20]


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise ToolchainError(f"cannot read the C source {path}: {e.strerror}") from None


def run_tool(
    argv: Sequence[str], what: str, timeout: float = DEFAULT_TIMEOUT, cwd: Path | None = None
) -> str:
    """Run an outside tool; its stdout, or ToolchainError with the tail of what it said."""
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, cwd=cwd)
    except OSError as e:
        raise ToolchainError(f"cannot run {argv[0]} ({what}): {e.strerror}") from None
    except subprocess.TimeoutExpired:
        raise ToolchainError(f"{what}: {Path(argv[0]).name} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()[-4000:]
        raise ToolchainError(f"{what} failed (exit {proc.returncode}):\n$ {shlex.join(argv)}\n{said}")
    return proc.stdout


def compile_to(build: Build, out: Path, what: str, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """Run `build` writing `out` atomically (a temp name in the same folder, then rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".build-") as tmp:
        part = Path(tmp) / out.name
        run_tool(build.argv(part), what, timeout)
        os.replace(part, out)
    return out


def cached(build: Build, workdir: Path, stem: str, what: str, suffix: str = "") -> Path:
    """Build into workdir under a name keyed by content; an existing output is reused as is."""
    out = Path(workdir) / f"{stem}_{build.key()}{suffix}"
    if not out.exists():
        compile_to(build, out, what)
    return out
