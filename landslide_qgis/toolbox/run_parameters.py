"""How the model runs over a scene: the parameters ``landslide:detect`` and ``landslide:detect_region`` share.

Declared once here and read once into :class:`~landslide_qgis.engine_request.RunChoices`, so whatever one
algorithm offers the other offers with the same names, defaults and help.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
)

from landslide_engine.options import PRECISION_HELP, PRECISIONS
from landslide_qgis import settings
from landslide_qgis.engine_request import RunChoices, request_defaults
from landslide_qgis.toolbox.model_parameters import named_choice

DEVICE = "DEVICE"
PRECISION = "PRECISION"
BATCH_SIZE = "BATCH_SIZE"
OVERLAP = "OVERLAP"
THRESHOLD = "THRESHOLD"
TTA = "TTA"
MIN_AREA = "MIN_AREA"


def add_run_parameters(algorithm: QgsProcessingAlgorithm) -> list[QgsProcessingParameterDefinition]:
    """Add device, batch size, overlap and threshold to ``algorithm``; return TTA, minimum area and precision.

    The caller adds those three as advanced parameters (``scene_parameters.add_advanced``).
    """
    defaults = request_defaults()
    algorithm.addParameter(device_parameter())
    batch = QgsProcessingParameterNumber(
        BATCH_SIZE,
        "Batch size",
        QgsProcessingParameterNumber.Type.Integer,
        settings.batch_size(),
        minValue=1,
    )
    batch.setHelp("Patches per inference batch; halved automatically when a GPU runs out of memory.")
    algorithm.addParameter(batch)
    overlap = QgsProcessingParameterNumber(
        OVERLAP,
        "Patch overlap (pixels)",
        QgsProcessingParameterNumber.Type.Integer,
        defaults.get("overlap"),
        optional=True,  # empty: the engine's default
        minValue=0,
        maxValue=96,
    )
    overlap.setHelp("Overlapping patches are blended, which removes seams at patch borders.")
    algorithm.addParameter(overlap)
    threshold = QgsProcessingParameterNumber(
        THRESHOLD,
        "Probability threshold (empty: the model's own)",
        QgsProcessingParameterNumber.Type.Double,
        None,
        optional=True,
        minValue=0.0,
        maxValue=1.0,
    )
    threshold.setHelp("Pixels with a probability at or above it are landslides in the mask and polygons.")
    algorithm.addParameter(threshold)

    tta = QgsProcessingParameterBoolean(TTA, "Test-time augmentation (flips; 4× slower)", False)
    tta.setHelp("Averages predictions over flipped patches; slightly smoother, four times the compute.")
    min_area = QgsProcessingParameterNumber(
        MIN_AREA,
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
    # Optional, so models and scripts written before this parameter existed still run (in the engine's default).
    precision = named_choice(PRECISION, "Model number format", PRECISIONS, defaults.get("precision"), PRECISION_HELP)
    return [tta, min_area, precision]


def device_parameter() -> QgsProcessingParameterEnum:
    """The device choice, with the plugin's default device (Processing → Options)."""
    return named_choice(
        DEVICE,
        "Device",
        settings.DEVICES,
        settings.default_device(),
        "auto uses a CUDA GPU when one is usable and falls back to the CPU.",
        optional=False,
    )


def run_choices(
    algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext, model: str
) -> RunChoices:
    """The run parameters as :class:`RunChoices` for the package file ``model``."""
    return RunChoices(
        model=model,
        device=algorithm.parameterAsEnumString(parameters, DEVICE, context) or settings.default_device(),
        precision=algorithm.parameterAsEnumString(parameters, PRECISION, context) or None,
        batch_size=algorithm.parameterAsInt(parameters, BATCH_SIZE, context),
        overlap=_optional_number(algorithm, parameters, OVERLAP, context, int),
        threshold=_optional_number(algorithm, parameters, THRESHOLD, context, float),
        tta=algorithm.parameterAsBool(parameters, TTA, context),
        min_area_m2=_optional_number(algorithm, parameters, MIN_AREA, context, float),
    )


def _optional_number(algorithm: QgsProcessingAlgorithm, parameters: dict, name: str, context, kind: type):
    """An optional number parameter, or None when empty (the engine's default then applies)."""
    value = parameters.get(name)
    if value is None or value == "":
        return None
    return kind(algorithm.parameterAsDouble(parameters, name, context))
