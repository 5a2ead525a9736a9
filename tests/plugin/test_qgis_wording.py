"""In QGIS a refusal names the QGIS parameter, not the command-line flag the engine's message names.

The real Aberystwyth subset holds reflectance x1000; asking for l1c is refused by the engine before any model
runs, with "set the reflectance scale (--reflectance-scale) to x1000 or auto" on the command line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_engine.bands import L4S_DIVISORS
from landslide_engine.cli import build_parser
from landslide_qgis.engine_request import QGIS_PARAMETER_OF_FLAG, RunChoices, SceneChoices, predict_request
from tests.scenes import offset_unknown_scene

ABERYSTWYTH = "rsgislib_aberystwyth_wales"
ARCSI_BANDS = "B2=1,B3=2,B4=3,B5=4,B6=5,B7=6,B8=7,B11=9,B12=10"  # the product's 10 bands, B8A as 8
QGIS_NAME = "set the reflectance scale (REFLECTANCE_SCALE) to x1000 or auto"


def _predict_flags() -> set[str]:
    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {flag for action in subcommands.choices["predict"]._actions for flag in action.option_strings}


def test_each_translated_flag_is_a_predict_flag_and_each_name_a_detect_parameter(provider):
    detect = provider.algorithm("detect")
    flags = _predict_flags()
    for flag, parameter in QGIS_PARAMETER_OF_FLAG.items():
        assert flag in flags, flag
        assert detect.parameterDefinition(parameter) is not None, parameter


def _aberystwyth(geo_root: Path) -> dict[str, Path]:
    folder = geo_root / ABERYSTWYTH
    return {"s2": folder / "sen2_20210527_aber_subset.tif", "dem": folder / "AberSRTM_4326.tif"}


def test_the_toolbox_names_the_reflectance_scale_parameter(provider, geo_root, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    files = _aberystwyth(geo_root)
    parameters = {
        "SENTINEL2": [str(files["s2"])],
        "DEM": str(files["dem"]),
        "DEVICE": "cpu",
        "BAND_MAP": ARCSI_BANDS,
        "REFLECTANCE_SCALE": "l1c",
        "OUTPUT_PROBABILITY": str(tmp_path / "p.tif"),
        "OUTPUT_MASK": str(tmp_path / "m.tif"),
        "OUTPUT_POLYGONS": str(tmp_path / "l.gpkg"),
    }
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("landslide:detect", parameters)
    message = str(refused.value)
    assert QGIS_NAME in message and "--" not in message, message
    assert not (tmp_path / "p.tif").exists()


def test_the_dock_task_names_the_reflectance_scale_parameter(qgis_app, geo_root, tmp_path):
    from landslide_engine.models.catalog import resolve_model
    from landslide_qgis.gui.detect_task import DetectTask, ModelRun

    files = _aberystwyth(geo_root)
    scene = SceneChoices(s2=[str(files["s2"])], dem=str(files["dem"]), band_map=ARCSI_BANDS, reflectance_scale="l1c")
    request = predict_request(scene, RunChoices(device="cpu"), str(tmp_path / "out"))
    task = DetectTask(request, [ModelRun("built-in", resolve_model(None), tmp_path / "out")])
    failures: list[str] = []
    task.failed.connect(failures.append)
    task.finished(task.run())
    assert len(failures) == 1 and QGIS_NAME in failures[0] and "--" not in failures[0], failures


# A real scene whose values cannot tell whether they carry the +1000 DN offset of baseline 04.00
# (tests.scenes.offset_unknown_scene): QGIS says which parameter settles it.
OFFSET_QGIS_NAME = "set the baseline offset (BASELINE_OFFSET): 0 or 1000"


@pytest.fixture()
def offset_unknown(geo_root, tmp_path) -> dict[str, Path]:
    s2, dem = offset_unknown_scene(geo_root, tmp_path)
    return {"s2": s2, "dem": dem}


def test_the_toolbox_names_the_baseline_offset_parameter_and_takes_it(provider, offset_unknown, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    from tests.qgis_helpers import processing_outputs, tiny_model_package

    model = tiny_model_package(tmp_path / "tiny.onnx")
    inputs = {"SENTINEL2": [str(offset_unknown["s2"])], "DEM": str(offset_unknown["dem"]), "DEVICE": "cpu"}
    refused_out = processing_outputs(tmp_path / "refused")
    with pytest.raises(QgsProcessingException) as refused:
        processing.run("landslide:detect", {**inputs, "MODEL_FILE": str(model), **refused_out})
    message = str(refused.value)
    assert OFFSET_QGIS_NAME in message and "--" not in message, message
    assert not Path(refused_out["OUTPUT_PROBABILITY"]).exists()

    result = processing.run(
        "landslide:detect",
        {**inputs, "MODEL_FILE": str(model), "BASELINE_OFFSET": "1000", **processing_outputs(tmp_path / "set")},
    )
    offset = json.loads(Path(result["REPORT"]).read_text())["inputs"]["baseline_offset"]
    assert offset["value"] == 1000.0 and offset["evidence"] == "baseline_offset option", offset
    # landslide:stack takes it too: the red band of the stack with 0 removed lies 1000 DN above the one with 1000
    red = {}
    for choice in ("0", "1000"):
        out = processing.run(
            "landslide:stack", {**inputs, "BASELINE_OFFSET": choice, "OUTPUT": str(tmp_path / f"stack{choice}.tif")}
        )["OUTPUT"]
        with rasterio.open(out) as src:
            red[choice] = src.read(4, masked=True).astype(np.float64) * L4S_DIVISORS[3]
    assert np.ma.allclose(red["0"] - red["1000"], 1000.0, atol=1.0)


def test_the_dock_passes_its_baseline_offset_and_names_the_parameter(qgis_app, qgis_iface, offset_unknown, tmp_path):
    from qgis.core import QgsRasterLayer

    from landslide_qgis.gui.detect_task import DetectTask, ModelRun
    from landslide_qgis.gui.dock import LandslideDock
    from tests.qgis_helpers import tiny_model_package

    model = tiny_model_package(tmp_path / "tiny.onnx")
    s2, dem = QgsRasterLayer(str(offset_unknown["s2"]), "s2"), QgsRasterLayer(str(offset_unknown["dem"]), "dem")
    panel = LandslideDock(qgis_iface)
    try:
        assert panel.offset_combo.currentText() == "auto"  # the engine's default
        outcomes: dict[str, list[str]] = {}
        for choice in ("auto", "1000"):
            panel.offset_combo.setCurrentText(choice)
            out = tmp_path / choice
            request = predict_request(panel.scene_choices([s2], dem), RunChoices(device="cpu"), str(out))
            assert str(request.baseline_offset) == choice
            task = DetectTask(request, [ModelRun("tiny", model, out)])
            outcomes[choice] = failures = []
            task.failed.connect(failures.append)
            task.finished(task.run())
    finally:
        panel.teardown()
    refused = outcomes["auto"]
    assert len(refused) == 1 and OFFSET_QGIS_NAME in refused[0] and "--" not in refused[0], refused
    assert outcomes["1000"] == []
    report = json.loads(next((tmp_path / "1000").glob("*run.json")).read_text())
    assert report["inputs"]["baseline_offset"]["value"] == 1000.0


def test_the_toolbox_names_the_parameter_that_overrides_the_offset_the_values_show(provider, geo_root, tmp_path):
    """A 2019 L1C file named as a 2023 product: the name implies the offset, the values show none (as in Earth
    Engine's harmonized collection); the warning says which parameter overrides what the values show."""
    import processing

    from bench.scale_detection import BARBELLINO
    from tests.qgis_helpers import WarningFeedback
    from tests.scenes import geographic_dem

    named = tmp_path / "S2B_MSIL1C_20230812_harmonized.tif"
    named.write_bytes((geo_root / BARBELLINO / "S2A1C_20190723_022_Barbellino_TOA_10.tif").read_bytes())
    with rasterio.open(named) as src:
        dem = geographic_dem(tmp_path / "dem.tif", src.crs, src.bounds)
    feedback = WarningFeedback.make()
    processing.run(
        "landslide:stack",
        {"SENTINEL2": [str(named)], "DEM": str(dem), "OUTPUT": str(tmp_path / "stack.tif")},
        feedback=feedback,
    )
    (warning,) = [w for w in feedback.warnings if "implies a baseline offset of 1000" in w]
    assert warning.endswith("(set the baseline offset (BASELINE_OFFSET) to override)") and "--" not in warning
