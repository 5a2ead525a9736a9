"""Shared fixtures: paths to the real data in ../shared and small synthetic rasters."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
L4S = SHARED / "landslide4sense"
GEO = SHARED / "geo"


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


@pytest.fixture(scope="session")
def provider(qgis_app, qgis_processing):
    """The ``landslide`` processing provider, registered once in the test QGIS application."""
    from qgis.core import QgsApplication

    from landslide_qgis.toolbox.provider import LandslideProvider

    prov = LandslideProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    yield prov
    QgsApplication.processingRegistry().removeProvider(prov)
