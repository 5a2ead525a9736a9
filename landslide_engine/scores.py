"""Pixel scores of the landslide class: precision, recall, F1 and IoU from confusion counts.

The official Landslide4Sense metric. The demo scores its synthetic scene with it, and training pools
it over folds and splits (:mod:`training.scores.metrics` adds the per-batch protocol and the precision-recall
curve on top).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Pixel counts of the landslide class."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @classmethod
    def from_masks(cls, predicted: np.ndarray, target: np.ndarray) -> Confusion:
        """Counts from boolean-like predicted and target masks of the same shape."""
        predicted = np.asarray(predicted).astype(bool)
        target = np.asarray(target).astype(bool)
        tp = int(np.count_nonzero(predicted & target))
        fp = int(np.count_nonzero(predicted & ~target))
        fn = int(np.count_nonzero(~predicted & target))
        return cls(tp, fp, fn, int(predicted.size) - tp - fp - fn)

    def __add__(self, other: Confusion) -> Confusion:
        return Confusion(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn, self.tn + other.tn)

    def scores(self) -> dict[str, float]:
        """Precision, recall, F1 and IoU; a 0/0 ratio is 0."""
        return {
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "f1": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "iou": _ratio(self.tp, self.tp + self.fp + self.fn),
        }


def _ratio(numerator: int, denominator: int) -> float:
    return float(numerator) / denominator if denominator else 0.0
