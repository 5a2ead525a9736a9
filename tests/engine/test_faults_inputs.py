"""Fault suite: broken inputs end in one line naming the file (exit 2), never a traceback or a hang, and leave
nothing: rasters truncated in the middle (read by the reader thread or the main one), pipes and devices
given as files, a rotated DEM."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from tests.faults import assert_refused, cli, files_under
from tests.scenes import make_scene, write_raster


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    return make_scene(tmp_path_factory.mktemp("scene"), 300, 300)


def _truncated(path: Path, folder: Path) -> Path:
    """A copy of ``path`` cut at two thirds: the header reads, blocks further down fail."""
    data = path.read_bytes()
    cut = folder / f"cut_{path.name}"
    cut.write_bytes(data[: len(data) * 2 // 3])
    return cut


@pytest.mark.parametrize("broken", ["s2", "dem", "slope"])
def test_predict_with_a_raster_truncated_mid_file(tmp_path, scene, broken):
    s2, dem = scene
    slope = tmp_path / "slope.tif"
    assert cli("slope", "--dem", dem, "--out", slope).returncode == 0
    files = {"s2": s2, "dem": dem, "slope": slope}
    files[broken] = _truncated(files[broken], tmp_path)
    out = tmp_path / "out"
    proc = cli("predict", "--s2", files["s2"], "--dem", files["dem"], "--slope", files["slope"], "--out", out)
    assert_refused(proc, "cannot read", files[broken].name)
    assert files_under(out) == set()


@pytest.mark.parametrize("command", ["slope", "stack"])
def test_slope_and_stack_with_a_dem_truncated_mid_file(tmp_path, scene, command):
    s2, dem = scene
    dem = _truncated(dem, tmp_path)
    out = tmp_path / "out" / "x.tif"
    args = ["slope", "--dem", dem] if command == "slope" else ["stack", "--s2", s2, "--dem", dem]
    proc = cli(*args, "--out", out)
    assert_refused(proc, "cannot read DEM", dem.name)
    assert files_under(tmp_path / "out") == set()


@pytest.mark.parametrize("device", ["fifo", "/dev/zero"])
def test_pipes_and_devices_are_not_inputs(tmp_path, scene, device):
    s2, _ = scene
    path = Path(device)
    if device == "fifo":
        path = tmp_path / "dem.tif"
        os.mkfifo(path)
    for args in (["slope", "--dem", path, "--out", tmp_path / "s.tif"], ["predict", "--s2", s2, "--dem", path]):
        if args[0] == "predict":
            args += ["--out", tmp_path / "out"]
        proc = cli(*args, timeout=60)
        assert_refused(proc, str(path), "not a regular file")
    assert files_under(tmp_path) == ({"dem.tif"} if device == "fifo" else set())


def test_slope_of_a_rotated_dem_is_one_line(tmp_path):
    rotated = Affine(10.0, 1.0, 500000.0, 1.0, -10.0, 5200000.0)
    dem = write_raster(tmp_path / "rotated.tif", np.full((50, 50), 100.0, np.float32), "EPSG:32633", rotated)
    proc = cli("slope", "--dem", dem, "--out", tmp_path / "out" / "s.tif")
    assert_refused(proc, "rotated.tif", "rotated")
    assert not (tmp_path / "out").exists()


def test_train_refuses_an_unusable_output_folder_before_training(tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    (tmp_path / "file").write_text("x")
    proc = cli(
        "train", "--data", tmp_path, "--model", "unet_plain_w16", "--out", tmp_path / "file" / "run", module="training"
    )
    assert_refused(proc, "--out", "file")
    if Path("/proc/self").is_dir():  # permission bits say writable, yet nothing can be created there
        proc = cli("train", "--data", tmp_path, "--model", "unet_plain_w16", "--out", "/proc/run", module="training")
        assert_refused(proc, "--out /proc/run")
    assert files_under(tmp_path) == {"file"}


def test_slope_of_a_dem_beyond_the_pixel_bound_is_refused_before_work(tmp_path):
    """A sparse GeoTIFF declares 60,000² px in a few hundred KB: slope would run for hours and fill the disk."""
    import rasterio

    profile = dict(driver="GTiff", width=60000, height=60000, count=1, dtype="float32", crs="EPSG:32633")
    profile.update(transform=Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5200000.0), tiled=True, SPARSE_OK=True)
    with rasterio.open(tmp_path / "huge.tif", "w", **profile):
        pass
    proc = cli("slope", "--dem", tmp_path / "huge.tif", "--out", tmp_path / "out" / "s.tif")
    assert_refused(proc, "huge.tif", "pixels")
    assert not (tmp_path / "out").exists()


def test_a_reader_that_goes_away_is_no_traceback():
    """``models | head -0``: stdout closed before the listing is written."""
    import subprocess
    import sys

    from tests.faults import ROOT

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "landslide_engine", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.wait(timeout=120)
    assert proc.returncode in (0, 141) and "Traceback" not in err and err.strip() == "", err


@pytest.mark.parametrize("command", ["predict", "slope"])
def test_a_dem_scaled_by_1e30_is_refused_not_mapped(tmp_path, scene, command):
    """The class "implausible rasters" of the fault suite; the check itself is landslide_engine.plausibility."""
    import rasterio

    s2, dem = scene
    with rasterio.open(dem) as src:
        profile, values = src.profile, src.read(1)
    huge = tmp_path / "dem_x1e30.tif"
    with rasterio.open(huge, "w", **profile) as dst:
        dst.write((values * 1e30).astype(np.float32), 1)
    out = tmp_path / "out"
    args = ["predict", "--s2", s2, "--dem", huge, "--out", out] if command == "predict" else []
    args = args or ["slope", "--dem", huge, "--out", out / "slope.tif"]
    assert_refused(cli(*args), "dem_x1e30.tif")
    assert files_under(out) == set()
