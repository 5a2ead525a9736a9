"""``landslide:predict_h5``: Landslide4Sense ``.h5`` patches through one model or all of them.

For checking a model on the benchmark's own patches and comparing models side by side:
per patch and model the engine's ``predict_h5`` writes the probabilities (.npy) and a
three-panel PNG (true colour, probability, overlay).
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterFolderDestination,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterNumber,
)

from landslide_qgis import settings
from landslide_qgis.toolbox import model_parameters, run_parameters
from landslide_qgis.toolbox.engine_bridge import all_model_paths, engine_callbacks, engine_errors, engine_warn


class PredictH5Algorithm(QgsProcessingAlgorithm):
    FILES = "FILES"
    MODEL = model_parameters.MODEL
    MODEL_FILE = model_parameters.MODEL_FILE
    ALL_MODELS = "ALL_MODELS"
    DEVICE = run_parameters.DEVICE
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT_FOLDER = "OUTPUT_FOLDER"
    N_FILES = "N_FILES"

    def name(self) -> str:
        return "predict_h5"

    def displayName(self) -> str:
        return "Predict Landslide4Sense .h5 patches"

    def group(self) -> str:
        return "Detection"

    def groupId(self) -> str:
        return "detection"

    def shortHelpString(self) -> str:
        return (
            "Runs Landslide4Sense .h5 image patches (128×128×14, already scaled) through one model, or through "
            "every available model to compare them side by side. For each patch and model it writes the "
            "probabilities as .npy and a PNG with true colour, probability and overlay panels."
        )

    def createInstance(self) -> PredictH5Algorithm:
        return PredictH5Algorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(
            QgsProcessingParameterMultipleLayers(
                self.FILES, "Landslide4Sense .h5 patches", QgsProcessing.SourceType.TypeFile
            )
        )
        for parameter in model_parameters.parameters("A built-in model or a package from the models folder."):
            self.addParameter(parameter)
        all_models = QgsProcessingParameterBoolean(self.ALL_MODELS, "Run every available model", False)
        all_models.setHelp("The built-in model and every package in the models folder; Model is ignored.")
        self.addParameter(all_models)
        self.addParameter(run_parameters.device_parameter())
        self.addParameter(
            QgsProcessingParameterNumber(
                self.BATCH_SIZE,
                "Batch size",
                QgsProcessingParameterNumber.Type.Integer,
                settings.batch_size(),
                minValue=1,
            )
        )
        self.addParameter(QgsProcessingParameterFolderDestination(self.OUTPUT_FOLDER, "Output folder"))
        self.addOutput(QgsProcessingOutputNumber(self.N_FILES, "Files written"))

    def processAlgorithm(self, parameters, context, feedback):
        from pathlib import Path

        files = [Path(p) for p in self.parameterAsFileList(parameters, self.FILES, context)]
        if not files:
            raise QgsProcessingException("FILES: select at least one .h5 patch")
        all_models = self.parameterAsBool(parameters, self.ALL_MODELS, context)
        models = all_model_paths() if all_models else [model_parameters.chosen_model(self, parameters, context)]
        out_dir = self.parameterAsString(parameters, self.OUTPUT_FOLDER, context)
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            from landslide_engine.h5predict import predict_h5

            written = predict_h5(
                files,
                [str(m) for m in models],
                Path(out_dir),
                device=self.parameterAsEnumString(parameters, self.DEVICE, context) or settings.default_device(),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                progress=progress,
                cancelled=cancelled,
                skip_unusable_models=all_models,
                warn=engine_warn(feedback),
            )
        feedback.pushInfo(f"{len(written)} files written for {len(files)} patches and {len(models)} model(s)")
        return {self.OUTPUT_FOLDER: out_dir, self.N_FILES: len(written)}
