"""The reference grid every input is warped onto.

Landslide4Sense patches are 10 m Sentinel-2 pixels, so by default the grid is
10 m in the CRS of the finest Sentinel-2 band and aligned to its pixel corners:
the 10 m bands are then read without any resampling. The grid covers the
extent common to all inputs (or the given extent, clipped to it), snapped
inwards to whole pixels so that every output pixel has data from every input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from landslide_engine.errors import InputError
from landslide_engine.geodesy import metres_per_degree
from landslide_engine.rasterio_io import OpenRasters, opened

DEFAULT_RESOLUTION_M = 10.0
_SNAP_TOLERANCE_PX = 1e-6


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid: CRS, affine transform and size in pixels."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def resolution(self) -> tuple[float, float]:
        return abs(self.transform.a), abs(self.transform.e)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        left, top = self.transform.c, self.transform.f
        return left, top + self.height * self.transform.e, left + self.width * self.transform.a, top

    def window_transform(self, window: Window) -> Affine:
        return window_transform(window, self.transform)

    def pixel_area_m2(self, row: int) -> float:
        """Ground area of one pixel in row ``row`` (rows differ only in geographic CRSs)."""
        xres, yres = self.resolution
        if self.crs.is_geographic:
            lat = self.transform.f + (row + 0.5) * self.transform.e
            per_lon, per_lat = metres_per_degree(np.array([lat]))
            return float(xres * per_lon[0] * yres * per_lat[0])
        unit = self.crs.linear_units_factor[1] if self.crs.linear_units_factor else 1.0
        return xres * yres * unit * unit


def _parse_crs(crs: str | CRS, what: str) -> CRS:
    if isinstance(crs, CRS):
        return crs
    try:
        return CRS.from_user_input(crs)
    except Exception:
        raise InputError(f"{what} {crs!r} is not a CRS that GDAL knows") from None


def reference_grid(
    s2_paths: Sequence[str | Path],
    other_paths: Sequence[str | Path] = (),
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | CRS | None = None,
    resolution: float | None = None,
    rasters: OpenRasters | None = None,
) -> Grid:
    """The grid for a scene: CRS and alignment of the finest S2 raster, over the common extent.

    ``other_paths`` (DEM, slope) only narrow the extent. ``resolution`` is in
    units of the S2 CRS; the default is 10 m (the native pixel size when the
    S2 CRS is geographic). Raises InputError when the inputs, or the inputs and
    ``extent``, do not overlap. With ``rasters`` the files stay open there for the reads that follow.
    """
    if not s2_paths:
        raise InputError("no Sentinel-2 input given")
    footprints = [_footprint(path, rasters) for path in [*s2_paths, *other_paths]]
    # The finest S2 raster (the first of equals) sets the CRS and the alignment.
    finest = min(footprints[: len(s2_paths)], key=lambda f: abs(f.transform.a))
    crs, align = finest.crs, finest.transform
    if resolution is None:
        resolution = abs(align.a) if crs.is_geographic else DEFAULT_RESOLUTION_M
    if not resolution > 0:
        raise InputError(f"resolution must be positive, got {resolution}")
    left, bottom, right, top = _common_bounds(footprints, crs)
    if extent is not None:
        left, bottom, right, top = _clip_to_extent((left, bottom, right, top), crs, extent, extent_crs)
    return _snap_inwards(crs, align.c, align.f, resolution, (left, bottom, right, top))


class _Footprint(NamedTuple):
    path: str
    crs: CRS
    transform: Affine
    bounds: tuple[float, float, float, float]


def _footprint(path: str | Path, rasters: OpenRasters | None = None) -> _Footprint:
    """CRS, transform and bounds of one input; refused without a CRS or on a rotated grid."""
    with opened(path, "input", rasters) as src:
        if src.crs is None:
            raise InputError(f"{path} has no coordinate reference system")
        if src.transform.b or src.transform.d:
            raise InputError(f"{path} has a rotated grid; warp it to a north-up grid first")
        return _Footprint(str(path), src.crs, src.transform, tuple(src.bounds))


def _common_bounds(footprints: Sequence[_Footprint], crs: CRS) -> tuple[float, float, float, float]:
    """The intersection of all footprints in ``crs``; names the first input that does not overlap the others."""
    left, bottom, right, top = -math.inf, -math.inf, math.inf, math.inf
    for footprint in footprints:
        b = footprint.bounds
        if footprint.crs != crs:
            b = transform_bounds(footprint.crs, crs, *b, densify_pts=21)
        nl, nb, nr, nt = max(left, b[0]), max(bottom, b[1]), min(right, b[2]), min(top, b[3])
        if nl >= nr or nb >= nt:
            raise InputError(f"{footprint.path} does not overlap the other inputs")
        left, bottom, right, top = nl, nb, nr, nt
    return left, bottom, right, top


def _clip_to_extent(
    bounds: tuple[float, float, float, float],
    crs: CRS,
    extent: tuple[float, float, float, float],
    extent_crs: str | CRS | None,
) -> tuple[float, float, float, float]:
    """``bounds`` narrowed to the user's ``extent`` (in ``extent_crs``, default ``crs``)."""
    e = tuple(float(v) for v in extent)
    if len(e) != 4 or e[0] >= e[2] or e[1] >= e[3]:
        raise InputError(f"extent {extent} is not xmin, ymin, xmax, ymax")
    ecrs = _parse_crs(extent_crs, "extent_crs") if extent_crs else crs
    if ecrs != crs:
        e = transform_bounds(ecrs, crs, *e, densify_pts=21)
    left, bottom, right, top = max(bounds[0], e[0]), max(bounds[1], e[1]), min(bounds[2], e[2]), min(bounds[3], e[3])
    if left >= right or bottom >= top:
        raise InputError(f"extent {extent} does not overlap the inputs")
    return left, bottom, right, top


def _snap_inwards(crs: CRS, x0: float, y0: float, res: float, bounds: tuple[float, float, float, float]) -> Grid:
    left, bottom, right, top = bounds
    col0 = math.ceil((left - x0) / res - _SNAP_TOLERANCE_PX)
    col1 = math.floor((right - x0) / res + _SNAP_TOLERANCE_PX)
    row0 = math.ceil((y0 - top) / res - _SNAP_TOLERANCE_PX)
    row1 = math.floor((y0 - bottom) / res + _SNAP_TOLERANCE_PX)
    if col1 <= col0 or row1 <= row0:
        raise InputError(f"the common extent of the inputs is smaller than one {res:g}-unit pixel")
    transform = Affine(res, 0.0, x0 + col0 * res, 0.0, -res, y0 - row0 * res)
    return Grid(crs, transform, col1 - col0, row1 - row0)
