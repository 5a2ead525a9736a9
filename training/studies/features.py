"""Per-pixel features for the gradient-boosting baseline: bands, spectral indices, local means.

Fresh landslide scars are bare soil and rock on steep slopes where vegetation was: low NDVI,
low NBR, a high bare-soil index, and a neighbourhood that differs from the pixel. A pixel-wise
classifier sees only what these features carry, which is exactly why it is a useful yardstick
for what the CNN learns from spatial context.
"""

from __future__ import annotations

import numpy as np

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS

_EPS = 1e-6
INDEX_NAMES = ("ndvi", "nbr", "bsi")
LOCAL_MEAN_SOURCES = ("B4", "B12", "ndvi", "B13")
LOCAL_MEAN_SIZES = (7, 21)


def reflectance(images: np.ndarray, band: str) -> np.ndarray:
    """Band ``band`` of (N, 14, H, W) l4s images back in L1C digital numbers."""
    i = L4S_BANDS.index(band)
    return images[:, i] * L4S_DIVISORS[i]


def spectral_indices(images: np.ndarray) -> dict[str, np.ndarray]:
    """NDVI, NBR and the bare-soil index of (N, 14, H, W) l4s images, each (N, H, W)."""
    b2, b4, b8, b11, b12 = (reflectance(images, b) for b in ("B2", "B4", "B8", "B11", "B12"))
    return {
        "ndvi": (b8 - b4) / (b8 + b4 + _EPS),
        "nbr": (b8 - b12) / (b8 + b12 + _EPS),
        "bsi": ((b11 + b4) - (b8 + b2)) / ((b11 + b4) + (b8 + b2) + _EPS),
    }


def box_mean(planes: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` x ``size`` window of (N, H, W) planes, edges reflected (summed-area table)."""
    half = size // 2
    padded = np.pad(planes, ((0, 0), (half, half), (half, half)), mode="reflect").astype(np.float64)
    table = np.pad(padded.cumsum(1).cumsum(2), ((0, 0), (1, 0), (1, 0)))
    h, w = planes.shape[1:]
    total = (
        table[:, size : size + h, size : size + w]
        - table[:, :h, size : size + w]
        - table[:, size : size + h, :w]
        + table[:, :h, :w]
    )
    return (total / (size * size)).astype(np.float32)


def pixel_features(images: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """(N, F, H, W) float32 features of (N, 14, H, W) l4s images, and their names."""
    indices = spectral_indices(images)
    planes = [images[:, i] for i in range(images.shape[1])]
    names = list(L4S_BANDS)
    planes += [indices[name] for name in INDEX_NAMES]
    names += list(INDEX_NAMES)
    for source in LOCAL_MEAN_SOURCES:
        plane = indices[source] if source in indices else images[:, L4S_BANDS.index(source)]
        for size in LOCAL_MEAN_SIZES:
            local = box_mean(plane, size)
            planes += [local, plane - local]
            names += [f"{source}_mean{size}", f"{source}_minus_mean{size}"]
    return np.stack(planes, axis=1).astype(np.float32), names
