"""``landslide:detect``: Sentinel-2 + DEM in, landslide probability, mask and polygons out.

All raster work (warping, stacking, tiling, inference, vectorising) is the engine's
``predict_scene``; this class only maps Processing parameters to a ``PredictRequest``
and the engine's files to the requested destinations.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingUtils,
)

from landslide_qgis import settings
from landslide_qgis.processing.engine_bridge import (
    available_model_names,
    engine_callbacks,
    engine_errors,
    resolve_model_path,
)
from landslide_qgis.processing.outputs import place_raster, place_vector

MODEL_FILE_FILTER = "Model packages (*.onnx *.pt);;All files (*.*)"
# how the Sentinel-2 files store reflectance: ESA DN (x 10000), x 1000 (ARCSI and others), or 0-1 floats
REFLECTANCE_SCALES = ("l1c", "x1000", "0-1")
# the engine's PRECISIONS, spelled out so that the Toolbox lists the algorithm before the engine can be imported
PRECISIONS = ("fp32", "bf16", "fp16")


class DetectAlgorithm(QgsProcessingAlgorithm):
    SENTINEL2 = "SENTINEL2"
    DEM = "DEM"
    SLOPE = "SLOPE"
    MODEL = "MODEL"
    MODEL_FILE = "MODEL_FILE"
    DEVICE = "DEVICE"
    PRECISION = "PRECISION"
    BATCH_SIZE = "BATCH_SIZE"
    OVERLAP = "OVERLAP"
    THRESHOLD = "THRESHOLD"
    TTA = "TTA"
    MIN_AREA = "MIN_AREA"
    REFLECTANCE_SCALE = "REFLECTANCE_SCALE"
    BAND_MAP = "BAND_MAP"
    EXTENT = "EXTENT"
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

    def initAlgorithm(self, config=None) -> None:
        s2 = QgsProcessingParameterMultipleLayers(
            self.SENTINEL2, "Sentinel-2 layer(s)", QgsProcessing.SourceType.TypeRaster
        )
        s2.setHelp("One multi-band Sentinel-2 L1C layer, or one single-band layer per band.")
        self.addParameter(s2)
        dem = QgsProcessingParameterRasterLayer(self.DEM, "DEM (elevation in metres)")
        dem.setHelp("Any CRS and resolution; it is warped onto the Sentinel-2 grid.")
        self.addParameter(dem)
        slope = QgsProcessingParameterRasterLayer(self.SLOPE, "Slope (degrees)", optional=True)
        slope.setHelp("Optional; when empty, slope is computed from the DEM with Horn's method.")
        self.addParameter(slope)

        names = available_model_names()
        model = QgsProcessingParameterEnum(
            self.MODEL, "Model", options=names, defaultValue=names[0] if names else None, optional=True
        )
        model.setUsesStaticStrings(True)  # models and qgis_process store the name, not a list position
        model.setHelp("A built-in model or a package from the models folder.")
        self.addParameter(model)
        model_file = QgsProcessingParameterFile(
            self.MODEL_FILE, "Model package file (overrides Model)", fileFilter=MODEL_FILE_FILTER, optional=True
        )
        model_file.setHelp("An .onnx or .pt model package written by the training package.")
        self.addParameter(model_file)

        device = QgsProcessingParameterEnum(
            self.DEVICE, "Device", options=list(settings.DEVICES), defaultValue=settings.default_device()
        )
        device.setUsesStaticStrings(True)
        device.setHelp("auto uses a CUDA GPU when one is usable and falls back to the CPU.")
        self.addParameter(device)
        batch = QgsProcessingParameterNumber(
            self.BATCH_SIZE, "Batch size", QgsProcessingParameterNumber.Type.Integer, settings.batch_size(), minValue=1
        )
        batch.setHelp("Patches per inference batch; halved automatically when a GPU runs out of memory.")
        self.addParameter(batch)
        overlap = QgsProcessingParameterNumber(
            self.OVERLAP,
            "Patch overlap (pixels)",
            QgsProcessingParameterNumber.Type.Integer,
            32,
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
        extent = QgsProcessingParameterExtent(self.EXTENT, "Process only this extent", optional=True)
        extent.setHelp("Limits the run to part of the scene; in any CRS.")
        self.addParameter(extent)

        tta = QgsProcessingParameterBoolean(self.TTA, "Test-time augmentation (flips; 4× slower)", False)
        tta.setHelp("Averages predictions over flipped patches; slightly smoother, four times the compute.")
        min_area = QgsProcessingParameterNumber(
            self.MIN_AREA, "Minimum polygon area (m²)", QgsProcessingParameterNumber.Type.Double, 0.0, minValue=0.0
        )
        min_area.setHelp("Polygons smaller than this are dropped (the mask keeps them).")
        scale = QgsProcessingParameterEnum(
            self.REFLECTANCE_SCALE,
            "Sentinel-2 reflectance scale",
            options=list(REFLECTANCE_SCALES),
            defaultValue=REFLECTANCE_SCALES[0],
        )
        scale.setUsesStaticStrings(True)
        scale.setHelp(
            "l1c: ESA digital numbers (reflectance × 10000, the Landslide4Sense convention); x1000: reflectance × 1000 "
            "(ARCSI and others); 0-1: reflectance as floats. A wrong scale ruins every prediction."
        )
        band_map = QgsProcessingParameterString(
            self.BAND_MAP, "Band map (when bands cannot be identified)", optional=True
        )
        band_map.setHelp(
            "Names the Sentinel-2 bands the descriptions and file names do not identify, as BAND=SOURCE pairs "
            "separated by commas: a band number of the only input (B2=1), a file (B8=nir.tif) or both (B4=scene.tif:3)."
        )
        # Optional, so models and scripts written before this parameter existed still run (in fp32).
        precision = QgsProcessingParameterEnum(
            self.PRECISION,
            "Model number format",
            options=list(PRECISIONS),
            defaultValue=PRECISIONS[0],
            optional=True,
        )
        precision.setUsesStaticStrings(True)
        precision.setHelp(
            "fp32: full precision. bf16: .pt (PyTorch) models only; fast on CPUs with AVX-512 BF16/AMX and on GPUs; "
            "on the benchmark models probabilities moved by under 0.001 on average and the mask kept F1 0.95–0.9995 "
            "against fp32. fp16: .pt models on a GPU only. For int8 on the CPU, write a quantized .onnx model with "
            "'python -m landslide_engine quantize' and choose it as the model file."
        )
        for advanced in (tta, min_area, scale, band_map, precision):
            advanced.setFlags(advanced.flags() | QgsProcessingParameterDefinition.Flag.FlagAdvanced)
            self.addParameter(advanced)

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
            from landslide_engine.pipeline import PredictRequest, predict_scene

        s2 = [layer.source() for layer in self.parameterAsLayerList(parameters, self.SENTINEL2, context)]
        if not s2:
            raise QgsProcessingException("SENTINEL2: select at least one Sentinel-2 raster layer")
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        if dem is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.DEM))
        slope = self.parameterAsRasterLayer(parameters, self.SLOPE, context)
        model_path = resolve_model_path(
            self.parameterAsFile(parameters, self.MODEL_FILE, context)
            or self.parameterAsEnumString(parameters, self.MODEL, context)
        )
        extent, extent_crs = self._extent(parameters, context)
        prob_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_PROBABILITY, context)
        mask_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_MASK, context)
        polygons_dest = self.parameterAsOutputLayer(parameters, self.OUTPUT_POLYGONS, context)

        work_dir = tempfile.mkdtemp(prefix="detect_", dir=QgsProcessingUtils.tempFolder())
        request = PredictRequest(
            s2=s2,
            dem=dem.source(),
            out_dir=work_dir,
            slope=slope.source() if slope is not None else None,
            model=str(model_path),
            device=self.parameterAsEnumString(parameters, self.DEVICE, context) or settings.default_device(),
            precision=self.parameterAsEnumString(parameters, self.PRECISION, context) or PRECISIONS[0],
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            overlap=self.parameterAsInt(parameters, self.OVERLAP, context),
            threshold=self._threshold(parameters, context),
            tta=self.parameterAsBool(parameters, self.TTA, context),
            extent=extent,
            extent_crs=extent_crs,
            min_area_m2=self.parameterAsDouble(parameters, self.MIN_AREA, context),
            band_map=parse_band_map(self.parameterAsString(parameters, self.BAND_MAP, context)),
            reflectance_scale=self.parameterAsEnumString(parameters, self.REFLECTANCE_SCALE, context)
            or REFLECTANCE_SCALES[0],
        )
        feedback.pushInfo(f"Model: {model_path}")
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            result = predict_scene(request, progress=progress, cancelled=cancelled)
        feedback.pushInfo(
            f"{result.n_landslides} landslides, {result.landslide_area_m2 / 1e6:.4f} km² "
            f"({result.n_patches} patches, {result.n_patches_without_data} of them without data and not run; "
            f"on {result.device}, {result.backend})"
        )
        return {
            self.OUTPUT_PROBABILITY: place_raster(Path(result.probability), prob_dest),
            self.OUTPUT_MASK: place_raster(Path(result.mask), mask_dest),
            self.OUTPUT_POLYGONS: place_vector(Path(result.polygons), polygons_dest),
            self.N_LANDSLIDES: result.n_landslides,
            self.LANDSLIDE_AREA_M2: result.landslide_area_m2,
            self.DEVICE_USED: result.device,
            self.REPORT: str(result.report),
        }

    def _threshold(self, parameters, context) -> float | None:
        value = parameters.get(self.THRESHOLD)
        if value is None or value == "":
            return None
        return self.parameterAsDouble(parameters, self.THRESHOLD, context)

    def _extent(self, parameters, context) -> tuple[tuple[float, float, float, float] | None, str | None]:
        if parameters.get(self.EXTENT) in (None, ""):
            return None, None
        rect = self.parameterAsExtent(parameters, self.EXTENT, context)
        if rect.isNull() or rect.isEmpty():
            return None, None
        crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
        crs_text = (crs.authid() or crs.toWkt()) if crs.isValid() else None
        return (rect.xMinimum(), rect.yMinimum(), rect.xMaximum(), rect.yMaximum()), crs_text


def parse_band_map(text: str) -> dict[str, str] | None:
    """``"B2=1, B8=nir.tif"`` -> ``{"B2": "1", "B8": "nir.tif"}``; the engine validates band names and sources."""
    if not text or not text.strip():
        return None
    pairs = {}
    for item in text.replace(";", ",").split(","):
        if not item.strip():
            continue
        band, sep, source = item.partition("=")
        if not sep or not band.strip() or not source.strip():
            raise QgsProcessingException(f"BAND_MAP: {item.strip()!r} is not BAND=SOURCE (e.g. B4=3)")
        pairs[band.strip()] = source.strip()
    return pairs
