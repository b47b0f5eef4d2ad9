"""Atomic file writes: a crash or Ctrl-C leaves either the old artifact or the new one, never half."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from edgernn.errors import InputError

TMP_SUFFIX = ".tmp"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; rename it over the target on success."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"cannot write {target}: {e.strerror or e}") from None
    # The name is chosen before the file exists, so the cleanup below knows it whenever a Ctrl-C
    # lands: with tempfile.mkstemp a KeyboardInterrupt raised inside it, after its open, left a
    # file no one had the name of (seen in tests/test_atomic.py under load).
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}{TMP_SUFFIX}"
    try:
        # O_EXCL: never an existing file; mode 0666 less the umask, what open() would give it.
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)  # the rename itself survives a power cut, not only the bytes
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):  # a full disk or an I/O error: one line for the user, not a traceback
            raise InputError(f"cannot write {target}: {e.strerror or e}") from None
        raise


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not every platform opens directories; the rename is atomic either way
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))
