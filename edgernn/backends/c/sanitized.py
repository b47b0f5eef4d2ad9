"""The generated C under AddressSanitizer and UndefinedBehaviorSanitizer, as a standalone program.

`build_runner` compiles c_runtime/fuzz/run_vectors.c (which includes harness.c, written against the
prefix-free edgernn_* API, and through it the model header) with -fsanitize=address,undefined
-fno-sanitize-recover=all, through edgernn.backends.c.build; `SanitizedRunner.run` and `.stream`
feed it vectors through files and return what edgernn.backends.c.host.CModel would, so a test
compares the sanitized C with edgernn.contract.reference.int_forward integer for integer. Any
sanitizer report aborts the program, and `SanitizerReport` carries it. A compiler that is missing
or cannot build the program is a ToolchainError (exit 3).
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgernn.backends.c.build import SANITIZERS, Build, Compiler, cached, compile_to, run_tool
from edgernn.backends.c.codegen import c_runtime_dir, validate_prefix
from edgernn.backends.c.header import descriptor_name, stage_header
from edgernn.backends.c.host import HARNESS, INFO_FIELDS, TASKS
from edgernn.config import Task
from edgernn.contract.reference import IntResult
from edgernn.errors import CheckFailed, InternalError, ToolchainError

RUNNER = Path("fuzz") / "run_vectors.c"
# -Wall -Wextra, not the host's -Werror set: the host library already holds the header to that,
# and a compiler's sanitizer instrumentation is known to bring warnings of its own.
SANITIZE_FLAGS: tuple[str, ...] = ("-std=c99", "-g", "-O1", "-Wall", "-Wextra", *SANITIZERS)
# halt_on_error: stop at the first report; detect_leaks: the runner frees everything it allocates.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}
PROBE_TIMEOUT = 120.0  # s: a probe build or run that takes longer counts as not working


class SanitizerReport(CheckFailed):
    """The sanitized program failed: a sanitizer report, a crash or a run error (exit 1)."""


def runtime_package(compiler: Compiler) -> str:
    """The Debian/Ubuntu package holding the compiler's sanitizer (and, for clang, libFuzzer)
    runtimes: libclang-rt-N-dev for clang N, libgcc-N-dev (libasan, libubsan) for gcc N."""
    version = compiler.version()
    m = re.search(r"clang version (\d+)", version)
    if m:
        return f"libclang-rt-{m.group(1)}-dev"
    if "clang" in version:
        return "libclang-rt-<version>-dev"
    m = re.search(r"(\d+)\.\d+(?:\.\d+)?\s*$", version)  # gcc (Debian 12.2.0-14) 12.2.0
    return f"libgcc-{m.group(1)}-dev" if m else "libgcc-<version>-dev"


def last_line(error: ToolchainError) -> str:
    """The last line a failed tool printed (its message is the command line, then what it said)."""
    lines = str(error).strip().splitlines()
    return lines[-1].strip() if lines else "(no message)"


def sanitizer_problem(cc: str | None = None) -> str | None:
    """None if the compiler (cc, else $CC, else cc) builds and runs an ASan + UBSan program here,
    else why not, naming the package that holds the runtimes."""
    try:
        compiler = Compiler.discover(cc)
    except ToolchainError as e:
        return str(e)
    with tempfile.TemporaryDirectory(prefix="edgernn-asan-probe-") as tmp:
        src = Path(tmp) / "probe.c"
        src.write_text("int main(void) { return 0; }\n", encoding="utf-8")
        try:
            exe = compile_to(
                Build(compiler, (src,), SANITIZE_FLAGS),
                Path(tmp) / "probe",
                "building an ASan + UBSan probe",
                PROBE_TIMEOUT,
            )
        except ToolchainError as e:
            return (
                f"{compiler.name} cannot build with -fsanitize=address,undefined ({last_line(e)}); "
                f"install the sanitizer runtimes: apt-get install {runtime_package(compiler)}"
            )
        try:
            run_tool([str(exe)], "running an ASan + UBSan probe", PROBE_TIMEOUT)
        except ToolchainError as e:
            return f"a sanitized program does not run here: {str(e)[-300:]}"
    return None


@dataclass(frozen=True)
class SanitizedRunner:
    exe: Path
    info: dict[str, int]

    def _call(self, *args: str) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                [str(self.exe), *args], capture_output=True, text=True, env={**os.environ, **SANITIZER_ENV}
            )
        except OSError as e:
            raise ToolchainError(f"cannot run {self.exe}: {e.strerror}") from None
        # A clean run prints nothing on stderr: a report that did not stop the program counts too.
        if proc.returncode != 0 or proc.stderr.strip():
            raise SanitizerReport(
                f"{self.exe.name} {args[0]} exited {proc.returncode}:\n{proc.stderr.strip()[-4000:]}"
            )
        return proc

    def _shape(self) -> tuple[int, int, int, int, int]:
        i = self.info
        return i["layers"], i["directions"], i["hidden"], i["classes"], i["input_size"]

    def run(self, x: np.ndarray, lengths: np.ndarray, h0: np.ndarray | None = None) -> IntResult:
        """A padded batch through edgernn_run (as CModel.run): x int8 (B, T, I) or tokens (B, T)."""
        layers, dirs, hidden, classes, _ = self._shape()
        tokens = bool(self.info["token_input"])
        xs = np.ascontiguousarray(x, dtype=np.int32 if tokens else np.int8)
        batch, steps = xs.shape[0], xs.shape[1]
        per_step = TASKS[self.info["task"]] != Task.MANY_TO_ONE
        with tempfile.TemporaryDirectory(prefix="edgernn-asan-") as tmp:
            src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            parts = [xs.tobytes(), np.ascontiguousarray(lengths, dtype=np.int32).tobytes()]
            if h0 is not None:
                parts.append(np.ascontiguousarray(h0, dtype=np.int8).tobytes())
            src.write_bytes(b"".join(parts))
            self._call("batch", str(batch), str(steps), str(int(h0 is not None)), str(src), str(dst))
            out = dst.read_bytes()
        n_hid = layers * batch * steps * dirs * hidden
        n_hn = layers * dirs * batch * hidden
        hid = np.frombuffer(out, np.int8, n_hid).reshape(layers, batch, steps, dirs * hidden)
        h_n = np.frombuffer(out, np.int8, n_hn, offset=n_hid).reshape(layers * dirs, batch, hidden)
        shape = (batch, steps, classes) if per_step else (batch, classes)
        logits = np.frombuffer(out, np.int32, offset=n_hid + n_hn).reshape(shape)
        return IntResult(
            hidden=torch.from_numpy(hid.copy()),
            h_n=torch.from_numpy(h_n.copy()),
            logits=torch.from_numpy(logits.copy()),
        )

    def stream(self, x_steps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One stream through edgernn_step from the zero state: (T, L*D, H) states, (T, C) logits."""
        layers, dirs, hidden, classes, _ = self._shape()
        xs = np.ascontiguousarray(x_steps, dtype=np.int32 if self.info["token_input"] else np.int8)
        steps = xs.shape[0]
        with tempfile.TemporaryDirectory(prefix="edgernn-asan-") as tmp:
            src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
            src.write_bytes(xs.tobytes())
            self._call("stream", str(steps), str(src), str(dst))
            out = dst.read_bytes()
        n_states = steps * layers * dirs * hidden
        states = np.frombuffer(out, np.int8, n_states).reshape(steps, layers * dirs, hidden)
        logits = np.frombuffer(out, np.int32, offset=n_states).reshape(steps, classes)
        return states.copy(), logits.copy()


def build_runner(
    header_path: str | os.PathLike[str], prefix: str, workdir: str | os.PathLike[str], cc: str | None = None
) -> SanitizedRunner:
    """Compile run_vectors.c (+ harness.c + the header) with ASan and UBSan into workdir, cached
    by content. cc: the compiler; None takes $CC, else cc."""
    text, local = stage_header(header_path, validate_prefix(prefix), workdir)
    work = local.parent
    harness = c_runtime_dir() / HARNESS
    try:
        included = hashlib.sha256(harness.read_bytes()).hexdigest()[:12]  # not a source of its own
    except OSError as e:
        raise ToolchainError(f"cannot read the C source {harness}: {e.strerror}") from None
    build = Build(
        compiler=Compiler.discover(cc),
        sources=(c_runtime_dir() / RUNNER,),
        flags=SANITIZE_FLAGS,
        defines={"EDGERNN_MODEL_HEADER": f'"{local.name}"', "EDGERNN_MODEL": descriptor_name(text)},
        include_dirs=(work,),
    )
    exe = cached(
        build, work, f"run_vectors_{prefix}_{included}", f"building the sanitized runner for {header_path}"
    )
    probe = SanitizedRunner(exe, {})
    values = [int(v) for v in probe._call("info").stdout.split()]
    if len(values) != len(INFO_FIELDS):
        raise InternalError(f"{exe.name} reports {len(values)} info fields, expected {len(INFO_FIELDS)}")
    return SanitizedRunner(exe, dict(zip(INFO_FIELDS, values, strict=True)))
