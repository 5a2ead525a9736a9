"""The provider registers inside QGIS (pytest-qgis) and its algorithms run via processing.run."""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from tests.rasters import write_raster


def test_provider_lists_slope(provider):
    ids = {alg.id() for alg in provider.algorithms()}
    assert "landslide:slope" in ids


def test_slope_via_processing_run(provider, tmp_path):
    import processing

    dem = (np.arange(20)[:, None].repeat(25, 1) * 5.0).astype(np.float32)  # 5 m per 10 m row
    t = from_origin(10.0, 50.0, 1 / 3600, 1 / 3600)  # geographic grid
    src = write_raster(tmp_path / "dem.tif", dem, CRS.from_epsg(4326), t)
    out = tmp_path / "slope.tif"
    res = processing.run("landslide:slope", {"DEM": str(src), "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out)
    with rasterio.open(out) as s:
        assert s.crs == CRS.from_epsg(4326)
        centre = s.read(1)[10, 12]
    # one arc-second of latitude is ~30.9 m, so the slope is atan(5/30.9) ~ 9.2 deg, not atan(5/1/3600)
    assert 8.5 < centre < 10.0


def test_provider_lists_every_algorithm_with_help(provider):
    algs = {alg.id(): alg for alg in provider.algorithms()}
    assert {"landslide:detect", "landslide:slope", "landslide:stack", "landslide:predict_h5"} <= set(algs)
    for alg in algs.values():
        assert alg.shortHelpString(), alg.id()
    detect = algs["landslide:detect"]
    advanced = {p.name() for p in detect.parameterDefinitions() if p.flags() & p.FlagAdvanced}
    assert {"TTA", "MIN_AREA"} <= advanced
    assert {o.name() for o in detect.outputDefinitions()} >= {"OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_POLYGONS"}


def test_models_folder_setting_feeds_the_model_choices(provider, tmp_path):
    from processing.core.ProcessingConfig import ProcessingConfig

    from landslide_qgis import settings
    from tests.qgis_helpers import tiny_model_package

    assert settings.default_device() in settings.DEVICES and settings.batch_size() >= 1
    tiny_model_package(tmp_path / "folder_model.onnx")
    previous = ProcessingConfig.getSetting(settings.MODELS_FOLDER)
    ProcessingConfig.settings[settings.MODELS_FOLDER].setValue(str(tmp_path))
    try:
        provider.refreshAlgorithms()
        model_param = provider.algorithm("detect").parameterDefinition("MODEL")
        assert "folder_model" in model_param.options()
    finally:
        ProcessingConfig.settings[settings.MODELS_FOLDER].setValue(previous or "")
        provider.refreshAlgorithms()
