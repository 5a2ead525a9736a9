"""landslide:detect_region inside QGIS (pytest-qgis): real overlapping scenes, one corrupt, and in a model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

RUN = {"DEVICE": "cpu", "REFLECTANCE_SCALE": "x1000"}


class _Log:
    """A QgsProcessingFeedback that keeps what the algorithm reported."""

    @staticmethod
    def make():
        from qgis.core import QgsProcessingFeedback

        class Feedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.errors, self.warnings, self.infos = [], [], []

            def reportError(self, error, fatalError=False):
                self.errors.append(error)

            def pushWarning(self, warning):
                self.warnings.append(warning)

            def pushInfo(self, info):
                self.infos.append(info)

        return Feedback()


def test_region_maps_each_scene_as_detect_does_and_reports_the_corrupt_one(provider, scenes, tmp_path):
    import processing
    from qgis.core import QgsProject, QgsRasterLayer, QgsVectorLayer

    feedback = _Log.make()
    layers = [QgsRasterLayer(str(scenes[name]), name) for name in ("west", "east")] + [str(scenes["corrupt"])]
    result = processing.run(
        "landslide:detect_region",
        {"SCENES": layers, "DEM": [str(scenes["dem"])], **RUN, "OUTPUT_FOLDER": str(tmp_path / "region")},
        feedback=feedback,
    )
    assert (result["SCENES_MAPPED"], result["SCENES_FAILED"]) == (2, 1)
    assert len(feedback.errors) == 1 and feedback.errors[0].startswith("corrupt: failed: ")
    assert any("west: band B1 is not in the input" in w for w in feedback.warnings)
    assert any(i.startswith("Found: east: ") and "x1000" in i for i in feedback.infos)  # each scene's findings
    for key in ("OUTPUT_PROBABILITY", "OUTPUT_MASK", "OUTPUT_SCENES"):
        layer = QgsRasterLayer(result[key], key)
        assert layer.isValid() and layer.crs().authid() == "EPSG:27700", key
    west = QgsRasterLayer(str(scenes["west"]), "west")
    mosaic = QgsRasterLayer(result["OUTPUT_PROBABILITY"], "mosaic")
    assert mosaic.extent().contains(west.extent()) and mosaic.extent() != west.extent()
    polygons = QgsVectorLayer(result["OUTPUT_POLYGONS"], "polygons", "ogr")
    assert polygons.isValid() and polygons.featureCount() == result["N_LANDSLIDES"] > 0
    assert {f["scene"] for f in polygons.getFeatures()} <= {"west", "east"}
    report = json.loads(Path(result["REPORT"]).read_text())
    assert [s["status"] for s in report["scenes"]] == ["done", "done", "failed"]

    # each scene's folder holds what landslide:detect writes for that scene with the same choices
    detect = processing.run(
        "landslide:detect",
        {"SENTINEL2": [str(scenes["west"])], "DEM": str(scenes["dem"]), **RUN,
         "OUTPUT_PROBABILITY": str(tmp_path / "p.tif"), "OUTPUT_MASK": str(tmp_path / "m.tif"),
         "OUTPUT_POLYGONS": str(tmp_path / "l.gpkg")},
    )  # fmt: skip
    with rasterio.open(detect["OUTPUT_PROBABILITY"]) as a, rasterio.open(tmp_path / "region/west/probability.tif") as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))

    # again into the same folder, west given as a project layer's id: nothing is mapped twice
    project = QgsProject.instance()
    project.addMapLayer(layers[0])
    try:
        again = processing.run(
            "landslide:detect_region",
            {"SCENES": [layers[0].id(), layers[1]], "DEM": [str(scenes["dem"])], **RUN,
             "OUTPUT_FOLDER": str(tmp_path / "region")},
        )  # fmt: skip
    finally:
        project.removeMapLayer(layers[0].id())
    statuses = [s["status"] for s in json.loads(Path(again["REPORT"]).read_text())["scenes"]]
    assert statuses == ["skipped", "skipped"] and again["N_LANDSLIDES"] == result["N_LANDSLIDES"]


def test_region_without_any_mapped_scene_is_one_line_error(provider, scenes, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="no scene could be mapped"):
        processing.run(
            "landslide:detect_region",
            {"SCENES": [str(scenes["corrupt"])], "DEM": [str(scenes["dem"])], **RUN, "OUTPUT_FOLDER": str(tmp_path)},
        )


def test_region_offers_detects_run_parameters(provider):
    detect, region = provider.algorithm("detect"), provider.algorithm("detect_region")
    shared = ("MODEL", "MODEL_FILE", "DEVICE", "BATCH_SIZE", "OVERLAP", "THRESHOLD", "TTA", "MIN_AREA", "PRECISION",
              "EXTENT", "REFLECTANCE_SCALE", "BAND_MAP")  # fmt: skip
    for name in shared:
        ours, theirs = region.parameterDefinition(name), detect.parameterDefinition(name)
        assert ours is not None, name
        assert (ours.type(), ours.description(), ours.defaultValue(), int(ours.flags())) == (
            theirs.type(), theirs.description(), theirs.defaultValue(), int(theirs.flags()),
        ), name  # fmt: skip


def test_region_runs_as_a_step_of_a_model(provider, scenes, tmp_path):
    """A graphical model: detect_region -> extract the polygons above a minimum area."""
    from qgis.core import (
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFile,
        QgsVectorLayer,
    )

    model = QgsProcessingModelAlgorithm("region then large", "test")
    model.addModelParameter(
        QgsProcessingParameterFile("scene_a", "scene a"), QgsProcessingModelParameter("scene_a")
    )  # a file input: the modeler's way to pass a path through
    region = QgsProcessingModelChildAlgorithm("landslide:detect_region")
    region.setChildId("region")
    static = {"DEM": [str(scenes["dem"])], **RUN, "BATCH_SIZE": 16, "TTA": False, "OUTPUT_FOLDER": str(tmp_path / "r")}
    for name, value in static.items():
        region.addParameterSources(name, [QgsProcessingModelChildParameterSource.fromStaticValue(value)])
    region.addParameterSources(
        "SCENES",
        [QgsProcessingModelChildParameterSource.fromModelParameter("scene_a"),
         QgsProcessingModelChildParameterSource.fromStaticValue(str(scenes["east"]))],
    )  # fmt: skip
    model.addChildAlgorithm(region)
    extract = QgsProcessingModelChildAlgorithm("native:extractbyexpression")
    extract.setChildId("large")
    extract.addParameterSources(
        "INPUT", [QgsProcessingModelChildParameterSource.fromChildOutput("region", "OUTPUT_POLYGONS")]
    )
    extract.addParameterSources("EXPRESSION", [QgsProcessingModelChildParameterSource.fromStaticValue(
        '"area_m2" >= 1000')])  # fmt: skip
    output = QgsProcessingModelOutput("large", "large landslides")
    output.setChildOutputName("OUTPUT")
    extract.setModelOutputs({"large": output})
    model.addChildAlgorithm(extract)
    ok, errors = model.validate()
    assert ok, errors

    # the model names its output parameter ("large:large" on QGIS 3.22, "large_landslides" on 3.44)
    (destination,) = model.destinationParameterDefinitions()
    results, ok = model.run(
        {"scene_a": str(scenes["west"]), destination.name(): str(tmp_path / "large.gpkg")},
        QgsProcessingContext(),
        QgsProcessingFeedback(),
    )
    assert ok
    everything = QgsVectorLayer(str(tmp_path / "r" / "landslides.gpkg"), "all", "ogr")
    large = QgsVectorLayer(results[destination.name()], "large", "ogr")
    expected = sorted(f["area_m2"] for f in everything.getFeatures() if f["area_m2"] >= 1000)
    assert sorted(f["area_m2"] for f in large.getFeatures()) == expected and expected
