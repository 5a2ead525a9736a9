"""The model choice that ``landslide:detect``, ``landslide:stack``, ``landslide:detect_region`` and
``landslide:predict_h5`` share: a catalog name or a package file; and how any choice among named values is built."""

from __future__ import annotations

from collections.abc import Sequence
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


def named_choice(
    name: str, label: str, options: Sequence[str], default: str | None, help_text: str, optional: bool = True
) -> QgsProcessingParameterEnum:
    """A choice among named values (the engine's option lists, model names), stored as the value, not a list
    position, so models and qgis_process calls keep their meaning when a list grows. A default not among the
    options is left empty (the engine's default then applies)."""
    choice = QgsProcessingParameterEnum(
        name, label, options=list(options), defaultValue=default if default in options else None, optional=optional
    )
    choice.setUsesStaticStrings(True)
    choice.setHelp(help_text)
    return choice


def parameters(help_text: str) -> list[QgsProcessingParameterDefinition]:
    """The Model list (built-in first, then the models folder) and the package-file override."""
    names = available_model_names()
    model = named_choice(MODEL, "Model", names, names[0] if names else None, help_text)
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
