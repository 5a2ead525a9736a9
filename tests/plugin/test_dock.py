"""The dock panel: suggested and kept layer picks, a run through QgsTask that adds a styled result group,
the engine's warnings, the device it runs on, and Cancel."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from qgis.PyQt.QtCore import Qt

from tests.qgis_helpers import synthetic_scene, tiny_model_package, write_raster

ABERYSTWYTH_ARCSI_BANDS = "B2=1,B3=2,B4=3,B5=4,B6=5,B7=6,B8=7,B11=9,B12=10"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dock")
    s2, dem = synthetic_scene(folder)
    return s2, dem, tiny_model_package(folder / "tiny.onnx")


@pytest.fixture()
def results_folder(provider, tmp_path):
    """The Processing → Options results folder, pointed at a throwaway folder (not the tester's documents)."""
    from processing.core.ProcessingConfig import ProcessingConfig

    from landslide_qgis import settings

    folder = tmp_path / "persistent_results"
    folder.mkdir()
    ProcessingConfig.setSettingValue(settings.RESULTS_FOLDER, str(folder))
    yield folder
    ProcessingConfig.setSettingValue(settings.RESULTS_FOLDER, "")


@pytest.fixture()
def dock(qgis_app, qgis_processing, qgis_iface, qgis_new_project, inputs, results_folder, tmp_path):
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


def test_dock_run_adds_a_styled_result_group(dock, inputs, qgis_app, results_folder):
    from qgis.core import (
        QgsPalettedRasterRenderer,
        QgsProcessingUtils,
        QgsProject,
        QgsSingleBandPseudoColorRenderer,
    )

    dock.add_model_file(str(inputs[2]))
    dock.device_combo.setCurrentText("cpu")
    task = dock.start_run()
    assert task is not None and not dock.run_button.isEnabled() and dock.cancel_button.isEnabled()
    _wait_for(dock, qgis_app)

    root = QgsProject.instance().layerTreeRoot()
    group = root.children()[0]
    assert group.name().startswith("Landslides · S2A_MSIL1C_20200101 · ")
    layers = [node.layer() for node in group.findLayers()]
    names = [layer.name() for layer in layers]
    assert [name.split(" · ")[:3] for name in names] == [
        ["landslides", "S2A_MSIL1C_20200101", "tiny"],
        ["mask", "S2A_MSIL1C_20200101", "tiny"],
        ["probability", "S2A_MSIL1C_20200101", "tiny"],
    ]
    assert all(name.split(" · ")[3] == group.name().split(" · ")[2] for name in names)  # the run's time
    polygons, mask, probability = layers
    assert all(layer.isValid() and layer.crs().authid() == "EPSG:32633" for layer in layers)
    assert isinstance(probability.renderer(), QgsSingleBandPseudoColorRenderer) and probability.opacity() < 1.0
    ramp = probability.renderer().shader().rasterShaderFunction().colorRampItemList()
    assert ramp[0].color.alpha() == 0  # low probabilities do not hide the imagery
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer) and mask.opacity() < 1.0
    classes = {c.value: c.color.alpha() for c in mask.renderer().classes()}
    assert classes[0] == 0 and classes[1] == 255
    assert polygons.renderer().symbol().symbolLayer(0).brushStyle() == Qt.BrushStyle.NoBrush  # outline only
    # the files outlive QGIS: in the persistent results folder, never in QGIS's temporary folder
    source = Path(probability.source())
    assert source.is_relative_to(results_folder)
    assert not source.is_relative_to(QgsProcessingUtils.tempFolder())
    assert str(source.parent) in dock.summary_label.text()
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
    second = [node.layer().name() for node in group.children()[1].findLayers()]
    assert len(second) == 3 and all(" · tiny_b · " in name for name in second), second
    assert len(group.findLayers()) == 6
    assert len(list(out.rglob("probability.tif"))) == 2
    assert dock.summary_label.text().count(" landslides, ") == 2


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


def test_dock_keeps_the_analysts_picks_when_rasters_are_added(dock, inputs, qgis_app, tmp_path):
    import numpy as np
    from qgis.core import QgsProject, QgsRasterLayer
    from rasterio.transform import from_origin

    project = QgsProject.instance()
    by_name = {layer.name(): layer for layer in project.mapLayers().values()}
    # the analyst overrides the suggestions: ndvi as the DEM, srtm_dem as the slope
    dock.dem_combo.setLayer(by_name["ndvi"])
    dock.slope_combo.setLayer(by_name["srtm_dem"])
    other = write_raster(
        tmp_path / "other_dem.tif", np.ones((1, 8, 8), np.float32), "EPSG:32633", from_origin(0, 8, 1, 1)
    )
    assert project.addMapLayer(QgsRasterLayer(str(other), "copernicus_dem"))
    assert "copernicus_dem" in [dock.s2_list.item(i).text() for i in range(dock.s2_list.count())]
    assert dock.dem_combo.currentLayer().name() == "ndvi"
    assert dock.slope_combo.currentLayer().name() == "srtm_dem"
    assert {project.mapLayer(i).name() for i in dock.selected_s2_ids()} == {"S2A_MSIL1C_20200101"}

    # the dock's own result layers do not reset the picks either
    dock.add_model_file(str(inputs[2]))
    dock.device_combo.setCurrentText("cpu")
    dock.dem_combo.setLayer(by_name["srtm_dem"])
    dock.slope_combo.setLayer(None)
    assert dock.start_run() is not None
    _wait_for(dock, qgis_app)
    assert "Done" in dock.status_label.text()
    assert dock.dem_combo.currentLayer().name() == "srtm_dem"
    assert dock.slope_combo.currentLayer() is None
    assert {project.mapLayer(i).name() for i in dock.selected_s2_ids()} == {"S2A_MSIL1C_20200101"}
    # results are no inputs: not offered as Sentinel-2, DEM or slope
    listed = [dock.s2_list.item(i).text() for i in range(dock.s2_list.count())]
    assert listed and not any(" · tiny · " in name for name in listed)
    rasters = {
        layer.id()
        for layer in project.mapLayers().values()
        if " · tiny · " in layer.name() and isinstance(layer, QgsRasterLayer)
    }
    assert len(rasters) == 2  # mask and probability
    assert rasters <= {layer.id() for layer in dock.dem_combo.exceptedLayerList()}
    assert rasters <= {layer.id() for layer in dock.slope_combo.exceptedLayerList()}


def test_dock_never_suggests_a_sentinel2_layer_as_the_dem(qgis_app, qgis_iface, qgis_new_project, inputs):
    from qgis.core import QgsProject, QgsRasterLayer

    from landslide_qgis.gui.dock import LandslideDock

    s2, _, _ = inputs
    # only a Sentinel-2 stack is loaded, and it is the active layer: still no DEM is suggested
    layer = QgsRasterLayer(str(s2), "S2A_MSIL1C_20200101")
    assert QgsProject.instance().addMapLayer(layer)
    qgis_iface.setActiveLayer(layer)
    panel = LandslideDock(qgis_iface)
    try:
        assert panel.selected_s2_ids() == [layer.id()]
        assert panel.dem_combo.currentLayer() is None
        panel.apply_suggestions()
        assert panel.dem_combo.currentLayer() is None
    finally:
        panel.teardown()


def test_dock_says_when_the_chosen_device_cannot_run_here(dock, inputs, qgis_app):
    from qgis.core import QgsProject

    from landslide_engine.errors import InputError
    from landslide_engine.models.backends import planned_device

    dock.add_model_file(str(inputs[2]))
    try:
        planned_device(str(inputs[2]), "cuda")
        pytest.skip("this machine runs .onnx models on a CUDA GPU")
    except InputError as exc:
        reason = str(exc)
    dock.device_combo.setCurrentText("cuda")
    assert dock.device_label.text() == f"Not on this machine: {reason}"  # the engine's own reason, not "CPU"
    before = set(QgsProject.instance().mapLayers())
    assert dock.start_run() is None
    assert reason in dock.status_label.text()
    assert "--device" not in dock.status_label.text()  # no CLI flags for a QGIS user
    assert set(QgsProject.instance().mapLayers()) == before

    dock.device_combo.setCurrentText("auto")  # what auto will do is what the run does
    assert dock.device_label.text().startswith("CPU")
    assert dock.start_run() is not None
    _wait_for(dock, qgis_app)
    assert dock.device_label.text() == "Ran on cpu"


def test_dock_offers_the_toolbox_options_under_advanced(dock):
    from landslide_engine.options import BASELINE_OFFSETS, PRECISIONS, REFLECTANCE_SCALES
    from landslide_engine.pipeline import PredictRequest

    assert dock.advanced_box.isCollapsed()
    assert [dock.offset_combo.itemText(i) for i in range(dock.offset_combo.count())] == list(BASELINE_OFFSETS)
    assert dock.advanced_box.isAncestorOf(dock.offset_combo)
    assert [dock.precision_combo.itemText(i) for i in range(dock.precision_combo.count())] == list(PRECISIONS)
    assert [dock.scale_combo.itemText(i) for i in range(dock.scale_combo.count())] == list(REFLECTANCE_SCALES)
    defaults = PredictRequest(s2=[], dem="", out_dir="")
    assert dock.min_area_spin.value() == pytest.approx(defaults.min_area_m2)
    assert dock.overlap_spin.value() == defaults.overlap
    assert dock.scale_combo.currentText() == defaults.reflectance_scale
    assert dock.offset_combo.currentText() == defaults.baseline_offset
    assert dock.precision_combo.currentText() == defaults.precision == "auto"  # the engine's default number format

    dock.min_area_spin.setValue(250.0)
    dock.overlap_spin.setValue(16)
    dock.tta_check.setChecked(True)
    dock.precision_combo.setCurrentText("bf16")
    run = dock.run_choices()
    assert (run.min_area_m2, run.overlap, run.tta, run.precision) == (250.0, 16, True, "bf16")


def test_dock_shows_the_filled_band_warning_of_the_real_aberystwyth_scene(
    qgis_app, qgis_iface, qgis_new_project, results_folder, geo_root
):
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer

    from landslide_engine.models.catalog import resolve_model
    from landslide_qgis.gui.dock import LandslideDock

    folder = geo_root / "rsgislib_aberystwyth_wales"
    s2 = QgsRasterLayer(str(folder / "sen2_20210527_aber_subset.tif"), "sen2_20210527_aber_subset")
    dem = QgsRasterLayer(str(folder / "AberSRTM_4326.tif"), "AberSRTM_4326")
    assert QgsProject.instance().addMapLayer(s2) and QgsProject.instance().addMapLayer(dem)
    logged = []

    def collect(message, tag, level):
        logged.append((message, tag))

    QgsApplication.messageLog().messageReceived.connect(collect)
    panel = LandslideDock(qgis_iface)
    try:
        for i in range(panel.s2_list.count()):
            item = panel.s2_list.item(i)
            item.setCheckState(
                Qt.CheckState.Checked if item.text() == "sen2_20210527_aber_subset" else Qt.CheckState.Unchecked
            )
        panel.dem_combo.setLayer(dem)
        panel.model_combo.setCurrentIndex(panel.model_combo.findData(str(resolve_model(None))))
        panel.device_combo.setCurrentText("cpu")
        assert panel.scale_combo.currentText() == "auto"  # the engine's default: read from the scene
        panel.band_map_edit.setText(ABERYSTWYTH_ARCSI_BANDS)
        assert panel.start_run() is not None
        _wait_for(panel, qgis_app, timeout=300)
        assert "Done" in panel.status_label.text(), panel.status_label.text()
        # B1, B9 and B10 are not in this 10-band product: the model's constants fill them, and the panel says so
        text = panel.warnings_label.text()
        assert "band B1 is not in the input; filled" in text and "B10" in text
        assert any("band B1 is not in the input; filled" in m and tag == "Landslide Mapper" for m, tag in logged)
        # this ARCSI product is surface reflectance x 1000, and the panel says what the engine read
        assert "Found: reflectance scale x1000 (detected:" in panel.notes_label.text()
    finally:
        QgsApplication.messageLog().messageReceived.disconnect(collect)
        panel.teardown()


def test_toolbox_results_are_no_dock_inputs_either(dock, inputs, qgis_app, qgis_iface, tmp_path, monkeypatch):
    import processing
    from qgis.core import QgsProject
    from qgis.gui import QgsLayerTreeView

    view = QgsLayerTreeView()  # Processing's result loading asks the desktop for its layer tree
    monkeypatch.setattr(qgis_iface, "layerTreeView", lambda: view, raising=False)
    s2, dem, model = inputs
    dem_before = dock.dem_combo.currentLayer()
    processing.runAndLoadResults(
        "landslide:detect",
        {
            "SENTINEL2": [str(s2)],
            "DEM": str(dem),
            "MODEL_FILE": str(model),
            "DEVICE": "cpu",
            "OUTPUT_PROBABILITY": str(tmp_path / "probability.tif"),
            "OUTPUT_MASK": str(tmp_path / "mask.tif"),
            "OUTPUT_POLYGONS": str(tmp_path / "polygons.gpkg"),
        },
    )
    qgis_app.processEvents()
    loaded = {layer.id() for layer in QgsProject.instance().mapLayers().values() if " · tiny · " in layer.name()}
    assert len(loaded) == 3
    listed = {dock.s2_list.item(i).data(Qt.ItemDataRole.UserRole) for i in range(dock.s2_list.count())}
    assert listed and listed.isdisjoint(loaded)
    assert dock.dem_combo.currentLayer() is dem_before
