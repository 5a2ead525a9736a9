"""The shipped example model (slope -> detect -> polygons above a minimum area) loads and runs."""

from __future__ import annotations

from tests.paths import ROOT
from tests.qgis_helpers import synthetic_scene, tiny_model_package

MODEL3 = ROOT / "landslide_qgis" / "models3" / "landslides_above_min_area.model3"


def test_model3_loads_validates_and_filters_by_area(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm, QgsVectorLayer

    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    ok, errors = model.validate()
    assert ok, errors
    assert {c.algorithmId() for c in model.childAlgorithms().values()} == {
        "landslide:slope",
        "landslide:detect",
        "native:extractbyexpression",
    }

    s2, dem = synthetic_scene(tmp_path)
    # threshold 0.5 on the untrained net's probabilities gives several landslides of different sizes
    package = tiny_model_package(tmp_path / "tiny.onnx", threshold=0.5)
    direct = processing.run(
        "landslide:detect",
        {
            "SENTINEL2": [str(s2)],
            "DEM": str(dem),
            "MODEL_FILE": str(package),
            "OUTPUT_PROBABILITY": "TEMPORARY_OUTPUT",
            "OUTPUT_MASK": "TEMPORARY_OUTPUT",
            "OUTPUT_POLYGONS": str(tmp_path / "all.gpkg"),
        },
    )
    areas = sorted(f["area_m2"] for f in QgsVectorLayer(direct["OUTPUT_POLYGONS"], "all", "ogr").getFeatures())
    assert areas, "the scene gives at least one landslide to filter"
    min_area = areas[len(areas) // 2]  # keeps the larger half

    context = QgsProcessingContext()
    feedback = QgsProcessingFeedback()
    results, ok = model.run(
        {
            "sentinel2": [str(s2)],
            "dem": str(dem),
            "model_file": str(package),
            "min_area": min_area,
            "detect:probability": str(tmp_path / "probability.tif"),
            "large_enough:landslides": str(tmp_path / "large.gpkg"),
        },
        context,
        feedback,
    )
    assert ok
    kept = QgsVectorLayer(results["large_enough:landslides"], "large", "ogr")
    kept_areas = sorted(f["area_m2"] for f in kept.getFeatures())
    assert kept_areas == [a for a in areas if a >= min_area]
    assert (tmp_path / "probability.tif").exists()


def test_model3_runs_on_the_real_int16_srtm(provider, geo_root, tmp_path):
    """The shipped workflow on an analyst's inputs: the real Aberystwyth product (x1000) and its Int16 SRTM with
    nodata -32767, the built-in model and the scale read from the data."""
    import rasterio
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingModelAlgorithm, QgsVectorLayer

    folder = geo_root / "rsgislib_aberystwyth_wales"
    dem = folder / "AberSRTM_4326.tif"
    with rasterio.open(dem) as src:
        assert src.dtypes[0] == "int16" and src.nodata is not None  # the case this test is about
    model = QgsProcessingModelAlgorithm()
    assert model.fromFile(str(MODEL3))
    min_area = 1000.0
    feedback = QgsProcessingFeedback()
    results, ok = model.run(
        {
            "sentinel2": [str(folder / "sen2_20210527_aber_10band_mosaic_epsg27700.tif")],
            "dem": str(dem),
            "min_area": min_area,
            "detect:probability": str(tmp_path / "probability.tif"),
            "large_enough:landslides": str(tmp_path / "large.gpkg"),
        },
        QgsProcessingContext(),
        feedback,
    )
    assert ok, feedback.textLog()
    with rasterio.open(tmp_path / "probability.tif") as src:
        probability = src.read(1, masked=True)
    assert probability.count() > 0 and probability.min() >= 0.0 and probability.max() <= 1.0
    areas = [f["area_m2"] for f in QgsVectorLayer(results["large_enough:landslides"], "large", "ogr").getFeatures()]
    assert all(area >= min_area for area in areas)
