"""The library API behind the CLI: train into a directory, quantize, export every artifact, verify.

An export directory holds: checkpoint.pt, model.int8.json (the QuantizedModel), model.onnx,
model.int8.onnx, model.step.int8.onnx, model.h, the raw-input integer graphs
model.raw.int8.onnx and model.step.raw.int8.onnx (docs/onnx.md), manifest.json (written last by
export: the sha256 of each of those files and of the checkpoint, see edgernn.manifest),
report.json, report.md.

Locking: writers take `exclusive(DIR)` (one at a time, fail fast); `verify` reads under
`shared(DIR)`, so it never reads a set an export is halfway through replacing.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edgernn import __version__
from edgernn.artifacts import TMP_SUFFIX, write_text
from edgernn.config import ModelConfig, Task, TrainConfig
from edgernn.contract.meta import ModelMeta
from edgernn.contract.model import QuantizedModel
from edgernn.contract.quantize import quantize_inputs, quantize_model
from edgernn.contract.reference import int_forward
from edgernn.data.bundled import load_dataset
from edgernn.data.dataset import Dataset, Split
from edgernn.data.user import load_user_data
from edgernn.data.user_split import class_list
from edgernn.errors import InputError, StaleExportWarning
from edgernn.manifest import MANIFEST, file_record, manifest_digest, write_manifest
from edgernn.metrics import task_metrics
from edgernn.train.auto import DEFAULT_BUDGET_MINUTES, auto_train, uses_cross_validation
from edgernn.train.checkpoint import (
    CHECKPOINT_NAME,
    Checkpoint,
    checkpoint_path,
    load_checkpoint,
    save_checkpoint,
)
from edgernn.train.loop import (
    ModelSpec,
    Preset,
    TrainResult,
    callers_random_state,
    dataset_meta,
    model_config,
    train,
)
from edgernn.train.model import EdgeRNN

QUANT_NAME = "model.int8.json"
FLOAT_ONNX = "model.onnx"
INT_ONNX = "model.int8.onnx"
STEP_ONNX = "model.step.int8.onnx"
HEADER = "model.h"
# model.onnx takes raw float32 features (normalization inside). The raw-input integer graphs
# (docs/onnx.md): normalization and the float -> int8 rule inside; a token model's take token ids.
RAW_INT_ONNX = "model.raw.int8.onnx"
RAW_STEP_ONNX = "model.step.raw.int8.onnx"
# What verify requires the manifest to list (an export from before the raw graphs still verifies:
# verify feeds its model.onnx what its edgernn.input property says; every file a manifest lists is
# checked whatever this says).
REQUIRED = (QUANT_NAME, FLOAT_ONNX, INT_ONNX, STEP_ONNX, HEADER)
# export_dir's write order (model.h last before the manifest, as before the raw graphs existed:
# only the prefix changes model.h, and the moment between it and the manifest stays short)
EXPORTED = (QUANT_NAME, FLOAT_ONNX, INT_ONNX, STEP_ONNX, RAW_INT_ONNX, RAW_STEP_ONNX, HEADER)
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
LOCK_NAME = ".edgernn.lock"


@contextmanager
def exclusive(out_dir: Path, wait: bool = False) -> Iterator[None]:
    """One writer per export directory: a second concurrent export fails fast instead of interleaving.

    With `wait`, block until the holders (writers, or readers under `shared`) are done instead:
    for a short write such as verify's report.json after a long read."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(out_dir / LOCK_NAME, os.O_CREAT | os.O_RDWR, 0o644)
    except OSError as e:
        raise InputError(f"cannot write to {out_dir}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise InputError(
                f"another edgernn process is writing to {out_dir}; try again when it ends"
            ) from None
        # Holding the lock, any temporary file left here belongs to a writer that was killed.
        for stale in out_dir.glob(f".*{TMP_SUFFIX}"):
            stale.unlink(missing_ok=True)
        # A lock file a writer left is writable where its directory may no longer be: find out
        # now, not after the training or export whose files could not then be written.
        probe = out_dir / f".write-probe{TMP_SUFFIX}"
        try:
            os.close(os.open(probe, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644))
            probe.unlink()
        except OSError as e:
            raise InputError(f"cannot write to {out_dir}: {e.strerror or e}") from None
        yield
    finally:
        os.close(fd)


@contextmanager
def shared(out_dir: Path) -> Iterator[None]:
    """A reader's lock: any number of readers at once, none while a writer holds `exclusive`.

    Unlike `exclusive` it creates no directory and removes no temporary file (a writer's job)."""
    lock = out_dir / LOCK_NAME
    fd: int | None = None
    try:
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o644)
    except PermissionError:
        # A directory the reader may not write to: lock the lock file if a writer left one; with
        # none, no writer has ever locked here (and none can create one): nothing to exclude.
        with suppress(FileNotFoundError):
            fd = _open_readonly(lock, out_dir)
    except OSError as e:
        raise InputError(f"cannot read {out_dir}: {e.strerror or e}") from None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                raise InputError(
                    f"another edgernn process is writing to {out_dir}; try again when it ends"
                ) from None
        yield
    finally:
        if fd is not None:
            os.close(fd)


def _open_readonly(lock: Path, out_dir: Path) -> int:
    try:
        return os.open(lock, os.O_RDONLY)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise InputError(f"cannot read {out_dir}: {e.strerror or e}") from None


def _data_file(ref: dict[str, Any], near: Path | None) -> Path:
    """The recorded data file: where the checkpoint's directory says it is (`from_checkpoint`),
    where it was given (a relative path: from the working directory), or its namesake beside the
    checkpoint; it must hold the bytes the checkpoint was trained on (sha256)."""
    given = Path(ref["path"])
    beside = near / given.name if near is not None else None
    places = [given]
    if near is not None and "from_checkpoint" in ref:
        # Resolved first: recorded_ref measured the way from the resolved directory (symlinks).
        places.insert(0, Path(os.path.normpath(near.resolve() / ref["from_checkpoint"])))
    for p in dict.fromkeys([*places, *([beside] if beside is not None else [])]):
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise InputError(f"cannot read the training data file {p}: {e.strerror or e}") from None
        if hashlib.sha256(data).hexdigest() != ref.get("sha256"):
            raise InputError(f"the training data file {p} changed since the checkpoint was trained")
        return p
    where = ", nor ".join(str(p) for p in dict.fromkeys(places))
    copy = f", or copy it to {beside}" if beside is not None else ""
    raise InputError(
        f"the training data file {given.name} recorded in the checkpoint is gone: not at {where}; "
        f"put it back{copy}"
    )


def checkpoint_data(ckpt: Checkpoint, out_dir: str | os.PathLike[str]) -> Dataset:
    """The data set a checkpoint in out_dir was trained on (load_data, looking beside it too)."""
    return load_data(ckpt.meta.get("data", {}), near=Path(out_dir))


def data_ref(dataset: str | None, data_file: str | os.PathLike[str] | None, seed: int) -> dict[str, Any]:
    if data_file is not None:
        p = Path(data_file)
        try:
            digest = hashlib.sha256(p.read_bytes()).hexdigest()
        except OSError as e:
            raise InputError(f"cannot read {data_file}: {e.strerror or e}") from None
        return {"kind": "file", "path": str(p), "sha256": digest, "seed": seed}
    return {"kind": "bundled", "name": dataset, "seed": seed}


def recorded_ref(ref: dict[str, Any], out_dir: Path) -> dict[str, Any]:
    """The data reference as a checkpoint in out_dir records it: a file's path as it was given, and
    relative to out_dir (`from_checkpoint`), never made absolute, so the same data and command give
    the same checkpoint bytes in any clone of a project (an absolute path made every artifact, which
    embeds the checkpoint's sha256, depend on where the project sat). The first finds the file when
    the export directory moves, the second when the whole project does."""
    if ref.get("kind") != "file":
        return ref
    rel = os.path.relpath(Path(ref["path"]).resolve(), out_dir.resolve())
    return {**ref, "path": Path(ref["path"]).as_posix(), "from_checkpoint": Path(rel).as_posix()}


def _check_ref(ref: Any) -> None:
    """A checkpoint's data reference is its own JSON: refuse a malformed one (exit 2) before
    anything reads a field of it as the type it should be."""
    if not isinstance(ref, dict):
        raise InputError(f"the checkpoint's data reference must be an object, got {type(ref).__name__}")
    seed = ref.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"the checkpoint's data seed must be an integer, got {seed!r}")
    if not isinstance(ref.get("normalize", True), bool):
        raise InputError(f"the checkpoint's data normalize must be true or false, got {ref['normalize']!r}")
    kind = ref.get("kind")
    fields = ("path", "sha256") if kind == "file" else ("name",) if kind == "bundled" else None
    if fields is None:
        raise InputError(f"the checkpoint's data kind must be 'file' or 'bundled', got {kind!r}")
    for f in fields:
        if not isinstance(ref.get(f), str):
            raise InputError(f"the checkpoint's data {f} must be a string, got {ref.get(f)!r}")
    if not isinstance(ref.get("from_checkpoint", ""), str):
        raise InputError(
            f"the checkpoint's data from_checkpoint must be a string, got {ref['from_checkpoint']!r}"
        )


def load_data(ref: dict[str, Any], near: Path | None = None) -> Dataset:
    """Rebuild the exact data set (and split and normalization) a checkpoint was trained on. A data
    file is found where it was (`near`, the checkpoint's directory, finds it wherever the project
    moved; without it, a relative path is read from the working directory), or beside the
    checkpoint under its own name, so an export directory passed on with its data still verifies."""
    _check_ref(ref)
    seed = ref.get("seed", 0)
    if ref.get("kind") == "file":
        p = _data_file(ref, near)
        return load_user_data(p, seed=seed, normalize=ref.get("normalize", True))
    ds = load_dataset(str(ref.get("name")), seed=seed)
    if ref.get("normalize", True) is False and ds.input_size:
        # Bundled feature sets come normalised; a model trained elsewhere reads its own values.
        raise InputError(
            f"{ds.name} holds normalised features; give the data the model was trained on with --data"
        )
    return ds


def _data_and_preset(
    dataset: str | None,
    data_file: str | os.PathLike[str] | None,
    tc: TrainConfig | None,
    spec: ModelSpec | None,
) -> tuple[dict[str, Any], Dataset, Preset]:
    """The data reference, the data, and the preset the data set trains with by default; `spec`,
    the caller's, is checked against the data."""
    from edgernn.train.loop import DEFAULT_PRESET, PRESETS

    if (dataset is None) == (data_file is None):
        raise InputError(
            "give dataset (a bundled set: `edgernn datasets`) or data_file (your .npz or .csv), "
            + ("not both" if dataset is not None else "not neither")
        )
    ref = data_ref(dataset, data_file, (tc or TrainConfig()).seed)
    ds = load_data(ref)
    # A data file trains with the long-sequence recipe whatever its name: a file called names.npz
    # is the user's data, not the bundled names set (the CLI chooses the same way).
    preset = DEFAULT_PRESET if data_file is not None else PRESETS.get(ds.name, DEFAULT_PRESET)
    _check_spec(ds, spec, preset)
    return ref, ds, preset


def _check_spec(ds: Dataset, spec: ModelSpec | None, preset: Preset) -> None:
    """What the caller asked for and the data cannot have: refused, not dropped (the CLI refuses
    --input-clip on token data the same way). The preset's own clip (the long-sequence recipe's,
    which the CLI passes on for every data file) is the preset's, not the caller's: token data
    trains without it, as before."""
    if spec is not None and ds.vocab and spec.input_clip not in (0.0, preset.model.input_clip):
        raise InputError(f"input_clip clamps features; {ds.name} is token data, which has none to clamp")


def require_trained_classes(ds: Dataset) -> None:
    """Many-to-one, on a split the user marked: training fits the train split only (val chooses
    the epoch), so a class that only val or test holds is one the model never learns, and the
    user's marks can say otherwise. Checked for training, not on load: an imported model's
    calibration data trains nothing. Not for a split edgernn drew (a class of one or two sequences
    may land outside train by the seed; it trained so before), nor for `--auto`'s cross-validated
    search, which trains on train + val (a test-only class is refused on load)."""
    if ds.task is not Task.MANY_TO_ONE or not ds.split_marked:
        return
    trained = set(ds.train.y.tolist())
    unseen = sorted((set(ds.val.y.tolist()) | set(ds.test.y.tolist())) - trained)
    if unseen:
        held = (("val", ds.val), ("test", ds.test))
        where = " and ".join(n for n, sp in held if np.isin(sp.y, unseen).any())
        raise InputError(
            f"{ds.name}: the {where} split holds class {class_list(unseen, ds.class_names)} but train "
            "has none; the model cannot learn a class it never trains on: mark some of its sequences "
            "train (at least 2 when val is carved from train)"
        )


def train_to_dir(
    out_dir: str | os.PathLike[str],
    dataset: str | None = None,
    data_file: str | os.PathLike[str] | None = None,
    spec: ModelSpec | None = None,
    tc: TrainConfig | None = None,
    progress: bool = True,
) -> Checkpoint:
    ref, ds, preset = _data_and_preset(dataset, data_file, tc, spec)
    require_trained_classes(ds)
    spec = spec or preset.model
    tc = tc or preset.train
    cfg = model_config(ds, spec)
    out = Path(out_dir)
    with exclusive(out), callers_random_state():
        _warn_if_exported(out)
        result = train(ds, cfg, tc, progress=progress)
        _save_trained(out, ds, ref, tc, result)
    return load_checkpoint(out)


def auto_train_to_dir(
    out_dir: str | os.PathLike[str],
    dataset: str | None = None,
    data_file: str | os.PathLike[str] | None = None,
    spec: ModelSpec | None = None,
    tc: TrainConfig | None = None,
    budget_minutes: float = DEFAULT_BUDGET_MINUTES,
    max_flash: int | None = None,
    log: Callable[[str], None] = lambda _: None,
) -> Checkpoint:
    """`train_to_dir` with the search of edgernn.train.auto choosing hidden size, init and lr;
    the checkpoint records every candidate under meta["auto"]."""
    ref, ds, preset = _data_and_preset(dataset, data_file, tc, spec)
    if not uses_cross_validation(ds):
        require_trained_classes(ds)
    out = Path(out_dir)
    with exclusive(out), callers_random_state():
        _warn_if_exported(out)
        found = auto_train(
            ds,
            spec or preset.model,
            tc or preset.train,
            flash_bytes,
            budget_minutes,
            max_flash,
            log,
            int8_val_accuracy,
        )
        _save_trained(out, ds, ref, found.tc, found.result, {"auto": found.meta()})
    return load_checkpoint(out)


def flash_bytes(ds: Dataset, cfg: ModelConfig) -> int:
    """Flash model.h needs for a model of this shape (weights + the 1,024 B tanh LUT), counted as
    the C backend counts it: an untrained model is quantized, which sizes every table exactly."""
    from edgernn.backends.c.codegen import model_sizes

    n = min(len(ds.train), 4)
    qm = quantize_model(EdgeRNN(cfg), ds.train.x[:n], ds.train.lengths[:n], ds.norm_mean, ds.norm_std)
    sizes = model_sizes(qm)
    return sizes["weight"] + sizes["lut"]


def int8_val_accuracy(model: EdgeRNN, ds: Dataset) -> float:
    """Accuracy on ds.val of the model's int8 version, calibrated on ds.train as export calibrates."""
    qm = quantize_model(model, ds.train.x, ds.train.lengths, ds.norm_mean, ds.norm_std)
    return float(int8_metrics(qm, ds.val)[0]["test_accuracy"])


def _warn_if_exported(out: Path) -> None:
    """A new checkpoint beside an export of the old one leaves model.h and the ONNX files stale
    until the next `edgernn export`; verify, report and predict refuse them then, but a model.h
    copied into firmware in between would be the old model."""
    if (out / MANIFEST).exists():
        warnings.warn(
            f"{out} holds an export of its current checkpoint (model.h, ONNX); once this training "
            f"replaces the checkpoint they are stale until `edgernn export {out}` is run again",
            StaleExportWarning,
            stacklevel=3,
        )


def _save_trained(
    out: Path,
    ds: Dataset,
    ref: dict[str, Any],
    tc: TrainConfig,
    result: TrainResult,
    extra: dict[str, Any] | None = None,
) -> None:
    meta = {
        **dataset_meta(ds, recorded_ref(ref, out)),
        "train": tc.to_dict(),
        "metrics": {"float": result.metrics["test"], "val": result.metrics["val"]},
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "edgernn_version": __version__,
        **(extra or {}),
    }
    save_checkpoint(out / CHECKPOINT_NAME, result.model, meta)


def int8_inputs(qm: QuantizedModel, split: Split) -> np.ndarray:
    return split.x.astype(np.int64) if qm.config.tokens else quantize_inputs(split.x, qm.sample_scale)


def int8_metrics(qm: QuantizedModel, split: Split) -> tuple[dict[str, float], np.ndarray]:
    """Accuracy of the integer reference, with the integer logits (dequantized for nats)."""
    r = int_forward(qm, int8_inputs(qm, split), split.lengths)
    logits = r.logits.numpy()
    return task_metrics(logits * qm.head_scale, split.y, qm.config.task, qm.config.num_classes), logits


def token_ids(vocab: list[str]) -> dict[str, int]:
    ids = {}
    for key, tok in (("start_token", "<s>"), ("end_token", "</s>")):
        if tok in vocab:
            ids[key] = vocab.index(tok)
    return ids


def quantize_checkpoint(ckpt: Checkpoint, ds: Dataset) -> QuantizedModel:
    """Calibrate on the training split; record provenance (and int8 accuracy) in the model's meta."""
    meta = ckpt.meta
    qm = quantize_model(ckpt.model, ds.train.x, ds.train.lengths, ds.norm_mean, ds.norm_std)
    int8, _ = int8_metrics(qm, ds.test)
    ids = token_ids(meta.get("vocab", []))
    provenance = ModelMeta(
        dataset=meta.get("dataset"),
        task=qm.config.task,
        source=meta.get("source"),
        licence=meta.get("licence"),
        float_accuracy=meta.get("metrics", {}).get("float", {}).get("test_accuracy"),
        int8_accuracy=int8["test_accuracy"],
        source_checkpoint_sha256=ckpt.sha256,
        edgernn_version=__version__,
        vocab=meta.get("vocab", []),
        class_names=meta.get("class_names", []),
        feature_names=meta.get("feature_names"),
        start_token=ids.get("start_token"),
        end_token=ids.get("end_token"),
    )
    return replace(qm, meta=provenance)


def load_quantized(out_dir: str | os.PathLike[str]) -> QuantizedModel:
    p = Path(out_dir) / QUANT_NAME
    if not p.exists():
        raise InputError(f"{out_dir} has no {QUANT_NAME}; run `edgernn export {out_dir}` first")
    try:
        return QuantizedModel.from_json(p.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {p}: {e}") from None


@dataclass(frozen=True)
class Exported:
    out_dir: Path
    qm: QuantizedModel
    files: tuple[Path, ...]
    removed: tuple[Path, ...] = ()  # what described the export this one replaced


def default_prefix(name: str) -> str:
    """A valid C prefix derived from a data set or file name, whatever that name is: --prefix is
    optional, so a file called `int.npz`, `edgernn_runs.csv` or `my__data.npz` must still export."""
    from edgernn.backends.c.codegen import MAX_PREFIX_LEN, validate_prefix

    # ASCII only: str.isalnum() accepts letters no C compiler takes in an identifier.
    words = "".join(c if c.isascii() and c.isalnum() else " " for c in name.lower()).split()
    cleaned = "_".join(words) or "model"  # one '_' between words: '__' is reserved in C++
    if cleaned[0].isdigit() or cleaned.startswith("edgernn"):
        cleaned = "m_" + cleaned
    cleaned = cleaned[:MAX_PREFIX_LEN].rstrip("_")
    try:
        return validate_prefix(cleaned)
    except InputError:  # what is left to refuse is a C or C++ keyword ("int", "class", ...)
        return validate_prefix(cleaned[: MAX_PREFIX_LEN - 6] + "_model")


def quantize_dir(out_dir: str | os.PathLike[str]) -> QuantizedModel:
    checkpoint_path(out_dir)  # as export_dir: refuse a missing directory, then lock before working
    with exclusive(Path(out_dir)):
        ckpt = load_checkpoint(out_dir)
        ds = checkpoint_data(ckpt, out_dir)
        qm = quantize_checkpoint(ckpt, ds)
        write_text(Path(out_dir) / QUANT_NAME, qm.to_json())
    return qm


def export_dir(out_dir: str | os.PathLike[str], prefix: str | None = None) -> Exported:
    """Quantize the checkpoint in out_dir and write every artifact, each atomically, then
    manifest.json (atomically, last): a set without a matching manifest is one verify refuses."""
    from edgernn.backends.c.codegen import validate_prefix, write_header
    from edgernn.backends.onnx import build_sequence_model, build_step_model, save_model
    from edgernn.backends.onnx.float_graph import export_float_onnx
    from edgernn.backends.onnx.raw_input import build_raw_sequence_model, build_raw_step_model

    out = Path(out_dir)
    prefix = None if prefix is None else validate_prefix(prefix)
    checkpoint_path(out)  # a missing directory is an input error: exclusive() must not create it
    # The lock is taken before any work, so a second export into the same directory fails within
    # moments instead of after quantizing, and no export quantizes a checkpoint mid-replacement.
    with exclusive(out):
        # What `edgernn mcu` and `bench` measured, if anything: an export that changes it makes
        # their figures another model's (edgernn.report.store.drop_measurements).
        measured = file_record(out / HEADER) if (out / HEADER).exists() else None
        described = manifest_digest(out)  # what report.md, if any, describes
        ckpt = load_checkpoint(out)
        prefix = prefix or default_prefix(str(ckpt.meta.get("dataset", "model")))
        ds = checkpoint_data(ckpt, out)
        qm = quantize_checkpoint(ckpt, ds)
        qm = replace(qm, meta=replace(qm.meta, c_prefix=prefix))
        write_text(out / QUANT_NAME, qm.to_json())
        export_float_onnx(ckpt.model, out / FLOAT_ONNX, qm)
        save_model(build_sequence_model(qm), out / INT_ONNX)
        save_model(build_step_model(qm), out / STEP_ONNX)
        save_model(build_raw_sequence_model(qm), out / RAW_INT_ONNX)
        save_model(build_raw_step_model(qm), out / RAW_STEP_ONNX)
        write_header(qm, out / HEADER, prefix)
        write_manifest(out, EXPORTED, ckpt.sha256)
        from edgernn.report.store import drop_measurements, drop_report_page

        removed: list[Path] = []
        if measured is not None and file_record(out / HEADER) != measured:
            removed += drop_measurements(out)
        if described is not None and manifest_digest(out) != described:
            removed += drop_report_page(out)
    files = tuple(out / n for n in (*EXPORTED, MANIFEST))
    return Exported(out_dir=out, qm=qm, files=files, removed=tuple(removed))
