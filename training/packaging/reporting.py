"""The files a finished run leaves behind.

- ``<model>.pt`` and ``<model>.onnx``: model packages whose metadata carries the bands, the
  training split's normalization, the threshold, the training data and the metrics;
- ``metrics.json`` / ``metrics.csv``: validation (and labelled test) scores under both protocols;
- ``history.csv``: one row per epoch;
- ``plots/learning_curves.png``, ``plots/pr_curve.png``, ``plots/examples.png``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from landslide_engine.bands import L4S_BANDS
from landslide_engine.models.package import ModelMetadata, export_onnx, save_torch_package
from training.data.dataset import PatchDataset
from training.data.splits import DataSplits
from training.fitting.recipes import Recipe
from training.scores.metrics import SCORE_NAMES
from training.scores.plots import plot_examples, plot_learning_curves, plot_pr_curve
from training.scores.predictions import predict_dataset, score_predictions

EXAMPLE_COUNT = 4


@dataclass(frozen=True)
class RunOutputs:
    packages: list[Path]
    metrics: dict[str, Any]
    metadata: ModelMetadata


def write_run_outputs(
    *,
    model: nn.Module,
    model_name: str,
    recipe: Recipe,
    splits: DataSplits,
    mean: list[float],
    std: list[float],
    history: Sequence[dict[str, float]],
    best_epoch: int,
    out: Path,
    device: torch.device,
    write_onnx: bool,
    training_data: dict[str, Any],
    progress: bool = True,
) -> RunOutputs:
    """Score the final ``model`` (tuning the threshold on validation if the recipe says so) and write everything."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model = model.to(device).eval()
    val_set = PatchDataset(splits.val, mean, std)
    probabilities, masks, _ = predict_dataset(model, val_set, device, progress=progress)
    _, curve = score_predictions(probabilities, masks, recipe.threshold)
    threshold = curve.best_threshold()[0] if recipe.tune_threshold else recipe.threshold
    val_scores, _ = score_predictions(probabilities, masks, threshold)
    split_scores = {"val": val_scores}
    if splits.test:
        test_probabilities, test_masks, _ = predict_dataset(model, PatchDataset(splits.test, mean, std), device)
        split_scores["test"] = score_predictions(test_probabilities, test_masks, threshold)[0]

    metrics: dict[str, Any] = {
        "model": model_name,
        "recipe": recipe.name,
        "threshold": threshold,
        "best_epoch": best_epoch,
        "epochs_trained": len(history),
        **split_scores,
    }
    metadata = ModelMetadata.from_spec(
        model_name,
        bands=list(L4S_BANDS),
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        threshold=threshold,
        training_data={**training_data, "recipe": recipe.to_dict()},
        metrics=metrics,
    )
    model = model.cpu()
    packages = [save_torch_package(model, metadata, out / f"{model_name}.pt")]
    if write_onnx:
        packages.append(export_onnx(model, metadata, out / f"{model_name}.onnx", opset=17, check=True))

    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_metrics_csv(split_scores, out / "metrics.csv")
    _write_rows(history, out / "history.csv")
    plots = out / "plots"
    if history:
        plot_learning_curves(history, plots / "learning_curves.png")
    plot_pr_curve(curve, threshold, plots / "pr_curve.png")
    examples = np.argsort([-int(mask.sum()) for mask in masks], kind="stable")[:EXAMPLE_COUNT]
    plot_examples(
        np.stack([val_set.read(int(i))[0] for i in examples]),
        masks[examples],
        probabilities[examples],
        threshold,
        plots / "examples.png",
    )
    return RunOutputs(packages, metrics, metadata)


def write_metrics_csv(split_scores: dict[str, dict[str, Any]], path: Path) -> Path:
    """One row per split: threshold, global scores, the Seed's per-batch means, pixel counts."""
    columns = [
        "split",
        "threshold",
        *SCORE_NAMES,
        *(f"batch_mean_{name}" for name in SCORE_NAMES),
        "tp",
        "fp",
        "fn",
        "tn",
    ]
    rows = [{"split": split, **{key: scores[key] for key in columns[1:]}} for split, scores in split_scores.items()]
    return _write_rows(rows, path, columns)


def _write_rows(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str] | None = None) -> Path:
    columns = list(columns or (rows[0].keys() if rows else []))
    with Path(path).open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return Path(path)
