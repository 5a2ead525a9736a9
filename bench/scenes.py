"""Synthetic benchmark scenes of any size, written block by block so a 10k x 10k scene needs little memory.

Each scene is what an analyst brings: one 13-band Sentinel-2 L1C-like GeoTIFF (uint16 DN, 10 m, UTM 33N,
ESA band order including B8A) and a DEM on a coarser 30 m grid offset from the image, so every run warps
the DEM and computes slope from it, as in a real run. Values are smooth fields plus noise: speed does not
depend on them, but compression and the model's input range stay realistic.

:func:`write_granule` writes the same scene as a granule is delivered instead: one file per band at the
band's own resolution (10, 20 or 60 m, as in the SAFE product or the per-band cloud-optimised GeoTIFFs), with
a no-data wedge like the one a granule at the edge of the satellite's swath has. The engine then warps nine
of the thirteen bands as well as the DEM, and skips the patches that have no data.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landslide_engine.bands import L1C_ESA_ORDER
from landslide_engine.outputs import FLOAT_NODATA

CRS = "EPSG:32633"
ORIGIN = (500000.0, 5200000.0)
PIXEL_M = 10.0
DEM_PIXEL_M = 30.0
_BLOCK_ROWS = 512


@dataclass(frozen=True)
class BenchScene:
    """Paths of one generated scene and its size in pixels (square)."""

    s2: Path
    dem: Path
    size: int


# Pixel size of each band in the SAFE product.
BAND_PIXEL_M = {
    **dict.fromkeys(("B2", "B3", "B4", "B8"), 10.0),
    **dict.fromkeys(("B5", "B6", "B7", "B8A", "B11", "B12"), 20.0),
    **dict.fromkeys(("B1", "B9", "B10"), 60.0),
}


def _s2_block(
    rows: np.ndarray, cols: np.ndarray, rng: np.random.Generator, bands: tuple[str, ...] = L1C_ESA_ORDER
) -> np.ndarray:
    """(len(bands), len(rows), len(cols)) uint16 DN: per-band level, a smooth pattern and sensor noise.

    ``rows`` and ``cols`` are in 10 m pixels (fractional for coarser bands), so every band shows the same
    landscape.
    """
    yy, xx = np.meshgrid(rows.astype(np.float32), cols.astype(np.float32), indexing="ij")
    pattern = np.sin(xx / 97.0) * np.cos(yy / 131.0) + 0.5 * np.sin((xx + yy) / 23.0)
    all_levels = np.linspace(900.0, 2600.0, len(L1C_ESA_ORDER), dtype=np.float32)
    levels = all_levels[[L1C_ESA_ORDER.index(b) for b in bands]][:, None, None]
    noise = rng.normal(0.0, 40.0, size=(len(bands), *yy.shape)).astype(np.float32)
    return np.clip(levels + 350.0 * pattern[None] + noise, 1, 10000).astype(np.uint16)


def _dem_block(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Mountain-like terrain in metres: ridges and valleys a few kilometres across on slopes tens of kilometres
    across, between 400 and 3200 m at any size (a linear trend took the 10000 px scene's DEM to -1864 m, which
    the engine rightly refuses as not an elevation)."""
    yy, xx = np.meshgrid(rows.astype(np.float64), cols.astype(np.float64), indexing="ij")
    ridges = 400.0 * np.sin(xx / 60.0) * np.cos(yy / 45.0)
    return (1800.0 + ridges + 1000.0 * np.sin(xx / 700.0) * np.cos(yy / 900.0)).astype(np.float32)


def write_scene(folder: Path, size: int, seed: int = 0) -> BenchScene:
    """Write (or reuse, when both files exist) a ``size`` x ``size`` px scene under ``folder``."""
    import rasterio
    from rasterio.transform import from_origin

    folder.mkdir(parents=True, exist_ok=True)
    s2_path = folder / f"S2A_MSIL1C_20200101_bench_{size}.tif"
    dem_path = folder / f"dem30m_v2_bench_{size}.tif"  # v2: the terrain of _dem_block; cached files are reused
    if s2_path.exists() and dem_path.exists():
        return BenchScene(s2_path, dem_path, size)
    rng = np.random.default_rng(seed)
    common = {"driver": "GTiff", "crs": CRS, "tiled": True, "blockxsize": 512, "blockysize": 512, "BIGTIFF": "YES"}
    s2_tmp = s2_path.with_suffix(".partial.tif")
    with rasterio.open(
        s2_tmp,
        "w",
        width=size,
        height=size,
        count=len(L1C_ESA_ORDER),
        dtype="uint16",
        nodata=0,
        transform=from_origin(*ORIGIN, PIXEL_M, PIXEL_M),
        compress="deflate",
        zlevel=1,
        **common,
    ) as dst:
        for i, band in enumerate(L1C_ESA_ORDER, start=1):
            dst.set_band_description(i, band)
        dst.update_tags(PRODUCT_TYPE="S2MSI1C", PROCESSING_BASELINE="02.14", DESCRIPTION="synthetic benchmark scene")
        cols = np.arange(size)
        for r0 in range(0, size, _BLOCK_ROWS):
            rows = np.arange(r0, min(size, r0 + _BLOCK_ROWS))
            dst.write(_s2_block(rows, cols, rng), window=((r0, rows[-1] + 1), (0, size)))
    s2_tmp.rename(s2_path)
    # The DEM covers the image with a one-cell margin, on a 30 m grid shifted by half a cell.
    dem_size = int(np.ceil(size * PIXEL_M / DEM_PIXEL_M)) + 2
    dem_origin = (ORIGIN[0] - DEM_PIXEL_M * 1.5, ORIGIN[1] + DEM_PIXEL_M * 1.5)
    dem_tmp = dem_path.with_suffix(".partial.tif")
    with rasterio.open(
        dem_tmp,
        "w",
        width=dem_size,
        height=dem_size,
        count=1,
        dtype="float32",
        nodata=FLOAT_NODATA,
        transform=from_origin(*dem_origin, DEM_PIXEL_M, DEM_PIXEL_M),
        **common,
    ) as dst:
        dst.write(_dem_block(np.arange(dem_size), np.arange(dem_size)), 1)
    dem_tmp.rename(dem_path)
    return BenchScene(s2_path, dem_path, size)


GEOGRAPHIC_CRS = "EPSG:4326"
ARC_SECOND = 1.0 / 3600.0  # SRTM / Copernicus GLO-30 pixel size
SRTM_NODATA = -32767


def write_geographic_dem(folder: Path, size: int) -> Path:
    """Write (or reuse) a DEM as analysts download it for the ``size`` scene of :func:`write_scene`: SRTM-like,
    Int16 metres (nodata -32767) in geographic coordinates (EPSG:4326) at one arc-second, covering the scene with
    a margin. The engine reprojects it onto the scene's UTM grid for every chunk it reads."""
    import rasterio
    from rasterio.transform import from_origin
    from rasterio.warp import transform_bounds

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"dem_srtm1_4326_v2_bench_{size}.tif"
    if path.exists():
        return path
    extent = (ORIGIN[0], ORIGIN[1] - size * PIXEL_M, ORIGIN[0] + size * PIXEL_M, ORIGIN[1])
    west, south, east, north = transform_bounds(CRS, GEOGRAPHIC_CRS, *extent)
    margin = 10 * ARC_SECOND
    west, north = np.floor((west - margin) * 3600) / 3600, np.ceil((north + margin) * 3600) / 3600
    width = int(np.ceil((east + margin - west) / ARC_SECOND))
    height = int(np.ceil((north - (south - margin)) / ARC_SECOND))
    # The terrain of _dem_block, its (row, col) in 30 m cells of the scene's own grid, so slopes look alike.
    lat = north - (np.arange(height) + 0.5) * ARC_SECOND
    lon = west + (np.arange(width) + 0.5) * ARC_SECOND
    metres_per_degree_lat, metres_per_degree_lon = 111_320.0, 111_320.0 * np.cos(np.radians((north + south) / 2))
    rows = (ORIGIN[1] - _northing(lat, north, south, extent, metres_per_degree_lat)) / DEM_PIXEL_M
    cols = (_easting(lon, west, east, extent, metres_per_degree_lon) - ORIGIN[0]) / DEM_PIXEL_M
    tmp = path.with_suffix(".partial.tif")
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        crs=GEOGRAPHIC_CRS,
        transform=from_origin(west, north, ARC_SECOND, ARC_SECOND),
        width=width,
        height=height,
        count=1,
        dtype="int16",
        nodata=SRTM_NODATA,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        compress="deflate",
    ) as dst:
        dst.write(np.round(_dem_block(rows, cols)).astype(np.int16), 1)
    tmp.rename(path)
    return path


def _northing(lat: np.ndarray, north: float, south: float, extent: tuple, per_degree: float) -> np.ndarray:
    """Northing of each latitude, near enough for a synthetic terrain (linear across the scene)."""
    centre = (north + south) / 2
    return (extent[1] + extent[3]) / 2 + (lat - centre) * per_degree


def _easting(lon: np.ndarray, west: float, east: float, extent: tuple, per_degree: float) -> np.ndarray:
    """Easting of each longitude, near enough for a synthetic terrain (linear across the scene)."""
    centre = (west + east) / 2
    return (extent[0] + extent[2]) / 2 + (lon - centre) * per_degree


@dataclass(frozen=True)
class BenchGranule:
    """Paths of one generated per-band granule, its DEM, size (in 10 m pixels) and the share without data."""

    bands: tuple[Path, ...]
    dem: Path
    size: int
    no_data_share: float


def write_granule(folder: Path, size: int, no_data_share: float = 0.4, seed: int = 0) -> BenchGranule:
    """Write (or reuse) a ``size`` x ``size`` (10 m pixels) granule as one deflate GeoTIFF per band at its own
    resolution, with the top-left corner up to a diagonal without data (DN 0), about ``no_data_share`` of the
    scene; the DEM is the one of :func:`write_scene` for the same size."""
    import rasterio
    from rasterio.transform import from_origin

    dem = write_scene(folder, size, seed).dem
    granule = folder / f"S2A_MSIL1C_20200101_granule_{size}_{round(100 * no_data_share)}"
    names = [band if band == "B8A" else f"B{int(band[1:]):02d}" for band in L1C_ESA_ORDER]  # ESA's B02, B8A
    paths = tuple(granule / f"T33TWN_20200101T100031_{name}.tif" for name in names)
    if all(path.exists() for path in paths):
        return BenchGranule(paths, dem, size, no_data_share)
    granule.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    edge = size * np.sqrt(2.0 * no_data_share)  # pixels with col + row < edge have no data
    for band, path in zip(L1C_ESA_ORDER, paths, strict=True):
        step = BAND_PIXEL_M[band] / PIXEL_M
        width = int(np.ceil(size / step))
        tmp = path.with_suffix(".partial.tif")
        block_rows = max(1, int(_BLOCK_ROWS / step))
        with rasterio.open(
            tmp,
            "w",
            driver="GTiff",
            crs=CRS,
            tiled=True,
            blockxsize=512,
            blockysize=512,
            width=width,
            height=width,
            count=1,
            dtype="uint16",
            transform=from_origin(*ORIGIN, BAND_PIXEL_M[band], BAND_PIXEL_M[band]),
            compress="deflate",
            zlevel=1,
        ) as dst:  # no nodata declared: DN 0 means no data in Sentinel-2 products
            dst.set_band_description(1, band)
            dst.update_tags(PRODUCT_TYPE="S2MSI1C", PROCESSING_BASELINE="02.14")
            cols = (np.arange(width) + 0.5) * step - 0.5
            for r0 in range(0, width, block_rows):
                rows = (np.arange(r0, min(width, r0 + block_rows)) + 0.5) * step - 0.5
                values = _s2_block(rows, cols, rng, (band,))
                values[0][rows[:, None] + cols[None, :] < edge] = 0
                dst.write(values, window=((r0, r0 + len(rows)), (0, width)))
        tmp.rename(path)
    return BenchGranule(paths, dem, size, no_data_share)
