"""Typed provenance of a QuantizedModel: the "meta" object of model.int8.json.

No field changes an integer. The backends read `start_token` and `end_token` (one-to-many
generation macros in C) and `c_prefix` (the C symbol prefix chosen at export); `edgernn predict`
matches a CSV's feature columns to `feature_names`; everything else is provenance that
`edgernn report` shows and the C header prints in its opening comment.

Rules of the format:
- every field is optional; None means "not recorded", and such a field is left out of the JSON
  (a `null` in an older file reads as None, so such a file re-serialises without that key);
- an unknown key is refused with an InputError. The set of keys is closed on purpose: nothing in
  edgernn reads an unlisted key, so a typo or a key from a newer edgernn is reported instead of
  being dropped or printed unchecked, and there is no free-form `extra` mapping;
- values are checked on construction: text fields are str, accuracies real numbers, token ids
  non-negative ints (not bool), `vocab`, `class_names` and `feature_names` sequences of str (kept
  as tuples).

Besides its attributes, a ModelMeta reads as a Mapping of the recorded fields (key -> value, in
field order), which is what the JSON and the header's provenance comment list.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, fields
from typing import Any

from edgernn.errors import InputError

# field -> kind; the order is the dataclass's field order.
_KINDS: dict[str, str] = {
    "dataset": "text",
    "task": "text",
    "source": "text",
    "licence": "text",
    "float_accuracy": "number",
    "int8_accuracy": "number",
    "source_checkpoint_sha256": "text",
    "edgernn_version": "text",
    "vocab": "names",
    "class_names": "names",
    "feature_names": "names",
    "start_token": "token",
    "end_token": "token",
    "c_prefix": "text",
}

_EXPECTED = {
    "text": "a string",
    "number": "a number",
    "token": "a non-negative integer token id",
    "names": "a list of strings",
}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(name: str, value: Any) -> Any:
    kind = _KINDS[name]
    if kind == "text" and isinstance(value, str):
        return value
    if kind == "number" and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if (
        kind == "token"
        and isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and int(value) >= 0
    ):
        return int(value)
    if kind == "names" and isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise InputError(f"model meta {name}: expected {_EXPECTED[kind]}, got {_short(value)}")


@dataclass(frozen=True)
class ModelMeta(Mapping[str, Any]):
    """Where a QuantizedModel came from (see the module docstring for the rules)."""

    dataset: str | None = None  # data set name (bundled, or the user file's stem)
    task: str | None = None  # the model's task, as in ModelConfig.task
    source: str | None = None  # where the data came from
    licence: str | None = None  # the data's licence
    float_accuracy: float | None = None  # float model, held-out test split
    int8_accuracy: float | None = None  # integer reference, same split
    source_checkpoint_sha256: str | None = None  # sha256 of the checkpoint file that was quantized
    edgernn_version: str | None = None  # the edgernn that quantized it
    vocab: tuple[str, ...] | None = None  # token strings by id (empty for feature models)
    class_names: tuple[str, ...] | None = None  # class names by id
    feature_names: tuple[str, ...] | None = None  # input features by position (a CSV's columns)
    start_token: int | None = None  # one-to-many: the token that begins a sequence
    end_token: int | None = None  # one-to-many: generation stops when it produces this class
    c_prefix: str | None = None  # prefix of the C symbols in model.h

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _checked(f.name, value))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelMeta:
        """Build from a JSON object (or any mapping); unknown keys raise InputError."""
        if isinstance(d, ModelMeta):
            return d
        if not isinstance(d, Mapping):
            raise InputError(f"model meta must be a JSON object, got {type(d).__name__}")
        unknown = sorted(str(k) for k in d if k not in _KINDS)
        if unknown:
            raise InputError(
                f"model meta: unknown key {unknown[0]!r}; the known keys are {', '.join(_KINDS)}"
            )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        """The recorded fields, JSON-ready (name tuples as lists), in field order."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in self.items()}

    # Mapping view: only recorded (non-None) fields are keys.
    def __getitem__(self, key: str) -> Any:
        value = getattr(self, key) if key in _KINDS else None
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self) -> Iterator[str]:
        return (f.name for f in fields(self) if getattr(self, f.name) is not None)

    def __len__(self) -> int:
        return sum(1 for _ in self)
