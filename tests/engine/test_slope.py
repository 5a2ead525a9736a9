"""Slope (Horn) against hand-computed values, GDAL, and geographic grids."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_engine.errors import InputError
from landslide_engine.geodesy import metres_per_degree
from landslide_engine.slope import horn_slope, slope_for_grid, write_slope
from tests.rasters import write_raster


def test_horn_center_pixel_matches_hand_computation():
    # Window a..i = 50 45 50 / 30 30 30 / 8 10 10, cell 5 m (ESRI's worked example).
    dem = np.array([[50, 45, 50], [30, 30, 30], [8, 10, 10]], dtype=float)
    # dz/dx = ((50 + 60 + 10) - (50 + 60 + 8)) / (8*5) = 2/40 = 0.05
    # dz/dy = ((8 + 20 + 10) - (50 + 90 + 50)) / (8*5) = -152/40 = -3.8
    expected = math.degrees(math.atan(math.hypot(0.05, -3.8)))
    assert horn_slope(dem, 5.0, 5.0)[1, 1] == pytest.approx(expected, abs=1e-4)


def test_plane_gives_constant_slope_everywhere_including_edges():
    yy, xx = np.mgrid[0:20, 0:30].astype(float)
    dem = 0.3 * xx * 10 + 0.4 * yy * 10  # 10 m pixels, gradient 0.5
    s = horn_slope(dem, 10.0, 10.0)
    assert np.allclose(s[1:-1, 1:-1], math.degrees(math.atan(0.5)), atol=1e-4)
    # edges replicate, so they see half the gradient across the border but never NaN
    assert np.isfinite(s).all()


def test_nodata_stays_nodata_and_neighbours_use_centre_value():
    dem = np.full((7, 7), 100.0)
    dem[3, 3] = -9999.0
    mask = dem == -9999.0
    s = horn_slope(dem, 10, 10, mask)
    assert np.isnan(s[3, 3]) and np.count_nonzero(np.isnan(s)) == 1
    # the -9999 never leaks into the neighbours' gradient
    assert np.allclose(s[~np.isnan(s)], 0.0)


@pytest.mark.parametrize("lat", [0.0, 45.0, 60.0])
def test_geographic_grid_uses_metres_per_row(lat):
    res = 1 / 3600  # one arc-second
    per_lon, _ = metres_per_degree(np.array([lat]))
    h, w = 9, 9
    cols = np.arange(w)[None, :].repeat(h, 0)
    dem = 0.2 * cols * res * per_lon[0]  # rises 0.2 m per metre eastwards
    t = from_origin(10.0, lat + h / 2 * res, res, res)
    s = slope_for_grid(dem, t, is_geographic=True)
    assert s[4, 4] == pytest.approx(math.degrees(math.atan(0.2)), rel=2e-3)
    # Treating degrees as metres would give a near-vertical slope; make sure we did not.
    assert s[4, 4] < 20


def test_metres_per_degree_matches_known_values():
    per_lon, per_lat = metres_per_degree(np.array([0.0, 60.0]))
    assert per_lon[0] == pytest.approx(111319.5, rel=1e-4)
    assert per_lon[1] == pytest.approx(55800.0, rel=2e-3)
    assert per_lat[0] == pytest.approx(110574.3, rel=1e-4)


def test_write_slope_matches_gdaldem_and_keeps_grid(tmp_path):
    from osgeo import gdal

    rng = np.random.default_rng(0)
    dem = (rng.normal(size=(300, 200)).cumsum(0).cumsum(1) * 0.5 + 500).astype(np.float32)
    dem[100, 50] = -32768
    t = from_origin(500000, 4200000, 12.5, 12.5)
    src = tmp_path / "dem.tif"
    write_raster(src, dem, CRS.from_epsg(32645), t, nodata=-32768)
    out = write_slope(src, tmp_path / "slope.tif", block_rows=64)  # several blocks: halos must line up
    gd = tmp_path / "gdal.tif"
    gdal.DEMProcessing(str(gd), str(src), "slope", computeEdges=True, alg="Horn")
    with rasterio.open(out) as a, rasterio.open(gd) as b:
        assert a.crs == CRS.from_epsg(32645) and a.transform == t and a.shape == dem.shape
        ours, ref = a.read(1, masked=True), b.read(1, masked=True)
        interior = np.zeros(dem.shape, bool)
        interior[1:-1, 1:-1] = True
        interior[99:102, 49:52] = False  # edges and nodata neighbours use their own fill rule
        assert np.abs(ours[interior] - ref[interior]).max() < 1e-3
        assert ours.mask[100, 50] and not ours.mask[0, 0]
        assert ours.mask.sum() == 1


def test_missing_dem_names_the_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.tif"):
        write_slope(tmp_path / "nope.tif", tmp_path / "s.tif")
    assert not (tmp_path / "s.tif").exists()


def _reference_horn_slope(dem, xres, yres, nodata_mask=None):
    """The fill rule applied to every pixel with whole-array neighbours (the original implementation)."""
    z = np.asarray(dem, dtype=np.float64)
    invalid = ~np.isfinite(z)
    if nodata_mask is not None:
        invalid |= nodata_mask
    zc = np.where(invalid, np.nan, z)
    zp = np.pad(zc, 1, mode="constant", constant_values=np.nan)

    def neighbour(dr, dc):
        n = zp[1 + dr : zp.shape[0] - 1 + dr, 1 + dc : zp.shape[1] - 1 + dc]
        return np.where(np.isnan(n), zc, n)

    a, b, c = neighbour(-1, -1), neighbour(-1, 0), neighbour(-1, 1)
    d, f = neighbour(0, -1), neighbour(0, 1)
    g, h, i = neighbour(1, -1), neighbour(1, 0), neighbour(1, 1)
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * np.asarray(xres))
    dzdy = ((g + 2 * h + i) - (a + 2 * b + c)) / (8.0 * np.asarray(yres))
    slope = np.degrees(np.arctan(np.hypot(dzdx, dzdy)))
    slope[invalid] = np.nan
    return slope.astype(np.float32)


def _random_dems():
    """Random-walk DEMs of many shapes and dtypes, with and without holes and masks."""
    rng = np.random.default_rng(42)
    tiny = [(0, 0), (0, 3), (3, 0), (1, 1), (1, 2), (2, 1), (1, 7), (7, 1), (2, 2), (2, 5), (3, 3), (3, 4), (4, 3)]
    shapes = [*tiny, (5, 9), (98, 2050)]  # the last is a scene window with its halo
    for shape in shapes:
        for dtype in (np.float64, np.float32):
            dem = (rng.normal(size=shape).cumsum(0).cumsum(1) * 3 + 800).astype(dtype)
            yield dem, None
            holes = dem.copy()
            holes[rng.random(shape) < 0.05] = np.nan
            if holes.size:
                holes.flat[0] = np.inf
            yield holes, None
            yield holes, rng.random(shape) < 0.1
            yield np.full(shape, np.nan, dtype), None
    flat = np.full((6, 6), 100.0)
    yield flat, flat == 100.0  # everything masked
    corners = np.arange(30.0).reshape(5, 6)
    corners[[0, 0, -1, -1], [0, -1, 0, -1]] = np.nan
    yield corners, None


def test_horn_slope_is_bit_identical_to_the_fill_rule_everywhere():
    rng = np.random.default_rng(7)
    cases = 0
    for dem, mask in _random_dems():
        rows = dem.shape[0]
        per_row_x = (12.5 + rng.random((rows, 1)) * 20).astype(np.float64)
        per_row_y = (rng.random((rows, 1)) * 30 + 5).astype(np.float32)
        for xres, yres in [(12.5, 12.5), (10, 30.0), (np.float32(0.3), 7.7), (per_row_x, per_row_y)]:
            ours = horn_slope(dem, xres, yres, mask)
            ref = _reference_horn_slope(dem, xres, yres, mask)
            assert ours.dtype == ref.dtype == np.float32 and ours.shape == ref.shape == dem.shape
            assert np.array_equal(ours, ref, equal_nan=True), (dem.shape, dem.dtype, mask is not None)
            cases += 1
    assert cases > 200


def test_cheaper_gradient_length_gives_the_same_whole_degree_slope_on_real_dems(geo_root):
    """``precise=False`` (the model input's slope, rounded to whole degrees) against ``hypot``: the values agree
    within a few float64 ulps, and rounded to whole degrees they are identical, on real SRTMs (projected and
    geographic, with nodata) and on random DEMs with holes."""
    cases = []
    for name in ("SRTM_aber.tif", "AberSRTM_4326.tif"):
        with rasterio.open(geo_root / "rsgislib_aberystwyth_wales" / name) as src:
            dem = src.read(1).astype(np.float64)
            cases.append((dem, src.transform, src.crs.is_geographic, src.read_masks(1) == 0))
    assert {geographic for *_, geographic, _ in cases} == {True, False}
    cases += [(dem, from_origin(0, 0, 10, 10), False, mask) for dem, mask in _random_dems()]
    compared = 0
    for dem, transform, geographic, mask in cases:
        precise = slope_for_grid(dem, transform, geographic, nodata_mask=mask)
        cheap = slope_for_grid(dem, transform, geographic, nodata_mask=mask, precise=False)
        np.testing.assert_allclose(cheap, precise, rtol=1e-6, atol=1e-6)  # float32 outputs: at most an ulp apart
        assert np.array_equal(np.round(cheap), np.round(precise), equal_nan=True)
        assert np.array_equal(np.isnan(cheap), np.isnan(precise))
        compared += int(np.isfinite(precise).sum())
    assert compared > 1_000_000


def test_inner_slope_is_the_full_slope_without_its_outer_ring():
    """``inner=True`` (the scene reader's DEM has a one-pixel halo) computes only ``dem[1:-1, 1:-1]``: the same
    bits as the full slope there, next to holes too, with per-row steps, over several row blocks and a partial
    last one, precise or not."""
    rng = np.random.default_rng(11)
    cases = 0
    more = [(rng.normal(size=shape).cumsum(0).cumsum(1) * 4 + 500, None) for shape in [(19, 30), (34, 9), (35, 40)]]
    for dem, mask in [*_random_dems(), *more]:
        per_row = (10 + rng.random((dem.shape[0], 1)) * 20, 30.0)
        for xres, yres in [(10.0, 10.0), per_row]:
            for precise in (True, False):
                full = horn_slope(dem, xres, yres, mask, precise)
                inner = horn_slope(dem, xres, yres, mask, precise, inner=True)
                assert inner.dtype == np.float32
                assert np.array_equal(inner, full[1:-1, 1:-1], equal_nan=True), (dem.shape, mask is not None)
                cases += 1
    assert cases > 200
