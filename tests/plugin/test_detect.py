"""landslide:detect, landslide:stack and landslide:predict_h5 through processing.run inside QGIS (pytest-qgis)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from tests.qgis_helpers import WarningFeedback, processing_outputs, synthetic_scene, tiny_model_package


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    folder = tmp_path_factory.mktemp("scene")
    s2, dem = synthetic_scene(folder)
    return s2, dem, tiny_model_package(folder / "tiny.onnx")


# the ARCSI product's 10 bands: B02..B07, B08, B8A, B11, B12 (see ../shared/data/geo/MANIFEST.tsv)
ARCSI_BANDS = "B2=1,B3=2,B4=3,B5=4,B6=5,B7=6,B8=7,B11=9,B12=10"


def test_detect_on_synthetic_layers_matches_the_sentinel2_grid(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    s2, dem, model = scene
    s2_layer = QgsRasterLayer(str(s2), "s2")
    params = {"SENTINEL2": [s2_layer], "DEM": str(dem), "MODEL_FILE": str(model), "DEVICE": "cpu", "THRESHOLD": 0.5}
    result = processing.run("landslide:detect", {**params, **processing_outputs(tmp_path)})

    for key in ("OUTPUT_PROBABILITY", "OUTPUT_MASK"):
        layer = QgsRasterLayer(result[key], key)
        assert layer.isValid(), key
        assert layer.crs().authid() == "EPSG:32633"
        assert layer.extent() == s2_layer.extent()
        assert (layer.width(), layer.height()) == (s2_layer.width(), s2_layer.height())
    with rasterio.open(result["OUTPUT_PROBABILITY"]) as src:
        prob = src.read(1, masked=True)
    assert prob.min() >= 0.0 and prob.max() <= 1.0
    with rasterio.open(result["OUTPUT_MASK"]) as src:
        mask = src.read(1)
    assert np.array_equal(mask == 1, prob.filled(0) >= 0.5)
    polygons = QgsVectorLayer(result["OUTPUT_POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.crs().authid() == "EPSG:32633"
    assert polygons.featureCount() == result["N_LANDSLIDES"]
    areas = [f["area_m2"] for f in polygons.getFeatures()]
    assert sum(areas) == pytest.approx(result["LANDSLIDE_AREA_M2"])
    assert result["DEVICE_USED"].startswith("cpu")
    assert json.loads(Path(result["REPORT"]).read_text())["threshold"] == 0.5
    # beside the probability raster, not in Processing's temporary folder (emptied when QGIS ends)
    assert result["REPORT"] == str(tmp_path / "probability.run.json")


def test_detect_writes_other_formats_and_honours_the_extent(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsRasterLayer, QgsVectorLayer

    s2, dem, model = scene
    extent = "500300,501500,5198800,5199700 [EPSG:32633]"  # xmin,xmax,ymin,ymax inside the 2 km x 1.6 km scene
    result = processing.run(
        "landslide:detect",
        {
            "SENTINEL2": [str(s2)],
            "DEM": str(dem),
            "MODEL_FILE": str(model),
            "DEVICE": "cpu",
            "EXTENT": extent,
            "OUTPUT_PROBABILITY": str(tmp_path / "probability.tif"),
            "OUTPUT_MASK": str(tmp_path / "mask.vrt.tif"),
            "OUTPUT_POLYGONS": str(tmp_path / "polygons.geojson"),
        },
    )
    prob = QgsRasterLayer(result["OUTPUT_PROBABILITY"], "p")
    box = prob.extent()
    assert 500300 - 10 <= box.xMinimum() < box.xMaximum() <= 501500 + 10
    assert 5198800 - 10 <= box.yMinimum() < box.yMaximum() <= 5199700 + 10
    assert box.width() < 2000 and box.height() < 1600
    polygons = QgsVectorLayer(result["OUTPUT_POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() == result["N_LANDSLIDES"]


def test_detect_on_real_aberystwyth_layers(provider, geo_root, scene, tmp_path):
    """Real S2 (x1000 surface reflectance, EPSG:27700) with the SRTM DEM in EPSG:4326."""
    import processing
    from qgis.core import QgsRasterLayer

    _, _, model = scene
    folder = geo_root / "rsgislib_aberystwyth_wales"
    s2 = QgsRasterLayer(str(folder / "sen2_20210527_aber_subset.tif"), "s2")
    result = processing.run(
        "landslide:detect",
        {
            "SENTINEL2": [s2],
            "DEM": str(folder / "AberSRTM_4326.tif"),
            "MODEL_FILE": str(model),
            "DEVICE": "cpu",
            "REFLECTANCE_SCALE": "x1000",
            "BAND_MAP": ARCSI_BANDS,
            **processing_outputs(tmp_path),
        },
    )
    for key in ("OUTPUT_PROBABILITY", "OUTPUT_MASK"):
        layer = QgsRasterLayer(result[key], key)
        assert layer.crs().authid() == "EPSG:27700"
        assert layer.extent() == s2.extent()
    with rasterio.open(result["OUTPUT_PROBABILITY"]) as src:
        assert src.read(1, masked=True).count() > 0.9 * src.width * src.height


class _CancelOnFirstBatch:
    """Builds a QgsProcessingFeedback that cancels itself once the engine reports progress past loading."""

    @staticmethod
    def make():
        from qgis.core import QgsProcessingFeedback

        feedback = QgsProcessingFeedback()
        feedback.progressChanged.connect(lambda value: value > 1.0 and feedback.cancel())
        return feedback


def test_cancelled_detect_leaves_no_output(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    s2, dem, model = scene
    outputs = processing_outputs(tmp_path / "out")
    with pytest.raises(QgsProcessingException, match="Cancelled"):
        processing.run(
            "landslide:detect",
            {"SENTINEL2": [str(s2)], "DEM": str(dem), "MODEL_FILE": str(model), "DEVICE": "cpu", **outputs},
            feedback=_CancelOnFirstBatch.make(),
        )
    leftovers = list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_engine_input_errors_become_one_line_processing_exceptions(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    s2, dem, _ = scene
    missing_model = tmp_path / "nowhere" / "model.onnx"
    with pytest.raises(QgsProcessingException) as info:
        processing.run(
            "landslide:detect",
            {"SENTINEL2": [str(s2)], "DEM": str(dem), "MODEL_FILE": str(missing_model), **processing_outputs(tmp_path)},
        )
    message = str(info.value)
    assert str(missing_model) in message and "\n" not in message


def test_stack_writes_fourteen_scaled_bands(provider, scene, tmp_path):
    import processing

    s2, dem, _ = scene
    out = tmp_path / "stack.tif"
    result = processing.run("landslide:stack", {"SENTINEL2": [str(s2)], "DEM": str(dem), "OUTPUT": str(out)})
    assert result["OUTPUT"] == str(out)
    with rasterio.open(out) as stack, rasterio.open(s2) as src:
        assert stack.count == 14 and stack.crs == src.crs and stack.transform == src.transform
        b2_raw = src.read(2).astype(np.float64)
        b2_l4s = stack.read(2).astype(np.float64)
    from landslide_engine.bands import L4S_DIVISORS

    assert np.allclose(b2_l4s, b2_raw / L4S_DIVISORS[1], rtol=1e-4)


def test_predict_h5_writes_npy_and_png_per_patch(provider, scene, l4s_root, tmp_path):
    import processing

    _, _, model = scene
    files = sorted((l4s_root / "TrainData" / "img").glob("image_*.h5"))[:2]
    result = processing.run(
        "landslide:predict_h5",
        {"FILES": [str(f) for f in files], "MODEL_FILE": str(model), "DEVICE": "cpu", "OUTPUT_FOLDER": str(tmp_path)},
    )
    npys = sorted(tmp_path.rglob("*.npy"))
    pngs = sorted(tmp_path.rglob("*.png"))
    assert len(npys) == len(files) and len(pngs) == len(files)
    assert result["N_FILES"] == len(npys) + len(pngs)
    prob = np.load(npys[0])
    assert prob.shape == (128, 128) and prob.min() >= 0.0 and prob.max() <= 1.0


def test_precision_is_an_advanced_choice_among_the_engine_precisions(provider):
    from qgis.core import QgsProcessingParameterDefinition

    from landslide_engine.options import PRECISIONS
    from landslide_engine.pipeline import PredictRequest

    parameter = provider.algorithm("detect").parameterDefinition("PRECISION")
    assert parameter.options() == list(PRECISIONS)
    assert parameter.defaultValue() == PredictRequest.precision == "auto"
    assert parameter.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced


def test_detect_precision_reaches_the_engine(provider, scene, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    s2, dem, onnx_model = scene
    params = {"SENTINEL2": [str(s2)], "DEM": str(dem), "DEVICE": "cpu"}
    with pytest.raises(QgsProcessingException, match="precision bf16 is available with the torch backend only"):
        processing.run(
            "landslide:detect",
            {**params, "MODEL_FILE": str(onnx_model), "PRECISION": "bf16", **processing_outputs(tmp_path / "onnx")},
        )
    torch_model = tiny_model_package(tmp_path / "tiny.pt")  # skips this part's test without torch
    probabilities = {}
    for precision in ("fp32", "bf16"):
        result = processing.run(
            "landslide:detect",
            {
                **params,
                "MODEL_FILE": str(torch_model),
                "PRECISION": precision,
                **processing_outputs(tmp_path / precision),
            },
        )
        with rasterio.open(result["OUTPUT_PROBABILITY"]) as src:
            probabilities[precision] = src.read(1, masked=True)
    assert 0 < np.abs(probabilities["bf16"] - probabilities["fp32"]).max() < 0.05


def test_option_lists_and_defaults_come_from_the_engine(provider):
    from qgis.core import QgsProcessingParameterDefinition

    from landslide_engine.options import BASELINE_OFFSETS, DEVICES, REFLECTANCE_SCALES
    from landslide_engine.pipeline import PredictRequest

    for alg_id in ("detect", "stack", "detect_region"):
        alg = provider.algorithm(alg_id)
        scale = alg.parameterDefinition("REFLECTANCE_SCALE")
        assert scale.options() == list(REFLECTANCE_SCALES) and scale.defaultValue() == PredictRequest.reflectance_scale
        offset = alg.parameterDefinition("BASELINE_OFFSET")
        assert offset.options() == list(BASELINE_OFFSETS) and offset.defaultValue() == PredictRequest.baseline_offset
        assert offset.usesStaticStrings() and offset.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    detect = provider.algorithm("detect")
    assert detect.parameterDefinition("DEVICE").options() == list(DEVICES)
    min_area = detect.parameterDefinition("MIN_AREA")
    assert min_area.defaultValue() == PredictRequest.min_area_m2  # the engine's minimum mapping unit, not a copy
    assert min_area.flags() & QgsProcessingParameterDefinition.Flag.FlagAdvanced
    assert detect.parameterDefinition("OVERLAP").defaultValue() == PredictRequest.overlap


def test_stack_takes_the_inputs_detect_takes_and_reads_the_real_aberystwyth_scene(provider, geo_root, tmp_path):
    import processing

    detect, stack = provider.algorithm("detect"), provider.algorithm("stack")
    scene_inputs = {"SENTINEL2", "DEM", "SLOPE", "EXTENT", "REFLECTANCE_SCALE", "BAND_MAP"}
    assert scene_inputs <= {p.name() for p in detect.parameterDefinitions()}
    assert scene_inputs <= {p.name() for p in stack.parameterDefinitions()}

    folder = geo_root / "rsgislib_aberystwyth_wales"
    out = tmp_path / "stack.tif"
    processing.run(
        "landslide:stack",
        {
            "SENTINEL2": [str(folder / "sen2_20210527_aber_subset.tif")],
            "DEM": str(folder / "AberSRTM_4326.tif"),
            "REFLECTANCE_SCALE": "x1000",
            "BAND_MAP": ARCSI_BANDS,
            "OUTPUT": str(out),
        },
    )
    from landslide_engine.bands import L4S_DIVISORS

    with rasterio.open(out) as src:
        assert src.count == 14 and src.crs.to_epsg() == 27700
        red = src.read(4, masked=True) * L4S_DIVISORS[3]
    assert 100 < float(np.ma.median(red)) < 3000  # x1000 surface reflectance became L1C-like digital numbers


def test_detect_pushes_the_engines_warnings_to_the_processing_log(provider, geo_root, tmp_path):
    import processing

    folder = geo_root / "rsgislib_aberystwyth_wales"
    feedback = WarningFeedback.make()
    processing.run(
        "landslide:detect",
        {
            "SENTINEL2": [str(folder / "sen2_20210527_aber_subset.tif")],
            "DEM": str(folder / "AberSRTM_4326.tif"),
            "DEVICE": "cpu",
            "BAND_MAP": ARCSI_BANDS,
            **processing_outputs(tmp_path),
        },
        feedback=feedback,
    )
    # B1, B9 and B10 are not in this 10-band product; the built-in model's constants fill them
    assert any("band B1 is not in the input; filled" in w for w in feedback.warnings), feedback.warnings
    # the default scale is read from the scene, and the log says what was read
    assert any(i.startswith("Found: reflectance scale x1000 (detected:") for i in feedback.infos), feedback.infos


def test_detect_outputs_load_styled_in_one_group_like_the_docks(
    provider, scene, qgis_new_project, qgis_iface, monkeypatch, tmp_path
):
    import processing
    from qgis.core import (
        QgsLayerTreeModel,
        QgsLayerTreeNode,
        QgsPalettedRasterRenderer,
        QgsProject,
        QgsSingleBandPseudoColorRenderer,
    )
    from qgis.gui import QgsLayerTreeView
    from qgis.PyQt.QtCore import Qt

    # QGIS >= 3.3x hands the desktop's layer tree view to QgsProcessingGuiUtils.addResultLayers: a real one here
    view = QgsLayerTreeView()
    view.setModel(QgsLayerTreeModel(QgsProject.instance().layerTreeRoot(), view))
    monkeypatch.setattr(qgis_iface, "layerTreeView", lambda: view, raising=False)
    s2, dem, model = scene
    processing.runAndLoadResults(
        "landslide:detect",
        {
            "SENTINEL2": [str(s2)],
            "DEM": str(dem),
            "MODEL_FILE": str(model),
            "DEVICE": "cpu",
            **processing_outputs(tmp_path),
        },
    )
    root = QgsProject.instance().layerTreeRoot()
    groups = [node for node in root.children() if node.nodeType() == QgsLayerTreeNode.NodeType.NodeGroup]
    assert len(groups) == 1 and groups[0].name().startswith("Landslides · S2A_MSIL1C_20200101_scene · ")
    layers = [node.layer() for node in groups[0].findLayers()]
    assert [layer.name().split(" · ")[:3] for layer in layers] == [
        ["landslides", "S2A_MSIL1C_20200101_scene", "tiny"],
        ["mask", "S2A_MSIL1C_20200101_scene", "tiny"],
        ["probability", "S2A_MSIL1C_20200101_scene", "tiny"],
    ]
    polygons, mask, probability = layers
    assert polygons.renderer().symbol().symbolLayer(0).brushStyle() == Qt.BrushStyle.NoBrush
    assert isinstance(mask.renderer(), QgsPalettedRasterRenderer) and mask.opacity() < 1.0
    assert isinstance(probability.renderer(), QgsSingleBandPseudoColorRenderer) and probability.opacity() < 1.0
    assert root.findLayers()[0].layer() is not probability  # the probability is not on top, hiding the rest


@pytest.mark.parametrize("alg_id", ["landslide:detect", "landslide:stack"])
def test_toolbox_dialog_never_prefills_the_dem_with_the_active_sentinel2_layer(
    provider, qgis_iface, qgis_new_project, geo_root, alg_id, monkeypatch
):
    """Processing pre-fills a required layer with the active one: here the 10-band Aberystwyth scene."""
    import processing
    from qgis.core import QgsProject, QgsRasterLayer
    from qgis.gui import QgsBrowserGuiModel

    browser = QgsBrowserGuiModel()
    monkeypatch.setattr(qgis_iface, "browserModel", lambda: browser, raising=False)  # the dialog asks the desktop

    folder = geo_root / "rsgislib_aberystwyth_wales"
    s2 = QgsRasterLayer(str(folder / "sen2_20210527_aber_subset.tif"), "sen2_20210527_aber_subset")
    project = QgsProject.instance()
    assert project.addMapLayer(s2)
    qgis_iface.setActiveLayer(s2)

    dialog = processing.createAlgorithmDialog(alg_id)
    try:
        assert dialog.mainWidget().wrappers["DEM"].parameterValue() in (None, "")  # empty: the analyst picks
    finally:
        dialog.deleteLater()

    dem = QgsRasterLayer(str(folder / "AberSRTM_4326.tif"), "AberSRTM_4326")
    assert project.addMapLayer(dem)
    qgis_iface.setActiveLayer(s2)
    dialog = processing.createAlgorithmDialog(alg_id)
    try:
        assert dialog.mainWidget().wrappers["DEM"].parameterValue() == dem.id()  # the layer that looks like a DEM
    finally:
        dialog.deleteLater()
