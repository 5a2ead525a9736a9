"""``landslide:slope``: slope in degrees from a DEM (Horn), geographic DEMs included."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from landslide_engine.slope import write_slope
from landslide_qgis.toolbox.engine_bridge import engine_errors, engine_warn


class SlopeAlgorithm(QgsProcessingAlgorithm):
    DEM = "DEM"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "slope"

    def displayName(self) -> str:
        return "Slope from DEM"

    def group(self) -> str:
        return "Inputs"

    def groupId(self) -> str:
        return "inputs"

    def shortHelpString(self) -> str:
        return (
            "Slope in degrees with Horn's method, as Landslide4Sense band B13. "
            "Works for projected DEMs and for DEMs in geographic coordinates (degrees), "
            "where pixel sizes are converted to metres per row on the WGS84 ellipsoid. "
            "Elevations must be in metres. The output is on the DEM's grid; nodata stays nodata."
        )

    def createInstance(self) -> SlopeAlgorithm:
        return SlopeAlgorithm()

    def initAlgorithm(self, config=None) -> None:
        self.addParameter(QgsProcessingParameterRasterLayer(self.DEM, "DEM (elevation in metres)"))
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, "Slope (degrees)"))

    def processAlgorithm(self, parameters, context, feedback):
        dem = self.parameterAsRasterLayer(parameters, self.DEM, context)
        if dem is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.DEM))
        out = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        with engine_errors():
            write_slope(
                dem.source(),
                out,
                progress=feedback.setProgress,
                cancelled=feedback.isCanceled,
                warn=engine_warn(feedback),
            )
        return {self.OUTPUT: out}
