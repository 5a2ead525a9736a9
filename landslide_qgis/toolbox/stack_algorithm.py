"""``landslide:stack``: the scaled 14-band Landslide4Sense model input as one GeoTIFF.

Useful to inspect what a model sees, to feed other tools, or to train on new areas.
The stacking itself (band identification, warping, slope, scaling) is the engine's
``stack_to_file``.
"""

from __future__ import annotations

from qgis.core import QgsProcessingAlgorithm, QgsProcessingParameterRasterDestination

from landslide_qgis.engine_request import stack_arguments
from landslide_qgis.toolbox import model_parameters, scene_parameters
from landslide_qgis.toolbox.engine_bridge import engine_callbacks, engine_errors, engine_info, engine_warn


class StackAlgorithm(QgsProcessingAlgorithm):
    SENTINEL2 = scene_parameters.SENTINEL2
    DEM = scene_parameters.DEM
    SLOPE = scene_parameters.SLOPE
    EXTENT = scene_parameters.EXTENT
    REFLECTANCE_SCALE = scene_parameters.REFLECTANCE_SCALE
    BAND_MAP = scene_parameters.BAND_MAP
    MODEL = model_parameters.MODEL
    MODEL_FILE = model_parameters.MODEL_FILE
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "stack"

    def displayName(self) -> str:
        return "Stack model input (14 Landslide4Sense bands)"

    def group(self) -> str:
        return "Inputs"

    def groupId(self) -> str:
        return "inputs"

    def shortHelpString(self) -> str:
        return (
            "Warps Sentinel-2, the DEM and the slope onto the Sentinel-2 grid and writes the 14 bands a "
            "Landslide4Sense model reads: B1…B12 (without B8A), slope (B13) and elevation (B14), each divided by "
            "the dataset's per-band divisor. It takes the same inputs as Detect landslides (reflectance scale, "
            "band map, extent) and writes exactly what the chosen model sees: a band the input lacks (B10 in "
            "L2A products) is filled with that model's constant, as Detect landslides does."
        )

    def createInstance(self) -> StackAlgorithm:
        return StackAlgorithm()

    def createCustomParametersWidget(self, parent=None):
        """The standard dialog, except that it never pre-fills the DEM with a Sentinel-2 layer."""
        from landslide_qgis.toolbox.scene_dialog import SceneInputDialog

        return SceneInputDialog(self, parent)

    def initAlgorithm(self, config=None) -> None:
        extent, *advanced = scene_parameters.add_scene_parameters(self)
        self.addParameter(extent)
        models = model_parameters.parameters("The model whose input to write: its constants fill missing bands.")
        scene_parameters.add_advanced(self, [*advanced, *models])
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Stacked model input"))

    def processAlgorithm(self, parameters, context, feedback):
        scene = scene_parameters.scene_choices(self, parameters, context)
        model = model_parameters.chosen_model(self, parameters, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            from landslide_engine.pipeline import stack_to_file

            arguments = stack_arguments(scene, str(model))
            stack_to_file(
                out=out,
                progress=progress,
                cancelled=cancelled,
                warn=engine_warn(feedback),
                info=engine_info(feedback),
                **arguments,
            )
        return {self.OUTPUT: out}
