"""The ``landslide`` processing provider (Processing Toolbox: "Landslide detection")."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

from landslide_qgis.processing.slope_algorithm import SlopeAlgorithm

_ICON = os.path.join(os.path.dirname(os.path.dirname(__file__)), "icon.svg")


class LandslideProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "landslide"

    def name(self) -> str:
        return "Landslide detection"

    def longName(self) -> str:
        return "Landslide detection (Landslide4Sense models)"

    def icon(self) -> QIcon:
        return QIcon(_ICON)

    def loadAlgorithms(self) -> None:
        for alg in (SlopeAlgorithm(),):
            self.addAlgorithm(alg)
