"""The Toolbox dialog of ``landslide:detect`` and ``landslide:stack``: the standard one, with a sane DEM.

Processing pre-fills a required layer parameter with the active layer. The active layer is
usually the Sentinel-2 scene the analyst just loaded, and a 10-band reflectance stack taken
as the DEM maps nonsense. So the dialog starts the DEM at the layer that looks like a DEM
(the dock's suggestion, :mod:`landslide_qgis.gui.layer_roles`), or empty when none does;
never at a layer that is one of the suggested Sentinel-2 inputs or has several bands.
"""

from __future__ import annotations

from processing.gui.AlgorithmDialog import AlgorithmDialog
from qgis.core import QgsProcessingContext, QgsProject, QgsRasterLayer
from qgis.PyQt.QtWidgets import QComboBox

from landslide_qgis.gui.layer_roles import raster_info, suggest_roles
from landslide_qgis.toolbox.scene_parameters import DEM


class SceneInputDialog(AlgorithmDialog):
    """Processing's algorithm dialog whose DEM is never pre-filled with a Sentinel-2 layer."""

    def __init__(self, algorithm, parent=None) -> None:
        super().__init__(algorithm, parent=parent)
        wrapper = self.mainWidget().wrappers.get(DEM)
        if wrapper is not None:
            start_dem(wrapper)


def start_dem(wrapper) -> None:
    """Set the DEM widget to the suggested DEM, or leave it empty rather than on a multi-band layer."""
    project = QgsProject.instance()
    rasters = [layer for layer in project.mapLayers().values() if isinstance(layer, QgsRasterLayer)]
    suggestion = suggest_roles([raster_info(layer) for layer in rasters])
    if suggestion.dem is not None:
        context = QgsProcessingContext()
        context.setProject(project)
        wrapper.setParameterValue(suggestion.dem, context)
        return
    current = project.mapLayer(wrapper.parameterValue() or "")
    if isinstance(current, QgsRasterLayer) and (current.id() in suggestion.s2 or current.bandCount() > 1):
        # Empty, so the dialog asks for a DEM instead of running on reflectance. A required layer parameter
        # cannot be set to no layer through the wrapper; its layer list (a QgsMapLayerComboBox) can.
        combo = wrapper.wrappedWidget().findChild(QComboBox) if wrapper.wrappedWidget() is not None else None
        if combo is not None:
            combo.setCurrentIndex(-1)
