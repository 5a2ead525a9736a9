"""PNG figures of a training run: learning curves, precision-recall curve, example predictions.

matplotlib runs on the Agg backend, so plotting works on headless machines and inside torchrun.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from landslide_engine.figures import true_colour
from training.scores.metrics import PrecisionRecallCurve


def plot_learning_curves(history: Sequence[dict[str, float]], path: Path) -> Path:
    """Training/validation loss and validation F1 per epoch."""
    epochs = [row["epoch"] for row in history]
    figure, (loss_axis, f1_axis) = plt.subplots(1, 2, figsize=(10, 4))
    loss_axis.plot(epochs, [row["train_loss"] for row in history], label="train")
    loss_axis.plot(epochs, [row["val_loss"] for row in history], label="validation")
    loss_axis.set(xlabel="epoch", ylabel="loss", title="Loss")
    loss_axis.legend()
    f1_axis.plot(epochs, [row["val_f1"] for row in history], label="F1 at the recipe threshold")
    f1_axis.plot(epochs, [row["val_best_f1"] for row in history], label="F1 at the best threshold")
    f1_axis.set(xlabel="epoch", ylabel="F1 (landslide class)", title="Validation F1", ylim=(0, 1))
    f1_axis.legend()
    return _save(figure, path)


def plot_pr_curve(curve: PrecisionRecallCurve, threshold: float, path: Path) -> Path:
    """Global precision against recall over thresholds, with the chosen threshold marked."""
    figure, axis = plt.subplots(figsize=(5, 5))
    axis.plot(curve.recall, curve.precision)
    index = min(round(threshold * len(curve.thresholds)), len(curve.thresholds) - 1)
    axis.scatter([curve.recall[index]], [curve.precision[index]], color="red", zorder=3)
    axis.annotate(f"threshold {threshold:.3f}", (curve.recall[index], curve.precision[index]))
    axis.set(xlabel="recall", ylabel="precision", title="Precision-recall (validation)", xlim=(0, 1), ylim=(0, 1))
    return _save(figure, path)


def plot_examples(
    images: np.ndarray, masks: np.ndarray, probabilities: np.ndarray, threshold: float, path: Path
) -> Path:
    """One row per patch: true colour (B4, B3, B2), reference mask, probability, predicted mask."""
    rows = len(images)
    figure, axes = plt.subplots(rows, 4, figsize=(12, 3 * rows), squeeze=False)
    for row in range(rows):
        panels = (
            (true_colour(images[row]), "true colour", None),
            (masks[row], "reference", "gray"),
            (probabilities[row], "probability", "magma"),
            (probabilities[row] >= threshold, f"prediction ≥ {threshold:.2f}", "gray"),
        )
        for axis, (picture, title, cmap) in zip(axes[row], panels, strict=True):
            axis.imshow(picture, cmap=cmap, vmin=0 if cmap else None, vmax=1 if cmap else None)
            axis.set_title(title)
            axis.axis("off")
    return _save(figure, path)


def _save(figure: plt.Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
