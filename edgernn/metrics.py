"""Task metrics from logits: pure functions shared by the float and the integer evaluation."""

from __future__ import annotations

import numpy as np

from edgernn.config import Task

IGNORE = -100  # target value of padded steps (torch's CrossEntropyLoss ignore_index)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def balanced_accuracy(pred: np.ndarray, y: np.ndarray, num_classes: int) -> float:
    recalls = [float((pred[y == c] == c).mean()) for c in range(num_classes) if (y == c).any()]
    return float(np.mean(recalls)) if recalls else 0.0


def task_metrics(logits: np.ndarray, y: np.ndarray, task: str, num_classes: int) -> dict[str, float]:
    """logits (N, C) with y (N,) for many-to-one; (N, T, C) with y (N, T) (IGNORE at padding) otherwise.

    Float logits give nats; integer logits must be dequantized first for nats to mean anything.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y)
    if task == Task.MANY_TO_ONE:
        flat_logits, flat_y = logits, y
    else:
        valid = y != IGNORE
        flat_logits, flat_y = logits[valid], y[valid]
    pred = flat_logits.argmax(axis=-1)
    nll = -_log_softmax(flat_logits)[np.arange(len(flat_y)), flat_y]
    out = {
        "test_accuracy": float((pred == flat_y).mean()),
        "balanced_accuracy": balanced_accuracy(pred, flat_y, num_classes),
        "nll": float(nll.mean()),
        "n": len(flat_y),
    }
    if task == Task.ONE_TO_MANY:
        out["nats_per_char"] = out["nll"]
    return out


def predictions(logits: np.ndarray, y: np.ndarray, task: str) -> np.ndarray:
    """Predicted class per counted item (sequence, or valid step), in the order task_metrics counts."""
    logits = np.asarray(logits)
    if task == Task.MANY_TO_ONE:
        return np.asarray(logits.argmax(axis=-1))
    return np.asarray(logits[np.asarray(y) != IGNORE].argmax(axis=-1))


def confusion(pred: np.ndarray, y: np.ndarray, num_classes: int) -> np.ndarray:
    m = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(m, (y, pred), 1)
    return m
