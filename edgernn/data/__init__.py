"""Data sets as padded, normalised, fixed train/val/test splits.

- `dataset`: Split, Dataset, DatasetInfo and the shared helpers (seeded splits, padding,
  normalisation fitted on train only);
- `bundled`: the registry of bundled data sets (`load_dataset`, `list_datasets`), `DEMO` and `LONG`;
- `archive`: the many-to-one sets kept with their official train/test split (Japanese Vowels, the
  long UCR sets);
- `user`: `.npz` and `.csv` files of the user's own data (`load_user_data`);
- `user_split`: the user's own train/val/test split of such a file.
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
