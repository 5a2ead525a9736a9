"""The dock panel: suggested layers, a run through QgsTask that adds a styled result group, and Cancel."""

from __future__ import annotations

import time

import pytest
from qgis.PyQt.QtCore import Qt

from tests.qgis_helpers import synthetic_scene, tiny_model_package, write_raster


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dock")
    s2, dem = synthetic_scene(folder)
    return s2, dem, tiny_model_package(folder / "tiny.onnx")


@pytest.fixture()
def dock(qgis_app, qgis_processing, qgis_iface, qgis_new_project, inputs, tmp_path):
    import numpy as np
    from qgis.core import QgsProject, QgsRasterLayer
    from rasterio.transform import from_origin

    from landslide_qgis.gui.dock import LandslideDock

    s2, dem, _ = inputs
    ndvi = write_raster(tmp_path / "ndvi.tif", np.zeros((1, 8, 8), np.float32), "EPSG:32633", from_origin(0, 8, 1, 1))
    for path, name in ((ndvi, "ndvi"), (s2, "S2A_MSIL1C_20200101"), (dem, "srtm_dem")):
        assert QgsProject.instance().addMapLayer(QgsRasterLayer(str(path), name))
    panel = LandslideDock(qgis_iface)
    yield panel
    panel.teardown()


def _wait_for(dock, qgis_app, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while dock.task is not None and time.monotonic() < deadline:
        qgis_app.processEvents()
        time.sleep(0.02)
    assert dock.task is None, "the task did not finish in time"


def test_dock_suggests_sentinel2_and_dem_from_layer_names(dock):
    from qgis.core import QgsProject

    names = {QgsProject.instance().mapLayer(i).name() for i in dock.selected_s2_ids()}
    assert names == {"S2A_MSIL1C_20200101"}
    assert dock.dem_combo.currentLayer().name() == "srtm_dem"
    assert dock.slope_combo.currentLayer() is None


def test_dock_run_adds_a_styled_result_group(dock, inputs, qgis_app):
    from qgis.core import QgsPalettedRasterRenderer, QgsProject, QgsSingleBandPseudoColorRenderer

    dock.add_model_file(str(inputs[2]))
    dock.device_combo.setCurrentText("cpu")
    task = dock.start_run()
    assert task is not None and not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    _wait_for(dock, qgis_app)

    root = QgsProject.instance().layerTreeRoot()
    group = root.children()[0]
    assert group.name().startswith("Landslides")
    layers = [node.layer() for node in group.findLayers()]
    assert [layer.name() for layer in layers] == ["tiny landslides", "tiny mask", "tiny probability"]
    polygons, mask, probability = layers
    assert all(layer.isValid() and layer.crs().authid() == "EPSG:32633" for layer in layers)
    assert isinstance(probability.renderer(), QgsSingleBandPseudoColorRenderer)
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer) and mask.opacity() < 1.0
    assert polygons.renderer().symbol().symbolLayer(0).brushStyle() == Qt.BrushStyle.NoBrush  # outline only
    assert f"tiny: {polygons.featureCount()} landslides" in dock.summary_label.text()
    assert "km²" in dock.summary_label.text()
    assert dock.run_button.isEnabled() and dock.progress_bar.value() == 100


def test_dock_runs_all_models_side_by_side(dock, inputs, qgis_app, tmp_path):
    from qgis.core import QgsProject

    second = tiny_model_package(tmp_path / "tiny_b.onnx", seed=1)
    dock.model_combo.clear()
    dock.add_model_file(str(inputs[2]))
    dock.add_model_file(str(second))
    dock.all_models_check.setChecked(True)
    dock.device_combo.setCurrentText("cpu")
    out = tmp_path / "results"
    out.mkdir()
    dock.output_widget.setFilePath(str(out))
    assert dock.start_run() is not None
    _wait_for(dock, qgis_app)
    group = QgsProject.instance().layerTreeRoot().children()[0]
    assert [sub.name() for sub in group.children()] == ["tiny", "tiny_b"]
    assert len(group.findLayers()) == 6
    assert len(list(out.rglob("probability.tif"))) == 2
    assert dock.summary_label.text().count("landslides") == 2


def test_dock_cancel_adds_no_layers(dock, inputs, qgis_app, tmp_path):
    from qgis.core import QgsProject

    dock.add_model_file(str(inputs[2]))
    dock.device_combo.setCurrentText("cpu")
    out = tmp_path / "results"
    out.mkdir()
    dock.output_widget.setFilePath(str(out))
    before = set(QgsProject.instance().mapLayers())
    task = dock.start_run()
    dock.cancel_run()
    _wait_for(dock, qgis_app)
    assert task.isCanceled()
    assert set(QgsProject.instance().mapLayers()) == before
    assert "Cancelled" in dock.status_label.text()
    assert not [p for p in out.rglob("*") if p.is_file()]
    assert dock.run_button.isEnabled()


def test_dock_reports_missing_inputs_without_running(dock, qgis_iface):
    from qgis.core import Qgis

    for i in range(dock.s2_list.count()):
        dock.s2_list.item(i).setCheckState(0)
    assert dock.start_run() is None
    assert "Sentinel-2" in dock.status_label.text()
    assert any("Sentinel-2" in m for m in qgis_iface.messageBar().get_messages(Qgis.MessageLevel.Warning))
