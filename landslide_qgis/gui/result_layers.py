"""How a detection's layers look, are named and are grouped, for the dock and the Toolbox alike.

The styles are the engine's QML files (``landslide_engine.outputs``), the same ones the CLI writes
as sidecars: probability as a colour ramp that is transparent at low values, the mask
semi-transparent red with 0 transparent, polygons outlined only. In a result group the polygons
are on top, then the mask, then the probability, so the imagery underneath stays readable.
Names say what the layer is, which scene, which model and when, e.g.
``landslides · S2B_MSIL1C_20210527 · builtin-unet-plain-w16 · 2026-11-30 14:05``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from qgis.core import QgsLayerTree, QgsLayerTreeGroup, QgsMapLayer, QgsProject, QgsRasterLayer, QgsVectorLayer

from landslide_engine.outputs import MASK_STYLE, POLYGONS_STYLE, PROBABILITY_STYLE

# what each result is, its style, and its place in a result group (0 on top)
POLYGONS, MASK, PROBABILITY = "landslides", "mask", "probability"
STYLES = {POLYGONS: POLYGONS_STYLE, MASK: MASK_STYLE, PROBABILITY: PROBABILITY_STYLE}
ORDER = (POLYGONS, MASK, PROBABILITY)
ROLE_PROPERTY = "landslide_mapper/role"


def run_time() -> str:
    """When a run finished, as layer names show it (to the second: two runs a minute apart must differ)."""
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def scene_name(s2_names: Sequence[str]) -> str:
    """A short name for the scene: the layer's name, or what the names of single-band layers share."""
    names = [name for name in s2_names if name]
    if not names:
        return "scene"
    if len(names) == 1:
        return names[0]
    shared = names[0]
    for name in names[1:]:  # what all names start with (layer names, not paths)
        while not name.startswith(shared):
            shared = shared[:-1]
    if any(name != shared for name in names):  # cut a partly shared word (the "_B0" of "_B02", "_B03")
        shared = shared[: max(shared.rfind(sep) for sep in " _-.") + 1]
    return shared.rstrip(" _-.") or names[0]


def group_title(scene: str, when: str) -> str:
    return f"Landslides · {scene} · {when}"


def layer_name(role: str, scene: str, model: str, when: str) -> str:
    return f"{role} · {scene} · {model} · {when}"


def style_layer(layer: QgsMapLayer, role: str) -> None:
    """Apply the engine's QML for ``role`` to ``layer`` and remember the role for group ordering."""
    message, ok = layer.loadNamedStyle(str(STYLES[role]))
    if not ok:
        raise RuntimeError(f"cannot apply the {role} style {STYLES[role]}: {message}")
    layer.setCustomProperty(ROLE_PROPERTY, role)
    layer.triggerRepaint()


def insert_in_order(project: QgsProject, group: QgsLayerTreeGroup, layer: QgsMapLayer) -> None:
    """Put ``layer`` (already in ``project``) into ``group`` at its role's place, out of wherever it was.

    QGIS may have put the layer's node anywhere, this group included: the desktop adds new layers at the layer
    tree's insertion point, which follows the node selected last. The new node goes in first and the old one
    is removed after, because a layer left without a node is removed from the project.
    """
    old = project.layerTreeRoot().findLayer(layer.id())
    rank = ORDER.index(layer.customProperty(ROLE_PROPERTY))
    position = len(group.children())
    for index, child in enumerate(group.children()):
        other = child.layer() if QgsLayerTree.isLayer(child) else None
        if other is None or other.id() == layer.id():
            continue
        role = other.customProperty(ROLE_PROPERTY)
        if role in ORDER and ORDER.index(role) > rank:
            position = index
            break
    group.insertLayer(position, layer)
    if old is not None and old.parent() is not None:
        old.parent().removeChildNode(old)


def add_result_group(
    project: QgsProject, title: str, runs: list[tuple[str, object]], scene: str, when: str
) -> QgsLayerTreeGroup:
    """A group ``title`` at the top of the layer tree with one subgroup per (model label, PredictResult).

    With a single run its layers go straight into the group.
    """
    group = project.layerTreeRoot().insertGroup(0, title)
    for label, result in runs:
        target = group if len(runs) == 1 else group.addGroup(label)
        for layer in _result_layers(result, scene, label, when):
            project.addMapLayer(layer, False)
            target.addLayer(layer)
    return group


def _result_layers(result, scene: str, model: str, when: str) -> list[QgsMapLayer]:
    """The run's layers, top to bottom in the layer tree."""
    polygons = QgsVectorLayer(
        f"{result.polygons}|layername=landslides", layer_name(POLYGONS, scene, model, when), "ogr"
    )
    mask = QgsRasterLayer(str(result.mask), layer_name(MASK, scene, model, when))
    probability = QgsRasterLayer(str(result.probability), layer_name(PROBABILITY, scene, model, when))
    for layer, role in ((polygons, POLYGONS), (mask, MASK), (probability, PROBABILITY)):
        style_layer(layer, role)
    return [polygons, mask, probability]
