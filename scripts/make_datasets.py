#!/usr/bin/env python3
"""Rebuild the compact bundled data sets in `edgernn/data/datasets/` from their upstream packages.

Run once by a maintainer; `edgernn` itself never downloads anything. The upstream files are two
registry packages that are only *downloaded* (never installed, so none of aeon's ~550 MB of
dependencies is needed):

    pip download aeon==1.6.0 --no-deps -d /tmp/dl
    pip download names==0.3.0 --no-deps --no-binary :all: -d /tmp/dl
    python scripts/make_datasets.py --aeon /tmp/dl/aeon-1.6.0-py3-none-any.whl \
        --names /tmp/dl/names-0.3.0.tar.gz

Without `--aeon`/`--names` the script runs those two `pip download` commands itself into a
temporary folder. The outputs hold the raw, un-normalised, un-split data; splitting and
normalisation happen in `edgernn/data/` so that they can depend on a seed.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

import numpy as np

AEON = "aeon==1.6.0"
NAMES = "names==0.3.0"
AEON_DATA = "aeon/datasets/data"
NAMES_DIR = "names-0.3.0/names"
OUT = Path(__file__).resolve().parent.parent / "edgernn" / "data" / "datasets"
# Long univariate UCR sets (aeon name -> bundled name, what a class is). Their upstream class ids
# carry no documented mapping to names (ArrowHead's Avonlea/Clovis/Mix, ACSF1's appliances), so
# classes are named by id. OSULeaf (427 steps, in the same wheel) is left out for size: its 189k
# distinct float32 values deflate to 698 KB, more than these three together.
LONG_SETS = {
    "ArrowHead": ("arrowhead", "type"),
    "ACSF1": ("acsf1", "appliance"),
    "PickupGestureWiimoteZ": ("pickup_gesture", "subject"),
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def parse_ts(text: str) -> tuple[list[np.ndarray], list[str], list[str]]:
    """Read a multivariate `.ts` file: one case per line, dimensions split by ':', label last.

    Returns per-case (T, I) float64 arrays, their labels, and the declared class labels in order.
    """
    cases: list[np.ndarray] = []
    labels: list[str] = []
    declared: list[str] = []
    in_data = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("@"):
            key, *rest = line.split()
            if key.lower() == "@classlabel":
                declared = rest[1:]
            in_data = key.lower() == "@data"
            continue
        if not in_data:
            raise ValueError(f"data line before @data: {line[:40]!r}")
        *dims, label = line.split(":")
        rows = [[float(v) for v in d.split(",")] for d in dims]
        if len({len(r) for r in rows}) != 1:
            raise ValueError("dimensions of one case differ in length")
        cases.append(np.array(rows, dtype=np.float64).T)
        labels.append(label)
    return cases, labels, declared


Cases = tuple[list[np.ndarray], list[str], np.ndarray, list[str], dict[str, str]]


def read_aeon(wheel: Path, name: str) -> Cases:
    """Both official splits of one aeon data set: cases, labels, is_test flags, class order, sha256s."""
    cases: list[np.ndarray] = []
    labels: list[str] = []
    is_test: list[bool] = []
    hashes: dict[str, str] = {}
    declared: list[str] = []
    with zipfile.ZipFile(wheel) as zf:
        for part in ("TRAIN", "TEST"):
            member = f"{AEON_DATA}/{name}/{name}_{part}.ts"
            blob = zf.read(member)
            hashes[member] = hashlib.sha256(blob).hexdigest()
            c, lab, declared = parse_ts(blob.decode("utf-8"))
            cases += c
            labels += lab
            is_test += [part == "TEST"] * len(c)
    return cases, labels, np.array(is_test), declared, hashes


def save_npz(path: Path, **arrays: np.ndarray) -> None:
    """Like np.savez_compressed, but with fixed zip timestamps so a rebuild is byte-identical."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)


def check_float32(cases: list[np.ndarray], what: str) -> None:
    # Upstream text has 6 decimals; float32 keeps them to within its own rounding, which we report.
    flat = np.concatenate(cases)
    err = float(np.abs(flat.astype(np.float32).astype(np.float64) - flat).max())
    print(f"{what}: max |float32 - upstream| = {err:.2e}")


def make_sequences(wheel: Path, upstream: str, out: str, noun: str | None) -> dict[str, str]:
    """An official-split many-to-one set, variable lengths allowed: sequences concatenated + offsets.

    `noun` names the classes ("subject 1", ...) in a `class_names` array; None leaves it out (the
    loader names Japanese Vowels' speakers itself, and its file predates the array).
    """
    cases, labels, is_test, declared, hashes = read_aeon(wheel, upstream)
    check_float32(cases, out)
    lengths = np.array([len(c) for c in cases], dtype=np.int64)
    arrays = {
        "x": np.concatenate(cases).astype(np.float32),  # (sum T, I)
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),  # i is x[off[i]:off[i+1]]
        "y": np.array([declared.index(v) for v in labels], dtype=np.int64),  # declared order -> 0..C-1
        "is_test": is_test,
    }
    if noun is not None:
        arrays["class_names"] = np.array([f"{noun} {c}" for c in declared])
    save_npz(OUT / f"{out}.npz", **arrays)
    print(f"{out}: {len(cases)} sequences, lengths {lengths.min()}..{lengths.max()}, classes {declared}")
    return hashes


def make_basic_motions(wheel: Path) -> dict[str, str]:
    cases, labels, is_test, declared, hashes = read_aeon(wheel, "BasicMotions")
    check_float32(cases, "basic_motions")
    save_npz(
        OUT / "basic_motions.npz",
        x=np.stack(cases).astype(np.float32),  # (80 clips, 100 steps, 6)
        y=np.array([declared.index(v) for v in labels], dtype=np.int64),
        is_test=is_test,
        class_names=np.array([c.lower() for c in declared]),
    )
    print(f"basic_motions: {len(cases)} clips of {cases[0].shape}, classes {declared}")
    return hashes


def make_names(sdist: Path) -> dict[str, str]:
    hashes: dict[str, str] = {}
    # One name a line in upstream (frequency) order; a line ">male" or ">female" starts each list.
    lines = ["# US Census 1990 first names from names==0.3.0 (dist.male.first, dist.female.first)"]
    with tarfile.open(sdist) as tf:
        for which in ("male", "female"):
            member = f"{NAMES_DIR}/dist.{which}.first"
            f = tf.extractfile(member)
            if f is None:
                raise ValueError(f"{member} missing from {sdist}")
            blob = f.read()
            hashes[member] = hashlib.sha256(blob).hexdigest()
            names = [ln.split()[0] for ln in blob.decode("ascii").splitlines() if ln.strip()]
            if not all(n.isascii() and n.isalpha() and n.isupper() for n in names):
                raise ValueError(f"unexpected characters in {member}")
            lines += [f">{which}", *names]
            print(f"names/{which}: {len(names)} names")
    (OUT / "census_names.txt").write_text("\n".join(lines) + "\n", encoding="ascii")
    return hashes


def download(spec: str, dest: Path, sdist: bool) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", spec, "--no-deps", "-d", str(dest)]
    if sdist:
        cmd += ["--no-binary", ":all:"]
    subprocess.run(cmd, check=True)
    name = spec.split("==")[0]
    (found,) = [p for p in dest.iterdir() if p.name.lower().startswith(name)]
    return found


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--aeon", type=Path, help=f"the {AEON} wheel")
    ap.add_argument("--names", type=Path, help=f"the {NAMES} sdist (.tar.gz)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.aeon or download(AEON, Path(tmp), sdist=False)
        sdist = args.names or download(NAMES, Path(tmp), sdist=True)
        OUT.mkdir(parents=True, exist_ok=True)
        hashes = {wheel.name: sha256(wheel), sdist.name: sha256(sdist)}
        hashes |= make_sequences(wheel, "JapaneseVowels", "japanese_vowels", None)
        for upstream, (out, noun) in LONG_SETS.items():
            hashes |= make_sequences(wheel, upstream, out, noun)
        hashes |= make_basic_motions(wheel)
        hashes |= make_names(sdist)
    print("\nsha256 for PROVENANCE.md:")
    for k, v in hashes.items():
        print(f"  {v}  {k}")
    print("\noutputs:")
    for p in sorted(OUT.iterdir()):
        print(f"  {p.stat().st_size:>8}  {p.name}")


if __name__ == "__main__":
    main()
