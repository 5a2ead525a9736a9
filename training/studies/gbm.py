"""Pixel-wise gradient-boosting baseline (scikit-learn's HistGradientBoosting), an optional extra.

On data as small as the built-in model's, a per-pixel classifier on bands, indices and local
means is a strong competitor; the CNN has to beat it on the same folds to earn its place.
scikit-learn is only needed for this baseline (``pip install scikit-learn``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from landslide_engine.errors import InputError
from training.studies.features import pixel_features

BACKGROUND_PER_LANDSLIDE = 4
MAX_SAMPLES = 300_000
MAX_ITER = 300


@dataclass
class PixelBoosting:
    """A fitted classifier and the feature names it expects."""

    classifier: object
    feature_names: list[str]

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """(N, H, W) landslide probabilities for (N, 14, H, W) l4s images."""
        features, _ = pixel_features(images)
        n, f, h, w = features.shape
        flat = features.transpose(0, 2, 3, 1).reshape(-1, f)
        return self.classifier.predict_proba(flat)[:, 1].reshape(n, h, w).astype(np.float32)


def fit_pixel_boosting(images: np.ndarray, masks: np.ndarray, seed: int = 0) -> PixelBoosting:
    """Fit on all landslide pixels and a seeded sample of background pixels of (N, 14, H, W) images."""
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        raise InputError("the gradient-boosting baseline needs scikit-learn: pip install scikit-learn") from None
    features, names = pixel_features(images)
    flat = features.transpose(0, 2, 3, 1).reshape(-1, features.shape[1])
    labels = masks.reshape(-1).astype(bool)
    rng = np.random.default_rng(seed)
    positives = np.flatnonzero(labels)
    negatives = np.flatnonzero(~labels)
    n_negative = min(len(negatives), max(BACKGROUND_PER_LANDSLIDE * len(positives), 10_000))
    chosen = np.concatenate([positives, rng.choice(negatives, n_negative, replace=False)])
    if len(chosen) > MAX_SAMPLES:
        chosen = rng.choice(chosen, MAX_SAMPLES, replace=False)
    classifier = HistGradientBoostingClassifier(
        max_iter=MAX_ITER, learning_rate=0.08, max_leaf_nodes=31, l2_regularization=1.0, random_state=seed
    )
    classifier.fit(flat[chosen], labels[chosen])
    return PixelBoosting(classifier, names)
