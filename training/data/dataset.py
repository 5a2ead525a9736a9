"""PyTorch dataset over validated Landslide4Sense patches.

Every file is read and checked once up front by :func:`validate_patches` (shape, keys, NaN, mask
values: the checks live in :mod:`landslide_engine.h5io`), so a bad file stops the run before the
first step instead of halfway through an epoch. The same pass accumulates the training split's
band statistics. Items are then read lazily: the full training set is ~3.5 GB as float32.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from landslide_engine.errors import InputError
from landslide_engine.h5io import read_l4s_image, read_l4s_mask
from landslide_engine.models.normalization import Normalization
from training.data.augment import augment_patch
from training.data.normalization import BandStatistics
from training.data.patches import Patch


def validate_patches(patches: Sequence[Patch], statistics: BandStatistics | None = None) -> None:
    """Read every image and mask of ``patches``; InputError names the first bad file.

    When ``statistics`` is given, each image is added to it.
    """
    if not patches:
        raise InputError("empty dataset: no patches to read")
    for patch in patches:
        image = read_l4s_image(patch.image)
        if patch.mask is not None:
            read_l4s_mask(patch.mask)
        if statistics is not None:
            statistics.add(image)


class PatchDataset(Dataset):
    """(image, mask) tensors: image (C, H, W) float32 normalized, mask (1, H, W) float32 in {0, 1}.

    ``augment`` applies :func:`augment_patch` with a generator seeded by (seed, epoch, index);
    call :meth:`set_epoch` at the start of each epoch.
    """

    def __init__(
        self,
        patches: Sequence[Patch],
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        seed: int = 0,
    ) -> None:
        self.patches = list(patches)
        self.normalize = Normalization(mean, std)
        self.augment = augment
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the augmentation draws of ``epoch``."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.patches)

    def read(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw (C, H, W) l4s image and (H, W) uint8 mask of patch ``index``."""
        patch = self.patches[index]
        if patch.mask is None:
            raise InputError(f"{patch.image}: no mask for this patch; training and evaluation need labelled splits")
        return read_l4s_image(patch.image), read_l4s_mask(patch.mask)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, mask = self.read(index)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            image, mask = augment_patch(image, mask, rng)
        image = self.normalize(image)
        return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)), torch.from_numpy(
            mask[None].astype(np.float32)
        )
