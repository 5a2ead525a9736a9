"""In QGIS a refusal names the QGIS parameter, not the command-line flag the engine's message names.

The real Aberystwyth subset holds reflectance x1000; asking for l1c is refused by the engine before any model
runs, with "set the reflectance scale (--reflectance-scale) to x1000 or auto" on the command line.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from landslide_engine.cli import build_parser
from landslide_qgis.engine_request import QGIS_PARAMETER_OF_FLAG, RunChoices, SceneChoices, predict_request

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
