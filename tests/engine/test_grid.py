"""The reference grid: CRS, alignment, common extent, given extents, and warping onto it."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_engine.errors import InputError
from landslide_engine.grid import reference_grid
from landslide_engine.warp import choose_resampling
from tests.rasters import gdal_window


def raster(path, width, height, crs, transform, fill=100.0, dtype="float32"):
    with rasterio.open(
        path, "w", driver="GTiff", width=width, height=height, count=1, dtype=dtype, crs=crs, transform=transform
    ) as dst:
        dst.write(np.full((1, height, width), fill, dtype=dtype))
    return str(path)


def geographic_dem_around(path, crs, bounds, margin=0.01):
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *bounds)
    res = 1 / 3600
    width = int((east - west + 2 * margin) / res)
    height = int((north - south + 2 * margin) / res)
    return raster(path, width, height, "EPSG:4326", from_origin(west - margin, north + margin, res, res))


@pytest.mark.parametrize(
    ("crs", "x0", "y0"),
    [
        ("EPSG:32633", 399960.0, 5800020.0),
        ("EPSG:27700", 257070.594833, 285728.716706),
        ("EPSG:3035", 4500000, 3300000),
    ],
)
def test_default_grid_is_the_10m_band_grid_with_a_geographic_dem(tmp_path, crs, x0, y0):
    b4 = raster(tmp_path / "B04.tif", 300, 200, crs, from_origin(x0, y0, 10, 10))
    b5 = raster(tmp_path / "B05.tif", 150, 100, crs, from_origin(x0, y0, 20, 20))
    dem = geographic_dem_around(tmp_path / "dem.tif", crs, (x0, y0 - 2000, x0 + 3000, y0))
    grid = reference_grid([b5, b4], [dem])
    assert grid.crs == CRS.from_user_input(crs)
    assert grid.transform == from_origin(x0, y0, 10, 10)
    assert (grid.width, grid.height) == (300, 200)


def test_coarser_resolution_and_a_smaller_dem_snap_inwards_to_the_s2_alignment(tmp_path):
    b4 = raster(tmp_path / "B04.tif", 300, 200, "EPSG:32633", from_origin(1000, 5000, 10, 10))
    dem = raster(tmp_path / "dem.tif", 100, 100, "EPSG:32633", from_origin(1234.5, 4876.5, 12.5, 12.5))
    grid = reference_grid([b4], [dem], resolution=20)
    left, bottom, right, top = grid.bounds
    assert (left - 1000) % 20 == 0 and (5000 - top) % 20 == 0
    assert left >= 1234.5 and top <= 4876.5 and right <= 1234.5 + 1250 and bottom >= 4876.5 - 1250
    assert left - 1234.5 < 20 and 4876.5 - top < 20
    assert grid.resolution == (20, 20)


def test_given_extent_in_another_crs_is_clipped_and_snapped(tmp_path):
    b4 = raster(tmp_path / "B04.tif", 300, 200, "EPSG:32633", from_origin(400000, 5800000, 10, 10))
    dem = raster(tmp_path / "dem.tif", 300, 200, "EPSG:32633", from_origin(400000, 5800000, 10, 10))
    wanted = transform_bounds("EPSG:32633", "EPSG:4326", 400500, 5798500, 401000, 5799000)
    grid = reference_grid([b4], [dem], extent=wanted, extent_crs="EPSG:4326")
    left, _, _, top = grid.bounds
    assert 400490 <= left <= 400510 and 5798990 <= top <= 5799010
    assert 45 <= grid.width <= 52 and 45 <= grid.height <= 52


def test_inputs_that_do_not_overlap_are_refused(tmp_path):
    b4 = raster(tmp_path / "B04.tif", 100, 100, "EPSG:32633", from_origin(400000, 5800000, 10, 10))
    far_dem = raster(tmp_path / "far_dem.tif", 100, 100, "EPSG:32633", from_origin(500000, 5800000, 10, 10))
    with pytest.raises(InputError, match=r"far_dem\.tif does not overlap"):
        reference_grid([b4], [far_dem])
    near_dem = raster(tmp_path / "dem.tif", 100, 100, "EPSG:32633", from_origin(400000, 5800000, 10, 10))
    with pytest.raises(InputError, match="extent"):
        reference_grid([b4], [near_dem], extent=(0, 0, 10, 10))


def test_resampling_follows_relative_pixel_size(tmp_path):
    grid = reference_grid([raster(tmp_path / "B04.tif", 60, 60, "EPSG:32633", from_origin(0, 600, 10, 10))])
    same = raster(tmp_path / "same.tif", 60, 60, "EPSG:32633", from_origin(0, 600, 10, 10))
    coarse = raster(tmp_path / "coarse.tif", 10, 10, "EPSG:32633", from_origin(0, 600, 60, 60))
    fine = raster(tmp_path / "fine.tif", 600, 600, "EPSG:32633", from_origin(0, 600, 1, 1))
    expected = {same: Resampling.nearest, coarse: Resampling.bilinear, fine: Resampling.average}
    for path, resampling in expected.items():
        with rasterio.open(path) as src:
            assert choose_resampling(src, grid) == resampling


def test_a_gdal_window_is_exact_on_the_same_grid_and_nan_outside(tmp_path):
    data = np.arange(60 * 50, dtype="float32").reshape(1, 50, 60)
    path = tmp_path / "B04.tif"
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=60,
        height=50,
        count=1,
        dtype="float32",
        crs="EPSG:32633",
        transform=from_origin(0, 500, 10, 10),
    ) as dst:
        dst.write(data)
    grid = reference_grid([str(path)])
    with rasterio.open(path) as src:
        inside = gdal_window(src, 1, grid, Window(5, 7, 20, 10), Resampling.nearest)
        across = gdal_window(src, 1, grid, Window(-2, -3, 6, 6), Resampling.nearest)
    np.testing.assert_array_equal(inside, data[0, 7:17, 5:25])
    assert np.isnan(across[:3]).all() and np.isnan(across[:, :2]).all()
    np.testing.assert_array_equal(across[3:, 2:], data[0, :3, :4])
