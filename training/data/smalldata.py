"""In-memory labelled patches for small-data studies (the built-in model's cross-validation).

The full Landslide4Sense set is streamed from disk by :class:`training.data.dataset.PatchDataset`.
The built-in model is trained on a handful of patches, where reading them once into memory
makes every cross-validation fold an order of magnitude faster than lazy HDF5 reads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landslide_engine.h5io import read_l4s_image, read_l4s_mask
from training.data.dataset import validate_patches
from training.data.patches import discover_patches


@dataclass(frozen=True)
class PatchArrays:
    """Images (N, 14, H, W) float32 in l4s units, masks (N, H, W) uint8 (None if unlabelled), patch IDs."""

    images: np.ndarray
    masks: np.ndarray | None
    ids: list[int]

    def subset(self, indices: list[int] | np.ndarray) -> PatchArrays:
        index = np.asarray(indices, dtype=int)
        return PatchArrays(
            self.images[index], None if self.masks is None else self.masks[index], [self.ids[i] for i in index]
        )


def load_labelled(root: Path) -> PatchArrays:
    """All labelled TrainData patches under ``root``, checked first (InputError names a bad file)."""
    patches = sorted(discover_patches(root, "train"), key=lambda p: p.patch_id)
    validate_patches(patches)
    images = np.stack([read_l4s_image(p.image) for p in patches])
    masks = np.stack([read_l4s_mask(p.mask) for p in patches])
    return PatchArrays(images, masks, [p.patch_id for p in patches])


def load_unlabelled(root: Path) -> np.ndarray:
    """Images of the folders without masks (TestData/img, Unlabelled/img): (N, 14, H, W), maybe N = 0."""
    files = sorted(p for folder in ("TestData", "Unlabelled") for p in (Path(root) / folder / "img").glob("*.h5"))
    if not files:
        return np.zeros((0, 14, 128, 128), dtype=np.float32)
    return np.stack([read_l4s_image(f) for f in files])
