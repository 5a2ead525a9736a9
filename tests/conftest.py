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

    from landslide_qgis.processing.provider import LandslideProvider

    prov = LandslideProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    yield prov
    QgsApplication.processingRegistry().removeProvider(prov)
