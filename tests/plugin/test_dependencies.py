"""Without onnxruntime and torch the plugin still loads, says what to install, and slope still works."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from rasterio.transform import from_origin

from tests.qgis_helpers import synthetic_scene, tiny_model_package, write_raster


@pytest.fixture(scope="module")
def onnx_package(tmp_path_factory) -> Path:
    """A valid .onnx package, made before the runtimes are hidden, so detection reaches the runtime."""
    return tiny_model_package(tmp_path_factory.mktemp("model") / "tiny.onnx")


@pytest.fixture()
def without_inference_runtimes(monkeypatch):
    """Make ``import onnxruntime`` and ``import torch`` fail as they would in a bare QGIS Python."""
    for name in ("onnxruntime", "torch"):
        monkeypatch.setitem(sys.modules, name, None)
    # engine modules imported by earlier tests would hide the failure: make them import afresh
    for name in [m for m in sys.modules if m.startswith(("landslide_engine.models", "landslide_engine.pipeline"))]:
        monkeypatch.delitem(sys.modules, name)
    before = set(sys.modules)
    yield
    # Drop the copies imported meanwhile (monkeypatch then puts the originals back): a module left from this test
    # would hold classes of its own (ModelPackage), which later tests' isinstance checks would not recognise.
    for name in set(sys.modules) - before:
        if name.startswith(("landslide_engine", "landslide_qgis")):
            del sys.modules[name]


def test_missing_runtime_message_names_the_package_and_the_command(without_inference_runtimes):
    from landslide_qgis import dependencies

    missing = dependencies.missing_for_inference()
    assert [r.pip_name for r in missing] == ["onnxruntime"]
    message = dependencies.missing_message(missing)
    assert "onnxruntime" in message and "\n" not in message
    # the plugin's installer (dialog, or the script with this Python), never pip --user (PEP 668 refuses it)
    assert "Install Python packages" in message and "install_dependencies.py" in message
    assert "--user" not in message and "pip install" not in message


def test_onnxruntime_alone_is_enough_and_torch_is_described_as_for_pt_models(monkeypatch):
    from landslide_qgis import dependencies

    monkeypatch.setitem(sys.modules, "torch", None)
    assert not dependencies.importable(dependencies.TORCH)
    assert dependencies.importable(dependencies.ONNXRUNTIME)
    assert dependencies.missing_for_inference() == []
    message = dependencies.missing_message([dependencies.TORCH])
    assert ".pt models" in message and ".onnx models need only onnxruntime" in message


def test_plugin_loads_and_warns_and_slope_still_runs(
    qgis_app, qgis_processing, qgis_iface, onnx_package, without_inference_runtimes, tmp_path
):
    import processing
    from qgis.core import Qgis, QgsProcessingException
    from qgis.PyQt.QtWidgets import QPushButton

    from landslide_qgis import classFactory

    qgis_iface.messageBar().clear_messages()
    plugin = classFactory(qgis_iface)
    plugin.initGui()
    try:
        # one message-bar line with an Install… button that opens the installer dialog
        item = qgis_iface.messageBar().currentItem()
        assert item is not None and item.level() == Qgis.MessageLevel.Warning
        assert "onnxruntime" in item.text() and "install_dependencies.py" in item.text()
        assert [b.text() for b in item.findChildren(QPushButton)] == ["Install…"]
        assert plugin.install_action.text() == "Install Python packages…"

        dem = write_raster(
            tmp_path / "dem.tif",
            (np.arange(12, dtype=np.float32)[None, None, :] * 10).repeat(10, 1),
            "EPSG:32633",
            from_origin(0, 100, 10, 10),
        )
        result = processing.run("landslide:slope", {"DEM": str(dem), "OUTPUT": str(tmp_path / "slope.tif")})
        assert (tmp_path / "slope.tif").exists() and result["OUTPUT"].endswith("slope.tif")

        s2, dem_path = synthetic_scene(tmp_path)
        with pytest.raises(QgsProcessingException, match=r"install_dependencies\.py"):
            processing.run(
                "landslide:detect",
                {
                    "SENTINEL2": [str(s2)],
                    "DEM": str(dem_path),
                    "MODEL_FILE": str(onnx_package),
                    "OUTPUT_PROBABILITY": "TEMPORARY_OUTPUT",
                    "OUTPUT_MASK": "TEMPORARY_OUTPUT",
                    "OUTPUT_POLYGONS": "TEMPORARY_OUTPUT",
                },
            )
    finally:
        plugin.unload()


def test_import_error_names_the_module_when_the_usual_packages_are_present(monkeypatch):
    from landslide_qgis import dependencies

    monkeypatch.setattr(dependencies, "missing_for_inference", lambda: [])
    missing = dependencies.missing_for_import_error(ImportError("No module named 'onnxruntime'", name="onnxruntime"))
    message = dependencies.missing_message(missing)
    assert [r.module for r in missing] == ["onnxruntime"]
    assert "onnxruntime" in message and "cannot import: ." not in message
