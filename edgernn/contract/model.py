"""The QuantizedModel: every integer a backend needs, and its text form (model.int8.json).

Every integer backend (ONNX, C) is generated from a QuantizedModel and nothing downstream
re-derives a scale. `from_json` proves the bounds again (`check_bounds`), so a hand-edited file
that breaks the contract is refused before any backend sees it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgernn.config import ModelConfig
from edgernn.contract.bounds import check_bounds
from edgernn.contract.constants import tanh_lut
from edgernn.contract.meta import ModelMeta
from edgernn.errors import InputError

FORMAT = "edgernn-quantized-v1"


@dataclass(frozen=True)
class QuantCell:
    """One layer and direction in integers. Token-input cells carry `table` instead of w_ih/bias."""

    w_ih: np.ndarray  # int8 (H, In), or (H, 0) for a token cell
    w_hh: np.ndarray  # int8 (H, H)
    bias: np.ndarray  # int32 (H,), zeros for a token cell (folded into the table)
    m_x: np.ndarray  # int64 (H,)
    m_h: np.ndarray  # int64 (H,)
    shift: int
    table: np.ndarray | None = None  # int32 (V, H): W_ih . E[token] + b at the scale of acc_x

    @property
    def hidden(self) -> int:
        return int(self.w_hh.shape[0])


@dataclass(frozen=True)
class QuantizedModel:
    """Everything an integer backend needs; nothing downstream re-derives a scale.

    `meta` may be given as a ModelMeta or as a mapping, which is checked by the same rules as the
    JSON (ModelMeta.from_dict); it is always a ModelMeta afterwards."""

    config: ModelConfig
    cells: tuple[QuantCell, ...]  # index = layer * directions + direction (torch's h_n order)
    head_w: np.ndarray  # int8 (C, D*H), one scale for the tensor so integer argmax is valid
    head_b: np.ndarray  # int32 (C,)
    head_scale: float  # logit = logits_q * head_scale
    input_scale: np.ndarray  # float32 (I,): x_q = sat(round(x / s_x)); empty for token models
    norm_mean: np.ndarray  # float32 (I,): the data's normalization, for the C float wrapper
    norm_std: np.ndarray  # float32 (I,)
    lut: np.ndarray = field(default_factory=tanh_lut)
    meta: ModelMeta = field(default_factory=ModelMeta)

    def __post_init__(self) -> None:
        meta: ModelMeta | Mapping[str, Any] = self.meta
        if not isinstance(meta, ModelMeta):
            object.__setattr__(self, "meta", ModelMeta.from_dict(meta))

    @property
    def sample_scale(self) -> np.ndarray:
        """The input scales of one sample (input_scale repeats them once per frame position)."""
        return self.input_scale[: self.config.sample_size]

    @property
    def sample_norm(self) -> tuple[np.ndarray, np.ndarray]:
        """The normalization (mean, std) of one sample's features; empty arrays when none."""
        n = self.config.sample_size if self.norm_mean.size else 0
        return self.norm_mean[:n], self.norm_std[:n]

    def cell(self, layer: int, direction: int) -> QuantCell:
        return self.cells[layer * self.config.directions + direction]

    def to_json(self) -> str:
        """Deterministic text: same model, same bytes."""

        def arr(a: np.ndarray) -> list[Any]:
            return list(np.asarray(a).tolist())

        doc = {
            "format": FORMAT,
            "config": self.config.to_dict(),
            "cells": [
                {
                    "w_ih": arr(c.w_ih),
                    "w_hh": arr(c.w_hh),
                    "bias": arr(c.bias),
                    "m_x": arr(c.m_x),
                    "m_h": arr(c.m_h),
                    "shift": c.shift,
                    "table": None if c.table is None else arr(c.table),
                }
                for c in self.cells
            ],
            "head_w": arr(self.head_w),
            "head_b": arr(self.head_b),
            "head_scale": float(self.head_scale),
            "input_scale": [float(v) for v in self.input_scale],
            "norm_mean": [float(v) for v in self.norm_mean],
            "norm_std": [float(v) for v in self.norm_std],
            "meta": self.meta.to_dict(),
        }
        return json.dumps(doc, indent=None, separators=(",", ":"), sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> QuantizedModel:
        try:
            d = json.loads(text)
            if d.get("format") != FORMAT:
                raise InputError("not an edgernn quantized model (format tag missing or unknown)")
            cfg = ModelConfig.from_dict(d["config"])
            hidden = cfg.hidden_size
            cells = []
            for c in d["cells"]:
                w_ih = np.array(c["w_ih"], dtype=np.int8).reshape(hidden, -1)
                cells.append(
                    QuantCell(
                        w_ih=w_ih,
                        w_hh=np.array(c["w_hh"], dtype=np.int8).reshape(hidden, hidden),
                        bias=np.array(c["bias"], dtype=np.int32),
                        m_x=np.array(c["m_x"], dtype=np.int64),
                        m_h=np.array(c["m_h"], dtype=np.int64),
                        shift=int(c["shift"]),
                        table=None if c["table"] is None else np.array(c["table"], dtype=np.int32),
                    )
                )
            qm = cls(
                config=cfg,
                cells=tuple(cells),
                head_w=np.array(d["head_w"], dtype=np.int8).reshape(cfg.num_classes, -1),
                head_b=np.array(d["head_b"], dtype=np.int32),
                head_scale=float(d["head_scale"]),
                input_scale=np.array(d["input_scale"], dtype=np.float32),
                norm_mean=np.array(d["norm_mean"], dtype=np.float32),
                norm_std=np.array(d["norm_std"], dtype=np.float32),
                meta=ModelMeta.from_dict(d["meta"]),
            )
        except InputError:
            raise
        # OverflowError: numpy refuses e.g. 300 as int8 or 2^31 as int32 (a hand-edited file).
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as e:
            raise InputError(f"malformed quantized model: {type(e).__name__}: {e}") from None
        check_bounds(qm)
        return qm
