"""Checkpoints: a state dict of tensors plus JSON metadata, loadable with torch.load(weights_only=True).

weights_only=True means a checkpoint can never run code: a file carrying pickled objects is refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
import pickle
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from edgernn.artifacts import write_bytes
from edgernn.config import ModelConfig
from edgernn.errors import InputError, oneline
from edgernn.train.model import EdgeRNN

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT = "edgernn-checkpoint-v1"
# What a file torch.load can read starts with: a zip archive (torch.save's format since 1.6) or a
# pickle's protocol opcode (the legacy format, and plain pickles, which a weights-only load refuses).
ZIP_MAGIC = b"PK\x03\x04"
PICKLE_MAGIC = b"\x80"


@dataclass(frozen=True)
class Checkpoint:
    model: EdgeRNN
    meta: dict[str, Any]  # format, config, train config, data set, normalization, vocab, metrics
    sha256: str


def save_checkpoint(path: str | os.PathLike[str], model: EdgeRNN, meta: dict[str, Any]) -> None:
    payload = {
        "format": FORMAT,
        "meta": json.dumps({**meta, "config": model.cfg.to_dict()}, sort_keys=True),
        "state_dict": {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()},
    }
    buf = io.BytesIO()
    torch.save(payload, buf)
    write_bytes(path, buf.getvalue())


def checkpoint_path(path: str | os.PathLike[str]) -> Path:
    """Accept an export directory or the checkpoint file itself."""
    p = Path(path)
    try:
        # Path.exists() raises (not False) on EACCES, e.g. a directory without search permission.
        if p.is_dir():
            p = p / CHECKPOINT_NAME
            if not p.exists():
                raise InputError(
                    f"{path} has no {CHECKPOINT_NAME}; train a model into it first "
                    f"(edgernn train --out {path})"
                )
        elif not p.exists():
            raise InputError(f"{path} does not exist")
    except OSError as e:
        raise InputError(f"cannot access {p}: {e.strerror or e}") from None
    return p


def _damaged_member(data: bytes) -> str | None:
    """The first member of a zip checkpoint whose bytes no longer match their CRC-32, if any.
    torch.load does not check them: a flipped bit in a weight loads as a different weight."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            return z.testzip()
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,  # a compression method zipfile lacks
        zlib.error,
        lzma.LZMAError,
    ):
        return None  # not a zip that can be checked: torch.load refuses it below


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    p = checkpoint_path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    damaged = _damaged_member(data)
    if damaged:
        raise InputError(
            f"{p} is not a readable checkpoint (truncated or corrupt): {damaged} fails its CRC-32 check"
        )
    if not data.startswith((ZIP_MAGIC, PICKLE_MAGIC)):
        raise InputError(f"{p} is not a PyTorch checkpoint file (edgernn train writes a zip archive)")
    try:
        with warnings.catch_warnings():
            # torch warns on stderr about a plain pickle before refusing it: the refusal says it all.
            warnings.simplefilter("ignore")
            payload = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        # torch's own text suggests weights_only=False, which would run whatever the file holds.
        named = re.search(r"[Uu]nsupported (?:global: )?GLOBAL (\S+)", str(e))
        what = f" (it names {named.group(1)})" if named else ""
        raise InputError(
            f"{p} is refused: it holds objects other than tensors, which edgernn never unpickles{what}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as e:
        raise InputError(
            f"{p} is not a readable checkpoint (truncated or corrupt): {type(e).__name__}"
        ) from None
    tag = payload.get("format") if isinstance(payload, dict) else None
    if isinstance(tag, str) and tag.startswith("edgernn-checkpoint-") and tag != FORMAT:
        raise InputError(f"{p} is a checkpoint of another edgernn version ({tag}); this one reads {FORMAT}")
    if tag != FORMAT:
        found = "format tag missing" if tag is None else f"format tag {str(tag)[:40]!r}, not {FORMAT}"
        raise InputError(f"{p} is not an edgernn checkpoint ({found})")
    try:
        meta = json.loads(payload["meta"])
        cfg = ModelConfig.from_dict(meta["config"])
        state = payload["state_dict"]
        model = EdgeRNN.to_be_loaded(cfg)
        model.load_state_dict(state)
    except InputError as e:
        raise InputError(f"{p}: {e}") from None
    except (KeyError, TypeError, ValueError, RuntimeError, json.JSONDecodeError) as e:
        # load_state_dict puts its first line alone ("Error(s) in loading ...:"), the detail after.
        raise InputError(f"{p} is malformed: {oneline(e)[:300]}") from None
    for name, t in model.state_dict().items():
        if not torch.isfinite(t).all():
            raise InputError(f"{p}: parameter {name} contains NaN or Inf")
    model.eval()
    return Checkpoint(model=model, meta=meta, sha256=hashlib.sha256(data).hexdigest())
