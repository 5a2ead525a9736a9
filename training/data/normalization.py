"""Per-band mean and standard deviation, computed on the training split only.

The statistics travel inside the model package (``ModelMetadata.mean``/``std``); training and every runner
apply them through the one :class:`~landslide_engine.models.normalization.Normalization`, so training and
inference cannot disagree. Sums are kept in
float64 because the DEM band (l4s units up to ~10) squared over millions of pixels loses
precision in float32.
"""

from __future__ import annotations

import numpy as np

from landslide_engine.errors import InputError


class BandStatistics:
    """Streaming per-band sum and sum of squares over (C, H, W) images."""

    def __init__(self, bands: int) -> None:
        self.count = 0
        self.total = np.zeros(bands, dtype=np.float64)
        self.total_squares = np.zeros(bands, dtype=np.float64)

    def add(self, image: np.ndarray) -> None:
        """Add one (C, H, W) image."""
        flat = image.reshape(image.shape[0], -1).astype(np.float64)
        self.count += flat.shape[1]
        self.total += flat.sum(axis=1)
        self.total_squares += np.square(flat).sum(axis=1)

    def mean_std(self, min_std: float = 1e-6) -> tuple[list[float], list[float]]:
        """(mean, std) per band; a constant band gets ``min_std`` so dividing by it stays finite."""
        if self.count == 0:
            raise InputError("no training pixels to compute per-band normalization from")
        mean = self.total / self.count
        variance = np.maximum(self.total_squares / self.count - np.square(mean), 0.0)
        std = np.maximum(np.sqrt(variance), min_std)
        return mean.tolist(), std.tolist()


def identity_normalization(bands: int) -> tuple[list[float], list[float]]:
    """Mean 0 and std 1: the Seed recipe feeds l4s units to the network unchanged."""
    return [0.0] * bands, [1.0] * bands
