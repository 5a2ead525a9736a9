"""The scene reader's fused passes give the bits of the plain expressions they replace, and the Sentinel-2
values it reads into reused arrays are never overwritten while a window read before still holds them."""

from __future__ import annotations

import numpy as np
from rasterio.windows import Window

from landslide_engine.bands import DEM_BAND, L4S_BANDS, SLOPE_BAND, divisor
from landslide_engine.pipeline import SceneInputs, open_scene
from landslide_engine.scaling import ReflectanceScaling
from landslide_engine.stack import _mark_invalid, _rounded_in_units
from tests.qgis_helpers import write_dem_around, write_l1c_stack


def test_rounding_to_whole_units_gives_the_bits_of_round_then_divide():
    rng = np.random.default_rng(3)
    for dtype in (np.float64, np.float32):
        values = (rng.normal(size=(40, 70)) * 900 + 300).astype(dtype)
        values[::7, ::5] = np.nan
        values[1, :20] = np.arange(20) + 0.5  # halves: round half to even
        values[2, :4] = [2**23 + 1, -(2**24), 9.5e6 + 0.5, np.inf]  # float32's whole numbers and beyond
        for band in (DEM_BAND, SLOPE_BAND, "B2"):
            expected = np.empty(values.shape, np.float32)
            expected[...] = np.round(values) / divisor(band)
            got = np.full(values.shape, -1.0, np.float32)
            _rounded_in_units(values, divisor(band), got)
            assert np.array_equal(got, expected, equal_nan=True), (dtype, band)
            # the DEM as read (float32), rounded and divided as the float64 copy the reader used to make
            expected[...] = np.round(values.astype(np.float64)) / divisor(band)
            _rounded_in_units(values, divisor(band), got, np.float64)
            assert np.array_equal(got, expected, equal_nan=True), (dtype, band)


def test_invalid_mask_band_by_band_is_any_band_not_finite():
    rng = np.random.default_rng(4)
    values = rng.random((14, 30, 50)).astype(np.float32)
    values[0, 3, 4] = np.nan
    values[13, 10:12, 7] = np.inf
    values[5, 20, :] = -np.inf
    values[:, 29, 49] = np.nan
    invalid = np.ones((30, 50), bool)
    _mark_invalid(list(values), invalid)
    assert np.array_equal(invalid, (~np.isfinite(values)).any(axis=0))
    assert invalid.sum() == 1 + 2 + 50 + 1
    part = np.zeros((30, 80), bool)[:, 10:60]  # a column part of a chunk's mask, as the reader writes it
    _mark_invalid(list(values), part)
    assert np.array_equal(part, invalid)
    _mark_invalid([], part)  # no band that can hold NaN
    assert not part.any()


def test_integers_keep_finite_unless_the_scale_overflows_float32():
    usual = ReflectanceScaling("l1c", 1.0, 1000.0, "test")
    assert all(usual.keeps_finite("B2", np.dtype(t)) for t in ("uint16", "int16", "uint8"))
    absurd = ReflectanceScaling("l1c", 1e40, 0.0, "test")
    assert absurd.keeps_finite("B2", np.dtype("uint8")) is False  # 255 x 1e40 / 825 overflows float32
    assert ReflectanceScaling("l1c", float("nan"), 0.0, "test").keeps_finite("B2", np.dtype("uint16")) is False


def _scene_with_holes(tmp_path):
    """A stored L1C stack with nodata in one band and in all, and a DEM with a void, as written files."""
    rng = np.random.default_rng(8)
    values = rng.integers(900, 3000, (12, 60, 80)).astype("uint16")
    values[4, 5:9, 10:20] = 0
    values[:, 40:44, 60:70] = 0
    s2 = write_l1c_stack(tmp_path / "S2A_MSIL1C_20200101_h.tif", values, nodata=0)
    dem_values = np.full((1, 40, 40), 800.0, "float32") + np.arange(40, dtype="float32")
    dem_values[0, 30:33, 5:8] = -9999.0
    dem = write_dem_around(tmp_path / "dem.tif", dem_values, nodata=-9999.0)
    return s2, dem


def test_the_invalid_mask_from_the_bands_that_can_hold_nan_is_any_band_not_finite(tmp_path):
    """``to_l4s(invalid=)`` tests only bands that may hold NaN: the same mask as testing all 14, with holes in one
    band, in all bands, in the DEM (and so the slope), and in windows without any."""
    s2, dem = _scene_with_holes(tmp_path)
    scene = open_scene(SceneInputs([str(s2)], str(dem), baseline_offset="0"), list(L4S_BANDS), {})
    with scene.stack as stack:
        seen = set()
        for window in (Window(0, 0, 80, 60), Window(0, 0, 30, 12), Window(50, 35, 30, 20), Window(20, 15, 20, 10)):
            for stored in (True, False):
                native = stack.read_native(window, list(L4S_BANDS), stored=stored)
                invalid = np.ones((window.height, window.width), bool)
                out = stack.to_l4s(native, invalid=invalid)
                assert np.array_equal(invalid, (~np.isfinite(out)).any(axis=0)), (window, stored)
                seen.add(int(invalid.sum()) > 0)
        assert seen == {True, False}


def test_stored_values_of_a_window_still_held_are_not_overwritten_by_the_next_read(tmp_path):
    rng = np.random.default_rng(6)
    values = rng.integers(900, 3000, (12, 60, 80)).astype("uint16")
    s2 = write_l1c_stack(tmp_path / "S2A_MSIL1C_20200101_t.tif", values, nodata=0)
    dem = write_dem_around(tmp_path / "dem.tif", np.full((1, 40, 40), 800.0, "float32"))
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
