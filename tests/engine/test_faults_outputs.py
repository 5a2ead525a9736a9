"""Fault suite: outputs are complete or absent. A full disk, an output that is an input or a folder, a
termination signal, a killed run and two runs into one folder each leave exactly the files asserted here."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

from landslide_engine.errors import OutputError
from landslide_engine.pipeline import OUTPUT_FILES
from landslide_engine.targets import STALE_AFTER_S, TEMP_TAG, OutputSet
from tests.faults import ROOT, assert_refused, cli, files_under, problem_lines
from tests.scenes import make_scene

OUTPUTS = set(OUTPUT_FILES)


@pytest.fixture(scope="module")
def scene(tmp_path_factory) -> tuple[Path, Path]:
    return make_scene(tmp_path_factory.mktemp("scene"), 300, 300)


def _digest(folder: Path) -> dict[str, str]:
    return {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in sorted(files_under(folder))}


@pytest.mark.parametrize("command", ["slope", "stack", "predict"])
def test_a_full_disk_is_an_error_and_leaves_nothing(tmp_path, scene, command):
    s2, dem = scene
    out = tmp_path / "out"
    args = {
        "slope": ["slope", "--dem", dem, "--out", out / "slope.tif"],
        "stack": ["stack", "--s2", s2, "--dem", dem, "--out", out / "stack.tif"],
        "predict": ["predict", "--s2", s2, "--dem", dem, "--out", out],
    }[command]
    proc = cli(*args, file_size_limit=2000)
    assert_refused(proc, "cannot write", str(out), "File too large")
    assert files_under(out) == set()


def test_a_full_disk_keeps_the_previous_set_whole(tmp_path, scene):
    s2, dem = scene
    out = tmp_path / "out"
    assert cli("predict", "--s2", s2, "--dem", dem, "--out", out).returncode == 0
    before = _digest(out)
    assert set(before) == OUTPUTS
    proc = cli("predict", "--s2", s2, "--dem", dem, "--out", out, "--threshold", "0.2", file_size_limit=2000)
    assert_refused(proc, "cannot write", "File too large")
    assert _digest(out) == before


def test_polygons_on_a_full_disk_are_an_error(tmp_path, scene):
    """OGR reports failures through return codes and GDAL's last error; neither may pass silently."""
    script = f"""
import resource, signal, sys
sys.path.insert(0, {str(ROOT)!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
from landslide_engine.errors import OutputError
from landslide_engine.pipeline import OUTPUT_FILES
from landslide_engine.grid import Grid
from landslide_engine.outputs import write_polygons
import rasterio
with rasterio.open({str(scene[0])!r}) as src:
    grid = Grid(src.crs, src.transform, src.width, src.height)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
try:
    write_polygons({str(tmp_path / "m.tif")!r}, {str(tmp_path / "p.tif")!r}, {str(tmp_path / "x.gpkg")!r}, grid)
except OutputError as exc:
    print("refused:", exc)
"""
    import numpy as np

    with rasterio.open(scene[0]) as src:
        profile = dict(
            driver="GTiff", width=src.width, height=src.height, count=1, crs=src.crs, transform=src.transform
        )
    mask = np.zeros((300, 300), np.uint8)
    mask[::4, ::4] = 1  # many one-pixel landslides: more polygons than 4 KB hold
    with rasterio.open(tmp_path / "m.tif", "w", dtype="uint8", nodata=255, **profile) as dst:
        dst.write(mask, 1)
    with rasterio.open(tmp_path / "p.tif", "w", dtype="float32", **profile) as dst:
        dst.write(mask.astype("float32"), 1)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert "refused: cannot write" in proc.stdout, proc.stdout + proc.stderr


def test_a_failed_swap_puts_the_previous_set_back(tmp_path, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("a", "b", "run.json"):
        (out / name).write_text(f"old {name}")
    real_replace = os.replace
    calls = []

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 5:  # three moved away, one new file in, then the disk says no
            raise OSError(28, "No space left on device")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OutputError, match="No space left"), OutputSet(out, ["a", "b", "run.json"], "run.json") as s:
        for name in ("a", "b", "run.json"):
            Path(s.path(name)).write_text(f"new {name}")
    assert {name: (out / name).read_text() for name in files_under(out)} == {
        "a": "old a",
        "b": "old b",
        "run.json": "old run.json",
    }


@pytest.mark.parametrize("which", ["slope", "stack-s2", "stack-dem", "predict-dem"])
def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path, scene, which):
    s2, dem = (tmp_path / "s2.tif", tmp_path / "dem.tif")
    s2.write_bytes(scene[0].read_bytes())
    dem.write_bytes(scene[1].read_bytes())
    if which == "predict-dem":
        dem = dem.rename(tmp_path / "probability.tif")
    before = _digest(tmp_path)
    args = {
        "slope": ["slope", "--dem", dem, "--out", dem],
        "stack-s2": ["stack", "--s2", s2, "--dem", dem, "--out", s2],
        "stack-dem": ["stack", "--s2", s2, "--dem", dem, "--out", tmp_path / "." / dem.name],
        "predict-dem": ["predict", "--s2", s2, "--dem", dem, "--out", tmp_path],
    }[which]
    assert_refused(cli(*args), "also an input")
    assert _digest(tmp_path) == before


def test_unusable_output_paths_are_one_line(tmp_path, scene):
    s2, dem = scene
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("x")
    assert_refused(cli("slope", "--dem", dem, "--out", tmp_path / "folder"), "is a folder")
    assert_refused(cli("slope", "--dem", dem, "--out", tmp_path / "file" / "s.tif"), "file")
    assert_refused(cli("predict", "--s2", s2, "--dem", dem, "--out", tmp_path / "file"), "is a file")
    assert_refused(cli("slope", "--dem", dem, "--out", "/proc/slope.tif"), "/proc/slope.tif")
    (tmp_path / "out" / "landslides.gpkg").mkdir(parents=True)
    assert_refused(cli("predict", "--s2", s2, "--dem", dem, "--out", tmp_path / "out"), "landslides.gpkg", "folder")
    assert files_under(tmp_path) == {"folder", "file", "out", "out/landslides.gpkg"}


def _start_predict(scene, out: Path, *extra) -> subprocess.Popen:
    s2, dem = scene
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    args = ["predict", "--s2", s2, "--dem", dem, "--out", out, "--tta", *extra]
    return subprocess.Popen(
        [sys.executable, "-m", "landslide_engine", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_temporaries(out: Path, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not any(TEMP_TAG in name for name in files_under(out)):
        assert proc.poll() is None, "the run ended before it could be signalled"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)  # into the patches


@pytest.fixture(scope="module")
def slow_scene(tmp_path_factory) -> tuple[Path, Path]:
    return make_scene(tmp_path_factory.mktemp("slow"), 500, 500)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGINT, 130)])
def test_a_signal_mid_run_removes_every_temporary(tmp_path, slow_scene, signum, code):
    out = tmp_path / "out"
    proc = _start_predict(slow_scene, out)
    _wait_for_temporaries(out, proc)
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    lines = problem_lines(err)
    assert proc.returncode == code, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "no output written" in lines[0]
    assert files_under(out) == set()


def test_the_next_run_sweeps_what_a_killed_run_left(tmp_path, slow_scene, scene):
    out = tmp_path / "out"
    proc = _start_predict(slow_scene, out)
    _wait_for_temporaries(out, proc)
    proc.kill()
    proc.communicate(timeout=60)
    left = files_under(out)
    assert left and all(TEMP_TAG in path for path in left)
    old = time.time() - 2 * STALE_AFTER_S
    for path in out.iterdir():
        os.utime(path, (old, old))
    assert cli("predict", "--s2", scene[0], "--dem", scene[1], "--out", out).returncode == 0
    assert files_under(out) == OUTPUTS


def test_a_live_runs_temporaries_are_not_swept(tmp_path, scene):
    out = tmp_path / "out"
    out.mkdir()
    mine = out / f".probability{TEMP_TAG}.{os.getpid()}.x.part.tif"  # this test process is alive
    mine.write_text("in use")
    old = time.time() - 2 * STALE_AFTER_S
    os.utime(mine, (old, old))
    assert cli("predict", "--s2", scene[0], "--dem", scene[1], "--out", out).returncode == 0
    assert files_under(out) == OUTPUTS | {mine.name}


def test_two_runs_into_one_folder_leave_one_whole_set(tmp_path, slow_scene):
    out = tmp_path / "out"
    runs = [_start_predict(slow_scene, out, "--threshold", t) for t in ("0.3", "0.7")]
    for run in runs:
        _, err = run.communicate(timeout=300)
        assert run.returncode == 0, err
    assert files_under(out) == OUTPUTS
    threshold = json.loads((out / "run.json").read_text())["threshold"]
    with rasterio.open(out / "landslides.tif") as mask:
        assert mask.descriptions[0] == f"landslide (probability >= {threshold:g})"


def test_a_full_disk_during_the_demo_leaves_no_part_of_its_scene(tmp_path):
    out = tmp_path / "demo"
    proc = cli("demo", "--out", out, file_size_limit=2000)
    assert_refused(proc, "cannot write", str(out / "scene"), "File too large")
    assert files_under(out) == set()
    assert not (out / "scene").exists()
