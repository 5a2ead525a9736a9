"""Scoring a model package on a labelled split (``python -m training evaluate``).

The package runs through the engine's own runner, exactly as the plugin runs it (same
normalization from metadata, same backend choice), so the scores describe what users get.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.h5io import read_l4s_image, read_l4s_mask
from landslide_engine.models.backends import create_runner
from landslide_engine.models.catalog import resolve_model
from training.data.dataset import validate_patches
from training.data.patches import Patch, has_split
from training.data.splits import DEFAULT_GROUP_WIDTH, patches_for_split
from training.scores.predictions import EVAL_BATCH_SIZE, score_predictions


def default_split(root: Path) -> str:
    """The labelled TestData when it exists, else validation (official or the seeded hold-out)."""
    return "test" if has_split(root, "test") else "val"


def predict_patches(runner: Any, patches: list[Patch], chunk: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, masks) of ``patches`` in order; the model's declared bands are picked by name."""
    channels = [L4S_BANDS.index(band) for band in runner.metadata.bands]
    probabilities, masks = [], []
    for start in range(0, len(patches), chunk):
        batch = patches[start : start + chunk]
        images = np.stack([read_l4s_image(patch.image)[channels] for patch in batch])
        probabilities.append(runner.predict(images))
        masks.append(np.stack([read_l4s_mask(patch.mask) for patch in batch]))
    return np.concatenate(probabilities), np.concatenate(masks)


def evaluate_model(
    model: str,
    data: Path,
    split: str | None = None,
    threshold: float | None = None,
    backend: str = "auto",
    device: str = "auto",
    seed: int = 0,
    group_width: int = DEFAULT_GROUP_WIDTH,
) -> dict[str, Any]:
    """Scores of ``model`` (a catalog name or a package path) on ``split`` of ``data``.

    ``threshold`` None uses the package's own. The result holds precision, recall, f1 and iou
    (global pixel counts), their per-batch means, the pixel counts, and what ran.
    """
    data = Path(data)
    split = split or default_split(data)
    patches = patches_for_split(data, split, seed=seed, group_width=group_width)
    validate_patches(patches)
    runner = create_runner(resolve_model(model), backend=backend, device=device, batch_size=EVAL_BATCH_SIZE)
    chosen = runner.metadata.threshold if threshold is None else threshold
    if not 0.0 < chosen < 1.0:
        raise InputError(f"--threshold {chosen}: must be between 0 and 1")
    probabilities, masks = predict_patches(runner, patches)
    scores, _ = score_predictions(probabilities, masks, chosen)
    return {
        **scores,
        "model": runner.metadata.name,
        "split": split,
        "patches": len(patches),
        "backend": runner.backend,
        "device": runner.device,
    }
