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
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

from landslide_engine.grid import Grid

_SAME_RESOLUTION = 0.02  # relative difference treated as the same pixel size
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


class GridWarp:
    """The bands of one open source warped onto ``grid``, read window by window from one cached warped VRT."""

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
        extent = Window(-margin, -margin, grid.width + 2 * margin, grid.height + 2 * margin)
        self._vrt = _warped_vrt(src, grid, extent, resampling, self.nodata)

    def read(self, bands: int | Sequence[int], window: Window) -> np.ndarray:
        """Band(s) ``bands`` (1-based) on ``window`` as float32: (h, w) for one band, (n, h, w) for a list."""
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

    def close(self) -> None:
        self._vrt.close()
