"""Reading any raster band onto a window of the reference grid.

:class:`GridWarp` opens one GDAL warped VRT per source that spans the whole
reference grid (plus a small margin for slope halos) and reads windows from
it. Building a warped VRT costs far more than reading a patch strip from one,
so it is built once per source, not once per window; only the source pixels
under each requested window are decoded, so memory follows the window, not
the scene (GDAL's block cache, capped by ``GDAL_CACHEMAX``, is the only thing
that grows). Windows that stick out of the grid further than the margin fall
back to :func:`read_window`, which reads the neighbouring source pixels or NaN
where there are none.

Resampling is chosen per source from its pixel size relative to the grid:
coarser sources (20/60 m bands, 30 m DEMs) are interpolated bilinearly so no
blocky 60 m steps appear in a 10 m mosaic; finer sources are averaged, which is
what a coarser sensor pixel physically is; a source on the same pixel size uses
nearest neighbour, which copies aligned pixels exactly.

A source that sits exactly on the grid (same CRS and pixel size, pixel corners
on grid corners, no mask band) is not warped at all: :class:`GridWarp` reads its
pixels straight from the file, which gives the same values as the nearest-neighbour
warp at a fraction of the cost and lets GDAL's block cache hold the decoded
source tiles rather than warped copies of them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

from landslide_engine.grid import Grid

_SAME_RESOLUTION = 0.02  # relative difference treated as the same pixel size
_ALIGNED_TOLERANCE_PX = 1e-6  # offset from a whole pixel (and relative pixel-size difference) treated as aligned
# Source types whose every value (and nodata value) float32 holds exactly, so a direct read equals the warp.
_EXACT_IN_FLOAT32 = frozenset({"uint8", "int8", "uint16", "int16", "float32"})
GRID_MARGIN = 8  # pixels the cached warped VRT reaches beyond each grid edge


def source_resolution_on_grid(src, grid: Grid) -> float:
    """The source's pixel size expressed in the grid's CRS units (mean of x and y)."""
    if src.crs == grid.crs:
        return (abs(src.transform.a) + abs(src.transform.e)) / 2
    transform, _, _ = calculate_default_transform(src.crs, grid.crs, src.width, src.height, *src.bounds)
    return (abs(transform.a) + abs(transform.e)) / 2


def choose_resampling(src, grid: Grid) -> Resampling:
    """Nearest on the same pixel size, bilinear for coarser sources, average for finer ones."""
    ratio = source_resolution_on_grid(src, grid) / grid.resolution[0]
    if abs(ratio - 1.0) <= _SAME_RESOLUTION:
        return Resampling.nearest
    return Resampling.bilinear if ratio > 1.0 else Resampling.average


def _warped_vrt(src, grid: Grid, window: Window, resampling: Resampling, nodata: float | None) -> WarpedVRT:
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.window_transform(window),
        width=int(window.width),
        height=int(window.height),
        resampling=resampling,
        src_nodata=nodata,
        nodata=np.nan,
        dtype="float32",
    )


def read_window(
    src,
    band: int,
    grid: Grid,
    window: Window,
    resampling: Resampling,
    src_nodata: float | None = None,
) -> np.ndarray:
    """Band ``band`` of ``src`` on ``window`` of ``grid`` as float32, NaN where there is no data.

    Builds a warped VRT for this one window: right for a single read, slow in a
    loop (use :class:`GridWarp` there). ``src_nodata`` overrides the nodata value
    declared in the file.
    """
    nodata = src.nodata if src_nodata is None else src_nodata
    with _warped_vrt(src, grid, window, resampling, nodata) as vrt:
        return vrt.read(band)


def grid_offset(src, grid: Grid) -> tuple[int, int] | None:
    """(col, row) of the grid's top-left pixel in ``src`` when ``src`` lies exactly on ``grid``, else None.

    Exactly means: same CRS, same pixel size, no rotation, pixel corners on whole grid pixels, validity
    given by nodata values alone (a per-dataset mask or alpha band would need the warper to honour it), and
    a data type that float32 holds exactly.
    """
    a, b, c, d, e, f = list(src.transform)[:6]
    ga, _, gc, _, ge, gf = list(grid.transform)[:6]
    if src.crs != grid.crs or b or d or grid.transform.b or grid.transform.d:
        return None
    if abs(a - ga) > _ALIGNED_TOLERANCE_PX * abs(ga) or abs(e - ge) > _ALIGNED_TOLERANCE_PX * abs(ge):
        return None
    col, row = (gc - c) / a, (gf - f) / e
    if abs(col - round(col)) > _ALIGNED_TOLERANCE_PX or abs(row - round(row)) > _ALIGNED_TOLERANCE_PX:
        return None
    if any(set(flags) - {MaskFlags.all_valid, MaskFlags.nodata} for flags in src.mask_flag_enums):
        return None
    if not set(src.dtypes) <= _EXACT_IN_FLOAT32:
        return None
    return round(col), round(row)


class GridWarp:
    """The bands of one open source on ``grid``, read window by window.

    Sources on the grid itself are read directly (:func:`grid_offset`); others through one cached warped VRT.
    """

    def __init__(
        self,
        src,
        grid: Grid,
        resampling: Resampling,
        src_nodata: float | None = None,
        margin: int = GRID_MARGIN,
    ) -> None:
        self.src = src
        self.grid = grid
        self.resampling = resampling
        self.nodata = src.nodata if src_nodata is None else src_nodata
        self.margin = margin
        self._offset = grid_offset(src, grid) if resampling == Resampling.nearest else None
        self._vrt = None
        if self._offset is None:
            extent = Window(-margin, -margin, grid.width + 2 * margin, grid.height + 2 * margin)
            self._vrt = _warped_vrt(src, grid, extent, resampling, self.nodata)

    @property
    def direct(self) -> bool:
        """True when the source lies on the grid and is read without warping."""
        return self._offset is not None

    def read(self, bands: int | Sequence[int], window: Window) -> np.ndarray:
        """Band(s) ``bands`` (1-based) on ``window`` as float32: (h, w) for one band, (n, h, w) for a list."""
        if self._offset is not None:
            return self._read_direct(bands, window)
        col, row = int(window.col_off), int(window.row_off)
        width, height = int(window.width), int(window.height)
        m = self.margin
        inside = col >= -m and row >= -m and col + width <= self.grid.width + m and row + height <= self.grid.height + m
        if inside:
            return self._vrt.read(
                bands if isinstance(bands, int) else list(bands), window=Window(col + m, row + m, width, height)
            )
        with _warped_vrt(self.src, self.grid, window, self.resampling, self.nodata) as vrt:
            return vrt.read(bands if isinstance(bands, int) else list(bands))

    def _read_direct(self, bands: int | Sequence[int], window: Window) -> np.ndarray:
        """What the nearest-neighbour warp gives on an aligned source: its pixels as float32, NaN for nodata
        and outside the source."""
        indexes = [bands] if isinstance(bands, int) else list(bands)
        width, height = int(window.width), int(window.height)
        col = int(window.col_off) + self._offset[0]
        row = int(window.row_off) + self._offset[1]
        c0, r0 = max(col, 0), max(row, 0)
        c1, r1 = min(col + width, self.src.width), min(row + height, self.src.height)
        if c0 == col and r0 == row and c1 == col + width and r1 == row + height:
            out = self.src.read(indexes, window=Window(col, row, width, height), out_dtype="float32")
        else:
            out = np.full((len(indexes), height, width), np.nan, dtype=np.float32)
            if c0 < c1 and r0 < r1:
                out[:, r0 - row : r1 - row, c0 - col : c1 - col] = self.src.read(
                    indexes, window=Window(c0, r0, c1 - c0, r1 - r0), out_dtype="float32"
                )
        if self.nodata is not None and not np.isnan(self.nodata):
            out[out == np.float32(self.nodata)] = np.nan
        return out[0] if isinstance(bands, int) else out

    def close(self) -> None:
        if self._vrt is not None:
            self._vrt.close()
