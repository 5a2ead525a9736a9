"""GridWarp's own bilinear warp of a source in another CRS (a geographic DEM onto a UTM grid).

GDAL finds each output pixel's source position with an approximate transformer (up to 0.125 source pixels off
the exact one); GridWarp interpolates positions between exact transforms on a coarse mesh, far closer. So the
reference for its values is GDAL with an (almost) exact transformer: they must be much closer to it than GDAL's
default warp is. Against GDAL's default, values differ by GDAL's own approximation; pixels whose neighbourhood
is not wholly data on the source are GDAL's own.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_engine.grid import reference_grid
from landslide_engine.reproject import MESH_STEP, SourcePositions
from landslide_engine.warp import GRID_MARGIN, GridWarp
from tests.paths import GEO, SHARED
from tests.rasters import write_raster

ABER = GEO / "rsgislib_aberystwyth_wales"
GLO30 = SHARED / "products" / "copernicus_dem_glo30_crops"
NODATA = -32767
# The real DEMs that need reprojecting onto a 10 m grid: an SRTM (Int16, nodata -32767, 2" x 1") onto the British
# National Grid of its Sentinel-2 mosaic, and two Copernicus GLO-30 crops (float32, 1" and 2" x 1") onto UTM.
REAL = {
    "aber_srtm": (ABER / "AberSRTM_4326.tif", ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"),
    "glo30_los_angeles": (GLO30 / "los_angeles_tile_0.tif", "EPSG:32611"),
    "glo30_fairbanks": (GLO30 / "fairbanks_tile_0.tif", "EPSG:32606"),
}


def _grid_inside(dem, crs, folder, inset: float = 300.0, size: int = 600):
    """A 10 m grid in ``crs`` (via a one-band image written to ``folder``) inside ``dem``'s footprint, or the grid of
    the image ``crs`` names."""
    if not isinstance(crs, str):
        return reference_grid([str(crs)])
    with rasterio.open(dem) as src:
        west, south, east, north = transform_bounds(src.crs, crs, *src.bounds)
    width = min(size, int((east - west - 2 * inset) // 10))
    height = min(size, int((north - south - 2 * inset) // 10))
    x0, y0 = round(west + inset) + 3.7, round(north - inset) - 4.1  # no grid pixel on a source pixel centre
    image = write_raster(
        folder / "image.tif", np.ones((1, height, width), "uint16"), crs, from_origin(x0, y0, 10, 10), nodata=0
    )
    return reference_grid([str(image)])


def _all_rows(where, height: int) -> tuple[np.ndarray, np.ndarray]:
    """All rows of a window's interpolated positions (shifted by -0.5), as GridWarp gets them 8 rows at a time."""
    x, y = np.empty((2, height, where.x[0].shape[1]))
    for r in range(0, height, 8):
        where.rows(r, min(r + 8, height), x[r : r + 8], y[r : r + 8])
    return x, y


def _warps(src, grid, window: Window) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GridWarp's values on ``window``, GDAL's default warp (the VRT GridWarp keeps) and GDAL's warp with a
    transformer exact to 1e-6 source pixels, over the same destination grid."""
    warp = GridWarp(src, grid, Resampling.bilinear)
    try:
        assert warp.reprojected
        ours = warp.read(1, window)
        default = warp._read_warped([1], window)[0]
    finally:
        warp.close()
    m = GRID_MARGIN
    extent = Window(-m, -m, grid.width + 2 * m, grid.height + 2 * m)
    with WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.window_transform(extent),
        width=extent.width,
        height=extent.height,
        resampling=Resampling.bilinear,
        src_nodata=src.nodata,
        nodata=np.nan,
        dtype="float32",
        tolerance=1e-6,
    ) as vrt:
        exact = vrt.read(1, window=Window(window.col_off + m, window.row_off + m, window.width, window.height))
    return ours, default, exact


def _geographic_dem(folder, voids: bool, dtype: str = "int16"):
    """An SRTM-like DEM (EPSG:4326, 1", nodata -32767) over the scene of :func:`_utm_grid`, with voids and a
    pixel at nodata's neighbour value when ``voids``; float64 heights have decimals that float32 rounds."""
    rows, cols = np.mgrid[0:160, 0:200]
    dem = 900 + 4.0 * cols + 2.5 * rows + 60 * np.sin(cols / 5.0) * np.cos(rows / 7.0)
    dem = dem.astype(dtype) if dtype == "float64" else np.round(dem).astype(dtype)
    if voids:
        dem[40, 50] = NODATA
        dem[80:84, 100:105] = NODATA
        dem[120, 30] = NODATA + 1  # data, one step from nodata
    return write_raster(
        folder / f"dem_{voids}_{dtype}.tif",
        dem,
        "EPSG:4326",
        from_origin(14.98, 46.96, 1 / 3600, 1 / 3600),
        nodata=NODATA,
    )


def _utm_grid(folder, width: int = 400, height: int = 300):
    """A 10 m UTM 33N grid from 200 m inside :func:`_geographic_dem`'s top-left corner (498478, 5200719 m); the
    DEM ends 4.2 km to the east and 4.9 km to the south."""
    x0, y0 = 498680.0 + 3.7, 5200520.0 - 4.1
    image = write_raster(
        folder / "utm.tif",
        np.ones((1, height, width), "uint16"),
        "EPSG:32633",
        from_origin(x0, y0, 10, 10),
        nodata=0,
    )
    return reference_grid([str(image)])


@pytest.mark.parametrize("name", list(REAL))
def test_mesh_positions_are_within_1e_3_source_pixels_of_exact_transforms(name, tmp_path):
    path, crs = REAL[name]
    if not path.exists():
        pytest.skip(f"real DEM not found at {path}")
    grid = _grid_inside(path, crs, tmp_path)
    with rasterio.open(path) as src:
        positions = SourcePositions(grid, src.crs, src.transform, GRID_MARGIN)
        for col, row, width, height in ((-1, -1, grid.width + 2, 130), (5, 77, 200, 91)):
            where = positions.window(col, row, width, height)
            assert where is not None
            x, y = _all_rows(where, height)
            exact_x, exact_y = positions.exact(*np.mgrid[row : row + height, col : col + width])
            error = max(np.abs(x + 0.5 - exact_x).max(), np.abs(y + 0.5 - exact_y).max())
            # GDAL's own approximate transformer allows 0.125 source pixels; a 32 px mesh is 100s of times closer.
            assert error < 1e-3, error
    assert MESH_STEP == 32


@pytest.mark.parametrize("name", list(REAL))
def test_real_dems_are_far_closer_to_an_exact_warp_than_gdals_default(name, tmp_path):
    path, crs = REAL[name]
    if not path.exists():
        pytest.skip(f"real DEM not found at {path}")
    grid = _grid_inside(path, crs, tmp_path)
    window = Window(-1, -1, grid.width + 2, grid.height + 2)
    with rasterio.open(path) as src:
        ours, default, exact = _warps(src, grid, window)
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(default))
    # Pixels valued here (GDAL's own values next to nodata and the source's edges are equal to its default).
    here = (ours != default) & np.isfinite(exact)
    assert here.mean() > 0.5
    ours_off, default_off = np.abs(ours - exact)[here], np.abs(default - exact)[here]
    assert default_off.max() > 0.01  # GDAL's approximation shows in metres on real terrain ...
    assert ours_off.max() < 0.01 and ours_off.mean() < default_off.mean() / 20  # ... ours does not
    # Against GDAL's default warp, the difference is GDAL's own approximation error.
    assert np.abs(ours - default)[here].max() <= default_off.max() + 0.01


@pytest.mark.parametrize("dtype", ["int16", "float64"])
def test_pixels_next_to_voids_and_off_the_source_are_gdals(tmp_path, dtype):
    grid = _utm_grid(tmp_path)
    window = Window(-1, -1, grid.width + 2, grid.height + 2)
    with rasterio.open(_geographic_dem(tmp_path, voids=True, dtype=dtype)) as src:
        ours, default, exact = _warps(src, grid, window)
        positions = SourcePositions(grid, src.crs, src.transform, GRID_MARGIN)
        values = src.read(1)
        width, height = src.width, src.height
    assert np.isnan(default).any() and np.isfinite(default).any()  # the grid runs off the source
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(default))
    # Which pixels have a 2 x 2 neighbourhood wholly on the source and wholly data: only those may differ.
    where = positions.window(-1, -1, window.width, window.height)
    assert where is not None
    x, y = _all_rows(where, window.height)
    left, top = np.floor(x).astype(int), np.floor(y).astype(int)
    on = (left >= 0) & (left + 1 < width) & (top >= 0) & (top + 1 < height)
    lc, tc = np.clip(left, 0, width - 2), np.clip(top, 0, height - 2)
    data = values != NODATA
    full = on & data[tc, lc] & data[tc, lc + 1] & data[tc + 1, lc] & data[tc + 1, lc + 1]
    assert (~full & np.isfinite(default)).any()  # pixels next to voids and at the edge with GDAL's value
    np.testing.assert_array_equal(ours[~full], default[~full])
    assert np.abs(ours[full] - exact[full]).max() < 0.01
    assert (ours[full] != default[full]).any()


def test_a_geographic_source_finer_than_the_grid_is_left_to_gdal(tmp_path):
    grid = _utm_grid(tmp_path, 60, 50)
    dem = (1000 + np.arange(400 * 400).reshape(400, 400) % 97).astype("int16")
    fine = write_raster(tmp_path / "fine.tif", dem, "EPSG:4326", from_origin(14.98, 46.96, 2e-5, 2e-5), nodata=NODATA)
    with rasterio.open(fine) as src:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            assert not warp.reprojected and not warp.separable and not warp.direct
        finally:
            warp.close()


def test_windows_beyond_the_mesh_and_several_bands_read_alike(tmp_path):
    grid = _utm_grid(tmp_path, 120, 100)
    dem = _geographic_dem(tmp_path, voids=False)
    with rasterio.open(dem) as src:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            inside = Window(3, 4, 50, 40)
            one = warp.read(1, inside)
            two = warp.read([1, 1], inside)
            beyond = Window(-GRID_MARGIN - 40, 10, 60, 30)  # reaches past the margin: GDAL's VRT for this window
            far = warp.read(1, beyond)
            near = warp.read(1, Window(-GRID_MARGIN, 10, 20, 30))
        finally:
            warp.close()
    np.testing.assert_array_equal(two[0], one)
    np.testing.assert_array_equal(two[1], one)
    assert np.isfinite(one).all()
    # Beyond the margin GDAL warps the window itself; the pixels it shares with a window inside agree within
    # GDAL's approximation (a fraction of a metre on this terrain).
    np.testing.assert_allclose(far[:, 40:], near, atol=0.5)


def test_a_grid_across_the_antimeridian_is_left_to_gdal(tmp_path):
    # A UTM zone 1 grid reaching west of 180° E: PROJ gives those pixels longitudes near -180, a jump of 360° in
    # the middle of the mesh that no interpolation between its nodes follows.
    image = write_raster(
        tmp_path / "utm1.tif",
        np.ones((1, 80, 200), "uint16"),
        "EPSG:32601",
        from_origin(347000.0, 6990000.0, 10, 10),
        nodata=0,
    )
    grid = reference_grid([str(image)])
    with rasterio.open(image) as src:
        west, _, east, north = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert west > 179 and east < -179  # the footprint crosses 180° (bounds from west of it to east of it)
    dem = np.full((200, 400), 500, "int16")
    across = write_raster(
        tmp_path / "dem.tif", dem, "EPSG:4326", from_origin(179.95, north + 0.01, 1 / 1800, 1 / 3600), nodata=NODATA
    )
    with rasterio.open(across) as src:
        warp = GridWarp(src, grid, Resampling.bilinear)
        try:
            assert not warp.reprojected
        finally:
            warp.close()
