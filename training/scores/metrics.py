"""Landslide-class precision, recall, F1 and IoU under two protocols, and a precision-recall curve.

- *Global* (the official Landslide4Sense metric): true/false positive and false negative pixel
  counts are summed over the whole split, then turned into scores once.
- *Per-batch mean* (the Seed paper's protocol, which produced its F1 0.747): scores are computed
  for each evaluation batch and averaged over batches. A batch whose score is 0/0 (for example no
  landslide pixels and none predicted) scores 0, as torchmetrics does by default. Batches with few
  landslide pixels weigh as much as batches with many, so the two protocols can differ a lot.

Probabilities are also binned into fixed histograms per class, which gives exact confusion counts
at every bin edge: the precision-recall curve and the threshold tuned on validation come from them
without keeping every pixel in memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landslide_engine.scores import Confusion

SCORE_NAMES = ("precision", "recall", "f1", "iou")
HISTOGRAM_BINS = 1000


class MetricAccumulator:
    """Collects one split's predictions batch by batch at a fixed threshold.

    ``result()`` gives the global scores under their plain names and the Seed's per-batch means
    as ``batch_mean_<name>``, plus the pixel counts.
    """

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold
        self.confusion = Confusion()
        self.batch_scores: list[dict[str, float]] = []
        self.positive_hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)
        self.negative_hist = np.zeros(HISTOGRAM_BINS, dtype=np.int64)

    def update(self, probabilities: np.ndarray, target: np.ndarray) -> None:
        """Add one batch: probabilities in [0, 1] and the 0/1 target, same shape."""
        probabilities = np.asarray(probabilities, dtype=np.float32)
        target = np.asarray(target).astype(bool)
        batch = Confusion.from_masks(probabilities >= self.threshold, target)
        self.confusion += batch
        self.batch_scores.append(batch.scores())
        bins = np.clip((probabilities * HISTOGRAM_BINS).astype(np.int64), 0, HISTOGRAM_BINS - 1)
        self.positive_hist += np.bincount(bins[target], minlength=HISTOGRAM_BINS)
        self.negative_hist += np.bincount(bins[~target], minlength=HISTOGRAM_BINS)

    def result(self) -> dict[str, float | int]:
        """Global scores, per-batch mean scores and the pixel counts."""
        out: dict[str, float | int] = dict(self.confusion.scores())
        for name in SCORE_NAMES:
            values = [scores[name] for scores in self.batch_scores]
            out[f"batch_mean_{name}"] = float(np.mean(values)) if values else 0.0
        out.update(threshold=self.threshold, tp=self.confusion.tp, fp=self.confusion.fp, fn=self.confusion.fn)
        out["tn"] = self.confusion.tn
        return out

    def curve(self) -> PrecisionRecallCurve:
        """The precision-recall curve of everything added so far."""
        return PrecisionRecallCurve.from_histograms(self.positive_hist, self.negative_hist)


@dataclass(frozen=True)
class PrecisionRecallCurve:
    """Global precision, recall and F1 at each candidate threshold (bin edges, ascending)."""

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray

    @classmethod
    def from_histograms(cls, positive: np.ndarray, negative: np.ndarray) -> PrecisionRecallCurve:
        """Counts at threshold ``k/bins`` are the pixels in bins ``k..bins-1`` (predicted positive)."""
        bins = len(positive)
        tp = np.cumsum(positive[::-1])[::-1].astype(np.float64)
        fp = np.cumsum(negative[::-1])[::-1].astype(np.float64)
        fn = positive.sum() - tp
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
            recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
            f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        return cls(np.arange(bins) / bins, precision, recall, f1)

    def best_threshold(self) -> tuple[float, float]:
        """(threshold, F1) maximising global F1 over thresholds in (0, 1); ties go to the one nearest 0.5."""
        best = self.f1[1:].max()
        candidates = 1 + np.flatnonzero(self.f1[1:] == best)
        index = candidates[np.argmin(np.abs(self.thresholds[candidates] - 0.5))]
        return float(self.thresholds[index]), float(best)
