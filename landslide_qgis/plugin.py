"""The plugin object QGIS creates: registers the processing provider and the dock."""

from __future__ import annotations

from qgis.core import QgsApplication

from landslide_qgis.processing.provider import LandslideProvider


class LandslidePlugin:
    """Thin lifecycle glue; all work happens in the provider, the dock and the engine."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: LandslideProvider | None = None

    def initProcessing(self) -> None:
        """Register the provider; qgis_process calls this without initGui."""
        if self.provider is None:
            self.provider = LandslideProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
