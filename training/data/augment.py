"""Training-time augmentation of one (C, H, W) patch and its (H, W) mask.

Landslides have no preferred orientation in a north-up patch, so the eight flips/90° rotations
of the square are label-preserving. A light multiplicative brightness jitter and Gaussian noise
on the spectral bands (not on slope or DEM, which are geometry) mimic illumination and sensor
differences between scenes. Each patch draws from its own generator seeded by
(seed, epoch, index), so augmentation is reproducible whatever the DataLoader worker layout.
"""

from __future__ import annotations

import numpy as np

#: Bands 0..11 are Sentinel-2 reflectance; 12 (slope) and 13 (DEM) are left untouched by jitter.
SPECTRAL_BANDS = slice(0, 12)
BRIGHTNESS_RANGE = 0.1
NOISE_FRACTION = 0.02


def augment_patch(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A randomly flipped/rotated, brightness-jittered and noised copy of ``image`` and ``mask``."""
    k = int(rng.integers(4))
    image = np.rot90(image, k, axes=(1, 2))
    mask = np.rot90(mask, k, axes=(0, 1))
    if rng.random() < 0.5:
        image = image[:, :, ::-1]
        mask = mask[:, ::-1]
    image = np.array(image, dtype=np.float32)
    spectral = image[SPECTRAL_BANDS]
    spectral *= np.float32(1.0 + rng.uniform(-BRIGHTNESS_RANGE, BRIGHTNESS_RANGE))
    band_scale = spectral.std(axis=(1, 2), keepdims=True)
    spectral += rng.standard_normal(spectral.shape, dtype=np.float32) * band_scale * np.float32(NOISE_FRACTION)
    return image, np.ascontiguousarray(mask)
