"""The ``landslide`` processing provider (Processing Toolbox: "Landslide detection")."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from landslide_qgis import settings
from landslide_qgis.toolbox.detect_algorithm import DetectAlgorithm
from landslide_qgis.toolbox.predict_h5_algorithm import PredictH5Algorithm
from landslide_qgis.toolbox.region_algorithm import DetectRegionAlgorithm
from landslide_qgis.toolbox.slope_algorithm import SlopeAlgorithm
from landslide_qgis.toolbox.stack_algorithm import StackAlgorithm

_ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg")


class LandslideProvider(QgsProcessingProvider):
    """Registers the algorithms and the plugin's Processing -> Options settings."""

    def id(self) -> str:
        return "landslide"

    def name(self) -> str:
        return "Landslide detection"

    def longName(self) -> str:
        return "Landslide detection (Landslide4Sense models)"

    def icon(self) -> QIcon:
        return QIcon(_ICON)

    def load(self) -> bool:
        # settings first: the algorithms read their defaults (device, batch size, models folder) from them
        settings.register(self.name())
        self.refreshAlgorithms()
        return True

    def unload(self) -> None:
        settings.unregister()

    def loadAlgorithms(self) -> None:
        for alg in (DetectAlgorithm(), DetectRegionAlgorithm(), SlopeAlgorithm(), StackAlgorithm()):
            self.addAlgorithm(alg)
        self.addAlgorithm(PredictH5Algorithm())
