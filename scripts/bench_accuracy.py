#!/usr/bin/env python3
"""`make bench-accuracy`: `edgernn train --auto` on each long bundled set, scored on its official test
split, float and int8, beside the 1-NN baselines of the UCR archive. Prints a Markdown table.

Each set trains into build/bench-accuracy/<name>; run one set with `--dataset NAME`. The 1-NN
Euclidean accuracy is computed here on the same split (shorter series zero-padded to the longest);
the 1-NN DTW accuracy (full window) is the archive's published figure (Dau et al. 2019,
arXiv:1810.07758, DataSummary of the 2018 release), as is the archive's own 1-NN ED figure.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgernn.data.bundled import LONG, load_dataset
from edgernn.data.dataset import resource_npz
from edgernn.pipeline import auto_train_to_dir, checkpoint_data, int8_metrics, quantize_checkpoint
from edgernn.train.auto import DEFAULT_BUDGET_MINUTES
from edgernn.train.loop import DEFAULT_PRESET

# Published test accuracy (1 - error rate) of 1-NN ED and 1-NN DTW with an unconstrained window.
PUBLISHED = {
    "arrowhead": {"ed": 0.800, "dtw": 0.703},
    "acsf1": {"ed": 0.540, "dtw": 0.640},
    "pickup_gesture": {"ed": 0.560, "dtw": 0.660},
}


def one_nn_euclidean(name: str) -> float:
    """1-NN ED on the raw stored series and the official split, as the archive computes it."""
    z = resource_npz(f"{name}.npz")
    off = z["offsets"]
    t_max = int(np.diff(off).max())
    x = np.zeros((len(off) - 1, t_max), np.float64)
    for i in range(len(off) - 1):
        x[i, : off[i + 1] - off[i]] = z["x"][off[i] : off[i + 1], 0]
    train, test = ~z["is_test"], z["is_test"]
    d = ((x[test][:, None, :] - x[train][None, :, :]) ** 2).sum(-1)
    return float((z["y"][train][d.argmin(1)] == z["y"][test]).mean())


def row(name: str, out_root: Path, budget: float, quiet: bool, seed: int) -> list[str]:
    log = (
        (lambda _: None) if quiet else (lambda line: print(f"  {name}: {line}", file=sys.stderr, flush=True))
    )
    tc = replace(DEFAULT_PRESET.train, seed=seed)
    ckpt = auto_train_to_dir(out_root / name, name, tc=tc, budget_minutes=budget, log=log)
    ds = checkpoint_data(ckpt, out_root / name)
    qm = quantize_checkpoint(ckpt, ds)
    int8, _ = int8_metrics(qm, ds.test)
    chosen = ckpt.meta["auto"]["candidates"][ckpt.meta["auto"]["chosen"]]
    lengths = np.concatenate([s.lengths for s in (ds.train, ds.val, ds.test)])
    steps = str(lengths.max()) if lengths.min() == lengths.max() else f"{lengths.min()}-{lengths.max()}"
    cfg = ckpt.meta["config"]
    clip = f"clip {cfg['input_clip']:g}" if cfg.get("input_clip") else "no clip"
    return [
        name,
        steps,
        str(cfg.get("frame", 1)),
        str(cfg["hidden_size"]),
        f"{chosen['init']}, lr {chosen['lr']:g}, {clip}",
        f"{chosen['flash_bytes']:,}",
        f"{ckpt.meta['metrics']['float']['test_accuracy']:.3f}",
        f"{int8['test_accuracy']:.3f}",
        f"{one_nn_euclidean(name):.3f} ({PUBLISHED[name]['ed']:.3f})",
        f"{PUBLISHED[name]['dtw']:.3f}",
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", action="append", choices=LONG, help="only this set (repeatable)")
    p.add_argument("--budget", type=float, default=DEFAULT_BUDGET_MINUTES, help="minutes per set")
    p.add_argument("--out", type=Path, default=Path("build/bench-accuracy"))
    p.add_argument("--quiet", action="store_true")
    p.add_argument("--seed", type=int, default=0, help="training seed and fold draw (default 0)")
    args = p.parse_args()
    head = [
        "data set",
        "steps",
        "frame",
        "hidden",
        "init, lr, input clip",
        "flash (B)",
        "float",
        "int8",
        "1-NN ED here (archive)",
        "1-NN DTW (archive)",
    ]
    rows = []
    for name in args.dataset or LONG:
        load_dataset(name)  # fail on a bad name before any training
        rows.append(row(name, args.out, args.budget, args.quiet, args.seed))
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
