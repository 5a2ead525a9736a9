"""Cutting a scene into model patches and blending the predictions back.

Patches overlap by ``overlap`` pixels and each prediction is weighted by a
window that falls from 1 in the patch centre towards the patch edges, where a
CNN sees the least context; the mosaic is ``sum(w * p) / sum(w)``, so a model
with constant output gives a constant mosaic with no seams. At the scene edges
the first and last patches reach ``overlap // 2`` pixels beyond the scene into
reflect-padded data, so edge pixels are not on a patch border either. A scene
smaller than one patch becomes one centred, reflect-padded patch.

The scene is processed as rows of patches (:class:`RowBlender`), so only one
patch-high strip of accumulated probabilities is held at a time.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from landslide_engine.errors import InputError

_MIN_WEIGHT = 1e-3


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (may be negative) of the patches covering ``range(length)`` along one axis."""
    if not 0 <= overlap < tile:
        raise InputError(f"overlap must be between 0 and {tile - 1} pixels, got {overlap}")
    margin = overlap // 2
    if length + 2 * margin <= tile:
        return [-((tile - length) // 2)]
    stride = tile - overlap
    last = length + margin - tile
    return [*range(-margin, last, stride), last]


def tile_windows(height: int, width: int, tile: int = 128, overlap: int = 32) -> list[tuple[int, int]]:
    """(row, col) origins of all patches of a ``height`` x ``width`` scene, row by row."""
    return [(r, c) for r in tile_starts(height, tile, overlap) for c in tile_starts(width, tile, overlap)]


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float32 weights: 1 inside, ramping down over the ``overlap`` pixels at each edge."""
    i = np.arange(tile)
    ramp = np.minimum(i + 1, tile - i) / (overlap + 1)
    w1 = np.clip(ramp, _MIN_WEIGHT, 1.0)
    return np.outer(w1, w1).astype(np.float32)


def reflect_pad(data: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    """Pad the last two axes of ``data`` by reflection (repeated for pads larger than the data)."""
    if not (top or bottom or left or right):
        return data
    pads = [(0, 0)] * (data.ndim - 2) + [(top, bottom), (left, right)]
    mode = "reflect" if min(data.shape[-2:]) > 1 else "edge"
    return np.pad(data, pads, mode=mode)


def predict_tta(predict: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Mean prediction over the 8 flips and 90-degree rotations of the (N, C, H, W) batch ``x``."""
    total = np.zeros((x.shape[0], x.shape[2], x.shape[3]), dtype=np.float64)
    for flip in (False, True):
        xf = x[..., ::-1] if flip else x
        for k in range(4):
            probs = predict(np.ascontiguousarray(np.rot90(xf, k, axes=(2, 3))))
            probs = np.rot90(probs, -k, axes=(1, 2))
            total += probs[..., ::-1] if flip else probs
    return (total / 8).astype(np.float32)


class RowBlender:
    """Weighted accumulation of patch predictions for one strip of scene rows at a time.

    Holds ``tile`` rows of the scene width: rows from ``first_row`` on. After
    all patches starting at or above some row are added, :meth:`take_rows`
    hands out the finished rows above it and slides the strip down.
    """

    def __init__(self, width: int, tile: int, overlap: int) -> None:
        self.width = width
        self.tile = tile
        self.weights = blend_weights(tile, overlap)
        self.first_row = 0
        self._sum = np.zeros((tile, width), dtype=np.float32)
        self._weight = np.zeros((tile, width), dtype=np.float32)

    def add(self, probs: np.ndarray, row: int, col: int) -> None:
        """Add one (tile, tile) prediction whose top-left is at scene (row, col), clipped to the scene."""
        if row > self.first_row:
            raise ValueError(f"patch row {row} is below the strip starting at row {self.first_row}")
        r0, c0 = max(row, self.first_row), max(col, 0)
        r1, c1 = row + self.tile, min(col + self.tile, self.width)
        if r0 >= r1 or c0 >= c1:
            return
        pr, pc = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
        br = slice(r0 - self.first_row, r1 - self.first_row)
        w = self.weights[pr, pc]
        self._sum[br, c0:c1] += probs[pr, pc] * w
        self._weight[br, c0:c1] += w

    def take_rows(self, until_row: int) -> np.ndarray:
        """The blended probabilities of rows ``first_row .. until_row - 1``; later rows stay."""
        n = until_row - self.first_row
        if not 0 <= n <= self.tile:
            raise ValueError(f"cannot take {n} rows from a strip of {self.tile}")
        with np.errstate(invalid="ignore", divide="ignore"):
            rows = self._sum[:n] / self._weight[:n]
        for buf in (self._sum, self._weight):
            buf[: self.tile - n] = buf[n:]
            buf[self.tile - n :] = 0
        self.first_row = until_row
        return rows
