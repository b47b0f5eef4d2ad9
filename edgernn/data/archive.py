"""Many-to-one archive sets kept with their official train/test split: Japanese Vowels (UCI) and
three long univariate sets of the UCR archive (ArrowHead, ACSF1, PickupGestureWiimoteZ).

One file layout serves them all (`scripts/make_datasets.py` writes it): `x` float32 (sum T, I) of
every sequence concatenated, `offsets` (N+1,) so sequence i is `x[offsets[i]:offsets[i+1]]`, `y`
(N,), `is_test` (N,), and optionally `class_names` (C,). The official test set is the test set for
every seed; validation is a stratified 20 % of the official train set, chosen by seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edgernn.config import Task
from edgernn.data.dataset import Dataset, carve, feature_dataset, pad_features, resource_npz, seeded_rng

VAL_SHARE = 0.2  # of the official train set


@dataclass(frozen=True)
class ArchiveSet:
    name: str
    description: str
    source: str
    licence: str
    # Empty: the file's `class_names`. Japanese Vowels names its speakers here: its file predates
    # the array, and rewriting it would change a published checksum for no gain.
    class_names: tuple[str, ...] = ()

    @property
    def file(self) -> str:
        return f"{self.name}.npz"


_UCR = "the UCR archive (Dau et al. 2019, arXiv:1810.07758), via aeon 1.6.0"
_NO_LICENCE = "no explicit licence stated by the UCR archive"

JAPANESE_VOWELS = ArchiveSet(
    "japanese_vowels",
    "speaker of a spoken Japanese vowel from 12 LPC cepstra per frame",
    "UCI Japanese Vowels (Kudo, Toyama, Shimbo), doi:10.24432/C5NS47, via aeon 1.6.0",
    "CC BY 4.0 (cite Kudo, Toyama & Shimbo 1999)",
    tuple(f"speaker {i + 1}" for i in range(9)),
)
ARROWHEAD = ArchiveSet(
    "arrowhead",
    "type of a projectile point (arrowhead) from 251 angle samples along its outline",
    f"ArrowHead (Ye & Keogh 2009, outlines of arrowheads) from {_UCR}",
    _NO_LICENCE,
)
ACSF1 = ArchiveSet(
    "acsf1",
    "category of a home appliance from 1,460 samples of its power consumption",
    f"ACSF1 (Gisler et al. 2013, ACS-F1 appliance signatures; Schafer & Leser 2017) from {_UCR}",
    _NO_LICENCE,
)
PICKUP_GESTURE = ArchiveSet(
    "pickup_gesture",
    "which of 10 people made a Wiimote pick-up gesture, from its z-axis acceleration",
    f"PickupGestureWiimoteZ (Guna, Humar & Pogacnik 2012; edited by H. A. Dau) from {_UCR}",
    _NO_LICENCE,
)
ARCHIVE_SETS = {s.name: s for s in (JAPANESE_VOWELS, ARROWHEAD, ACSF1, PICKUP_GESTURE)}


def load_archive_set(spec: ArchiveSet, seed: int) -> Dataset:
    z = resource_npz(spec.file)
    off = z["offsets"]
    x, lengths = pad_features([z["x"][off[i] : off[i + 1]] for i in range(len(off) - 1)])
    y = z["y"]
    train_all = np.flatnonzero(~z["is_test"])
    train, val = carve(train_all, round(VAL_SHARE * len(train_all)), seeded_rng(seed), y)
    test = np.flatnonzero(z["is_test"])
    names = spec.class_names or tuple(str(c) for c in z["class_names"])
    return feature_dataset(
        spec.name,
        Task.MANY_TO_ONE,
        names,
        [(x[i], y[i], lengths[i]) for i in (train, val, test)],
        spec.source,
        spec.licence,
    )
