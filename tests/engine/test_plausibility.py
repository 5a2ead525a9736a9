"""A DEM is one band of elevations in metres, a slope layer one band of 0-90 degrees; anything else is refused.

The wrong layers an analyst can pick in QGIS or type on the shell, with the real rasters of ../shared: the
10-band Sentinel-2 scene as the DEM, the SRTM as the slope, and DEMs in the wrong unit.
"""

from __future__ import annotations

import numpy as np
import pytest
from rasterio.transform import from_origin

from landslide_engine.cli import main
from landslide_engine.errors import InputError
from landslide_engine.pipeline import PredictRequest, predict_scene, stack_to_file
from landslide_engine.plausibility import ELEVATION_RANGE_M, check_elevations, check_slopes
from landslide_engine.slope import write_slope
from tests.rasters import write_raster
from tests.scenes import FakeRunner, heights, make_scene

FILLS = {"B1": 1.0, "B9": 1.0, "B10": 1.0}


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:") or "Traceback" in line]


@pytest.mark.parametrize("command", ["predict", "stack", "slope"])
def test_the_sentinel2_scene_given_as_the_dem_is_refused_in_one_line(aberystwyth, tmp_path, capsys, command):
    s2, _, extent = aberystwyth
    out = tmp_path / ("out" if command == "predict" else "out.tif")
    args = ["--dem", str(s2), "--out", str(out)]
    if command != "slope":
        args += ["--s2", str(s2), "--extent", *map(str, extent), "--reflectance-scale", "x1000"]
        args += ["--fill", "B1=1", "B9=1", "B10=1"] if command == "stack" else []
    assert main([command, *args]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1, errors
    assert "DEM sen2_20210527_aber_10band_mosaic_epsg27700.tif has 10 bands (B02, B03" in errors[0]
    assert "multi-band" in errors[0] and not out.exists()


def test_the_dem_given_as_the_slope_is_refused_in_one_line(aberystwyth, tmp_path, capsys):
    s2, srtm, extent = aberystwyth
    args = ["predict", "--s2", str(s2), "--dem", str(srtm), "--slope", str(srtm), "--extent", *map(str, extent)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "slope AberSRTM_4326.tif has values from" in errors[0], errors
    assert "not degrees from 0 to 90" in errors[0]


def test_a_real_slope_layer_and_the_real_srtm_pass(aberystwyth, tmp_path):
    s2, srtm, extent = aberystwyth
    slope = write_slope(srtm, tmp_path / "slope.tif")
    result = predict_scene(
        PredictRequest(s2=[str(s2)], dem=str(srtm), slope=str(slope), out_dir=str(tmp_path / "o"), extent=extent),
        runner=FakeRunner(fillable=FILLS),
    )
    assert result.report.exists()


@pytest.mark.parametrize(("unit", "factor"), [("feet", 3.28084), ("centimetres", 100.0), ("decimetres", 10.0)])
def test_a_mountain_dem_in_another_unit_is_refused(tmp_path, unit, factor):
    s2, _ = make_scene(tmp_path, 60, 70)
    metres = 2500.0 + 4 * heights()  # 3700-4760 m: the Himalaya's landslide belt
    assert ELEVATION_RANGE_M[0] < metres.min() and metres.max() < ELEVATION_RANGE_M[1]
    transform = from_origin(499900.0, 5200100.0, 10, 10)
    good = write_raster(tmp_path / "m.tif", metres.astype(np.float32), "EPSG:32633", transform, nodata=-9999.0)
    stack_to_file([str(s2)], str(good), str(tmp_path / "ok.tif"))
    bad = write_raster(tmp_path / f"{unit}.tif", (metres * factor).astype(np.float32), "EPSG:32633", transform)
    with pytest.raises(InputError, match=rf"DEM {unit}\.tif has values from .* not elevations in metres"):
        stack_to_file([str(s2)], str(bad), str(tmp_path / "bad.tif"))
    with pytest.raises(InputError, match="not elevations in metres"):
        write_slope(bad, tmp_path / "slope.tif")
    assert not (tmp_path / "bad.tif").exists() and not (tmp_path / "slope.tif").exists()


def test_an_undeclared_nodata_value_is_not_an_elevation(tmp_path):
    dem = heights().astype(np.int16)
    dem[:20] = -32768  # a void the file does not declare as nodata
    path = write_raster(tmp_path / "voids.tif", dem, "EPSG:32633", from_origin(499900.0, 5200100.0, 10, 10))
    with pytest.raises(InputError, match="with its nodata value declared"):
        write_slope(path, tmp_path / "slope.tif")
    declared = write_raster(
        tmp_path / "declared.tif", dem, "EPSG:32633", from_origin(499900.0, 5200100.0, 10, 10), nodata=-32768
    )
    assert write_slope(declared, tmp_path / "slope.tif").exists()


def test_the_rules_leave_a_stray_spike_and_rounding_alone():
    values = np.full(100_000, 300.0)
    values[:5] = 40_000.0  # five spikes in 100 000 pixels
    check_elevations(values, "dem.tif")
    check_slopes(np.array([-0.01, 0.0, 45.0, 90.02, np.nan]), "slope.tif")
    with pytest.raises(InputError, match="slope in percent"):
        check_slopes(np.linspace(0, 150, 1000), "slope_percent.tif")
