"""Fault suite, QGIS side: Processing outputs are checked before the run, placed without half-written files
(also across file systems), and landslide:slope honours Cancel; each failure is one QgsProcessingException."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from landslide_engine.errors import OutputError
from landslide_engine.targets import place_file
from tests.faults import files_under
from tests.qgis_helpers import synthetic_scene, tiny_model_package


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    s2, dem = synthetic_scene(folder)
    return s2, dem, tiny_model_package(folder / "tiny.onnx")


def _detect(scene, **outputs):
    import processing

    s2, dem, model = scene
    params = {"SENTINEL2": [str(s2)], "DEM": str(dem), "MODEL_FILE": str(model), "DEVICE": "cpu"}
    return processing.run("landslide:detect", {**params, **outputs})


def test_two_outputs_on_one_path_are_refused_before_the_run(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    same = str(tmp_path / "out.tif")
    with pytest.raises(QgsProcessingException, match="same file"):
        _detect(scene, OUTPUT_PROBABILITY=same, OUTPUT_MASK=same, OUTPUT_POLYGONS=str(tmp_path / "p.gpkg"))
    assert files_under(tmp_path) == set()


def test_a_folder_as_an_output_file_is_refused(provider, scene, tmp_path):
    from qgis.core import QgsProcessingException

    (tmp_path / "taken.tif").mkdir()
    outputs = {
        "OUTPUT_PROBABILITY": str(tmp_path / "taken.tif"),
        "OUTPUT_MASK": str(tmp_path / "m.tif"),
        "OUTPUT_POLYGONS": str(tmp_path / "p.gpkg"),
    }
    with pytest.raises(QgsProcessingException, match="is a folder"):
        _detect(scene, **outputs)
    assert files_under(tmp_path) == {"taken.tif"}


def test_slope_onto_its_own_dem_is_refused(provider, scene):
    import processing
    from qgis.core import QgsProcessingException

    dem = scene[1]
    before = hashlib.sha256(dem.read_bytes()).hexdigest()
    with pytest.raises(QgsProcessingException, match="also an input"):
        processing.run("landslide:slope", {"DEM": str(dem), "OUTPUT": str(dem)})
    assert hashlib.sha256(dem.read_bytes()).hexdigest() == before


def test_slope_honours_cancel(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException, QgsProcessingFeedback

    feedback = QgsProcessingFeedback()
    feedback.cancel()
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run("landslide:slope", {"DEM": str(scene[1]), "OUTPUT": str(tmp_path / "s.tif")}, feedback=feedback)
    assert files_under(tmp_path) == set()


def test_placing_across_file_systems_never_leaves_half_a_file(tmp_path, monkeypatch):
    """Across file systems a move is a copy: one that fails leaves neither the file nor a temporary."""
    src = tmp_path / "result.tif"
    src.write_bytes(b"x" * 10_000)
    dest = tmp_path / "dest" / "final.tif"
    real_replace = os.replace

    def cross_device(a, b):
        if Path(a) == src:
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        real_replace(a, b)

    def disk_full(a, b):
        Path(b).write_bytes(b"x" * 100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", cross_device)
    monkeypatch.setattr(shutil, "copyfile", disk_full)
    with pytest.raises(OutputError, match="No space left"):
        place_file(src, dest)
    assert files_under(tmp_path / "dest") == set()
    assert src.read_bytes() == b"x" * 10_000  # the result is still there to retry


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm, a tmpfs: another file system")
def test_placing_onto_another_file_system_moves_the_whole_file(tmp_path):
    src = tmp_path / "result.bin"
    src.write_bytes(os.urandom(100_000))
    data = src.read_bytes()
    folder = Path("/dev/shm") / f"landslide-test-{os.getpid()}"
    try:
        dest = place_file(src, folder / "final.bin")
        assert dest.read_bytes() == data and not src.exists()
        assert sorted(os.listdir(folder)) == ["final.bin"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
