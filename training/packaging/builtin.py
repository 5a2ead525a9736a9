"""Train the built-in model from a finished cross-validation, and write its package.

The cross-validation (``python -m training crossval``) decides the recipe, how long to train
(the median early-stopping step over the folds) and the threshold (the median of the thresholds
tuned on the inner hold-outs). The final model is then trained once on every labelled patch with
those settings, so no patch is wasted on a hold-out, and exported as one ONNX package whose
metadata carries the cross-validated scores, not scores on data it was trained on.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path

from landslide_engine.errors import InputError
from landslide_engine.models.package import build_model, export_onnx
from training.data.smalldata import load_labelled, load_unlabelled
from training.studies.crossval import VARIANTS, FittedCNN, fit_cnn, variant_metadata

MAX_PACKAGE_BYTES = 10 * 1024 * 1024
#: Atmospheric bands that L2A (B10) and 10-band products (B1, B9, B10) lack; the engine fills them with the
#: training mean so the built-in model runs on those products too, at the cost ``crossval --fill-bands`` measures.
FILLABLE = ("B1", "B9", "B10")


def crossval_row(crossval_json: Path, variant: str) -> dict:
    """The result row of ``variant`` in a ``crossval.json``."""
    try:
        rows = json.loads(Path(crossval_json).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read cross-validation results {crossval_json}: {exc}") from None
    for row in rows:
        if row["variant"] == variant:
            return row
    raise InputError(f"{crossval_json}: no results for variant {variant!r}; run crossval with it first")


def train_builtin(
    data: Path,
    crossval_json: Path,
    variant_name: str,
    out: Path,
    name: str = "builtin",
    seed: int = 0,
    min_slope_deg: int = 0,
) -> Path:
    """Train ``variant_name`` on all labelled patches under ``data`` and export ``out`` (.onnx).

    ``min_slope_deg`` adds the :class:`~landslide_engine.models.slope_prior.SlopePrior` to the exported
    network (it has no weights, so training is unchanged).
    """
    variant = VARIANTS.get(variant_name)
    if variant is None or variant.kind != "cnn":
        raise InputError(f"--variant {variant_name!r}: the built-in model must be one of the CNN variants")
    row = crossval_row(crossval_json, variant_name)
    steps = int(statistics.median(row["best_steps"])) if row["best_steps"] else variant.steps
    threshold = float(statistics.median(row["thresholds"]))
    labelled = load_labelled(data)
    fitted: FittedCNN = fit_cnn(labelled, variant, seed, steps=steps)
    fitted.threshold = threshold
    if variant.self_training:
        from training.studies.crossval import self_train

        fitted = self_train(fitted, labelled, load_unlabelled(data), variant, seed, None)
        fitted.threshold = threshold
    metadata = variant_metadata(
        variant,
        [float(v) for v in fitted.mean],
        [float(v) for v in fitted.std],
        name=name,
        threshold=threshold,
        fillable_bands={b: float(fitted.mean[variant.bands.index(b)]) for b in FILLABLE if b in variant.bands},
        training_data={
            "dataset": "Landslide4Sense (Ghorbanzadeh et al. 2022), TrainData patches",
            "patch_ids": labelled.ids,
            "n_patches": len(labelled.ids),
            "variant": variant_name,
            "description": variant.description,
            "steps": steps,
            "batch_size": variant.batch_size,
            "seed": seed,
        },
        metrics={
            "protocol": "grouped 5-fold cross-validation, pixel counts pooled over folds (official L4S metric)",
            **{k: round(row[k], 4) for k in ("f1", "precision", "recall", "iou")},
            "fold_f1_mean": round(row["fold_f1_mean"], 4),
            "fold_f1_std": round(row["fold_f1_std"], 4),
        },
    )
    if min_slope_deg:
        options = {**metadata.architecture_options, "min_slope_deg": int(min_slope_deg)}
        metadata = dataclasses.replace(metadata, architecture_options=options)
    model = build_model(metadata)
    # The slope prior has no weights: the trained network goes inside it unchanged.
    trained = model.network if min_slope_deg else model
    trained.load_state_dict(fitted.model.state_dict())
    path = export_onnx(model, metadata, out)
    if path.stat().st_size > MAX_PACKAGE_BYTES:
        raise InputError(f"{path}: {path.stat().st_size / 2**20:.1f} MiB is over the 10 MiB budget of a built-in model")
    return path
