"""Batch mapping: many scenes into per-scene outputs, regional mosaics and one layer of polygons.

:func:`run_batch` plans the scenes (:mod:`.scenes`), maps the ones not yet complete on an executor
(:mod:`.executors`) and builds the regional outputs (:mod:`.mosaic`).
"""

from landslide_engine.batch.run import BATCH_REPORT, BatchRequest, BatchResult, run_batch

__all__ = ["BATCH_REPORT", "BatchRequest", "BatchResult", "run_batch"]
