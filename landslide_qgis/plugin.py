"""The plugin object QGIS creates: registers the processing provider and the dock."""

from __future__ import annotations

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from landslide_qgis import dependencies
from landslide_qgis.toolbox.provider import LandslideProvider

_ICON = os.path.join(os.path.dirname(__file__), "icon.svg")
MENU = "Landslide Mapper"
INSTALL_LABEL = dependencies.INSTALL_ACTION.rsplit(" ▸ ", 1)[-1]


class LandslidePlugin:
    """Thin lifecycle glue; all work happens in the provider, the dock and the engine."""

    def __init__(self, iface) -> None:
        self.iface = iface
        self.provider: LandslideProvider | None = None
        self.dock = None
        self.action: QAction | None = None
        self.install_action: QAction | None = None

    def initProcessing(self) -> None:
        """Register the provider; qgis_process calls this without initGui."""
        if self.provider is None:
            provider = LandslideProvider()
            # The registry refuses (and deletes) a second provider with the same id, e.g. when a
            # development copy of the plugin is already loaded; keep no reference to a dead object.
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    def initGui(self) -> None:
        self.initProcessing()
        from landslide_qgis.gui.dock import LandslideDock

        self.dock = LandslideDock(self.iface, self.iface.mainWindow())
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()
        self.action = QAction(QIcon(_ICON), "Landslide detection", self.iface.mainWindow())
        self.action.setCheckable(True)
        self.action.toggled.connect(self.dock.setUserVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addPluginToRasterMenu(MENU, self.action)
        self.iface.addRasterToolBarIcon(self.action)
        self.install_action = QAction(INSTALL_LABEL, self.iface.mainWindow())
        self.install_action.triggered.connect(lambda: self.show_installer())
        self.iface.addPluginToRasterMenu(MENU, self.install_action)
        self.warn_missing_dependencies()

    def warn_missing_dependencies(self) -> None:
        """One message-bar line saying what to install, with a button that opens the installer; slope and the
        UI keep working without it."""
        missing = dependencies.missing_for_inference()
        if not missing:
            return
        from landslide_qgis.gui.install_dialog import push_install_offer

        push_install_offer(self.iface.messageBar(), "Landslide Mapper", dependencies.missing_message(missing))

    def show_installer(self, with_torch: bool = False) -> None:
        """The dialog that installs onnxruntime (and, on request, PyTorch) with QGIS's own Python."""
        from landslide_qgis.gui.install_dialog import InstallDependenciesDialog

        InstallDependenciesDialog(self.iface.mainWindow(), with_torch=bool(with_torch)).exec()

    def unload(self) -> None:
        if self.install_action is not None:
            self.iface.removePluginRasterMenu(MENU, self.install_action)
            self.install_action = None
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU, self.action)
            self.iface.removeRasterToolBarIcon(self.action)
            self.action = None
        if self.dock is not None:
            self.dock.teardown()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
