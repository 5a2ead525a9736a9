"""The scene reader's fused passes give the bits of the plain expressions they replace, and the Sentinel-2
values it reads into reused arrays are never overwritten while a window read before still holds them."""

from __future__ import annotations

import numpy as np
from rasterio.transform import from_origin
from rasterio.windows import Window

from landslide_engine.bands import DEM_BAND, L4S_BANDS, SLOPE_BAND, divisor
from landslide_engine.pipeline import SceneInputs, _mark_invalid, open_scene
from landslide_engine.stack import _rounded_in_units
from tests.qgis_helpers import S2_DESCRIPTIONS
from tests.rasters import write_raster


def test_rounding_to_whole_units_gives_the_bits_of_round_then_divide():
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        values = (rng.normal(size=(40, 70)) * 900 + 300).astype(dtype)
        values[::7, ::5] = np.nan
        values[1, :20] = np.arange(20) + 0.5  # halves: round half to even
        for band in (DEM_BAND, SLOPE_BAND, "B2"):
            expected = np.empty(values.shape, np.float32)
            expected[...] = np.round(values) / divisor(band)
            got = np.full(values.shape, -1.0, np.float32)
            _rounded_in_units(values, divisor(band), got)
            assert np.array_equal(got, expected, equal_nan=True), (dtype, band)


def test_invalid_mask_band_by_band_is_any_band_not_finite():
    rng = np.random.default_rng(4)
    values = rng.random((14, 30, 50)).astype(np.float32)
    values[0, 3, 4] = np.nan
    values[13, 10:12, 7] = np.inf
    values[5, 20, :] = -np.inf
    values[:, 29, 49] = np.nan
    invalid = np.ones((30, 50), bool)
    _mark_invalid(values, invalid)
    assert np.array_equal(invalid, (~np.isfinite(values)).any(axis=0))
    assert invalid.sum() == 1 + 2 + 50 + 1
    part = np.zeros((30, 80), bool)[:, 10:60]  # a column part of a chunk's mask, as the reader writes it
    _mark_invalid(values, part)
    assert np.array_equal(part, invalid)


def test_stored_values_of_a_window_still_held_are_not_overwritten_by_the_next_read(tmp_path):
    rng = np.random.default_rng(6)
    values = rng.integers(900, 3000, (12, 60, 80)).astype("uint16")
    s2 = write_raster(
        tmp_path / "S2A_MSIL1C_20200101_t.tif",
        values,
        "EPSG:32633",
        from_origin(500000, 5200000, 10, 10),
        S2_DESCRIPTIONS,
        nodata=0,
    )
    dem = write_raster(
        tmp_path / "dem.tif",
        np.full((1, 40, 40), 800.0, "float32"),
        "EPSG:32633",
        from_origin(499900, 5200100, 30, 30),
    )
    scene = open_scene(SceneInputs([str(s2)], str(dem), baseline_offset="0"), list(L4S_BANDS), {})
    with scene.stack as stack:
        first = stack.read_native(Window(0, 0, 40, 20), list(L4S_BANDS), stored=True)
        assert first.stored_nodata
        kept = {band: value.copy() for band, value in first.s2.items()}
        second = stack.read_native(Window(40, 30, 40, 20), list(L4S_BANDS), stored=True)  # same shape
        for band, value in first.s2.items():
            assert np.array_equal(value, kept[band]) and not np.shares_memory(value, second.s2[band])
            assert np.array_equal(second.s2[band], values[L4S_BANDS.index(band), 30:50, 40:80])
        expected = stack.to_l4s(first)
        del first, kept, value  # the loop variable held a view of the first array too
        third = stack.read_native(Window(40, 30, 40, 20), list(L4S_BANDS), stored=True)
        assert all(np.array_equal(third.s2[b], second.s2[b]) for b in second.s2)
        assert len(stack._stored_buffers) == 2  # the first window's array, free again, was reused
        assert np.isfinite(expected).all()
