"""GDAL's bilinear warp, computed with numpy for a source coarser than the grid in the grid's CRS.

A coarser source in the grid's CRS with no rotation (a 30 m DEM, 20/60 m bands
on a 10 m grid) is interpolated by :class:`~landslide_engine.warp.GridWarp` itself, separably with
numpy (:func:`separable_bilinear` says when). GDAL warps such a source with its general
bilinear kernel, one pixel at a time with four weights and a validity test
each, because the source has a nodata value; that was the dearest part of
reading a scene's DEM. The numpy path reproduces GDAL's sample positions and
weights, so it gives GDAL's value to within an ulp of float32 (nearly always
the same bits). Output pixels whose 2 x 2 neighbourhood is not wholly valid follow
GDAL's general kernel too: no data where the source pixel under the centre has none,
else the valid neighbours' weights renormalised, with GDAL's rule at the first and
last source rows and columns. A neighbourhood without any data is NaN at once, so a
granule's no-data wedge costs next to nothing. Only pixels whose neighbours are
neither plainly data nor plainly nodata (nodata in some bands only, values within a
hair of the nodata value, NaN that is not the nodata value) take GDAL's own value
from the warped VRT, which then warps just the blocks that hold them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.enums import MaskFlags, Resampling

from landslide_engine.grid import Grid

# Source types whose every value (and nodata value) float32 holds exactly, so a direct read equals the warp.
EXACT_IN_FLOAT32 = frozenset({"uint8", "int8", "uint16", "int16", "float32"})
# Relative distance from the nodata value within which a source value may be nodata to GDAL, which compares
# with a tolerance of a few float32 ulps; the separable path leaves such pixels to GDAL.
NODATA_TOLERANCE = 1e-6
# GDAL finds the source pixel under an output pixel's centre as int(x + 1e-10).
_CENTRE_EPSILON = 1e-10


def separable_bilinear(src, grid: Grid, resampling: Resampling) -> bool:
    """True when :class:`~landslide_engine.warp.GridWarp` may compute the bilinear warp of ``src`` on ``grid``.

    That needs the same CRS and no rotation (source pixel positions are then a separate linear function of
    grid column and row), source pixels at least as large as the grid's (smaller ones make GDAL widen its
    kernel rather than use the 2 x 2 one), validity given by nodata values alone (as in :func:`grid_offset`),
    and a data type that float32 holds exactly: the warper converts source values to its float32 working type
    before interpolating, which rounds float64 or int32 values.
    """
    if resampling != Resampling.bilinear or src.crs != grid.crs:
        return False
    if src.transform.b or src.transform.d or grid.transform.b or grid.transform.d:
        return False
    if abs(src.transform.a) < abs(grid.transform.a) or abs(src.transform.e) < abs(grid.transform.e):
        return False
    if any(set(flags) - {MaskFlags.all_valid, MaskFlags.nodata} for flags in src.mask_flag_enums):
        return False
    return set(src.dtypes) <= EXACT_IN_FLOAT32


def bilinear_axis(
    first: int, count: int, dst_origin: float, dst_step: float, src_origin: float, src_step: float
) -> tuple[np.ndarray, np.ndarray]:
    """Left (or top) source index and its weight for ``count`` pixels from pixel ``first`` of a warp
    destination along one axis.

    GDAL's 4-sample bilinear: ``s`` is the pixel centre in source pixel units, the neighbours are
    ``floor(s - 0.5)`` and the next one, and the first weighs ``1.5 - (s - floor(s - 0.5))``. ``s`` is
    computed in the order GDAL's transformer uses (destination geotransform, then the source's inverse one),
    so that it rounds alike: where the interpolated value is close to a tie between two float32 numbers,
    that rounding decides which one comes out.
    """
    centres = dst_origin + (np.arange(first, first + count) + 0.5) * dst_step
    s = -src_origin / src_step + centres * (1.0 / src_step)
    left = np.floor(s - 0.5)
    return left.astype(np.int64), 1.5 - (s - left)


@dataclass(frozen=True)
class Rim:
    """What :class:`~landslide_engine.warp.GridWarp` needs of one window's source pixels to mend its rim pixels.

    ``data`` (bands, rows, cols) float64, read from source pixel ``origin`` (row, col) of a source of ``size``
    (rows, cols); per pixel read ``valid`` (data in every band) and ``clear`` (data in every band, or exactly
    nodata in every band); per 2 x 2 cell ``full`` (all valid) and ``empty`` (none with data); per output row
    and column the clipped local cell (``cells``), the cell's top-left source pixel unclipped (``corners``), its
    weight, and whether the cell lies on the source (``inside``).
    """

    data: np.ndarray
    valid: np.ndarray
    clear: np.ndarray
    full: np.ndarray
    empty: np.ndarray
    cells: tuple[np.ndarray, np.ndarray]
    corners: tuple[np.ndarray, np.ndarray]
    weights: tuple[np.ndarray, np.ndarray]
    inside: tuple[np.ndarray, np.ndarray]
    origin: tuple[int, int]
    size: tuple[int, int]

    def _neighbours(self, rows: np.ndarray, cols: np.ndarray):
        """Per neighbour of output pixels (``rows``, ``cols``): local row and column, whether it is on the source
        and read here, and its weight; and whether the pixel under the centre has data.

        GDAL's edge rule: left of the first pixel centre (``floor(s - 0.5) == -1``) the first pixel takes the
        whole weight; neighbours off the source are left out.
        """
        (top, left), (wy, wx) = self.corners, self.weights
        iy, ix, ry, rx = top[rows], left[cols], wy[rows], wx[cols]
        # The centre in source pixels (GDAL's x, y) and the source pixel under it, found as int(x + 1e-10).
        sy, sx = iy + 1.5 - ry, ix + 1.5 - rx
        cy, cx = np.floor(sy + _CENTRE_EPSILON).astype(np.int64), np.floor(sx + _CENTRE_EPSILON).astype(np.int64)
        ry, rx = np.where(iy == -1, 1.0, ry), np.where(ix == -1, 1.0, rx)
        iy, ix = np.maximum(iy, 0), np.maximum(ix, 0)
        (r0, c0), (height, width), (h, w) = self.origin, self.size, self.valid.shape
        neighbours = []
        for dy, dx, weight in (
            (0, 0, rx * ry),
            (0, 1, (1.0 - rx) * ry),
            (1, 0, rx * (1.0 - ry)),
            (1, 1, (1.0 - rx) * (1.0 - ry)),
        ):
            y, x = iy + dy, ix + dx
            on = (y < height) & (x < width)
            read = (y - r0 >= 0) & (y - r0 < h) & (x - c0 >= 0) & (x - c0 < w)
            neighbours.append((np.clip(y - r0, 0, h - 1), np.clip(x - c0, 0, w - 1), on, read, weight))
        on = (sy >= 0) & (sx >= 0) & (cy < height) & (cx < width) & (cy - r0 >= 0) & (cy - r0 < h)
        on &= (cx - c0 >= 0) & (cx - c0 < w)
        under = on & self.valid[np.clip(cy - r0, 0, h - 1), np.clip(cx - c0, 0, w - 1)]
        return neighbours, under

    def mend(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which output pixels (``rows``, ``cols``) this window can value as GDAL would, and GDAL's bilinear value
        at those, (bands, n known) float32, from the valid ones of their 4 neighbours.

        A pixel is known when its cell touches the source and each of its neighbours on the source was read here
        and is clear. Its value follows GDAL's general warp kernel: no data where the source pixel under the
        output pixel's centre has none; otherwise, as ``GWKBilinearResample4Sample``, the weights of the valid
        neighbours on the source (upper left, upper right, lower left, lower right, in that order) and their
        weighted values are summed in float64, and the sum is divided by the summed weight unless that is
        exactly 1; below 1e-5 there is no data (NaN). Both come from one look at the neighbours, which is most
        of the cost on a rim.
        """
        (top, left), (height, width) = self.corners, self.size
        iy, ix = top[rows], left[cols]
        known = (iy >= -1) & (iy < height) & (ix >= -1) & (ix < width)
        neighbours, under = self._neighbours(rows, cols)
        for y, x, on, read, _ in neighbours:
            known &= ~on | (read & self.clear[y, x])
        total = np.zeros((len(self.data), int(np.count_nonzero(known))))
        weight = np.zeros(total.shape[1])
        for y, x, on, _, w in neighbours:
            y, x = y[known], x[known]
            use = on[known] & self.valid[y, x]
            weight += np.where(use, w[known], 0.0)
            total += np.where(use, self.data[:, y, x] * w[known], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = np.where(weight == 1.0, total, total / weight)
        values[:, (weight < 1e-5) | ~under[known]] = np.nan
        return known, values.astype(np.float32)
