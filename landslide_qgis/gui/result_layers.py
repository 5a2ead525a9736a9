"""Add a detection's files to the project as a styled layer group.

Probability gets a continuous colour ramp (0 to 1), the mask is semi-transparent red
over the imagery with background transparent, and polygons are outlined only, so
the image underneath stays readable.
"""

from __future__ import annotations

from qgis.core import (
    QgsColorRampShader,
    QgsFillSymbol,
    QgsLayerTreeGroup,
    QgsPalettedRasterRenderer,
    QgsProject,
    QgsRasterLayer,
    QgsRasterShader,
    QgsSingleBandPseudoColorRenderer,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtGui import QColor

MASK_COLOUR = QColor(220, 20, 20)
OUTLINE_COLOUR = "255,230,0,255"


def add_result_group(project: QgsProject, title: str, runs: list[tuple[str, object]]) -> QgsLayerTreeGroup:
    """A group ``title`` at the top of the layer tree with one subgroup per (label, PredictResult).

    With a single run its layers go straight into the group.
    """
    root = project.layerTreeRoot()
    group = root.insertGroup(0, title)
    for label, result in runs:
        target = group if len(runs) == 1 else group.addGroup(label)
        for layer in _result_layers(label, result):
            project.addMapLayer(layer, False)
            target.addLayer(layer)
    return group


def _result_layers(label: str, result) -> list:
    polygons = QgsVectorLayer(f"{result.polygons}|layername=landslides", f"{label} landslides", "ogr")
    style_polygons(polygons)
    mask = QgsRasterLayer(str(result.mask), f"{label} mask")
    style_mask(mask)
    probability = QgsRasterLayer(str(result.probability), f"{label} probability")
    style_probability(probability)
    return [polygons, mask, probability]  # top to bottom in the layer tree


def style_probability(layer: QgsRasterLayer) -> None:
    ramp = QgsStyle.defaultStyle().colorRamp("Magma")
    shader_fn = QgsColorRampShader(0.0, 1.0, ramp)
    shader_fn.classifyColorRamp(11, -1)
    shader = QgsRasterShader()
    shader.setRasterShaderFunction(shader_fn)
    renderer = QgsSingleBandPseudoColorRenderer(layer.dataProvider(), 1, shader)
    renderer.setClassificationMin(0.0)
    renderer.setClassificationMax(1.0)
    layer.setRenderer(renderer)


def style_mask(layer: QgsRasterLayer) -> None:
    transparent = QColor(0, 0, 0, 0)
    classes = [
        QgsPalettedRasterRenderer.Class(0, transparent, "no landslide"),
        QgsPalettedRasterRenderer.Class(1, MASK_COLOUR, "landslide"),
    ]
    layer.setRenderer(QgsPalettedRasterRenderer(layer.dataProvider(), 1, classes))
    layer.setOpacity(0.55)


def style_polygons(layer: QgsVectorLayer) -> None:
    symbol = QgsFillSymbol.createSimple(
        {"style": "no", "outline_color": OUTLINE_COLOUR, "outline_width": "0.6", "outline_width_unit": "MM"}
    )
    layer.renderer().setSymbol(symbol)
