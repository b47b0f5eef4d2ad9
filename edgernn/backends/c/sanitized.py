"""The generated C under AddressSanitizer and UndefinedBehaviorSanitizer, as a standalone program.

`build_runner` compiles c_runtime/fuzz/run_vectors.c (which includes harness.c and the model
header) with -fsanitize=address,undefined -fno-sanitize-recover=all; `SanitizedRunner.run` and
`.stream` feed it vectors through files and return what edgernn.backends.c.host.CModel would, so a test
compares the sanitized C with edgernn.contract.quant.int_forward integer for integer. Any sanitizer report
aborts the program, and `SanitizerReport` carries it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgernn.backends.c.codegen import c_runtime_dir, validate_prefix
from edgernn.backends.c.host import INFO_FIELDS, TASKS
from edgernn.contract.quant import IntResult
from edgernn.errors import EdgeRNNError, InputError

RUNNER = Path("fuzz") / "run_vectors.c"
SANITIZE_FLAGS: tuple[str, ...] = (
    "-std=c99",
    "-g",
    "-O1",
    "-Wall",
    "-Wextra",
    "-fno-omit-frame-pointer",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",  # the first report ends the run with a non-zero status
)
# halt_on_error: stop at the first report; detect_leaks: the runner frees everything it allocates.
SANITIZER_ENV = {
    "ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1:abort_on_error=0",
    "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
}


class SanitizerReport(EdgeRNNError):
    """The sanitized program failed: a sanitizer report, a crash or a run error (exit 1)."""

    exit_code = 1


def sanitizer_problem(cc: str = "cc") -> str | None:
    """None if `cc` builds and runs an ASan + UBSan program here, else why not."""
    compiler = shutil.which(cc)
    if compiler is None:
        return f"C compiler {cc!r} not found on PATH"
    with tempfile.TemporaryDirectory(prefix="edgernn-asan-probe-") as tmp:
        exe = Path(tmp) / "probe"
        proc = subprocess.run(
            [compiler, *SANITIZE_FLAGS, "-x", "c", "-", "-o", str(exe)],
            input="int main(void) { return 0; }\n",
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["(no message)"])[-1]
            return f"{cc} cannot build with -fsanitize=address,undefined: {last}"
        run = subprocess.run([str(exe)], capture_output=True, text=True)
        if run.returncode != 0:
            return f"a sanitized program does not run here: {run.stderr.strip()[-300:]}"
    return None


@dataclass(frozen=True)
class SanitizedRunner:
    exe: Path
    info: dict[str, int]

    def _call(self, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.exe), *args], capture_output=True, text=True, env={**os.environ, **SANITIZER_ENV}
        )
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
        """A padded batch through PREFIX_run (as CModel.run): x int8 (B, T, I) or tokens (B, T)."""
        layers, dirs, hidden, classes, _ = self._shape()
        tokens = bool(self.info["token_input"])
        xs = np.ascontiguousarray(x, dtype=np.int32 if tokens else np.int8)
        batch, steps = xs.shape[0], xs.shape[1]
        per_step = TASKS[self.info["task"]] != "many-to-one"
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
        """One stream through PREFIX_step from the zero state: (T, L*D, H) states, (T, C) logits."""
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
    header_path: str | os.PathLike[str], prefix: str, workdir: str | os.PathLike[str], cc: str = "cc"
) -> SanitizedRunner:
    """Compile run_vectors.c (+ harness.c + the header) with ASan and UBSan into workdir."""
    prefix = validate_prefix(prefix)
    compiler = shutil.which(cc)
    if compiler is None:
        raise InputError(f"C compiler {cc!r} not found on PATH")
    header = Path(header_path).resolve()
    src = c_runtime_dir() / RUNNER
    harness = c_runtime_dir() / "harness.c"
    digest = hashlib.sha256(header.read_bytes() + src.read_bytes() + harness.read_bytes() + prefix.encode())
    key = digest.hexdigest()[:16]
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    exe = work / f"run_vectors_{prefix}_{key}"
    cmd = [
        compiler,
        *SANITIZE_FLAGS,
        f"-DEDGERNN_H_PREFIX={prefix}",
        f"-DEDGERNN_H_PREFIX_UPPER={prefix.upper()}",
        f'-DEDGERNN_MODEL_HEADER="{header}"',
        str(src),
        "-o",
        str(exe),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise InputError(f"building the sanitized runner failed:\n{proc.stderr[-3000:]}")
    probe = SanitizedRunner(exe, {})
    values = [int(v) for v in probe._call("info").stdout.split()]
    if len(values) != len(INFO_FIELDS):
        raise InputError(f"{exe.name} reports {len(values)} info fields, expected {len(INFO_FIELDS)}")
    return SanitizedRunner(exe, dict(zip(INFO_FIELDS, values, strict=True)))
