"""Firmware packages of an export: `edgernn export DIR --package arduino|platformio|cmake|zephyr|esp-idf`.

Each ecosystem's module builds its package (its own layout and manifest, model.h as <name>.h, one
implementation unit, one example that runs the model on the data set's first test sequence and
prints the class) and registers it, like edgernn.targets; a new ecosystem is a new module here plus
one import line below. `write_packages` writes them under DIR/packages/<ecosystem>/<name>/.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

# One line per ecosystem: importing its module registers its package.
from edgernn.packages import (
    arduino,  # noqa: F401
    cmake,  # noqa: F401
    esp_idf,  # noqa: F401
    platformio,  # noqa: F401
    zephyr,  # noqa: F401
)
from edgernn.packages.base import MAX_DEMO_STEPS, PACKAGES_DIR, PackagedModel, sha256, write_tree
from edgernn.packages.registry import PACKAGES, get, register

__all__ = ["PACKAGES", "PACKAGES_DIR", "get", "packaged_model", "register", "resolve", "write_packages"]


def resolve(names: Iterable[str]) -> tuple[str, ...]:
    """--package values in registry order, `all` meaning every one; unknown names are refused."""
    chosen: set[str] = set()
    for n in names:
        if n == "all":
            chosen.update(PACKAGES)
        else:
            chosen.add(get(n).name)
    return tuple(n for n in PACKAGES if n in chosen)


def packaged_model(out_dir: str | os.PathLike[str]) -> PackagedModel:
    """Read an export (model.h, model.int8.json, the checkpoint's data set) into a PackagedModel."""
    from edgernn.contract.reference import int_forward
    from edgernn.errors import InputError
    from edgernn.frame import steps_numpy
    from edgernn.pipeline import HEADER, checkpoint_data, default_prefix, int8_inputs, load_quantized
    from edgernn.train.checkpoint import load_checkpoint

    out = Path(out_dir)
    qm = load_quantized(out)
    try:
        header = (out / HEADER).read_bytes()
    except FileNotFoundError:
        raise InputError(f"{out} has no {HEADER}; run `edgernn export {out}` first") from None
    ckpt = load_checkpoint(out)
    ds = checkpoint_data(ckpt, out)
    meta = qm.meta
    name = meta.c_prefix or default_prefix(str(meta.dataset or "model"))
    cfg = qm.config
    steps = min(int(ds.test.lengths[0]), MAX_DEMO_STEPS * cfg.frame)
    seq = int8_inputs(qm, ds.test)[0, :steps]
    logits = int_forward(qm, seq[None], np.asarray([steps], dtype=np.int64)).logits.numpy()
    last = logits[0, steps - 1] if logits.ndim == 3 else logits[0]
    run_x, run_steps = steps_numpy(cfg, seq[None], np.asarray([steps], dtype=np.int64))
    return PackagedModel(
        name=name,
        header=header.decode("utf-8"),
        header_sha256=sha256(header),
        checkpoint_sha256=ckpt.sha256,
        dataset=str(meta.dataset or name),
        task=str(qm.config.task.value if hasattr(qm.config.task, "value") else qm.config.task),
        tokens=bool(qm.config.tokens),
        whole_sequence=bool(cfg.bidirectional or cfg.pad_to or cfg.reverse),
        licence=str(meta.licence or "see the data set's licence"),
        class_names=tuple(meta.class_names or ()),
        demo=np.asarray(seq if cfg.frame > 1 else run_x[0, : int(run_steps[0])], dtype=np.int64),
        expected_class=int(np.argmax(last)),
        framed=cfg.frame > 1,
    )


def write_packages(out_dir: str | os.PathLike[str], names: Iterable[str]) -> list[Path]:
    """Write the chosen packages under DIR/packages/<ecosystem>/; every folder is checked for
    foreign files before any is written (InputError, nothing written, nothing deleted)."""
    from edgernn.manifest import check_manifest
    from edgernn.packages.base import check_tree
    from edgernn.pipeline import HEADER, QUANT_NAME, exclusive
    from edgernn.train.checkpoint import load_checkpoint

    out = Path(out_dir)
    chosen = [get(n) for n in resolve(names)]
    if not chosen:
        return []
    with exclusive(out):
        # The files a package copies are the ones the last completed export vouches for.
        check_manifest(out, (QUANT_NAME, HEADER), load_checkpoint(out).sha256)
        m = packaged_model(out)
        trees = [(pkg.folder(out), pkg.build(m)) for pkg in chosen]
        for root, tree in trees:
            check_tree(root, tree)  # every folder before any is written
        written: list[Path] = []
        for root, tree in trees:
            written += write_tree(root, tree)
    return written
