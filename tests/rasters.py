"""Writing small GeoTIFFs for tests: one helper for every test module (no qgis needed)."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import rasterio
from rasterio.windows import Window


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


def cut_tiles(dem, folder, rows, cols) -> list[str]:
    """``dem`` cut at ``rows`` x ``cols`` pixel boundaries into tiles of the same type, nodata and pixel convention."""
    folder.mkdir(exist_ok=True)
    tiles = []
    with rasterio.open(dem) as src:
        tags = src.tags()
        for r0, r1 in itertools.pairwise(rows):
            for c0, c1 in itertools.pairwise(cols):
                window = Window(c0, r0, c1 - c0, r1 - r0)
                profile = dict(src.profile, width=c1 - c0, height=r1 - r0, transform=src.window_transform(window))
                profile.update(driver="GTiff", tiled=False, blockxsize=None, blockysize=None)
                path = folder / f"tile_{r0}_{c0}.tif"
                with rasterio.open(path, "w", **{k: v for k, v in profile.items() if v is not None}) as dst:
                    dst.update_tags(**tags)
                    dst.write(src.read(1, window=window), 1)
                tiles.append(str(path))
    return tiles
