"""The model choice that ``landslide:detect`` and ``landslide:stack`` share: a catalog name or a package file."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
)

from landslide_qgis.toolbox.engine_bridge import available_model_names, resolve_model_path

MODEL = "MODEL"
MODEL_FILE = "MODEL_FILE"
MODEL_FILE_FILTER = "Model packages (*.onnx *.pt);;All files (*.*)"


def parameters(help_text: str) -> list[QgsProcessingParameterDefinition]:
    """The Model list (built-in first, then the models folder) and the package-file override."""
    names = available_model_names()
    model = QgsProcessingParameterEnum(
        MODEL, "Model", options=names, defaultValue=names[0] if names else None, optional=True
    )
    model.setUsesStaticStrings(True)  # models and qgis_process store the name, not a list position
    model.setHelp(help_text)
    model_file = QgsProcessingParameterFile(
        MODEL_FILE, "Model package file (overrides Model)", fileFilter=MODEL_FILE_FILTER, optional=True
    )
    model_file.setHelp("An .onnx or .pt model package written by the training package.")
    return [model, model_file]


def chosen_model(algorithm: QgsProcessingAlgorithm, parameters: dict, context: QgsProcessingContext) -> Path:
    """The package file of the chosen model (the built-in one when neither parameter is set)."""
    return resolve_model_path(
        algorithm.parameterAsFile(parameters, MODEL_FILE, context)
        or algorithm.parameterAsEnumString(parameters, MODEL, context)
    )
