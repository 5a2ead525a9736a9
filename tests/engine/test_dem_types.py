"""DEMs as analysts have them: integer and float types, with or without nodata, in slope, stack and detect.

SRTM, ALOS AW3D30 and many national DEMs are Int16/UInt16 rasters with a nodata value; the results must equal
those of the same heights stored as float64 with NaN holes, in every path.
"""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds

from landslide_engine.bands import divisor
from landslide_engine.pipeline import PredictRequest, predict_scene, stack_to_file
from landslide_engine.slope import write_slope
from tests.rasters import write_raster
from tests.scenes import ABER, FakeRunner, heights, make_scene

HOLE = np.s_[10:14, 20:26]  # rows, cols of the DEM that are nodata when the DEM declares a nodata value
DEM_TYPES = [
    ("int16", -32767),
    ("int16", -32768),
    ("int16", None),
    ("uint16", 0),
    ("uint16", None),
    ("int32", -9999),
    ("float32", -9999.0),
    ("float32", None),
    ("float64", float("nan")),
    ("float64", -32768.0),
]


def write_dem(path, dtype: str, nodata, crs="EPSG:32633", transform=None):
    """``heights()`` as ``dtype``, with ``HOLE`` set to ``nodata`` when there is one."""
    data = heights().astype(dtype)
    if nodata is not None:
        data[HOLE] = nodata
    transform = transform or from_origin(499900.0, 5200100.0, 10, 10)
    return write_raster(path, data, crs, transform, nodata=nodata)


def reference_dem(path, with_hole: bool, crs="EPSG:32633", transform=None):
    data = heights()
    if with_hole:
        data[HOLE] = np.nan
    transform = transform or from_origin(499900.0, 5200100.0, 10, 10)
    return write_raster(path, data, crs, transform, nodata=float("nan"))


def read(path, band: int = 1) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(band, masked=True).astype(np.float64).filled(np.nan)


@pytest.mark.parametrize(("dtype", "nodata"), DEM_TYPES)
def test_slope_of_every_dem_type_equals_the_float_reference(tmp_path, dtype, nodata):
    dem = write_dem(tmp_path / f"dem_{dtype}.tif", dtype, nodata)
    reference = reference_dem(tmp_path / "ref.tif", nodata is not None)
    got = read(write_slope(dem, tmp_path / "slope.tif"))
    expected = read(write_slope(reference, tmp_path / "slope_ref.tif"))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(expected))
    assert np.isnan(got).any() == (nodata is not None)
    np.testing.assert_array_equal(got[np.isfinite(got)], expected[np.isfinite(expected)])
    assert np.nanmin(got) >= 0 and np.nanmax(got) < 90


@pytest.mark.parametrize(("dtype", "nodata"), DEM_TYPES)
@pytest.mark.parametrize("dem_crs", ["EPSG:32633", "EPSG:4326"])
def test_stack_and_detect_with_every_dem_type_equal_the_float_reference(tmp_path, dtype, nodata, dem_crs):
    s2, _ = make_scene(tmp_path, 60, 70)
    if dem_crs == "EPSG:4326":  # a geographic 1-arc-second DEM around the scene: read through GDAL's warper
        west, _, _, north = transform_bounds("EPSG:32633", dem_crs, 500000.0, 5199400.0, 500700.0, 5200000.0)
        transform = from_origin(west - 10 / 3600, north + 10 / 3600, 1 / 3600, 1 / 3600)
    else:  # on the scene's grid: read directly
        transform = None
    dem = write_dem(tmp_path / f"dem_{dtype}.tif", dtype, nodata, dem_crs, transform)
    reference = reference_dem(tmp_path / "ref.tif", nodata is not None, dem_crs, transform)
    ours = stack_to_file([str(s2)], str(dem), str(tmp_path / "stack.tif"))
    theirs = stack_to_file([str(s2)], str(reference), str(tmp_path / "stack_ref.tif"))
    for band in (13, 14):  # slope and DEM
        np.testing.assert_array_equal(read(ours, band), read(theirs, band))
    with rasterio.open(ours) as src:
        dem_m = src.read(14) * divisor("B14")
        assert ((dem_m == src.nodata * divisor("B14")).any()) == (nodata is not None)
    result = predict_scene(
        PredictRequest(s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / "out")), runner=FakeRunner()
    )
    expected = predict_scene(
        PredictRequest(s2=[str(s2)], dem=str(reference), out_dir=str(tmp_path / "ref")), runner=FakeRunner()
    )
    np.testing.assert_array_equal(read(result.probability), read(expected.probability))


def test_slope_of_the_real_int16_srtm_equals_its_float_copy(geo_root, tmp_path):
    srtm = geo_root / ABER / "AberSRTM_4326.tif"  # Int16, nodata -32767, geographic
    with rasterio.open(srtm) as src:
        assert src.dtypes[0] == "int16" and src.nodata == -32767
        profile = {**src.profile, "dtype": "float32", "nodata": float("nan")}
        data = src.read(1, masked=True).astype(np.float32).filled(np.nan)
    with rasterio.open(tmp_path / "float.tif", "w", **profile) as dst:
        dst.write(data, 1)
    got = read(write_slope(srtm, tmp_path / "slope.tif"))
    np.testing.assert_array_equal(got, read(write_slope(tmp_path / "float.tif", tmp_path / "slope_float.tif")))
    assert np.isfinite(got).all() and got.max() < 60 and got.std() > 1  # hills of mid Wales


def test_sea_marked_nodata_0_in_a_real_int16_srtm_is_nodata_in_slope_and_detect(geo_root, tmp_path):
    srtm = geo_root / ABER / "SRTM_aber.tif"  # Int16, nodata 0 over the sea, British National Grid, 10 m
    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    slope = read(write_slope(srtm, tmp_path / "slope.tif"))
    with rasterio.open(srtm) as src:
        sea = src.read(1) == 0
        left, top = src.transform.c, src.transform.f
    assert sea.any() and np.isnan(slope[sea]).all() and np.isfinite(slope[~sea]).all()
    extent = (left, top - 4000, left + 4000, top)  # the coast: sea and land
    result = predict_scene(
        PredictRequest(s2=[str(s2)], dem=str(srtm), out_dir=str(tmp_path / "o"), extent=extent,
                       reflectance_scale="x1000"),
        runner=FakeRunner(fillable={"B1": 1.0, "B9": 1.0, "B10": 1.0}),
    )  # fmt: skip
    with rasterio.open(result.probability) as prob, rasterio.open(srtm) as src:
        p = prob.read(1)
        window = rasterio.windows.from_bounds(*prob.bounds, transform=src.transform)
        sea_here = src.read(1, window=window) == 0
    assert sea_here.any() and (p[sea_here] == -9999.0).all()
