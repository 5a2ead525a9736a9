"""Shared fixtures: the real data in ../shared (skipping without it), the batch scenes.

Builders that are plain functions live in helper modules beside this file (``scenes``, ``rasters``, ``products``,
``qgis_helpers``, ``faults``, ``terminal``); test modules import those, never each other."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# QGIS computes a histogram for the renderer of every raster layer a test adds and GDAL keeps it in an .aux.xml
# beside the file: never beside the real data in ../shared (test_dock and test_model3 left two there)
os.environ.setdefault("GDAL_PAM_ENABLED", "NO")

from tests.paths import GEO, L4S, SHARED

# PyTorch and its model zoo are optional: an analyst's QGIS Python often has onnxruntime only, and on Python 3.14
# PyPI has only a CUDA build of torch. Test modules that import them (the training package, .pt packages) are
# skipped, saying so, where they are missing; everything else, the plugin tests included, runs without them.
OPTIONAL_MODEL_MODULES = ("torch", "segmentation_models_pytorch")


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    if report.failed and isinstance(collector, pytest.Module):
        text = str(report.longrepr)
        missing = [m for m in OPTIONAL_MODEL_MODULES if f"No module named '{m}'" in text]
        if missing:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: needs {missing[0]}, which this Python lacks")
    return report


@pytest.fixture(scope="session")
def l4s_root() -> Path:
    if not (L4S / "TrainData" / "img").is_dir():
        pytest.skip(f"real Landslide4Sense patches not found at {L4S} (a user's clone has no ../shared)")
    return L4S


@pytest.fixture(scope="session")
def geo_root() -> Path:
    if not GEO.is_dir():
        pytest.skip(f"real Sentinel-2/DEM rasters not found at {GEO} (a user's clone has no ../shared)")
    return GEO


@pytest.fixture
def aberystwyth(geo_root) -> tuple[Path, Path, tuple[float, float, float, float]]:
    """The real x1000 Aberystwyth scene (no B1, B9, B10), the Int16 SRTM in EPSG:4326, and a 150 x 100 px
    extent (left, bottom, right, top) inside the scene."""
    import rasterio

    from tests.scenes import ABER

    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    with rasterio.open(s2) as src:
        left, top = src.transform.c, src.transform.f
    return s2, geo_root / ABER / "AberSRTM_4326.tif", (left + 1000, top - 2000, left + 2500, top - 1000)


@pytest.fixture(scope="module")
def scenes(geo_root, tmp_path_factory) -> dict[str, Path]:
    """Overlapping crops ``west`` and ``east`` of the real Aberystwyth mosaic, a ``corrupt`` crop cut short and the
    real ``dem``: the batch tests' scenes, in the engine and in QGIS."""
    from tests.scenes import ABER, ABER_DEM_FILE, ABER_S2_FILE, CROPS, SIZE, crop  # the engine, only when used

    folder = tmp_path_factory.mktemp("batch_scenes")
    source = geo_root / ABER / ABER_S2_FILE
    made = {name: crop(source, folder / f"{name}.tif", *corner, *SIZE) for name, corner in CROPS.items()}
    whole = crop(source, folder / "whole.tif", 300, 560, *SIZE)
    corrupt = folder / "corrupt.tif"
    corrupt.write_bytes(whole.read_bytes()[: whole.stat().st_size * 6 // 10])  # header intact, tiles cut off
    made["corrupt"] = corrupt
    made["dem"] = geo_root / ABER / ABER_DEM_FILE
    return made


_SHARED_BEFORE = pytest.StashKey[set[Path]]()


def _shared_files() -> set[Path]:
    return set(SHARED.rglob("*")) if SHARED.is_dir() else set()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_SHARED_BEFORE] = _shared_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The real data in ../shared is read, never written: a file a test left there (a QGIS statistics .aux.xml, an
    output written beside its input) fails the run, naming it, so it is found where it was made."""
    before = session.config.stash.get(_SHARED_BEFORE, None)
    if before is None:
        return
    left = sorted(_shared_files() - before)
    if left:
        names = ", ".join(str(p.relative_to(SHARED)) for p in left[:5])
        session.config.get_terminal_writer().line(f"tests wrote {len(left)} file(s) into {SHARED}: {names}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
