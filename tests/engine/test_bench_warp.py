"""The cached whole-grid warp (GridWarp) reads the same values as a warp built for each window."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.transform import from_origin
from rasterio.windows import Window

from landslide_engine.grid import reference_grid
from landslide_engine.warp import GridWarp, choose_resampling
from tests.rasters import gdal_window, write_raster


@pytest.fixture(scope="module")
def rasters(tmp_path_factory):
    folder = tmp_path_factory.mktemp("warp")
    rng = np.random.default_rng(3)
    image = write_raster(
        folder / "image.tif",
        rng.uniform(0, 1000, (2, 90, 120)).astype("float32"),
        "EPSG:32633",
        from_origin(500000, 5200000, 10, 10),
        nodata=-9999.0,
    )
    yy, xx = np.mgrid[0:40, 0:50]
    dem = (500 + 7.3 * xx + 3.1 * yy + 20 * np.sin(xx / 3.0)).astype("float32")[None]
    coarse = write_raster(folder / "dem30.tif", dem, "EPSG:32633", from_origin(499985, 5200015, 30, 30), nodata=-9999.0)
    geographic = write_raster(
        folder / "dem_geo.tif", dem, "EPSG:4326", from_origin(14.98, 46.96, 0.001, 0.001), nodata=-9999.0
    )
    return image, coarse, geographic


@pytest.mark.parametrize("which", [0, 1, 2], ids=["same grid", "coarser", "reprojected"])
@pytest.mark.parametrize(
    "window", [Window(0, 0, 120, 90), Window(7, 11, 64, 33), Window(-1, -1, 30, 20), Window(100, 70, 21, 21)]
)
def test_grid_warp_matches_a_warp_per_window(rasters, which, window):
    grid = reference_grid([str(rasters[0])])
    with rasterio.open(rasters[which]) as src:
        resampling = choose_resampling(src, grid)
        warp = GridWarp(src, grid, resampling)
        try:
            cached = warp.read(1, window)
        finally:
            warp.close()
        fresh = gdal_window(src, 1, grid, window, resampling)
    assert cached.shape == (window.height, window.width)
    if which == 0:
        np.testing.assert_array_equal(cached, fresh)
    else:
        # Interpolated values may differ in the last float32 bit (bilinear weights computed from a different
        # origin) and, for a reprojection, by GDAL's approximate transformer interpolating over other chunks.
        np.testing.assert_allclose(cached, fresh, rtol=1e-5, equal_nan=True)
    assert np.isfinite(cached).any()


def test_grid_warp_reads_several_bands_and_falls_back_outside_its_margin(rasters):
    grid = reference_grid([str(rasters[0])])
    with rasterio.open(rasters[0]) as src:
        expected = src.read()
        warp = GridWarp(src, grid, Resampling.nearest, margin=2)
        try:
            both = warp.read([1, 2], Window(5, 6, 40, 30))
            far = warp.read(2, Window(-10, -10, 20, 20))
        finally:
            warp.close()
    np.testing.assert_array_equal(both, expected[:, 6:36, 5:45])
    assert np.isnan(far[:10]).all() and np.isnan(far[:, :10]).all()
    np.testing.assert_array_equal(far[10:, 10:], expected[1, :10, :10])


@pytest.mark.parametrize(
    "window", [Window(0, 0, 40, 30), Window(5, 3, 20, 10), Window(-3, -2, 12, 9), Window(30, 25, 15, 12)]
)
def test_a_source_on_the_grid_is_read_directly_with_the_warps_values(tmp_path, window):
    data = np.random.default_rng(5).integers(0, 3000, (3, 60, 70)).astype("uint16")
    data[:, 15:19, 20:24] = 0  # nodata: grid rows 6-9, columns 8-11
    source = write_raster(tmp_path / "s2.tif", data, "EPSG:32633", from_origin(500000, 5200000, 10, 10), nodata=0)
    # A grid that starts 12 columns and 9 rows into the source and ends inside it.
    grid = reference_grid([str(source)], extent=(500120, 5199510, 500520, 5199910))
    with rasterio.open(source) as src:
        warp = GridWarp(src, grid, Resampling.nearest)
        try:
            direct = warp.read([1, 2, 3], window)
            single = warp.read(2, window)
        finally:
            warp.close()
        fresh = np.stack([gdal_window(src, b, grid, window, Resampling.nearest, 0) for b in (1, 2, 3)])
    assert warp.direct
    assert direct.dtype == np.float32 and direct.shape == (3, window.height, window.width)
    np.testing.assert_array_equal(direct, fresh)
    np.testing.assert_array_equal(single, fresh[1])
    assert np.isfinite(direct).any()
    if window.col_off <= 8 < window.col_off + window.width and window.row_off <= 6 < window.row_off + window.height:
        assert np.isnan(direct[:, 6 - window.row_off, 8 - window.col_off]).all()


@pytest.mark.parametrize(
    ("transform", "mask", "resampling"),
    [
        (from_origin(500005, 5200000, 10, 10), False, Resampling.nearest),  # half a pixel off the grid
        (from_origin(500000, 5200000, 10, 10), True, Resampling.nearest),  # an internal mask band
        (from_origin(500000, 5200000, 10, 10), False, Resampling.bilinear),  # resampled on purpose
    ],
    ids=["shifted", "mask band", "bilinear"],
)
def test_sources_off_the_grid_or_with_masks_go_through_the_warper(tmp_path, transform, mask, resampling):
    data = np.ones((1, 20, 20), dtype="uint16")
    grid_source = write_raster(
        tmp_path / "grid.tif", data, "EPSG:32633", from_origin(500000, 5200000, 10, 10), nodata=0
    )
    other = write_raster(tmp_path / "other.tif", data, "EPSG:32633", transform, nodata=0, all_valid_mask=mask)
    grid = reference_grid([str(grid_source)])
    with rasterio.open(other) as src:
        warp = GridWarp(src, grid, resampling)
        try:
            assert not warp.direct
            assert warp.read(1, Window(2, 2, 5, 5)).shape == (5, 5)
        finally:
            warp.close()


@pytest.mark.parametrize(("width", "height"), [(10000, 10000), (300, 100), (100, 100), (1000, 40)])
def test_reflectance_sample_windows_lie_inside_the_raster_and_spread_over_it(width, height):
    from landslide_engine.stack import _spread_windows

    windows = _spread_windows(width, height, 256, 4)
    assert windows
    for w in windows:
        assert 0 <= w.col_off <= width - w.width and 0 <= w.row_off <= height - w.height
    if width > 256 or height > 256:
        assert len(windows) == 16 and {w.width for w in windows} == {min(64, width)}
        assert max(w.col_off for w in windows) > width // 2 > min(w.col_off for w in windows)
    else:
        assert windows == [Window(0, 0, width, height)]


@pytest.mark.parametrize(
    ("dtype", "nodata", "offset"),
    [("uint16", 0, "auto"), ("uint16", None, "auto"), ("int16", -32767, "1000"), ("uint8", 7, "0")],
    ids=["declared 0", "implicit 0", "int16 with offset", "uint8"],
)
def test_bands_read_as_stored_scale_to_the_float_reads_bits(tmp_path, dtype, nodata, offset):
    """The scene reader's integer path (``read_native(stored=True)``) gives the model input of the float32
    path bit for bit, no data included (in some bands of a pixel only, or all), inside the source and at its
    edges (where it falls back to the float read)."""
    from landslide_engine.bands import L4S_BANDS
    from landslide_engine.pipeline import SceneInputs, open_scene
    from tests.qgis_helpers import write_dem_around, write_l1c_stack

    rng = np.random.default_rng(5)
    high = 250 if dtype == "uint8" else 9000
    values = rng.integers(1 if dtype == "uint8" else 900, high, (12, 70, 90)).astype(dtype)
    hole = nodata if nodata is not None else 0
    values[:, 10:14, 20:30] = hole  # every band
    values[3, 40:45, 50:60] = hole  # one band only
    s2 = write_l1c_stack(tmp_path / "S2A_MSIL1C_20200101_t.tif", values, nodata=nodata)
    dem = write_dem_around(
        tmp_path / "dem.tif", np.full((1, 40, 40), 800.0, "float32") + np.arange(40, dtype="float32")
    )
    scale = "x1000" if dtype == "uint8" else "l1c"
    inputs = SceneInputs([str(s2)], str(dem), reflectance_scale=scale, baseline_offset=offset)
    scene = open_scene(inputs, list(L4S_BANDS), {})
    with scene.stack as stack:
        for window in (Window(0, 0, 90, 70), Window(15, 5, 40, 45), Window(-3, -2, 30, 30), Window(70, 60, 30, 20)):
            expected = stack.stack_bands(window, list(L4S_BANDS))
            native = stack.read_native(window, list(L4S_BANDS), stored=True)
            inside = window.col_off >= 0 and window.row_off >= 0 and window.col_off + window.width <= 90
            inside = inside and window.row_off + window.height <= 70
            assert bool(native.stored_nodata) == inside
            assert all(native.s2[b].dtype == np.dtype(dtype) for b in native.stored_nodata)
            got = stack.to_l4s(native, out=np.empty_like(expected))
            if window.width == 90:  # the whole source: holes in every band and in one band only
                assert np.isnan(expected[:12]).all(axis=0).sum() >= 40 and np.isnan(expected).any(axis=0).sum() >= 90
            np.testing.assert_array_equal(got, expected)  # NaN where the float path has NaN, same bits elsewhere
