"""Cutting a scene into model patches and blending the predictions back.

Patches overlap by ``overlap`` pixels and each prediction is weighted by a
window that falls from 1 in the patch centre towards the patch edges, where a
CNN sees the least context; the mosaic is ``sum(w * p) / sum(w)``, so a model
with constant output gives a constant mosaic with no seams. At the scene edges
the first and last patches reach ``overlap // 2`` pixels beyond the scene into
reflect-padded data, so edge pixels are not on a patch border either. A scene
smaller than one patch becomes one centred, reflect-padded patch.

The scene is processed in column bands of a fixed number of patches
(:func:`column_bands`), each from the top of the scene to the bottom as rows of
patches (:class:`RowBlender`), so only one patch-high strip of one band is held
at a time, whatever the scene's width and height. Each band owns the output
columns between two output block boundaries; what its patches add beyond them
is carried over to the next band (:meth:`RowBlender.take_rows`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from landslide_engine.parameters import check_overlap

_MIN_WEIGHT = 1e-3


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets (may be negative) of the patches covering ``range(length)`` along one axis."""
    check_overlap(overlap, tile)
    margin = overlap // 2
    if length + 2 * margin <= tile:
        return [-((tile - length) // 2)]
    stride = tile - overlap
    last = length + margin - tile
    return [*range(-margin, last, stride), last]


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
    if min(data.shape[-2:]) > 1:
        return np.pad(data, pads, mode="reflect")
    return np.pad(data, pads, mode="edge")


def reflect_fill(data: np.ndarray, top: int, bottom: int, left: int, right: int) -> None:
    """Fill the outer ``top``/``bottom`` rows and ``left``/``right`` columns of ``data``'s last two axes in place,
    by reflecting what lies inside them: the same values as :func:`reflect_pad` of the inside, without a copy.

    The scene pipeline reads each chunk straight into an array of the padded size, so chunks at the scene
    edges (all of them in a scene one band wide) are not copied once more just to be padded.
    """
    height, width = data.shape[-2] - top - bottom, data.shape[-1] - left - right
    if not (top or bottom or left or right):
        return
    if max(top, bottom) >= height or max(left, right) >= width or min(height, width) <= 1:  # repeats, or edge mode
        data[...] = reflect_pad(data[..., top : top + height, left : left + width].copy(), top, bottom, left, right)
        return
    # Rows first, over the inside columns, then columns over every row: the order np.pad fills corners in.
    cols = slice(left, left + width)
    if top:
        data[..., :top, cols] = data[..., top + 1 : 2 * top + 1, cols][..., ::-1, :]
    end = top + height
    if bottom:
        data[..., end:, cols] = data[..., end - 1 - bottom : end - 1, cols][..., ::-1, :]
    if left:
        data[..., :left] = data[..., left + 1 : 2 * left + 1][..., ::-1]
    end = left + width
    if right:
        data[..., end:] = data[..., end - 1 - right : end - 1][..., ::-1]


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


@dataclass(frozen=True)
class ColumnBand:
    """Patch columns processed together from the top of the scene to the bottom.

    ``cols`` are the patches' first columns; the band writes output columns ``own_start .. own_stop - 1``,
    and its patches reach up to column ``reach - 1`` (clipped to the scene): columns from ``own_stop`` to
    ``reach`` also get contributions from the next band.
    """

    cols: tuple[int, ...]
    own_start: int
    own_stop: int
    reach: int


def column_bands(width: int, tile: int, overlap: int, patches: int, block: int) -> list[ColumnBand]:
    """The scene's patch columns in bands of ``patches`` patches (the last band takes the rest), with output
    boundaries on multiples of ``block`` (the output rasters' block width, so every write fills whole blocks).

    Bands are made at least wide enough that only neighbouring bands share output columns.
    """
    cols = tile_starts(width, tile, overlap)
    patches = max(patches, math.ceil((block + tile) / (tile - overlap)) + 1)
    groups = [tuple(cols[i : i + patches]) for i in range(0, len(cols), patches)] if block < width else [tuple(cols)]
    starts = [0] + [group[0] // block * block for group in groups[1:]]
    stops = [*starts[1:], width]
    return [
        ColumnBand(group, own_start, own_stop, min(width, group[-1] + tile))
        for group, own_start, own_stop in zip(groups, starts, stops, strict=True)
    ]


class RowBlender:
    """Weighted accumulation of patch predictions for one strip of rows of one column band at a time.

    Holds ``tile`` rows of columns ``origin .. origin + width - 1``: rows from ``first_row`` on. After all
    patches starting at or above some row are added, :meth:`take_rows` hands out the finished rows above it
    and slides the strip down.
    """

    def __init__(self, width: int, tile: int, overlap: int, origin: int = 0) -> None:
        self.width = width
        self.origin = origin
        self.tile = tile
        self.weights = blend_weights(tile, overlap)
        # Without overlap every weight is 1: p * 1 is added as p, the same values without a product's pass.
        self._unit_weights = bool((self.weights == 1).all())
        self.first_row = 0
        self._sum = np.zeros((tile, width), dtype=np.float32)
        self._weight = np.zeros((tile, width), dtype=np.float32)

    def add(self, probs: np.ndarray, row: int, col: int) -> None:
        """Add one (tile, tile) prediction whose top-left is at scene (row, col), clipped to the strip."""
        if row > self.first_row:
            raise ValueError(f"patch row {row} is below the strip starting at row {self.first_row}")
        r0, c0 = max(row, self.first_row), max(col, self.origin)
        r1, c1 = row + self.tile, min(col + self.tile, self.origin + self.width)
        if r0 >= r1 or c0 >= c1:
            return
        pr, pc = slice(r0 - row, r1 - row), slice(c0 - col, c1 - col)
        br, bc = slice(r0 - self.first_row, r1 - self.first_row), slice(c0 - self.origin, c1 - self.origin)
        w = self.weights[pr, pc]
        self._sum[br, bc] += probs[pr, pc] if self._unit_weights else probs[pr, pc] * w
        self._weight[br, bc] += w  # an array: numpy adds it to a slice faster than the scalar 1

    def take_rows(
        self,
        until_row: int,
        carried: tuple[np.ndarray, np.ndarray] | None = None,
        keep: int | None = None,
        out: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """The blended probabilities of rows ``first_row .. until_row - 1`` (into ``out`` if given); later rows stay.

        ``carried`` (weighted sums and weights of the same rows from the band before, for this band's first
        columns) is added first. Only the first ``keep`` columns (default all) are blended; the weighted sums
        and weights of the columns after them are returned for the next band.
        """
        n = until_row - self.first_row
        if not 0 <= n <= self.tile:
            raise ValueError(f"cannot take {n} rows from a strip of {self.tile}")
        # The rows taken are summed and divided where they lie: they are dropped from the strip right after.
        total, weight = self._sum[:n], self._weight[:n]
        if carried is not None:
            carried_sum, carried_weight = carried
            k = carried_sum.shape[1]
            total[:, :k] += carried_sum
            weight[:, :k] += carried_weight
        keep = self.width if keep is None else keep
        rows = np.empty((n, keep), np.float32) if out is None else out
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(total[:, :keep], weight[:, :keep], out=rows)
        extra = (total[:, keep:].copy(), weight[:, keep:].copy())
        for buf in (self._sum, self._weight):
            buf[: self.tile - n] = buf[n:]
            buf[self.tile - n :] = 0
        self.first_row = until_row
        return rows, extra
