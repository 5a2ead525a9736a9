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
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
)

from landslide_engine.options import PRECISIONS
from landslide_qgis import settings
from landslide_qgis.engine_request import RunChoices, predict_request, request_defaults
from landslide_qgis.gui.result_layers import MASK, POLYGONS, PROBABILITY, run_time, scene_name
from landslide_qgis.processing import model_parameters, result_postprocessor, scene_parameters
from landslide_qgis.processing.engine_bridge import engine_callbacks, engine_errors, engine_warn
from landslide_qgis.processing.outputs import place_raster, place_vector

MODEL_FILE_FILTER = model_parameters.MODEL_FILE_FILTER


class DetectAlgorithm(QgsProcessingAlgorithm):
    SENTINEL2 = scene_parameters.SENTINEL2
    DEM = scene_parameters.DEM
    SLOPE = scene_parameters.SLOPE
    MODEL = model_parameters.MODEL
    MODEL_FILE = model_parameters.MODEL_FILE
    DEVICE = "DEVICE"
    PRECISION = "PRECISION"
    BATCH_SIZE = "BATCH_SIZE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    TTA = "TTA"
    MIN_AREA = "MIN_AREA"
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
            "Maps landslides from a Sentinel-2 L1C scene and a DEM with a Landslide4Sense segmentation model.\n\n"
            "The inputs are warped onto the Sentinel-2 grid, stacked into the 14 Landslide4Sense bands "
            "(12 Sentinel-2 bands, slope, elevation), cut into overlapping 128×128 patches and run through the "
            "model; overlapping patches are blended.\n\n"
            "Sentinel-2: one multi-band layer or several single-band layers; bands are identified from their "
            "descriptions or file names (B01…B12; B8A is dropped). DEM: elevation in metres, any CRS. "
            "Slope: optional, computed from the DEM when absent.\n\n"
            "Model: a built-in model or one from the models folder (Processing → Options → Providers → "
            "Landslide detection), or a package file (.onnx/.pt) which takes precedence.\n\n"
            "Outputs: landslide probability (0–1), a binary mask at the threshold, and landslide polygons "
            "with their area in m² (field area_m2)."
        )

    def helpUrl(self) -> str:
        return "https://github.com/landslide-mapper/landslide-qgis#readme"

    def createInstance(self) -> DetectAlgorithm:
        return DetectAlgorithm()

    def createCustomParametersWidget(self, parent=None):
        """The standard dialog, except that it never pre-fills the DEM with a Sentinel-2 layer."""
        from landslide_qgis.processing.scene_dialog import SceneInputDialog

        return SceneInputDialog(self, parent)

    def initAlgorithm(self, config=None) -> None:
        defaults = request_defaults()
        extent, *scene_advanced = scene_parameters.add_scene_parameters(self)

        for parameter in model_parameters.parameters("A built-in model or a package from the models folder."):
            self.addParameter(parameter)

        device = QgsProcessingParameterEnum(
            self.DEVICE, "Device", options=list(settings.DEVICES), defaultValue=settings.default_device()
        )
        device.setUsesStaticStrings(True)
        device.setHelp("auto uses a CUDA GPU when one is usable and falls back to the CPU.")
        self.addParameter(device)
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE,
            "Batch size",
            QgsProcessingParameterNumber.Type.Integer,
            settings.batch_size(),
            minValue=1,
        )
        batch.setHelp("Patches per inference batch; halved automatically when a GPU runs out of memory.")
        self.addParameter(batch)
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP,
            "Patch overlap (pixels)",
            QgsProcessingParameterNumber.Type.Integer,
            defaults.get("overlap"),
            optional=True,  # empty: the engine's default
            minValue=0,
            maxValue=96,
        )
        overlap.setHelp("Overlapping patches are blended, which removes seams at patch borders.")
        self.addParameter(overlap)
        threshold = QgsProcessingParameterNumber(
            self.THRESHOLD,
            "Probability threshold (empty: the model's own)",
            QgsProcessingParameterNumber.Type.Double,
            None,
            optional=True,
            minValue=0.0,
            maxValue=1.0,
        )
        threshold.setHelp("Pixels with a probability at or above it are landslides in the mask and polygons.")
        self.addParameter(threshold)
        self.addParameter(extent)

        tta = QgsProcessingParameterBoolean(self.TTA, "Test-time augmentation (flips; 4× slower)", False)
        tta.setHelp("Averages predictions over flipped patches; slightly smoother, four times the compute.")
        min_area = QgsProcessingParameterNumber(
            self.MIN_AREA,
            "Minimum polygon area (m²)",
            QgsProcessingParameterNumber.Type.Double,
            defaults.get("min_area_m2"),
            optional=True,  # empty: the engine's default
            minValue=0.0,
        )
        min_area.setHelp(
            "Polygons smaller than this are dropped (the mask keeps them); the default is the engine's "
            "minimum mapping unit."
        )
        # Optional, so models and scripts written before this parameter existed still run (in fp32).
        precision = QgsProcessingParameterEnum(
            self.PRECISION,
            "Model number format",
            options=list(PRECISIONS),
            defaultValue=defaults.get("precision"),
            optional=True,
        )
        precision.setUsesStaticStrings(True)
        precision.setHelp(
            "fp32: full precision. bf16: .pt (PyTorch) models only; fast on CPUs with AVX-512 BF16/AMX and on GPUs; "
            "on the benchmark models probabilities moved by under 0.001 on average and the mask kept F1 0.95–0.9995 "
            "against fp32. fp16: .pt models on a GPU only. For int8 on the CPU, write a quantized .onnx model with "
            "'python -m landslide_engine quantize' and choose it as the model file."
        )
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
        self.addOutput(QgsProcessingOutputFile(self.REPORT, "Run report (JSON)"))

    def processAlgorithm(self, parameters, context, feedback):
        with engine_errors():  # a missing package becomes the install instructions
            from landslide_engine.pipeline import predict_scene

        scene = scene_parameters.scene_choices(self, parameters, context)
        model_path = model_parameters.chosen_model(self, parameters, context)
        run = RunChoices(
            model=str(model_path),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or settings.default_device(),
            precision=self.parameterAsEnumString(parameters, self.PRECISION, context) or None,
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            overlap=self._optional_number(parameters, self.OVERLAP, context, int),
            threshold=self._optional_number(parameters, self.THRESHOLD, context, float),
            tta=self.parameterAsBool(parameters, self.TTA, context),
            min_area_m2=self._optional_number(parameters, self.MIN_AREA, context, float),
        )
        prob_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context)
        mask_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context)
        polygons_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context)

        work_dir = tempfile.mkdtemp(prefix="detect_", dir=QgsProcessingUtils.tempFolder())
        with engine_errors():
            request = predict_request(scene, run, work_dir)
        feedback.pushInfo(f"Model: {model_path}")
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            result = predict_scene(request, progress=progress, cancelled=cancelled, warn=engine_warn(feedback))
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
        s2_names = [layer.name() for layer in self.parameterAsLayerList(parameters, self.SENTINEL2, context)]
        model_name = json.loads(Path(result.report).read_text(encoding="utf-8"))["model"]["name"]
        result_postprocessor.attach(context, outputs, scene_name(s2_names), model_name, run_time())
        return {
            self.OUTPUT_PROBABILITY: outputs[PROBABILITY],
            self.OUTPUT_MASK: outputs[MASK],
            self.OUTPUT_POLYGONS: outputs[POLYGONS],
            self.N_LANDSLIDES: result.n_landslides,
            self.LANDSLIDE_AREA_M2: result.landslide_area_m2,
            self.DEVICE_USED: result.device,
            self.REPORT: str(result.report),
        }

    def _optional_number(self, parameters, name: str, context, kind: type):
        """An optional number parameter, or None when empty (the engine's default then applies)."""
        value = parameters.get(name)
        if value is None or value == "":
            return None
        return kind(self.parameterAsDouble(parameters, name, context))
