"""`edgernn predict`'s files: the --data reader (labels optional) and the CSV / JSON writer.

--data takes the formats `edgernn train --data` documents (edgernn.data.user), with labels optional:

- `.npz`: `X` float (N, T, I) raw features or integer (N, T) token ids, optional `lengths` (N,);
  `y`, `class_names` and `split` may be present and are ignored.
- `.csv`, long format: `sequence`, `step` and feature columns; a `label` or `step_label` column
  and a `split` column may be present and are ignored. For a token model, one integer column of
  token ids.

Records: one per sequence (many-to-one) with `sequence, predicted, class_name`, or one per valid
step (many-to-many) with `sequence, step, predicted, class_name`. A one-to-many (generative) model
treats each sequence as a prompt: fed from the zero state, then greedy generation continues from
its state (`Runtime.generate(prompt=...)`) until the end token or `max_len` tokens; one record per
sequence with `sequence, predicted, class_name, text`: `predicted` / `class_name` the first token
after the prompt (the end token if it stops at once), `text` the prompt followed by the generated
text; JSON records add `generated`, the generated token ids.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgernn.artifacts import write_text
from edgernn.config import Task
from edgernn.data.user import read_long_csv, read_npz
from edgernn.errors import InputError
from edgernn.frame import check_frames
from edgernn.predict.runtime import Generation, Prediction, Runtime

OUT_FORMATS = (".csv", ".json")


def read_sequences(path: str | os.PathLike[str]) -> tuple[list[str], list[np.ndarray]]:
    """(sequence ids, one raw array per sequence) from a .npz or .csv; labels optional, ignored."""
    ids, arrays, _ = read_named_sequences(path)
    return ids, arrays


def read_named_sequences(path: str | os.PathLike[str]) -> tuple[list[str], list[np.ndarray], tuple[str, ...]]:
    """read_sequences, plus the feature columns' names (a CSV's header; () for .npz)."""
    p = Path(path)
    try:
        if not p.is_file():
            raise InputError(f"data file not found: {p}" if not p.exists() else f"not a file: {p}")
    except OSError as e:
        raise InputError(f"cannot access {p}: {e.strerror or e}") from None
    suffix = p.suffix.lower()
    if suffix == ".npz":
        return (*_read_npz(p), ())
    if suffix == ".csv":
        data = read_long_csv(p, labels="ignored")
        return data.ids, [np.array(rows, dtype=np.float64) for rows in data.features], data.feature_names
    raise InputError(f"{p.name}: unsupported extension {suffix or '(none)'!r}; use .npz or .csv")


def _read_npz(p: Path) -> tuple[list[str], list[np.ndarray]]:
    arrays = read_npz(p, ("X",), ("lengths", "y", "class_names", "split"))
    x, lengths = arrays["X"], arrays.get("lengths")
    if x.dtype.kind not in "iuf" or x.ndim not in (2, 3) or x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(
            f"{p.name}: X must be float (N, T, I) features or integer (N, T) token ids, "
            f"got {x.dtype} {x.shape}"
        )
    n, t = x.shape[0], x.shape[1]
    if lengths is None:
        lens = np.full(n, t, dtype=np.int64)
    else:
        if lengths.shape != (n,) or lengths.dtype.kind not in "iu":
            raise InputError(f"{p.name}: lengths must be ({n},) integers to match X, got {lengths.shape}")
        lens = lengths.astype(np.int64)
        if lens.min() < 1 or lens.max() > t:
            raise InputError(f"{p.name}: lengths must be in 1..{t}")
    return [str(i) for i in range(n)], [x[i, : int(k)] for i, k in enumerate(lens)]


def by_feature_name(
    arrays: list[np.ndarray], columns: tuple[str, ...], trained: tuple[str, ...] | None, name: str
) -> list[np.ndarray]:
    """The file's feature columns in the order the model was trained on, matched by name when both
    name them (a CSV trained on, a CSV predicted); columns in another order are put back in order,
    and other columns are refused: taken by position, they would give wrong answers silently."""
    if not trained or not columns or columns == trained:
        return arrays
    if sorted(columns) != sorted(trained):
        raise InputError(
            f"{name}: feature columns {', '.join(columns)} are not the ones the model was trained on "
            f"({', '.join(trained)})"
        )
    order = [columns.index(c) for c in trained]
    return [a[:, order] for a in arrays]


def as_model_input(rt: Runtime, arrays: list[np.ndarray], name: str) -> list[np.ndarray]:
    """Token models read one integer column (CSV) or integer X (npz); feature models floats."""
    if not rt.tokens:
        if arrays and arrays[0].ndim == 1:
            raise InputError(
                f"{name}: X is (N, T), the shape of token ids; this model reads (N, T, {rt.input_size}) "
                "float features (one feature per step: save X[..., None])"
            )
        return arrays
    out = []
    for a in arrays:
        if a.ndim == 2:
            if a.shape[1] != 1:
                raise InputError(
                    f"{name}: this token model reads one token id per step, the file has {a.shape[1]} "
                    f"feature columns"
                )
            a = a[:, 0]
        if a.dtype.kind == "f":
            if not (np.isfinite(a).all() and (a == np.round(a)).all()):
                raise InputError(f"{name}: token ids must be whole numbers")
            a = a.astype(np.int64)
        out.append(a)
    return out


def records(rt: Runtime, ids: list[str], preds: list[Prediction]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for sid, pred in zip(ids, preds, strict=True):
        if not pred.per_step:
            rows.append({"sequence": sid, "predicted": pred.predicted, "class_name": pred.class_name})
            continue
        assert isinstance(pred.predicted, list) and isinstance(pred.class_name, list)
        for t, (cls, name) in enumerate(zip(pred.predicted, pred.class_name, strict=True)):
            rows.append({"sequence": sid, "step": t, "predicted": cls, "class_name": name})
    return rows


def generation_records(rt: Runtime, ids: list[str], gens: list[Generation]) -> list[dict[str, Any]]:
    """One record per prompt: the first token after it, the prompt + generated text, the ids."""
    end = rt.qm.meta.end_token
    rows: list[dict[str, Any]] = []
    for sid, g in zip(ids, gens, strict=True):
        first = g.tokens[0] if g.tokens else end
        name = "" if first is None else rt.class_names[first]
        rows.append(
            {
                "sequence": sid,
                "predicted": -1 if first is None else int(first),
                "class_name": name,
                "text": g.full_text,
                "generated": list(g.tokens),
            }
        )
    return rows


_JSON_ONLY = ("generated",)


def render(rows: list[dict[str, Any]], fmt: str) -> str:
    if fmt == ".json":
        return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"
    buf = io.StringIO()
    fields = [f for f in rows[0] if f not in _JSON_ONLY] if rows else ["sequence", "predicted", "class_name"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def out_format(out: str | os.PathLike[str] | None) -> str:
    if out is None:
        return ".csv"
    suffix = Path(out).suffix.lower()
    if suffix not in OUT_FORMATS:
        raise InputError(f"--out {out}: unknown extension {suffix or '(none)'!r}; use .csv or .json")
    return suffix


def predict_file(
    directory: str | os.PathLike[str],
    data: str | os.PathLike[str],
    backend: str = "onnx-int8",
    out: str | os.PathLike[str] | None = None,
    max_len: int = 32,
) -> tuple[str, int]:
    """Run `edgernn predict`: returns (the rendered records, how many); writes `out` atomically.
    `max_len`: the most tokens a one-to-many model generates after each prompt."""
    fmt = out_format(out)  # refuse a bad --out before any work
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise InputError(f"--max-len must be a positive integer, got {max_len!r}")
    rt = Runtime(directory, backend=backend)
    ids, arrays, columns = read_named_sequences(data)
    inputs = as_model_input(rt, arrays, Path(data).name)
    if not rt.tokens:
        inputs = by_feature_name(inputs, columns, rt.qm.meta.feature_names, Path(data).name)
    named = []
    try:
        for sid, a in zip(ids, inputs, strict=True):
            rt._check_sequence(a, f"sequence {sid!r}")
            named.append(a)
        check_frames(rt.qm.config, np.array([len(a) for a in named]), ids)
    except InputError as e:
        raise InputError(f"{Path(data).name}: {e}") from None
    if rt.task == Task.ONE_TO_MANY:
        rows = generation_records(rt, ids, [rt.generate(prompt=a, max_len=max_len) for a in named])
    else:
        rows = records(rt, ids, rt.predict(named))
    text = render(rows, fmt)
    if out is not None:
        write_text(out, text)
    return text, len(rows)
