"""The rows of docs/hardening.md that the older suites do not already cover.

Every bad input, hostile file or fault ends in one line `error: ...` and its documented exit code
(0 ok, 1 a check failed, 2 usage or input, 3 toolchain, 4 internal, 130 interrupted) -- never a
traceback -- and leaves the artifacts that were there byte-identical. Rows already covered
elsewhere (tests/test_cli.py, test_atomic.py, test_c.py, test_model.py, test_data.py) are named in
the table, not repeated here.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import select
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from edgernn.backends.c.codegen import write_header
from edgernn.backends.c.fuzz import random_quantized_model
from edgernn.cli import main
from edgernn.config import TrainConfig
from edgernn.manifest import MANIFEST, write_manifest
from edgernn.pipeline import (
    EXPORTED,
    HEADER,
    INT_ONNX,
    QUANT_NAME,
    STEP_ONNX,
    default_prefix,
    export_dir,
    quantize_dir,
    train_to_dir,
)
from edgernn.train.checkpoint import load_checkpoint
from edgernn.train.loop import ModelSpec

ARTIFACTS = EXPORTED  # export's write order
EXPORT_SET = (*ARTIFACTS, MANIFEST)  # the manifest last


def cli(*args: str) -> Result:
    # catch_exceptions=False: an exception that escapes the CLI fails the test with its traceback.
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def assert_fails(result: Result, code: int, *fragments: str, one_line: bool = True) -> None:
    out = result.output
    assert result.exit_code == code, out
    assert "Traceback" not in out, out
    for fragment in fragments:
        assert fragment.lower() in out.lower(), out
    if one_line:  # edgernn's own errors; click's usage errors add a usage line before theirs
        assert out.strip().startswith("error: ") and "\n" not in out.strip(), out


def snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.is_file()}


def copy_dir(src: Path, dst: Path, names: tuple[str, ...] = ("checkpoint.pt",)) -> Path:
    dst.mkdir(parents=True, exist_ok=True)
    for n in names:
        shutil.copy(src / n, dst / n)
    return dst


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real model (japanese_vowels, 8 hidden, 1 epoch), exported: every artifact exists."""
    out = tmp_path_factory.mktemp("tiny")
    spec, tc = ModelSpec(hidden_size=8), TrainConfig(epochs=1)
    train_to_dir(out, dataset="japanese_vowels", spec=spec, tc=tc, progress=False)
    export_dir(out)
    return out


def rerecord_manifest(d: Path) -> None:
    """As if export itself had written the files now in d: a bug upstream of the manifest (say in
    codegen) rather than a hand-edit, which the manifest alone would catch."""
    write_manifest(d, ARTIFACTS, load_checkpoint(d).sha256)


def rewrite_checkpoint(src: Path, dst: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    payload = torch.load(src / "checkpoint.pt", weights_only=True)
    edit(payload)
    buf = io.BytesIO()
    torch.save(payload, buf)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "checkpoint.pt").write_bytes(buf.getvalue())
    return dst


# ---------------------------------------------------------------------------------------------
# Unreadable paths and read-only outputs (chmod): run without CAP_DAC_OVERRIDE when root


_RUNNER = r"""
import json, sys, traceback
from click.testing import CliRunner
from edgernn.cli import main
out = {}
for name, args in json.loads(sys.argv[1]).items():
    r = CliRunner().invoke(main, args)
    exc = None
    if r.exception is not None and not isinstance(r.exception, SystemExit):
        exc = "".join(traceback.format_exception(*r.exc_info))
    out[name] = {"code": r.exit_code, "output": r.output, "exception": exc}
print(json.dumps(out))
"""


@functools.cache
def unprivileged_prefix() -> tuple[tuple[str, ...] | None, str]:
    """A command prefix under which chmod really denies access, or (None, why not).

    Root bypasses file permissions (CAP_DAC_OVERRIDE), so as root the commands run under
    `setpriv` with that capability (and CAP_DAC_READ_SEARCH) dropped from the bounding set:
    still uid 0, owner of every file here, but subject to the mode bits like anyone else."""
    if os.geteuid() != 0:
        return (), ""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        return None, "running as root, where chmod does not block reads, and setpriv (util-linux) is missing"
    prefix = (setpriv, "--bounding-set=-dac_override,-dac_read_search")
    probe = Path(os.environ.get("TMPDIR", "/tmp")) / f"edgernn-dac-probe-{os.getpid()}"
    probe.write_text("secret")
    probe.chmod(0)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True
        )
    finally:
        probe.unlink()
    if proc.returncode == 0 or b"PermissionError" not in proc.stderr:
        why = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["reads still succeed"]
        return (
            None,
            f"running as root and cannot drop CAP_DAC_OVERRIDE here ({why[0]}), so chmod does not block",
        )
    return prefix, ""


PERMISSION_CASES: dict[str, tuple[int, tuple[str, ...]]] = {
    # case: (exit code, fragments of the message)
    "checkpoint file chmod 000": (2, ("cannot read", "permission denied")),
    "directory chmod 444 (no search)": (2, ("cannot access", "permission denied")),
    "directory chmod 000": (2, ("is not readable",)),
    "--data file chmod 000": (2, ("--data", "is not readable")),
    "train --out read-only dir": (2, ("cannot write to", "permission denied")),
    "export into read-only dir": (2, ("cannot write to", "permission denied")),
    # The lock file opens for writing: the directory is probed before any work, so the message
    # names it, not the first file that could not be written after the work was done.
    "export into read-only dir, lock file present": (2, ("cannot write to", "permission denied")),
    "quantize into read-only dir, lock file present": (2, ("cannot write to", "permission denied")),
    "train --out read-only dir, lock file present": (2, ("cannot write to", "permission denied")),
}


@pytest.fixture(scope="module")
def permission_results(tiny: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    prefix, why = unprivileged_prefix()
    if prefix is None:
        pytest.skip(why)
    base = tmp_path_factory.mktemp("perm")
    ckpt = tiny / "checkpoint.pt"
    d = {name: base / f"case{i}" for i, name in enumerate(PERMISSION_CASES)}
    for p in d.values():
        p.mkdir()
    shutil.copy(ckpt, d["checkpoint file chmod 000"] / "checkpoint.pt")
    (d["checkpoint file chmod 000"] / "checkpoint.pt").chmod(0)
    shutil.copy(ckpt, d["directory chmod 444 (no search)"] / "checkpoint.pt")
    data = d["--data file chmod 000"] / "mine.npz"
    np.savez(data, X=np.zeros((20, 3, 2), np.float32), y=np.arange(20) % 2)
    data.chmod(0)
    for name in ("export into read-only dir", "export into read-only dir, lock file present",
                 "quantize into read-only dir, lock file present",
                 "train --out read-only dir, lock file present"):  # fmt: skip
        copy_dir(tiny, d[name], ("checkpoint.pt", HEADER, QUANT_NAME))
        if "lock" in name:
            (d[name] / ".edgernn.lock").touch()
    before = {name: snapshot(d[name]) for name in PERMISSION_CASES if "read-only" in name}
    modes = {
        "directory chmod 444 (no search)": 0o444,
        "directory chmod 000": 0,
        "train --out read-only dir": 0o555,
        "export into read-only dir": 0o555,
        "export into read-only dir, lock file present": 0o555,
        "quantize into read-only dir, lock file present": 0o555,
        "train --out read-only dir, lock file present": 0o555,
    }
    args = {
        "checkpoint file chmod 000": ["export", str(d["checkpoint file chmod 000"])],
        "directory chmod 444 (no search)": ["export", str(d["directory chmod 444 (no search)"])],
        "directory chmod 000": ["export", str(d["directory chmod 000"])],
        "--data file chmod 000": ["train", "--data", str(data), "--out", str(base / "o"), "--quiet"],
        "train --out read-only dir": ["train", "--out", str(d["train --out read-only dir"]), "--quiet"],
        "export into read-only dir": ["export", str(d["export into read-only dir"])],
        "export into read-only dir, lock file present": [
            "export",
            str(d["export into read-only dir, lock file present"]),
        ],
        "quantize into read-only dir, lock file present": [
            "quantize",
            str(d["quantize into read-only dir, lock file present"]),
        ],
        "train --out read-only dir, lock file present": [
            "train",
            "--out",
            str(d["train --out read-only dir, lock file present"]),
            "--quiet",
        ],
    }
    for name, mode in modes.items():
        d[name].chmod(mode)
    try:
        proc = subprocess.run(
            [*prefix, sys.executable, "-c", _RUNNER, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 0, proc.stderr
        results = json.loads(proc.stdout.strip().splitlines()[-1])
    finally:
        for name in modes:
            d[name].chmod(0o755)
        (d["checkpoint file chmod 000"] / "checkpoint.pt").chmod(0o644)
        data.chmod(0o644)
    for name, snap in before.items():
        results[name]["unchanged"] = snapshot(d[name]) == snap
    yield results


@pytest.mark.parametrize("case", list(PERMISSION_CASES))
def test_unreadable_and_unwritable_paths(permission_results: dict[str, Any], case: str) -> None:
    code, fragments = PERMISSION_CASES[case]
    r = permission_results[case]
    assert r["exception"] is None, r["exception"]  # an escaped exception is a traceback for the user
    out = r["output"]
    assert r["code"] == code and "Traceback" not in out, out
    for f in fragments:
        assert f in out.lower(), out
    if "is not readable" not in fragments:  # those are click's own usage errors (also exit 2)
        assert out.strip().startswith("error: ") and "\n" not in out.strip(), out
    if "read-only" in case:
        assert r["unchanged"], "a refused write changed the directory"


# ---------------------------------------------------------------------------------------------
# Output paths


def test_output_under_a_regular_file(tmp_path: Path) -> None:
    f = tmp_path / "plain-file"
    f.write_text("not a directory")
    assert_fails(cli("train", "--out", str(f / "sub"), "--quiet"), 2, "cannot write to", "not a directory")
    assert_fails(cli("train", "--out", str(f), "--quiet"), 2, "is a file", one_line=False)
    assert_fails(cli("export", str(f)), 2, "is a file", one_line=False)
    assert f.read_text() == "not a directory"


def test_disk_full_during_a_write_keeps_the_old_artifact(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    d = copy_dir(tiny, tmp_path / "d", ("checkpoint.pt", QUANT_NAME))
    before = snapshot(d)

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)  # the temp file's fsync: the write did not reach the disk
    assert_fails(cli("quantize", str(d)), 2, f"cannot write {d / QUANT_NAME}", "no space left on device")
    assert snapshot(d) == {**before, ".edgernn.lock": b""}  # the old model.int8.json, no temp file


def test_artifact_permissions_follow_the_umask(tiny: Path) -> None:
    """mkstemp creates 0600 files; artifacts get what open() would give them (0644 at umask 022)."""
    mask = os.umask(0)
    os.umask(mask)
    for name in ("checkpoint.pt", *ARTIFACTS):
        assert stat.S_IMODE((tiny / name).stat().st_mode) == 0o666 & ~mask, name


# ---------------------------------------------------------------------------------------------
# Configs and weights the integer contract cannot carry


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("hidden_size", -3, "hidden_size must be an integer in 1..1024"),
        ("hidden_size", 1025, "hidden_size must be an integer in 1..1024"),
        ("hidden_size", 2.5, "hidden_size must be an integer"),
        ("hidden_size", True, "hidden_size must be an integer"),
        ("num_layers", 0, "num_layers must be an integer in 1..8"),
        ("input_size", -12, "input_size must be an integer in 1..4096"),
        ("input_size", 10**12, "input_size must be an integer in 1..4096"),
        ("num_classes", 0, "num_classes must be an integer"),
        ("task", "many-to-few", "task must be one of"),
        ("surprise", 1, "unknown model config keys: surprise"),
    ],
)
def test_config_out_of_range_in_a_checkpoint(
    tiny: Path, tmp_path: Path, key: str, value: Any, fragment: str
) -> None:
    def edit(p: dict[str, Any]) -> None:
        meta = json.loads(p["meta"])
        meta["config"][key] = value
        p["meta"] = json.dumps(meta)

    assert_fails(cli("export", str(rewrite_checkpoint(tiny, tmp_path, edit))), 2, fragment)
    assert not (tmp_path / HEADER).exists()


def _head_bias_for(weight: float, bias_q: int) -> float:
    """The float head bias that quantizes to bias_q when every head weight equals `weight`."""
    s_y = float(np.float32(weight)) / 127  # contract.quantize.quantize_model: one scale, max |w| -> 127
    return bias_q * (s_y / 127)


def _set_head(weight: float, bias: float) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        sd = p["state_dict"]
        sd["head.weight"] = torch.full_like(sd["head.weight"], weight)
        sd["head.bias"] = torch.full_like(sd["head.bias"], bias)

    return edit


def _scale_rnn(factor: float) -> Callable[[dict[str, Any]], None]:
    def edit(p: dict[str, Any]) -> None:
        for k, v in p["state_dict"].items():
            if k.startswith("rnn."):
                p["state_dict"][k] = v * factor

    return edit


BOUND_CASES = {
    # 8 hidden: each head row has 8 weights of 127, so its logit bound is 8 * 127 * 127 + |b_q|;
    # a bias of 2^31 - 60000 fits int32 itself but the proven |acc| bound passes 2^31.
    "head |acc| bound >= 2^31": (
        _set_head(1e-3, _head_bias_for(1e-3, 2**31 - 60_000)),
        "int32 logit bound >= 2^31",
    ),
    "head bias beyond int32": (_set_head(1e-3, _head_bias_for(1e-3, 2**33)), "bias is >= 2^31"),
    "recurrent weights x 1e30": (_scale_rnn(1e30), "multiplier is >= 2^30 even with shift 1"),
    "recurrent weights x 1e11 (shift would be 0)": (
        _scale_rnn(1e11),
        "multiplier is >= 2^30 even with shift 1",
    ),
    "Inf in a weight": (
        lambda p: p["state_dict"]["rnn.bias_ih_l0"].__setitem__(0, float("inf")),
        "NaN or Inf",
    ),
    "-Inf in the head": (
        lambda p: p["state_dict"]["head.weight"].__setitem__((0, 0), float("-inf")),
        "NaN or Inf",
    ),
}


@pytest.mark.parametrize("case", list(BOUND_CASES))
def test_weights_whose_integer_bounds_fail_are_refused(tiny: Path, tmp_path: Path, case: str) -> None:
    edit, fragment = BOUND_CASES[case]
    d = rewrite_checkpoint(tiny, tmp_path, edit)
    assert_fails(cli("quantize", str(d)), 2, fragment)
    assert not (d / QUANT_NAME).exists()


def _edit_quantized(edit: Callable[[dict[str, Any]], None]) -> Callable[[str], str]:
    def apply(text: str) -> str:
        doc = json.loads(text)
        edit(doc)
        return json.dumps(doc)

    return apply


TAMPERED = {
    "bias 2^31 - 1 (|acc| bound >= 2^31)": (
        _edit_quantized(lambda d: d["cells"][0]["bias"].__setitem__(0, 2**31 - 1)),
        "int32 accumulator bound",
    ),
    "int8 weight 300": (
        _edit_quantized(lambda d: d["cells"][0]["w_hh"][0].__setitem__(0, 300)),
        "malformed quantized model",
    ),
    "shift 0": (_edit_quantized(lambda d: d["cells"][0].__setitem__("shift", 0)), "shift < 1"),
    "multiplier 2^30": (
        _edit_quantized(lambda d: d["cells"][0]["m_h"].__setitem__(0, 2**30)),
        "multiplier >= 2^30",
    ),
    "not JSON": (lambda text: text[: len(text) // 2], "malformed quantized model"),
}


@pytest.mark.parametrize("case", list(TAMPERED))
def test_tampered_quantized_model_is_refused(tiny: Path, tmp_path: Path, case: str) -> None:
    """verify (and mcu) read model.int8.json back: the bounds are proven again on load. verify
    first refuses the edit itself (the file no longer matches manifest.json); with the manifest
    re-recorded over the edit, the bounds still refuse it."""
    edit, fragment = TAMPERED[case]
    d = copy_dir(tiny, tmp_path / "d", ("checkpoint.pt", *EXPORT_SET))
    (d / QUANT_NAME).write_text(edit((d / QUANT_NAME).read_text()))
    assert_fails(cli("verify", str(d), "--no-c"), 1, f"{d / QUANT_NAME} does not match manifest.json")
    rerecord_manifest(d)
    assert_fails(cli("verify", str(d), "--no-c"), 2, fragment)


# ---------------------------------------------------------------------------------------------
# --data files (the library's messages for each are pinned in tests/test_data.py)


def _csv(rows: list[str]) -> str:
    return "sequence,step,label,f0\n" + "".join(r + "\n" for r in rows)


X = np.random.default_rng(0).normal(size=(30, 6, 2)).astype(np.float32)
Y = np.arange(30) % 3
DATA_CASES: dict[str, tuple[dict[str, Any] | str, str]] = {
    "Inf in X": ({"X": np.where(np.arange(6)[None, :, None] == 2, np.inf, X), "y": Y}, "NaN/Inf"),
    "Inf in a CSV": (_csv([f"s{i},0,{i % 2},{'inf' if i == 4 else 0.5}" for i in range(12)]), "NaN/Inf"),
    "X 2-D floats": ({"X": X[..., 0], "y": Y}, "X[..., None]"),
    "X of strings": ({"X": X.astype(str), "y": Y}, "dtype <U"),
    "X of Python objects": ({"X": X.astype(object), "y": Y}, "Python objects"),
    "y of the wrong length": ({"X": X, "y": Y[:-3]}, "27 labels but X has 30 sequences"),
    "per-step y of the wrong shape": ({"X": X, "y": np.zeros((30, 5), int)}, "per-step y must have shape"),
    "fractional labels": ({"X": X, "y": Y + 0.5}, "whole numbers"),
    "negative labels": ({"X": X, "y": Y - 1}, "labels must be >= 0"),
    "one class": ({"X": X, "y": np.zeros(30, int)}, "at least 2 classes"),
    "zero steps": ({"X": np.zeros((30, 0, 2), np.float32), "y": Y}, "X is empty"),
    "empty sequence (length 0)": ({"X": X, "y": Y, "lengths": np.where(np.arange(30) == 5, 0, 6)}, "has 0"),
    "CSV with a header only": (_csv([]), "no data rows"),
    "too few sequences": ({"X": X[:4], "y": Y[:4]}, "only 4 sequences"),
    "token 0 inside a sequence": ({"X": np.zeros((30, 4), np.int64), "y": Y}, "0 is padding"),
    "token id >= 65536": ({"X": np.full((30, 4), 70000), "y": Y}, "token ids, which must be in 1..65535"),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_bad_data_file(tmp_path: Path, case: str) -> None:
    content, fragment = DATA_CASES[case]
    if isinstance(content, str):
        path = tmp_path / "bad.csv"
        path.write_text(content)
    else:
        path = tmp_path / "bad.npz"
        np.savez(path, **content)
    out = tmp_path / "out"
    assert_fails(cli("train", "--data", str(path), "--out", str(out), "--quiet"), 2, fragment)
    assert not (out / "checkpoint.pt").exists()


# ---------------------------------------------------------------------------------------------
# C prefixes


@pytest.mark.parametrize(
    ("prefix", "fragment"),
    [
        ("", "must be a non-empty identifier"),
        ("9abc", "is not a C identifier"),
        ("a-b", "is not a C identifier"),
        ("int", "is a C or C++ keyword"),
        ("class", "is a C or C++ keyword"),
        ("a__b", "is reserved"),
        ("_x", "is reserved"),
        ("edgernn_x", "would collide with the runtime"),
        ("x" * 33, "longer than 32 characters"),
    ],
)
def test_bad_prefix_on_the_command_line(tiny: Path, tmp_path: Path, prefix: str, fragment: str) -> None:
    d = copy_dir(tiny, tmp_path / "d", ("checkpoint.pt", HEADER))
    before = snapshot(d)
    assert_fails(cli("export", str(d), "--prefix", prefix), 2, fragment)
    assert snapshot(d) == before  # refused before any work: nothing written, not even a lock file


@pytest.mark.parametrize(
    ("name", "prefix"),
    [
        ("japanese_vowels", "japanese_vowels"),
        ("My Data-2024", "my_data_2024"),
        ("int", "int_model"),
        ("class", "class_model"),
        ("my__data", "my_data"),
        ("_private", "private_model"),  # a C++ keyword once the "_" goes
        ("edgernn_runs", "m_edgernn_runs"),
        ("9lives", "m_9lives"),
        ("Ünïcode", "n_code"),
        ("---", "model"),
        ("a" * 40, "a" * 32),
    ],
)
def test_default_prefix_is_always_a_valid_identifier(name: str, prefix: str) -> None:
    """--prefix is optional: whatever the data file is called, export must produce a header."""
    assert default_prefix(name) == prefix


def test_default_prefix_from_a_data_file_called_int(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    y = np.arange(40) % 2
    np.savez(tmp_path / "int.npz", X=rng.normal(size=(40, 5, 2)).astype(np.float32) + y[:, None, None], y=y)
    out = tmp_path / "out"
    r = cli(
        "train",
        "--data",
        str(tmp_path / "int.npz"),
        "--out",
        str(out),
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--quiet",
    )
    assert r.exit_code == 0, r.output
    r = cli("export", str(out))
    assert r.exit_code == 0, r.output
    assert "int_model_state_t" in (out / HEADER).read_text()


def _compile(cc: str, src: Path, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            cc,
            "-std=c99",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-pedantic",
            "-c",
            str(src),
            "-o",
            str(tmp_path / "x.o"),
        ],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_two_models_with_one_prefix_in_one_program(tmp_path: Path, cc: str) -> None:
    """Without a check, the include guard would drop the second header silently and its code would
    run the first model's weights. The build stops instead, naming the prefix."""
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not found on PATH")
    a = write_header(
        random_quantized_model("many-to-one", 3, 4, 1, False, 2, 0, seed=1, scale=1.0),
        tmp_path / "a.h",
        "dup",
    )
    b = write_header(
        random_quantized_model("many-to-one", 3, 4, 1, False, 2, 0, seed=2, scale=1.0),
        tmp_path / "b.h",
        "dup",
    )
    both = tmp_path / "both.c"
    both.write_text(
        f'#include "{a}"\n#include "{b}"\nint f(void) {{ dup_state_t s; dup_init(&s); return s.h[0][0]; }}\n'
    )
    r = _compile(cc, both, tmp_path)
    assert r.returncode != 0
    assert "two different edgernn models use the C prefix dup" in r.stderr and "another --prefix" in r.stderr
    twice = tmp_path / "twice.c"  # the same header twice (e.g. through two includes) stays fine
    twice.write_text(
        f'#include "{a}"\n#include "{a}"\nint f(void) {{ dup_state_t s; dup_init(&s); return s.h[0][0]; }}\n'
    )
    r = _compile(cc, twice, tmp_path)
    assert r.returncode == 0, r.stderr


# ---------------------------------------------------------------------------------------------
# Concurrency, interrupts and kills (real processes)


def _edgernn(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgernn", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,
    )


def _holds_flock(lock: Path) -> bool:
    """True if some process holds a flock on `lock` (read from /proc/locks: taking the lock to
    test it would itself make the process under test fail)."""
    st = lock.stat()
    key = f" {os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino} "  # as /proc/locks prints it
    return any("FLOCK" in line and key in line for line in Path("/proc/locks").read_text().splitlines())


def test_two_exports_at_once_the_second_fails_fast(tiny: Path, tmp_path: Path) -> None:
    if not Path("/proc/locks").exists():
        pytest.skip("needs /proc/locks (Linux) to see the first export's lock without taking it")
    d = copy_dir(tiny, tmp_path / "d")
    lock = d / ".edgernn.lock"
    lock.touch()
    first = _edgernn("export", str(d))
    try:
        deadline = time.monotonic() + 60
        while not _holds_flock(lock):
            assert first.poll() is None, (
                f"the first export ended before taking the lock: {first.communicate()}"
            )
            assert time.monotonic() < deadline, "the first export never took the lock"
            time.sleep(0.01)
        # Freeze the first export while it holds the lock, so the second surely meets it.
        first.send_signal(signal.SIGSTOP)
        assert _holds_flock(lock)
        t0 = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "edgernn", "export", str(d)], capture_output=True, text=True
        )
        elapsed = time.monotonic() - t0
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert second.returncode == 2, second.stderr
    assert (
        second.stderr.strip() == f"error: another edgernn process is writing to {d}; try again when it ends"
    )
    assert "Traceback" not in second.stdout + second.stderr
    assert elapsed < 30  # it did not wait, nor quantize: it stopped at the lock
    assert first.returncode == 0 and "Traceback" not in err, err
    for name in ARTIFACTS:
        assert (d / name).stat().st_size > 0
    assert not list(d.glob(".*.tmp"))


_HOOKED_CLI = r"""
import os, sys, time
stop_at = sys.argv[1]
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    if os.path.basename(os.fspath(dst)) == stop_at:
        print("renaming", flush=True)  # the temp file is complete; the rename has not happened
        time.sleep(120)
    return real_replace(src, dst, *args, **kwargs)
os.replace = replace
from edgernn.cli import main
sys.argv = ["edgernn", *sys.argv[2:]]
main()
"""


@pytest.fixture(scope="module")
def old_and_new(
    tiny: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, bytes], dict[str, bytes]]:
    d = copy_dir(tiny, tmp_path_factory.mktemp("kill"))
    export_dir(d, prefix="fresh")
    new = {n: (d / n).read_bytes() for n in EXPORT_SET}
    export_dir(d, prefix="stale")
    return d, {n: (d / n).read_bytes() for n in EXPORT_SET}, new


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_export_killed_between_writing_and_renaming(
    old_and_new: tuple[Path, dict[str, bytes], dict[str, bytes]], sig: int
) -> None:
    """Deterministic, unlike a timed kill: the export is stopped inside the atomic write of
    model.int8.onnx (third of five), with the temp file complete and not yet renamed."""
    d, old, new = old_and_new
    export_dir(d, prefix="stale")
    ckpt = (d / "checkpoint.pt").read_bytes()
    p = subprocess.Popen(
        [sys.executable, "-c", _HOOKED_CLI, INT_ONNX, "export", str(d), "--prefix", "fresh"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], 120)
    assert ready and p.stdout.readline().strip() == "renaming", p.communicate()
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    assert (d / QUANT_NAME).read_bytes() == new[QUANT_NAME]  # written and renamed before the kill
    assert (d / QUANT_NAME).read_bytes() != old[QUANT_NAME]
    for name in (INT_ONNX, STEP_ONNX, HEADER, MANIFEST):  # not yet replaced: the old bytes, exactly
        assert (d / name).read_bytes() == old[name], name
    assert (d / "checkpoint.pt").read_bytes() == ckpt and load_checkpoint(d).model is not None
    temps = list(d.glob(".*.tmp"))
    if sig == signal.SIGINT:
        assert p.returncode == 130 and "Traceback" not in err, err
        assert err.strip() == "interrupted; artifacts already written are intact"
        assert temps == []  # Ctrl-C: the writer removed its own temp file
    else:
        assert p.returncode == -signal.SIGKILL
        assert [t.name.startswith(f".{INT_ONNX}.") for t in temps] == [True]  # left, under a temp name only
    # The mixed set (a new model.int8.json beside the old model.h) is refused, naming the file.
    assert_fails(cli("verify", str(d), "--no-c"), 1, f"{d / QUANT_NAME} does not match manifest.json")
    export_dir(d, prefix="stale")  # the next writer (holding the lock) clears a killed one's temp files
    assert not list(d.glob(".*.tmp"))
    assert {n: (d / n).read_bytes() for n in EXPORT_SET} == old


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stop_at", "differ"),
    [(QUANT_NAME, ()), (INT_ONNX, (QUANT_NAME,)), (MANIFEST, (QUANT_NAME, HEADER))],
    ids=["before-the-first-rename", "mid-export", "before-the-manifest"],
)
def test_killed_export_leaves_the_old_set_or_one_verify_refuses(
    old_and_new: tuple[Path, dict[str, bytes], dict[str, bytes]], stop_at: str, differ: tuple[str, ...]
) -> None:
    """SIGKILL at three points of an export that changes model.int8.json and model.h (a new
    prefix): before any rename the old, consistent set remains and verifies; any later kill leaves
    files the old manifest does not vouch for, and verify refuses them, naming them, until the
    next export completes."""
    d, old, new = old_and_new
    export_dir(d, prefix="stale")
    p = subprocess.Popen(
        [sys.executable, "-c", _HOOKED_CLI, stop_at, "export", str(d), "--prefix", "fresh"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert p.stdout is not None
    ready, _, _ = select.select([p.stdout], [], [], 120)
    assert ready and p.stdout.readline().strip() == "renaming", p.communicate()
    p.send_signal(signal.SIGKILL)
    p.communicate(timeout=60)
    assert (d / MANIFEST).read_bytes() == old[MANIFEST]  # written last: not replaced yet
    on_disk = {n: (d / n).read_bytes() for n in ARTIFACTS}
    assert {n for n in ARTIFACTS if on_disk[n] != old[n]} == set(differ)
    r = cli("verify", str(d), "--no-c")
    if not differ:
        assert r.exit_code == 0 and "FAIL" not in r.output, r.output
    else:
        paths = ", ".join(str(d / n) for n in sorted(differ))  # the manifest's (sorted) order
        assert_fails(r, 1, f"{paths} do{'es' if len(differ) == 1 else ''} not match manifest.json")
    export_dir(d, prefix="fresh")
    assert {n: (d / n).read_bytes() for n in EXPORT_SET} == new
    assert cli("verify", str(d), "--no-c").exit_code == 0


@pytest.mark.slow
def test_ctrl_c_during_training_keeps_the_last_good_checkpoint(tiny: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny, tmp_path / "d")
    before = (d / "checkpoint.pt").read_bytes()
    # 128 x 2 layers: seconds of training even where early stopping ends a small model in one,
    # so the interrupt lands mid-training and not after the new checkpoint was written.
    args = ["--seed", "5", "--epochs", "400", "--hidden", "128", "--layers", "2", "--out", str(d), "--quiet"]
    p = _edgernn("train", "--dataset", "japanese_vowels", *args)
    lock = d / ".edgernn.lock"
    deadline = time.monotonic() + 60
    while not (lock.exists() and _holds_flock(lock)):  # training holds the directory's lock
        assert p.poll() is None and time.monotonic() < deadline, p.communicate()
        time.sleep(0.01)
    time.sleep(0.2)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 130, f"exit {p.returncode}: {err}"
    assert err.strip() == "interrupted; artifacts already written are intact"
    assert (d / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(d).model is not None
    assert not list(d.glob(".*.tmp"))


def test_ctrl_c_exits_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import edgernn.pipeline

    def interrupted(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(edgernn.pipeline, "export_dir", interrupted)
    r = cli("export", str(tmp_path))
    assert r.exit_code == 130 and r.output.strip() == "interrupted; artifacts already written are intact"


# ---------------------------------------------------------------------------------------------
# Exit codes 0 and 1 (2 and 130: everywhere above)


def test_exit_0_then_1_when_a_check_fails(tiny: Path, tmp_path: Path) -> None:
    d = copy_dir(tiny, tmp_path / "d", ("checkpoint.pt", *EXPORT_SET))
    ok = cli("verify", str(d))
    assert ok.exit_code == 0 and "FAIL" not in ok.output, ok.output
    # One head bias in model.h changed: the C no longer matches the torch integer reference.
    text = (d / HEADER).read_text()
    key = "_head_b[9] = {\n"
    at = text.index(key) + len(key)
    end = text.index(",", at)
    (d / HEADER).write_text(text[:at] + f"{int(text[at:end]) + 1000:>12}" + text[end:])
    edited = cli("verify", str(d))  # by hand, after the export: the manifest catches it
    assert_fails(edited, 1, f"{d / HEADER} does not match manifest.json", "edgernn export")
    rerecord_manifest(d)  # as if codegen itself had written it: the parity check catches it
    bad = cli("verify", str(d))
    assert bad.exit_code == 1 and "Traceback" not in bad.output, bad.output
    assert "FAIL" in bad.output and bad.output.strip().endswith(
        "error: verification failed: see the FAIL rows above"
    )


# ---------------------------------------------------------------------------------------------
# Every artifact is written under a temporary name and renamed


def test_every_artifact_write_is_a_rename(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Behavioural audit of the writers: train, quantize, export, verify's report. Every file that
    appears or changes in the directory got there by os.replace from a temp file beside it."""
    renamed: list[tuple[str, str]] = []
    real = os.replace

    def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        renamed.append((os.fspath(src), os.fspath(dst)))
        real(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    d = tmp_path / "d"
    spec, tc = ModelSpec(hidden_size=4), TrainConfig(epochs=1)
    steps: list[tuple[str, Callable[[], object]]] = [
        ("train", lambda: train_to_dir(d, dataset="japanese_vowels", spec=spec, tc=tc, progress=False)),
        ("quantize", lambda: quantize_dir(d)),
        ("export", lambda: export_dir(d)),
        ("verify", lambda: cli("verify", str(d), "--no-c")),
    ]
    for what, step in steps:
        before = snapshot(d) if d.exists() else {}
        renamed.clear()
        step()
        after = snapshot(d)
        changed = {n for n, data in after.items() if before.get(n) != data and n != ".edgernn.lock"}
        targets = {
            Path(dst).name
            for src, dst in renamed
            if Path(src).parent == d and Path(src).name.endswith(".tmp")
        }
        assert changed and changed <= targets, (
            f"{what}: written without a rename: {sorted(changed - targets)}"
        )
        assert not list(d.glob(".*.tmp")), what


# ---------------------------------------------------------------------------------------------
# PREFIX_run lengths: 0, and beyond what the buffer holds (docs/hardening.md, edgernn_runtime.h)


@pytest.mark.parametrize("bi", [False, True], ids=["unidirectional", "bidirectional"])
def test_run_lengths_zero_and_beyond_the_buffer(tmp_path: Path, bi: bool) -> None:
    from edgernn.backends.c.host import compile_model
    from edgernn.contract.reference import int_forward

    qm = random_quantized_model("many-to-many", 3, 5, 2, bi, 4, 0, seed=4, scale=2.0)
    cm = compile_model(write_header(qm, tmp_path / "model.h", "rl"), "rl", tmp_path)
    per_step = cm.info["run_buf_bytes_per_step"]
    rng = np.random.default_rng(4)
    state0 = rng.integers(-127, 128, size=(2 * (2 if bi else 1), 5)).astype(np.int8)
    x = rng.integers(-127, 128, size=(20, 3)).astype(np.int8)
    logits = np.full((20, 4), 7, np.int32)

    def run(
        steps: int, buf: np.ndarray | None, nbytes: int, xx: np.ndarray | None = x
    ) -> tuple[int, np.ndarray]:
        state = state0.copy()
        return cm.run_raw(state, xx, steps, buf, nbytes, logits), state

    # steps == 0: EDGERNN_OK, nothing read or written, even with every pointer NULL.
    rc, state = run(0, None, 0, None)
    assert rc == 0 and np.array_equal(state, state0) and (logits == 7).all()
    # A buffer of exactly RUN_BUF_BYTES(T), and a larger one whose tail must stay untouched.
    for extra in (0, 37):
        buf = np.full(per_step * 20 + extra, 99, np.int8)
        rc, state = run(20, buf, buf.size)
        ref = int_forward(qm, x[None], np.array([20]), state0[:, None])
        assert rc == 0 and np.array_equal(state, ref.h_n[:, 0].numpy())
        assert np.array_equal(logits, ref.logits[0].numpy())
        assert (buf[per_step * 20 :] == 99).all()
    # One byte short, or a length whose RUN_BUF_BYTES(T) overflows size_t: EDGERNN_ERR_BUFFER.
    for steps, nbytes in ((20, per_step * 20 - 1), (2**64 - 1, per_step * 20), (2**63, per_step * 20)):
        buf = np.full(per_step * 20, 99, np.int8)
        logits[:] = 7
        rc, state = run(steps, buf, nbytes)
        assert rc == -1 and np.array_equal(state, state0) and (buf == 99).all() and (logits == 7).all()
    if bi:  # the buffer is required: NULL is EDGERNN_ERR_BUFFER
        rc, state = run(20, None, 0)
        assert rc == -1 and np.array_equal(state, state0)
    else:  # no buffer needed: any length runs (here the 20 steps there are)
        rc, state = run(20, None, 0)
        assert rc == 0 and np.array_equal(
            state, int_forward(qm, x[None], np.array([20]), state0[:, None]).h_n[:, 0].numpy()
        )
