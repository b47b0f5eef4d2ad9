"""Does the source's answer depend on padding? Measured, never changed.

A model trained on padded batches without packing runs its RNN over the pad steps: its forward
direction ends on pads, its backward direction starts on them. Such a model answers differently
when the pads are gone, which is how a device feeds it (one sequence at its own length). The
import exports what a device sees, and says how far that is from what the author measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from edgernn.config import Task
from edgernn.data.dataset import Split
from edgernn.importer.source import Source
from edgernn.metrics import predictions, task_metrics


@dataclass(frozen=True)
class PaddingEffect:
    changed: int  # predictions that differ between a padded batch and one sequence alone
    compared: int
    padded_accuracy: float | None  # on padded batches, as the author measured (None: no labels)
    alone_accuracy: float | None  # one sequence at its own length, as a device runs it

    def to_dict(self) -> dict[str, Any]:
        return {
            "changed": self.changed,
            "compared": self.compared,
            "padded_accuracy": self.padded_accuracy,
            "alone_accuracy": self.alone_accuracy,
        }

    def warning(self, pad_to: int = 0) -> str | None:
        if self.changed == 0:
            return None
        line = (
            f"the source's answer depends on padding: {self.changed} of {self.compared} predictions change "
            "when a sequence is padded to the longest in its batch"
        )
        if self.padded_accuracy is not None and self.alone_accuracy is not None:
            line += (
                f" (accuracy {self.padded_accuracy:.3f} on padded batches, as measured in training; "
                f"{self.alone_accuracy:.3f} one sequence at a time, as a device runs it)"
            )
        if pad_to:
            return line + f"; exported with pad steps up to {pad_to} (--pad-to), as the author measured"
        return line + "; exported one sequence at a time (--pad-to T runs the pad steps instead)"


def padding_effect(
    source: Source, split: Split, task: str, answers: list[np.ndarray], scored: bool = True
) -> PaddingEffect | None:
    """Compare the source on the split as one batch padded to its longest sequence with its
    answers one sequence at a time (`answers`, in order). None when the source cannot take a padded batch
    (a torch.export program runs at its traced length only). scored=False: the labels are the
    source's own answers, so only the changed predictions mean something."""
    if source.run_padded is None or len(split) == 0:
        return None
    longest = int(split.lengths.max())
    y = split.y if task == Task.MANY_TO_ONE else split.y[:, :longest]
    padded = source.run_padded(split.x[:, :longest])
    alone = np.zeros_like(padded)
    for i, a in enumerate(answers):
        if a.ndim == 2:
            alone[i, : len(a)] = a
        else:
            alone[i] = a
    p_pad, p_alone = predictions(padded, y, task), predictions(alone, y, task)
    classes = padded.shape[-1]
    acc_pad = task_metrics(padded, y, task, classes)["test_accuracy"]
    acc_alone = task_metrics(alone, y, task, classes)["test_accuracy"]
    if not scored:
        return PaddingEffect(int((p_pad != p_alone).sum()), int(np.size(p_pad)), None, None)
    return PaddingEffect(int((p_pad != p_alone).sum()), int(np.size(p_pad)), acc_pad, acc_alone)
