"""A killed export or training run leaves every artifact either old or new, never half-written."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgernn.pipeline import HEADER, export_dir
from edgernn.train.checkpoint import load_checkpoint

ARTIFACTS = ("model.int8.json", "model.onnx", "model.int8.onnx", "model.step.int8.onnx", HEADER)


def _cli(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "edgernn", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def _snapshot(d: Path) -> dict[str, bytes]:
    return {n: (d / n).read_bytes() for n in ARTIFACTS}


@pytest.fixture(scope="module")
def old_and_new(jv_export, tmp_path_factory):
    """The same checkpoint exported with two prefixes: every artifact must end as one or the other."""
    d = tmp_path_factory.mktemp("atomic")
    (d / "checkpoint.pt").write_bytes((jv_export / "checkpoint.pt").read_bytes())
    export_dir(d, prefix="fresh")
    new = _snapshot(d)
    export_dir(d, prefix="stale")
    return d, _snapshot(d), new


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
@pytest.mark.parametrize("delay", [0.5, 1.5, 3.0])
def test_killed_export_leaves_old_or_new_artifacts(old_and_new, sig, delay):
    d, old, new = old_and_new
    export_dir(d, prefix="stale")
    p = _cli("export", str(d), "--prefix", "fresh")
    time.sleep(delay)
    p.send_signal(sig)
    _, err = p.communicate(timeout=60)
    if p.returncode == 0:
        pytest.skip(f"export finished within {delay} s; nothing to interrupt at this delay")
    for name in ARTIFACTS:
        got = (d / name).read_bytes()
        assert got in (old[name], new[name]), f"{name} is neither the old nor the new artifact"
    if sig == signal.SIGINT:
        assert b"Traceback" not in err
        # 130 from the CLI's handler; now and then CPython ends the process by re-raising SIGINT
        # after that handler ran (seen at ~1 in 10 delays), which is still a clean interrupt.
        assert p.returncode in (130, -signal.SIGINT)
        if p.returncode == 130:
            assert not list(d.glob(".*.tmp")), "an interrupted export cleans up its temporary files"
    # The next run (holding the directory lock) removes a killed writer's temporary files.
    export_dir(d, prefix="stale")
    assert not list(d.glob(".*.tmp"))
    assert _snapshot(d) == old


@pytest.mark.slow
def test_killed_training_keeps_the_last_good_checkpoint(jv_export, tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes((jv_export / "checkpoint.pt").read_bytes())
    before = (tmp_path / "checkpoint.pt").read_bytes()
    p = _cli("train", "--dataset", "japanese_vowels", "--seed", "7", "--out", str(tmp_path), "--quiet")
    time.sleep(3.0)
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert load_checkpoint(tmp_path).model is not None


def test_second_concurrent_writer_fails_fast(tmp_path):
    import fcntl

    from edgernn.errors import InputError
    from edgernn.pipeline import exclusive

    fd = os.open(tmp_path / ".edgernn.lock", os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        with pytest.raises(InputError, match="another edgernn process"), exclusive(tmp_path):
            pass
    finally:
        os.close(fd)
