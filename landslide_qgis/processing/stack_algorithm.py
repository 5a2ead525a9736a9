"""``landslide:stack``: the scaled 14-band Landslide4Sense model input as one GeoTIFF.

Useful to inspect what a model sees, to feed other tools, or to train on new areas.
The stacking itself (band identification, warping, slope, scaling) is the engine's
``stack_to_file``.
"""

from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from landslide_qgis.processing.engine_bridge import engine_callbacks, engine_errors


class StackAlgorithm(QgsProcessingAlgorithm):
    SENTINEL2 = "SENTINEL2"
    DEM = "DEM"
    SLOPE = "SLOPE"
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
            "the dataset's per-band divisor. This is exactly the input of Detect landslides."
        )

    def createInstance(self) -> StackAlgorithm:
        return StackAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        s2 = QgsProcessingParameterMultipleLayers(
            self.SENTINEL2, "Sentinel-2 layer(s)", QgsProcessing.SourceType.TypeRaster
        )
        s2.setHelp("One multi-band Sentinel-2 L1C layer, or one single-band layer per band.")
        self.addParameter(s2)
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, "DEM (elevation in metres)"))
        slope = QgsProcessingParameterRasterLayer(self.SLOPE, "Slope (degrees)", optional=True)
        slope.setHelp("Optional; when empty, slope is computed from the DEM.")
        self.addParameter(slope)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Stacked model input"))

    def processAlgorithm(self, parameters, context, feedback):
        s2 = [layer.source() for layer in self.parameterAsLayerList(parameters, self.SENTINEL2, context)]
        if not s2:
            raise QgsProcessingException("SENTINEL2: select at least one Sentinel-2 raster layer")
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        if dem is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.DEM))
        slope = self.parameterAsRasterLayer(parameters, self.SLOPE, context)
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        progress, cancelled = engine_callbacks(feedback)
        with engine_errors():
            from landslide_engine.pipeline import stack_to_file

            stack_to_file(
                s2,
                dem.source(),
                out,
                slope=slope.source() if slope is not None else None,
                progress=progress,
                cancelled=cancelled,
            )
        return {self.OUTPUT: out}
