"""The one normalisation of model inputs: ``(x - mean) / std`` per band.

The statistics travel inside each model package (``ModelMetadata.mean``/``std``). The runners, int8
calibration and training all normalise through :class:`Normalization`, so training and inference cannot
disagree. The statistics are float32 and so is the arithmetic on float32 input, as the exported graphs expect.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class Normalization:
    """Per-band ``(x - mean) / std`` over the channel axis of (C, H, W) images or (N, C, H, W) batches."""

    def __init__(self, mean: Sequence[float] | np.ndarray, std: Sequence[float] | np.ndarray) -> None:
        self.mean = np.asarray(mean, dtype=np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, dtype=np.float32).reshape(-1, 1, 1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """``x`` normalised into a new array: one copy (the subtraction), then the division in place."""
        out = np.subtract(x, self.mean)
        np.divide(out, self.std, out=out)
        return out
