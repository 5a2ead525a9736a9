"""Grouped cross-validation of recipes and baselines on a small labelled set (issue: built-in model).

Every variant is scored on the same outer folds, which keep neighbouring patch IDs together,
and every labelled patch is predicted exactly once by a model that never saw it. Scores are the
official Landslide4Sense metric: precision, recall, F1 and IoU of the landslide class from pixel
counts pooled over all outer folds. Anything tuned (early stopping, threshold) is tuned on an
inner hold-out carved out of the outer training folds, never on the patches being scored.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.normalization import Normalization
from landslide_engine.models.package import ModelMetadata, build_model
from landslide_engine.scores import Confusion
from training.data.augment import augment_patch
from training.data.normalization import identity_normalization
from training.data.patches import Patch
from training.data.smalldata import PatchArrays
from training.data.splits import grouped_holdout, grouped_kfold
from training.fitting.loop import EarlyStopping, FitLoop, validate
from training.fitting.losses import CompoundLoss
from training.fitting.recipes import Recipe, get_recipe
from training.studies.int8_scoring import Int8Scores, engine_probabilities

#: Bands that Sentinel-2 L2A and 10-band products also have: no B1 (aerosol), B9 (water vapour), B10 (cirrus).
L2A_COMPATIBLE_BANDS = tuple(b for b in L4S_BANDS if b not in ("B1", "B9", "B10"))


def cpu_has_bf16_matmul() -> bool:
    """True on CPUs with AMX or AVX-512 BF16, where bf16 autocast roughly halves a training step."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


Log = Callable[[str], None]


@dataclass(frozen=True)
class Variant:
    """One way of building a landslide classifier from the labelled patches."""

    name: str
    description: str
    kind: str = "cnn"  # "cnn" or "gbm"
    model: str = "unet_plain_w16"
    recipe: str = "default"
    bands: tuple[str, ...] = L4S_BANDS
    steps: int | None = 300  # None: the recipe's epochs, as the Seed counted them
    batch_size: int = 8
    self_training: bool = False
    spectral_indices: bool = False
    overrides: tuple[tuple[str, object], ...] = ()  # recipe fields changed for this variant
    eval_every: int = 25
    patience: int = 6


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "seed",
            "Seed recipe: 100 epochs, batch 16, BCE(w5)+Dice, no normalization, threshold 0.5",
            recipe="seed",
            steps=None,
            batch_size=16,
        ),
        Variant("default", "our recipe: normalization, augmentation, BCE+Dice, cosine LR, early stop, tuned threshold"),
        Variant(
            "default-l2a-bands",
            "our recipe on 11 bands (no B1, B9, B10): runs on L2A and 10-band products",
            bands=L2A_COMPATIBLE_BANDS,
        ),
        Variant(
            "default-self-training",
            "our recipe, then fine-tuned with pseudo-labels of the unlabelled images",
            self_training=True,
        ),
        Variant(
            "default-indices",
            "our recipe, with NDVI, NBR and a bare-soil index computed inside the network as extra inputs",
            spectral_indices=True,
        ),
        Variant(
            "default-all-patches",
            "our recipe without the inner hold-out: all training patches, BCE(w5)+Dice, fixed threshold 0.5",
            overrides=(("tune_threshold", False), ("pos_weight", 5.0)),
        ),
        Variant(
            "default-all-patches-l2a-bands",
            "as default-all-patches, on 11 bands (no B1, B9, B10)",
            bands=L2A_COMPATIBLE_BANDS,
            overrides=(("tune_threshold", False), ("pos_weight", 5.0)),
        ),
        Variant("gbm", "pixel-wise HistGradientBoosting on bands, NDVI/NBR/BSI and local means", kind="gbm"),
    )
}


def variant_recipe(variant: Variant) -> Recipe:
    """The training recipe of ``variant``, with its overrides applied."""
    return get_recipe(variant.recipe).with_overrides(**dict(variant.overrides))


def variant_metadata(variant: Variant, mean: list[float], std: list[float], **values: Any) -> ModelMetadata:
    """The package metadata of ``variant``'s network (bands, normalisation, spectral-index option), plus ``values``."""
    metadata = ModelMetadata.from_spec(variant.model, bands=list(variant.bands), mean=mean, std=std, **values)
    if not variant.spectral_indices:
        return metadata
    return dataclasses.replace(metadata, architecture_options={**metadata.architecture_options, "spectral_indices": 1})


@dataclass
class FittedCNN:
    """A trained network with what is needed to apply it: bands, normalization, threshold."""

    model: torch.nn.Module
    bands: tuple[str, ...]
    mean: np.ndarray
    std: np.ndarray
    threshold: float
    best_step: int
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def normalization(self) -> Normalization:
        """The network's input normalisation."""
        return Normalization(self.mean, self.std)

    def predict_proba(self, images: np.ndarray, batch: int = 16) -> np.ndarray:
        """(N, H, W) probabilities of (N, 14, H, W) l4s images."""
        index = [L4S_BANDS.index(b) for b in self.bands]
        self.model.eval()
        out = []
        with torch.no_grad():
            for start in range(0, len(images), batch):
                x = self.normalization(images[start : start + batch, index])
                out.append(torch.sigmoid(self.model(torch.from_numpy(x.astype(np.float32))))[:, 0].numpy())
        return np.concatenate(out) if out else np.zeros((0, *images.shape[2:]), np.float32)


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled mini-batches of indices, epoch after epoch, as a DataLoader would give."""
    while True:
        order = rng.permutation(n)
        for start in range(0, n, batch_size):
            yield order[start : start + batch_size]


def fit_cnn(
    train: PatchArrays,
    variant: Variant,
    seed: int,
    inner_val: PatchArrays | None = None,
    init: FittedCNN | None = None,
    steps: int | None = None,
) -> FittedCNN:
    """Train ``variant`` on ``train``; early-stop and tune the threshold on ``inner_val`` when the recipe says so.

    The loop's parts are :mod:`training.fitting.loop`'s, as in ``train``; only the data (patches in memory, a
    learning-rate step per batch) and the rhythm (a validation every ``variant.eval_every`` steps) differ.
    """
    recipe = variant_recipe(variant)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    band_index = [L4S_BANDS.index(b) for b in variant.bands]
    mean, std = _normalization(train, variant, recipe.normalize, init)
    model = copy.deepcopy(init.model) if init is not None else build_model(variant_metadata(variant, mean, std))
    optimizer = torch.optim.Adam(model.parameters(), lr=recipe.learning_rate)
    steps_per_epoch = math.ceil(len(train.images) / variant.batch_size)
    total = steps or variant.steps or recipe.epochs * steps_per_epoch
    scheduler = _scheduler(optimizer, variant, recipe, steps_per_epoch, total)
    loss_fn = CompoundLoss(recipe.loss, recipe.pos_weight, recipe.bce_weight)
    # bf16 measured here: a w16 step of batch 8 took 1.5 s in fp32, 0.74 s in bf16
    loop = FitLoop(model, optimizer, loss_fn, torch.device("cpu"), bf16=cpu_has_bf16_matmul())
    stopping = EarlyStopping(variant.patience)
    validates = recipe.tune_threshold and inner_val is not None
    fitted = FittedCNN(model, variant.bands, np.float32(mean), np.float32(std), recipe.threshold, total)
    batches = _batches(len(train.images), variant.batch_size, rng)
    for step in range(1, total + 1):
        images, masks = _augmented(train, next(batches), recipe.augment, rng)
        x = fitted.normalization(images[:, band_index]).astype(np.float32)
        loss = loop.step(torch.from_numpy(x), torch.from_numpy(masks[:, None].astype(np.float32)))
        scheduler.step()
        if validates and (step % variant.eval_every == 0 or step == total):
            validation = validate(fitted.predict_proba(inner_val.images), inner_val.masks, recipe.threshold, True)
            fitted.history.append(
                {"step": step, "loss": loss.item(), "val_f1": validation.best_f1, "threshold": validation.threshold}
            )
            if stopping.update(validation, step, model):
                break
    if stopping.best_state is not None:
        model.load_state_dict(stopping.best_state)
        fitted.threshold, fitted.best_step = stopping.best_threshold, stopping.best_round
    return fitted


def _normalization(
    train: PatchArrays, variant: Variant, normalize: bool, init: FittedCNN | None
) -> tuple[list[float], list[float]]:
    """Per-band mean and std of ``variant``'s bands: ``init``'s, the training patches', or identity."""
    if init is not None:
        return init.mean.tolist(), init.std.tolist()
    if not normalize:
        return identity_normalization(len(variant.bands))
    selected = train.images[:, [L4S_BANDS.index(b) for b in variant.bands]].astype(np.float64)
    return selected.mean(axis=(0, 2, 3)).tolist(), np.maximum(selected.std(axis=(0, 2, 3)), 1e-6).tolist()


def _scheduler(
    optimizer: torch.optim.Optimizer, variant: Variant, recipe: Recipe, steps_per_epoch: int, total: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Stepped once per batch: the Seed's step schedule counted in epochs, else cosine over ``total`` steps."""
    if variant.steps is None:
        return torch.optim.lr_scheduler.StepLR(optimizer, recipe.step_size * steps_per_epoch, recipe.step_gamma)
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, total)


def _augmented(
    train: PatchArrays, index: np.ndarray, augment: bool, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """The images and masks of ``index``, each pair augmented when the recipe says so."""
    images, masks = train.images[index], train.masks[index]
    if not augment:
        return images, masks
    pairs = [augment_patch(img, msk, rng) for img, msk in zip(images, masks, strict=True)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])


def self_train(
    fitted: FittedCNN,
    train: PatchArrays,
    unlabelled: np.ndarray,
    variant: Variant,
    seed: int,
    inner_val: PatchArrays | None,
) -> FittedCNN:
    """Fine-tune ``fitted`` on ``train`` plus the unlabelled images with its own thresholded predictions."""
    if len(unlabelled) == 0:
        return fitted
    pseudo = (fitted.predict_proba(unlabelled) >= fitted.threshold).astype(np.uint8)
    combined = PatchArrays(
        np.concatenate([train.images, unlabelled]),
        np.concatenate([train.masks, pseudo]),
        [*train.ids, *([-1] * len(unlabelled))],
    )
    return fit_cnn(combined, variant, seed + 1, inner_val, init=fitted, steps=max(1, (variant.steps or 100) // 2))


def fill_with_mean(images: np.ndarray, train_images: np.ndarray, bands: tuple[str, ...]) -> np.ndarray:
    """A copy of ``images`` with ``bands`` set to their mean over ``train_images`` (l4s units)."""
    filled = images.copy()
    for band in bands:
        i = L4S_BANDS.index(band)
        filled[:, i] = train_images[:, i].mean()
    return filled


def _as_patches(ids: list[int]) -> list[Patch]:
    return [Patch(patch_id=i, image=Path(f"image_{i}.h5"), mask=None) for i in ids]


def fold_indices(ids: list[int], folds: int, seed: int, group_width: int) -> list[tuple[list[int], list[int]]]:
    """(train, test) index lists of a grouped k-fold over patch ``ids``."""
    position = {pid: i for i, pid in enumerate(ids)}
    return [
        ([position[p.patch_id] for p in train], [position[p.patch_id] for p in test])
        for train, test in grouped_kfold(_as_patches(ids), folds, seed, group_width)
    ]


def inner_split(train: PatchArrays, seed: int, group_width: int) -> tuple[PatchArrays, PatchArrays]:
    """An inner (fit, hold-out) split of whole ID groups for early stopping and threshold tuning."""
    fit, hold = grouped_holdout(_as_patches(train.ids), 0.2, seed, group_width)
    position = {pid: i for i, pid in enumerate(train.ids)}
    return train.subset([position[p.patch_id] for p in fit]), train.subset([position[p.patch_id] for p in hold])


def fit_variant(
    variant: Variant, train: PatchArrays, seed: int, group_width: int, unlabelled: np.ndarray
) -> tuple[Callable[[np.ndarray], np.ndarray], float, dict]:
    """Fit ``variant``; returns (predict_proba, threshold, details)."""
    recipe_tunes = variant.kind == "gbm" or variant_recipe(variant).tune_threshold
    fit, hold = inner_split(train, seed, group_width) if recipe_tunes else (train, None)
    if variant.kind == "gbm":
        from training.studies.gbm import fit_pixel_boosting

        booster = fit_pixel_boosting(fit.images, fit.masks, seed)
        threshold = validate(booster.predict_proba(hold.images), hold.masks, 0.5, True).threshold
        return booster.predict_proba, threshold, {}
    fitted = fit_cnn(fit, variant, seed, hold)
    if variant.self_training:
        fitted = self_train(fitted, fit, unlabelled, variant, seed, hold)
    return fitted.predict_proba, fitted.threshold, {"best_step": fitted.best_step, "fitted": fitted}


def cross_validate(
    data: PatchArrays,
    variants: list[Variant],
    folds: int = 5,
    group_width: int = 16,
    seed: int = 0,
    unlabelled: np.ndarray | None = None,
    log: Log = print,
    fill_bands: tuple[str, ...] = (),
    int8: bool = False,
) -> list[dict]:
    """Score every variant on the same grouped outer folds; one result row per variant.

    With ``fill_bands``, each fold's model is scored a second time with those bands replaced by
    their training-fold mean, which is what the engine does for a band the input lacks
    (``fillable_bands``); ``f1_with_filled_bands`` is the cost of running on such products.
    With ``int8``, each fold's network (CNN variants) is also exported, quantized and run as the engine
    runs an fp32 and an int8 package (:mod:`training.studies.int8_scoring`); the row's ``int8`` holds both
    pooled F1 and the per-fold F1, the cost of shipping int8, and with ``fill_bands`` too
    ``int8_with_filled_bands`` the same on the filled test patches.
    """
    if data.masks is None or len(data.images) < folds:
        raise InputError(f"cross-validation needs at least {folds} labelled patches, found {len(data.images)}")
    unlabelled = np.zeros((0, *data.images.shape[1:]), np.float32) if unlabelled is None else unlabelled
    splits = fold_indices(data.ids, folds, seed, group_width)
    rows = []
    for variant in variants:
        started = time.perf_counter()
        pooled, pooled_filled, fold_f1, thresholds, best_steps = Confusion(), Confusion(), [], [], []
        int8_scores = _int8_score_sets(fill_bands) if int8 and variant.kind == "cnn" else {}
        for k, (train_index, test_index) in enumerate(splits):
            train, test = data.subset(train_index), data.subset(test_index)
            predict, threshold, details = fit_variant(variant, train, seed + k, group_width, unlabelled)
            confusion = Confusion.from_masks(predict(test.images) >= threshold, test.masks)
            pooled = pooled + confusion
            if fill_bands:
                filled_images = fill_with_mean(test.images, train.images, fill_bands)
                pooled_filled = pooled_filled + Confusion.from_masks(predict(filled_images) >= threshold, test.masks)
            fold_f1.append(confusion.scores()["f1"])
            thresholds.append(threshold)
            if "best_step" in details:
                best_steps.append(details["best_step"])
            log(f"{variant.name} fold {k}: test IDs {test.ids} F1 {fold_f1[-1]:.3f} threshold {threshold:.2f}")
            for key, kept in int8_scores.items():
                images = test.images if key == "int8" else fill_with_mean(test.images, train.images, fill_bands)
                scored = PatchArrays(images, test.masks, test.ids)
                _score_int8_fold(
                    kept, details["fitted"], variant, train, scored, f"{variant.name} fold {k} ({key})", log
                )
        scores = pooled.scores()
        if fill_bands:
            scores["f1_with_filled_bands"] = pooled_filled.scores()["f1"]
            scores["filled_bands"] = list(fill_bands)
        scores.update({key: kept.summary() for key, kept in int8_scores.items()})
        rows.append(
            {
                "variant": variant.name,
                "description": variant.description,
                **scores,
                "fold_f1_mean": float(np.mean(fold_f1)),
                "fold_f1_std": float(np.std(fold_f1)),
                "thresholds": thresholds,
                "best_steps": best_steps,
                "seconds": round(time.perf_counter() - started, 1),
                "confusion": asdict(pooled),
                "config": {k: v for k, v in asdict(variant).items() if k not in ("name", "description")},
            }
        )
        log(f"{variant.name}: pooled F1 {scores['f1']:.4f} (folds {np.mean(fold_f1):.3f} ± {np.std(fold_f1):.3f})")
    return rows


def _int8_score_sets(fill_bands: tuple[str, ...]) -> dict[str, Int8Scores]:
    """Empty int8 scores: of the test patches as they are, and with ``fill_bands`` filled when there are some."""
    return {"int8": Int8Scores(), **({"int8_with_filled_bands": Int8Scores()} if fill_bands else {})}


def _score_int8_fold(
    scores: Int8Scores, fitted: FittedCNN, variant: Variant, train: PatchArrays, test: PatchArrays, what: str, log: Log
) -> None:
    """Add one fold's fp32 and int8 engine scores to ``scores`` and log them as ``what``."""
    metadata = variant_metadata(
        variant, [float(v) for v in fitted.mean], [float(v) for v in fitted.std], threshold=fitted.threshold
    )
    fp32, int8 = engine_probabilities(fitted.model, metadata, train, test)
    scores.add_fold(fp32, int8, fitted.threshold, test.masks)
    f1_fp32, f1_int8 = scores.fold_fp32[-1].scores()["f1"], scores.fold_int8[-1].scores()["f1"]
    log(f"{what}: engine fp32 F1 {f1_fp32:.3f}, int8 F1 {f1_int8:.3f}")


def write_crossval_table(rows: list[dict], out: Path, header: str) -> tuple[Path, Path]:
    """``crossval.json`` and ``crossval.md`` (a Markdown table, best pooled F1 first)."""
    out.mkdir(parents=True, exist_ok=True)
    json_path = out / "crossval.json"
    json_path.write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        header,
        "",
        "| variant | pooled F1 | precision | recall | IoU | fold F1 (mean ± sd) | time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: -r["f1"]):
        lines.append(
            f"| {r['variant']} | {r['f1']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} | {r['iou']:.3f} | "
            f"{r['fold_f1_mean']:.3f} ± {r['fold_f1_std']:.3f} | {r['seconds']:.0f} |"
        )
    lines += ["", *[f"- **{r['variant']}**: {r['description']}" for r in rows]]
    lines += _filled_band_lines(rows)
    lines += _int8_lines(rows)
    md_path = out / "crossval.md"
    md_path.write_text("\n".join(lines) + "\n")
    return json_path, md_path


def _filled_band_lines(rows: list[dict]) -> list[str]:
    """The table of rows scored a second time with bands filled (``--fill-bands``): the cost the model card and the
    engine's L2A warning quote, so it must be in the report, not only in the JSON."""
    scored = [r for r in rows if "f1_with_filled_bands" in r]
    if not scored:
        return []
    lines = [
        "",
        "The same fold models scored again with bands replaced by their training mean (as the engine fills them):",
        "",
        "| variant | bands filled | pooled F1 | pooled F1 with bands filled |",
        "|---|---|---|---|",
    ]
    for r in scored:
        filled = ", ".join(r["filled_bands"])
        lines.append(f"| {r['variant']} | {filled} | {r['f1']:.3f} | {r['f1_with_filled_bands']:.3f} |")
    return lines


def _int8_lines(rows: list[dict]) -> list[str]:
    """The fp32 against int8 table of the rows scored with ``int8`` (none when no row was)."""
    scored = [(r, key) for r in rows for key in ("int8", "int8_with_filled_bands") if key in r]
    if not scored:
        return []
    lines = [
        "",
        "fp32 and int8 packages run by the engine (ONNX Runtime, CPU); int8 quantized as `quantize` writes it,",
        "calibrated on each fold's training patches:",
        "",
        "| variant | pooled F1 fp32 | pooled F1 int8 | difference | int8 mask vs fp32 mask (F1) | mean abs prob diff | "
        "fold F1 fp32 | fold F1 int8 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r, key in scored:
        q = r[key]
        label = r["variant"] + (f" ({','.join(r['filled_bands'])} filled)" if key != "int8" else "")
        folds_fp32 = " ".join(f"{f:.3f}" for f in q["fold_f1_fp32"])
        folds_int8 = " ".join(f"{f:.3f}" for f in q["fold_f1_int8"])
        lines.append(
            f"| {label} | {q['f1_fp32']:.4f} | {q['f1_int8']:.4f} | {q['f1_int8'] - q['f1_fp32']:+.4f} | "
            f"{q['mask_f1_int8_vs_fp32']:.4f} | {q['mean_abs_prob_diff']:.2e} | {folds_fp32} | {folds_int8} |"
        )
    return lines
