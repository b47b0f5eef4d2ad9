"""Data sets as padded, normalised, fixed train/val/test splits.

- `dataset`: Split, Dataset, DatasetInfo and the shared helpers (seeded splits, padding,
  normalisation fitted on train only);
- `bundled`: the four bundled data sets (`load_dataset`, `list_datasets`);
- `user`: `.npz` and `.csv` files of the user's own data (`load_user_data`).
"""

from edgernn.data.bundled import BUNDLED, DEFAULT_DATASET, NAMES_VOCAB, list_datasets, load_dataset
from edgernn.data.dataset import IGNORE, PAD, Dataset, DatasetInfo, Split, normalize
from edgernn.data.user import load_user_data

__all__ = [
    "BUNDLED",
    "DEFAULT_DATASET",
    "IGNORE",
    "NAMES_VOCAB",
    "PAD",
    "Dataset",
    "DatasetInfo",
    "Split",
    "list_datasets",
    "load_dataset",
    "load_user_data",
    "normalize",
]
