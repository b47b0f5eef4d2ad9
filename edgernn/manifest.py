"""manifest.json: the record of one completed `edgernn export`, written last and checked by `verify`.

Each artifact is replaced atomically, but the set is not: an export killed midway leaves some files
new and some old. `export_dir` therefore writes DIR/manifest.json after every artifact, atomically
and last; `verify_dir` refuses (CheckFailed, exit 1) a directory whose files do not match it -- a
mixed set from a killed export, a hand-edited file, a checkpoint retrained since the export -- or
that has no manifest at all.

Schema "edgernn-manifest-v1" (JSON, sorted keys, two-space indent, trailing newline)::

    {
      "artifacts": {
        "model.h":          {"bytes": 75931, "sha256": "<64 hex digits>"},
        "model.int8.json":  {"bytes": 8578,  "sha256": "..."},
        ... one entry per file export wrote
      },
      "checkpoint": {"file": "checkpoint.pt", "sha256": "<the source checkpoint's sha256>"},
      "edgernn_version": "0.1.0",
      "schema": "edgernn-manifest-v1"
    }

No timestamps and no absolute paths: the same checkpoint and the same command give a
byte-identical manifest (the artifacts themselves are deterministic).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypedDict

from edgernn import __version__
from edgernn.artifacts import write_text
from edgernn.errors import CheckFailed, InputError

MANIFEST = "manifest.json"
MANIFEST_SCHEMA = "edgernn-manifest-v1"
CHECKPOINT_FILE = "checkpoint.pt"
_SHA256 = re.compile(r"[0-9a-f]{64}")


class FileRecord(TypedDict):
    sha256: str
    bytes: int


class CheckpointRecord(TypedDict):
    file: str
    sha256: str


class Manifest(TypedDict):
    schema: str
    edgernn_version: str
    checkpoint: CheckpointRecord
    artifacts: dict[str, FileRecord]


def file_record(path: str | os.PathLike[str]) -> FileRecord:
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}


def build_manifest(out_dir: str | os.PathLike[str], names: Iterable[str], checkpoint_sha256: str) -> Manifest:
    out = Path(out_dir)
    return {
        "schema": MANIFEST_SCHEMA,
        "edgernn_version": __version__,
        "checkpoint": {"file": CHECKPOINT_FILE, "sha256": checkpoint_sha256},
        "artifacts": {name: file_record(out / name) for name in names},
    }


def render(manifest: Manifest) -> str:
    return json.dumps(manifest, indent=2, sort_keys=True) + "\n"


def write_manifest(out_dir: str | os.PathLike[str], names: Iterable[str], checkpoint_sha256: str) -> Path:
    """Record the artifacts as they are on disk now (the caller holds the directory lock)."""
    path = Path(out_dir) / MANIFEST
    write_text(path, render(build_manifest(out_dir, names, checkpoint_sha256)))
    return path


def manifest_digest(out_dir: str | os.PathLike[str]) -> str | None:
    """sha256 of DIR/manifest.json's bytes, or None without one: names one export exactly."""
    try:
        return hashlib.sha256((Path(out_dir) / MANIFEST).read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise InputError(f"cannot read {Path(out_dir) / MANIFEST}: {e.strerror or e}") from None


def _problem(doc: Any) -> str | None:
    """What is wrong with a parsed manifest, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if doc.get("schema") != MANIFEST_SCHEMA:
        return f"schema is {doc.get('schema')!r}, expected {MANIFEST_SCHEMA!r}"
    if set(doc) != set(Manifest.__required_keys__):
        return f"keys are {sorted(doc)}, expected {sorted(Manifest.__required_keys__)}"
    if not isinstance(doc["edgernn_version"], str):
        return "edgernn_version is not a string"
    ck = doc["checkpoint"]
    if not (
        isinstance(ck, dict)
        and set(ck) == {"file", "sha256"}
        and ck["file"] == CHECKPOINT_FILE
        and isinstance(ck["sha256"], str)
        and _SHA256.fullmatch(ck["sha256"])
    ):
        return "checkpoint must be {file: checkpoint.pt, sha256: 64 hex digits}"
    arts = doc["artifacts"]
    if not isinstance(arts, dict) or not arts:
        return "artifacts must be a non-empty object"
    for name, rec in arts.items():
        if not name or "/" in name or "\\" in name or name in (".", "..") or name.startswith("."):
            return f"artifact name {name!r} is not a plain file name"
        if not (
            isinstance(rec, dict)
            and set(rec) == {"sha256", "bytes"}
            and isinstance(rec["sha256"], str)
            and _SHA256.fullmatch(rec["sha256"])
            and isinstance(rec["bytes"], int)
            and not isinstance(rec["bytes"], bool)
            and rec["bytes"] >= 0
        ):
            return f"artifacts.{name} must be {{sha256: 64 hex digits, bytes: an integer >= 0}}"
    return None


def read_manifest(out_dir: str | os.PathLike[str]) -> tuple[Manifest, str]:
    """The parsed manifest and the sha256 of its bytes; InputError if missing, CheckFailed if malformed."""
    out = Path(out_dir)
    p = out / MANIFEST
    try:
        data = p.read_bytes()
    except FileNotFoundError:  # not an export (exit 2, as predict says it); a mismatch is a failed check
        raise InputError(
            f"{out} has no {MANIFEST}, so no completed export vouches for its artifacts; "
            f"run `edgernn export {out}` first"
        ) from None
    except OSError as e:
        raise InputError(f"cannot read {p}: {e.strerror or e}") from None
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckFailed(f"{p} is corrupt (not JSON: {e}); run `edgernn export {out}` again") from None
    problem = _problem(doc)
    if problem is not None:
        raise CheckFailed(f"{p} is corrupt ({problem}); run `edgernn export {out}` again")
    return doc, hashlib.sha256(data).hexdigest()


def check_manifest(
    out_dir: str | os.PathLike[str], required: Iterable[str], checkpoint_sha256: str | None = None
) -> str:
    """Refuse (CheckFailed) unless every file the manifest lists, and every `required` one, is on
    disk with the recorded sha256 and size, and (if given) the checkpoint is the one exported.
    Returns the manifest's own sha256 (see `manifest_digest`)."""
    out = Path(out_dir)
    manifest, digest = read_manifest(out)
    arts = manifest["artifacts"]
    unlisted = [n for n in required if n not in arts]
    if unlisted:
        raise CheckFailed(
            f"{out / MANIFEST} does not list {', '.join(unlisted)}; run `edgernn export {out}` again"
        )
    missing = [n for n in sorted(arts) if not (out / n).is_file()]
    if missing:
        raise CheckFailed(
            f"{', '.join(str(out / n) for n in missing)} {'is' if len(missing) == 1 else 'are'} missing "
            f"but {MANIFEST} lists {'it' if len(missing) == 1 else 'them'}; run `edgernn export {out}` again"
        )
    differ = [n for n in sorted(arts) if file_record(out / n) != arts[n]]
    if differ:
        one = len(differ) == 1
        raise CheckFailed(
            f"{', '.join(str(out / n) for n in differ)} {'does' if one else 'do'} not match {MANIFEST} "
            f"(changed after the export: edited by hand, or left by an interrupted export); "
            f"run `edgernn export {out}` again"
        )
    if checkpoint_sha256 is not None and checkpoint_sha256 != manifest["checkpoint"]["sha256"]:
        raise CheckFailed(
            f"{out / CHECKPOINT_FILE} is not the checkpoint these artifacts were exported from "
            f"(retrained since?); run `edgernn export {out}` again"
        )
    return digest


def checkpoint_sha256(out_dir: str | os.PathLike[str]) -> str | None:
    """The sha256 of DIR/checkpoint.pt's bytes, the digest the manifest records, or None where the
    directory holds no checkpoint (an export passed on without it)."""
    path = Path(out_dir) / CHECKPOINT_FILE
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None
