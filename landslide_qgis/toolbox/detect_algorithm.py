"""``landslide:detect``: Sentinel-2 + DEM in, landslide probability, mask and polygons out.

All raster work (warping, stacking, tiling, inference, vectorising) is the engine's
``predict_scene``; this class only maps Processing parameters to a ``PredictRequest``
and the engine's files to the requested destinations.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
)

from landslide_qgis.engine_request import predict_request, product_label, product_summary
from landslide_qgis.gui.result_layers import MASK, POLYGONS, PROBABILITY, run_time, scene_name
from landslide_qgis.toolbox import model_parameters, result_postprocessor, run_parameters, scene_parameters
from landslide_qgis.toolbox.engine_bridge import engine_callbacks, engine_errors, engine_info, engine_warn
from landslide_qgis.toolbox.outputs import (
    check_destinations,
    place_raster,
    place_report,
    place_vector,
    report_path,
)

MODEL_FILE_FILTER = model_parameters.MODEL_FILE_FILTER


class DetectAlgorithm(QgsProcessingAlgorithm):
    SENTINEL2 = scene_parameters.SENTINEL2
    DEM = scene_parameters.DEM
    SLOPE = scene_parameters.SLOPE
    MODEL = model_parameters.MODEL
    MODEL_FILE = model_parameters.MODEL_FILE
    DEVICE = run_parameters.DEVICE
    PRECISION = run_parameters.PRECISION
    BATCH_SIZE = run_parameters.BATCH_SIZE
    OVERLAP = run_parameters.OVERLAP
    THRESHOLD = run_parameters.THRESHOLD
    TTA = run_parameters.TTA
    MIN_AREA = run_parameters.MIN_AREA
    REFLECTANCE_SCALE = scene_parameters.REFLECTANCE_SCALE
    BAND_MAP = scene_parameters.BAND_MAP
    EXTENT = scene_parameters.EXTENT
    OUTPUT_PROBABILITY = "OUTPUT_PROBABILITY"
    OUTPUT_MASK = "OUTPUT_MASK"
    OUTPUT_POLYGONS = "OUTPUT_POLYGONS"
    N_LANDSLIDES = "N_LANDSLIDES"
    LANDSLIDE_AREA_M2 = "LANDSLIDE_AREA_M2"
    DEVICE_USED = "DEVICE_USED"
    REPORT = "REPORT"

    def name(self) -> str:
        return "detect"

    def displayName(self) -> str:
        return "Detect landslides"

    def group(self) -> str:
        return "Detection"

    def groupId(self) -> str:
        return "detection"

    def shortHelpString(self) -> str:
        return (
            "Maps landslides from a Sentinel-2 scene and a DEM with a Landslide4Sense segmentation model.\n\n"
            "The inputs are warped onto the Sentinel-2 grid, stacked into the 14 Landslide4Sense bands "
            "(12 Sentinel-2 bands, slope, elevation), cut into overlapping 128×128 patches and run through the "
            "model; overlapping patches are blended.\n\n"
            "Sentinel-2: a product as downloaded (a SAFE .zip or MTD file, a STAC item), whose metadata gives "
            "the level, baseline, offsets and cloud mask; or one multi-band layer (an Earth Engine export too) or "
            "several single-band layers, bands identified from their descriptions or file names (B01…B12; B8A "
            "is dropped). Clouds, cloud shadows and snow are no data (advanced: the classes, or s2cloudless for "
            "L1C without a mask). DEM: elevation in metres, any CRS; several tiles are mosaicked (advanced: "
            "More DEM tiles). Slope: optional, computed from the DEM when absent.\n\n"
            "Model: a built-in model or one from the models folder (Processing → Options → Providers → "
            "Landslide detection), or a package file (.onnx/.pt) which takes precedence.\n\n"
            "Outputs: landslide probability (0–1), a binary mask at the threshold, and landslide polygons "
            "with their area in m² (field area_m2); the run report (what was read, the share masked per cloud "
            "class) beside the probability raster."
        )

    def helpUrl(self) -> str:
        return "https://github.com/landslide-mapper/landslide-qgis#readme"

    def createInstance(self) -> DetectAlgorithm:
        return DetectAlgorithm()

    def createCustomParametersWidget(self, parent=None):
        """The standard dialog, except that it never pre-fills the DEM with a Sentinel-2 layer."""
        from landslide_qgis.toolbox.scene_dialog import SceneInputDialog

        return SceneInputDialog(self, parent)

    def initAlgorithm(self, config=None) -> None:
        extent, *scene_advanced = scene_parameters.add_scene_parameters(self)
        for parameter in model_parameters.parameters("A built-in model or a package from the models folder."):
            self.addParameter(parameter)
        tta, min_area, precision = run_parameters.add_run_parameters(self)
        self.addParameter(extent)
        scene_parameters.add_advanced(self, [tta, min_area, *scene_advanced, precision])

        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_PROBABILITY, "Landslide probability"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT_MASK, "Landslide mask"))
        self.addParameter(
            QgsProcessingParameterVectorDestination(
                self.OUTPUT_POLYGONS, "Landslide polygons", QgsProcessing.SourceType.TypeVectorPolygon
            )
        )
        self.addOutput(QgsProcessingOutputNumber(self.N_LANDSLIDES, "Number of landslides"))
        self.addOutput(QgsProcessingOutputNumber(self.LANDSLIDE_AREA_M2, "Total landslide area (m²)"))
        self.addOutput(QgsProcessingOutputString(self.DEVICE_USED, "Device used"))
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "Run report (JSON, beside the probability raster)"))

    def processAlgorithm(self, parameters, context, feedback):
        with engine_errors():  # a missing package becomes the install instructions
            from landslide_engine.pipeline import predict_scene

        scene = scene_parameters.scene_choices(self, parameters, context)
        model_path = model_parameters.chosen_model(self, parameters, context)
        run = run_parameters.run_choices(self, parameters, context, str(model_path))
        prob_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context)
        mask_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context)
        polygons_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context)
        check_destinations([prob_dest, mask_dest, polygons_dest, report_path(prob_dest)], scene.files)

        work_dir = tempfile.mkdtemp(prefix="detect_", dir=QgsProcessingUtils.tempFolder())
        with engine_errors():
            request = predict_request(scene, run, work_dir)
        if scene.product:
            with engine_errors():
                feedback.pushInfo(f"Product: {product_summary(scene.product)}")
        feedback.pushInfo(f"Model: {model_path}")
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            result = predict_scene(
                request,
                progress=progress,
                cancelled=cancelled,
                warn=engine_warn(feedback),
                info=engine_info(feedback),
            )
        feedback.pushInfo(
            f"{result.n_landslides} landslides, {result.landslide_area_m2 / 1e6:.4f} km² "
            f"({result.n_patches} patches, {result.n_patches_without_data} of them without data and not run; "
            f"on {result.device}, {result.backend})"
        )
        outputs = {
            PROBABILITY: place_raster(Path(result.probability), prob_dest),
            MASK: place_raster(Path(result.mask), mask_dest),
            POLYGONS: place_vector(Path(result.polygons), polygons_dest),
        }
        report = place_report(Path(result.report), prob_dest)
        s2_names = [layer.name() for layer in self.parameterAsLayerList(parameters, self.SENTINEL2, context)]
        if scene.product:
            s2_names = [product_label(scene.product)]
        model_name = json.loads(Path(report).read_text(encoding="utf-8"))["model"]["name"]
        result_postprocessor.attach(context, outputs, scene_name(s2_names), model_name, run_time())
        return {
            self.OUTPUT_PROBABILITY: outputs[PROBABILITY],
            self.OUTPUT_MASK: outputs[MASK],
            self.OUTPUT_POLYGONS: outputs[POLYGONS],
            self.N_LANDSLIDES: result.n_landslides,
            self.LANDSLIDE_AREA_M2: result.landslide_area_m2,
            self.DEVICE_USED: result.device,
            self.REPORT: report,
        }
