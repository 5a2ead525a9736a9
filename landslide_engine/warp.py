"""Reading any raster band onto a window of the reference grid.

Each read builds a GDAL warped VRT for exactly the requested window, so only
the source pixels under that window are decoded: memory follows the window,
not the scene, and windows that stick out of the grid (halos for slope) just
read the neighbouring source pixels or NaN where there are none.

Resampling is chosen per source from its pixel size relative to the grid:
coarser sources (20/60 m bands, 30 m DEMs) are interpolated bilinearly so no
blocky 60 m steps appear in a 10 m mosaic; finer sources are averaged, which is
what a coarser sensor pixel physically is; a source on the same pixel size uses
nearest neighbour, which copies aligned pixels exactly.
"""

from __future__ import annotations

import numpy as np
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import calculate_default_transform
from rasterio.windows import Window

from landslide_engine.grid import Grid

_SAME_RESOLUTION = 0.02  # relative difference treated as the same pixel size


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


def read_window(
    src,
    band: int,
    grid: Grid,
    window: Window,
    resampling: Resampling,
    src_nodata: float | None = None,
) -> np.ndarray:
    """Band ``band`` of ``src`` on ``window`` of ``grid`` as float32, NaN where there is no data.

    ``src_nodata`` overrides the nodata value declared in the file.
    """
    nodata = src.nodata if src_nodata is None else src_nodata
    width, height = int(window.width), int(window.height)
    with WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.window_transform(window),
        width=width,
        height=height,
        resampling=resampling,
        src_nodata=nodata,
        nodata=np.nan,
        dtype="float32",
    ) as vrt:
        return vrt.read(band)
