"""Writing small GeoTIFFs for tests: one helper for every test module (no qgis needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio


def write_raster(
    path: Path, data: np.ndarray, crs, transform, descriptions=(), nodata=None, all_valid_mask: bool = False
) -> Path:
    """A GeoTIFF from a (rows, cols) or (bands, rows, cols) array, with optional band descriptions.

    ``all_valid_mask`` adds an explicit all-valid mask band (a per-dataset mask, as some products carry).
    """
    data = data if data.ndim == 3 else data[None]
    count, height, width = data.shape
    profile = dict(driver="GTiff", width=width, height=height, count=count, dtype=data.dtype, crs=crs)
    with rasterio.open(path, "w", transform=transform, nodata=nodata, **profile) as dst:
        dst.write(data)
        for index, text in enumerate(descriptions, start=1):
            dst.set_band_description(index, text)
        if all_valid_mask:
            dst.write_mask(np.full((height, width), 255, dtype=np.uint8))
    return Path(path)


def gdal_window(src, band: int, grid, window, resampling, src_nodata: float | None = None) -> np.ndarray:
    """GDAL's warp of band ``band`` of ``src`` on ``window`` of ``grid`` (float32, NaN without data), through the
    engine's own warped-VRT settings: the reference the engine's faster reads are compared with."""
    from landslide_engine.warp import _warped_vrt

    nodata = src.nodata if src_nodata is None else src_nodata
    with _warped_vrt(src, grid, window, resampling, nodata) as vrt:
        return vrt.read(band)
