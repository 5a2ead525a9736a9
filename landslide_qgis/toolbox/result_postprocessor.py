"""Toolbox outputs of ``landslide:detect`` styled, named and grouped like the dock's results.

Processing loads an algorithm's outputs itself, unstyled and at the top of the layer tree, in
an order of its own. A layer post-processor (QGIS's ``QgsProcessingLayerPostProcessorInterface``)
gets each loaded layer on the main thread, where it applies the engine's style, names the layer
after the scene, the model and the time, and moves it into the run's group at its place.
"""

from __future__ import annotations

from qgis.core import (
    QgsLayerTreeGroup,
    QgsMapLayer,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingLayerPostProcessorInterface,
    QgsProject,
)

from landslide_qgis.gui.result_layers import group_title, insert_in_order, layer_name, style_layer

# Processing holds post-processors by pointer only: Python must keep them alive until they have run.
_PENDING: set[ResultPostProcessor] = set()


class ResultPostProcessor(QgsProcessingLayerPostProcessorInterface):
    """Styles one output layer as ``role`` and files it in the group of its run."""

    def __init__(self, role: str, scene: str, model: str, when: str) -> None:
        super().__init__()
        self.role, self.scene, self.model, self.when = role, scene, model, when

    def postProcessLayer(
        self, layer: QgsMapLayer, context: QgsProcessingContext, feedback: QgsProcessingFeedback
    ) -> None:
        try:
            style_layer(layer, self.role)
            layer.setName(layer_name(self.role, self.scene, self.model, self.when))
            project = context.project() or QgsProject.instance()
            insert_in_order(project, self._group(project), layer)
        finally:
            _PENDING.discard(self)

    def _group(self, project: QgsProject) -> QgsLayerTreeGroup:
        title = group_title(self.scene, self.when)
        root = project.layerTreeRoot()
        return root.findGroup(title) or root.insertGroup(0, title)


def attach(context: QgsProcessingContext, outputs: dict[str, str], scene: str, model: str, when: str) -> None:
    """Give each output (``role -> destination``) that Processing will load a post-processor."""
    for role, destination in outputs.items():
        if context.willLoadLayerOnCompletion(destination):
            processor = ResultPostProcessor(role, scene, model, when)
            _PENDING.add(processor)
            context.layerToLoadOnCompletionDetails(destination).setPostProcessor(processor)
