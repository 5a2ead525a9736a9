"""Fixtures of the plugin's tests, which run inside a QGIS application (pytest-qgis)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def provider(qgis_app, qgis_processing):
    """The ``landslide`` processing provider, registered once in the test QGIS application."""
    from qgis.core import QgsApplication

    from landslide_qgis.toolbox.provider import LandslideProvider

    prov = LandslideProvider()
    assert QgsApplication.processingRegistry().addProvider(prov)
    yield prov
    QgsApplication.processingRegistry().removeProvider(prov)
