"""How far the engine's numpy warp of a DEM in another CRS is from GDAL's warps, in metres and in model inputs.

``python bench/warp_accuracy.py [--size 3072] [--shared ../shared/data]`` reads each DEM onto its grid in
128-row strips with the 1 px halo, as the scene reader does, three ways: :class:`GridWarp` (source positions
from a mesh of exact transforms, :mod:`landslide_engine.reproject`), GDAL's default warped VRT (its approximate
transformer, 0.125 source px) and GDAL with an exact transformer (``tolerance=1e-6``). It prints per DEM the
position error of the mesh, the differences in metres, and the share of pixels whose whole metres and whole
degrees of slope (the model's inputs, ``stack.to_l4s``) differ from GDAL's default. DEMs: the bench's
geographic one (:func:`scenes.write_geographic_dem`) and the real SRTM and GLO-30 rasters in ``--shared``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from scenes import write_geographic_dem, write_scene

from landslide_engine.grid import Grid, reference_grid
from landslide_engine.slope import slope_for_grid
from landslide_engine.warp import GRID_MARGIN, GridWarp

STRIP = 128


def grid_inside(dem: Path, crs: str, folder: Path, inset: float = 300.0, size: int = 1000) -> Grid:
    """A 10 m grid in ``crs`` inside ``dem``'s footprint (from a one-band image written to ``folder``)."""
    with rasterio.open(dem) as src:
        west, south, east, north = transform_bounds(src.crs, crs, *src.bounds)
    width = min(size, int((east - west - 2 * inset) // 10))
    height = min(size, int((north - south - 2 * inset) // 10))
    path = folder / f"grid_{crs.replace(':', '_')}.tif"
    profile = dict(driver="GTiff", width=width, height=height, count=1, dtype="uint8", crs=crs, nodata=0)
    transform = from_origin(round(west + inset) + 3.7, round(north - inset) - 4.1, 10, 10)
    with rasterio.open(path, "w", transform=transform, **profile) as dst:
        dst.write(np.ones((1, height, width), "uint8"))
    return reference_grid([str(path)])


def _exact_vrt(src, grid: Grid) -> WarpedVRT:
    m = GRID_MARGIN
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.window_transform(Window(-m, -m, grid.width + 2 * m, grid.height + 2 * m)),
        width=grid.width + 2 * m,
        height=grid.height + 2 * m,
        resampling=Resampling.bilinear,
        src_nodata=src.nodata,
        nodata=np.nan,
        dtype="float32",
        tolerance=1e-6,
    )


def _strip(warp: GridWarp, exact: WarpedVRT, row: int, height: int) -> dict:
    """One strip's three warps, their slopes and the mesh's position error."""
    grid, m = warp.grid, GRID_MARGIN
    window = Window(-1, row - 1, grid.width + 2, height + 2)
    ours = warp.read(1, window)
    gdal = warp._read_warped([1], window)[0]
    ideal = exact.read(1, window=Window(m - 1, row - 1 + m, grid.width + 2, height + 2))
    positions = warp._positions
    where = positions.window(-1, row - 1, grid.width + 2, height + 2) if positions else None
    if positions is None or where is None:
        raise RuntimeError(f"{warp.src.name} is not interpolated by GridWarp on this window")
    x, y = np.empty((2, height + 2, grid.width + 2))
    where.rows(0, height + 2, x, y)
    exact_x, exact_y = positions.exact(*np.mgrid[row - 1 : row + height + 1, -1 : grid.width + 1])
    position = max(float(np.abs(x + 0.5 - exact_x).max()), float(np.abs(y + 0.5 - exact_y).max()))
    transform = grid.window_transform(window)
    slopes = [slope_for_grid(a.astype(np.float64), transform, False, precise=False) for a in (ours, gdal)]
    inner = np.s_[1:-1, 1:-1]
    return {
        "ours": ours[inner],
        "gdal": gdal[inner],
        "exact": ideal[inner],
        "slope_ours": slopes[0][inner],
        "slope_gdal": slopes[1][inner],
        "position": position,
    }


def measure(dem: Path, grid: Grid) -> dict:
    """The differences between the three warps of ``dem`` on ``grid`` (pixels where all are data)."""
    with rasterio.open(dem) as src, _exact_vrt(src, grid) as exact:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            if not warp.reprojected:
                return {"dem": dem.name, "reprojected": False}
            strips = [_strip(warp, exact, r, min(STRIP, grid.height - r)) for r in range(0, grid.height, STRIP)]
        finally:
            warp.close()
    ours, gdal, ideal = (np.concatenate([s[k].ravel() for s in strips]) for k in ("ours", "gdal", "exact"))
    slope_ours, slope_gdal = (np.concatenate([s[k].ravel() for s in strips]) for k in ("slope_ours", "slope_gdal"))
    ok = np.isfinite(ours) & np.isfinite(gdal) & np.isfinite(ideal)
    slopes_ok = np.isfinite(slope_ours) & np.isfinite(slope_gdal)

    def stats(a: np.ndarray, b: np.ndarray) -> list[float]:
        d = np.abs(a[ok].astype(np.float64) - b[ok])
        return [round(float(d.max()), 5), round(float(d.mean()), 6)]

    return {
        "dem": dem.name,
        "grid": f"{grid.width}x{grid.height} {grid.crs}",
        "position_error_px": float(f"{max(s['position'] for s in strips):.2e}"),
        "ours_exact_m": stats(ours, ideal),
        "gdal_exact_m": stats(gdal, ideal),
        "ours_gdal_m": stats(ours, gdal),
        "whole_metres_differ_pct": round(float(np.mean(np.round(ours[ok]) != np.round(gdal[ok]))) * 100, 2),
        "whole_degrees_differ_pct": round(
            float(np.mean(np.round(slope_ours[slopes_ok]) != np.round(slope_gdal[slopes_ok]))) * 100, 2
        ),
    }


def cases(size: int, work: Path, shared: Path, folder: Path) -> list[tuple[Path, Grid]]:
    """The bench's geographic DEM on its scene's grid and the real DEMs in ``shared`` on 10 m grids over them."""
    scene = write_scene(work / "scenes", size)
    found = [(write_geographic_dem(work / "scenes", size), reference_grid([str(scene.s2)]))]
    aber = shared / "geo" / "rsgislib_aberystwyth_wales"
    if aber.is_dir():
        mosaic = aber / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
        found.append((aber / "AberSRTM_4326.tif", reference_grid([str(mosaic)])))
    glo30 = shared / "products" / "copernicus_dem_glo30_crops"
    for name, crs in (("los_angeles_tile_0.tif", "EPSG:32611"), ("fairbanks_tile_0.tif", "EPSG:32606")):
        if (glo30 / name).exists():
            found.append((glo30 / name, grid_inside(glo30 / name, crs, folder)))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=3072, help="the bench scene's size in pixels")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "landslide_bench")
    parser.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        for dem, grid in cases(args.size, args.work_dir, args.shared, Path(folder)):
            print(json.dumps(measure(dem, grid)))


if __name__ == "__main__":
    main()
