"""Batch mapping: many scenes into per-scene outputs, regional mosaics and one layer of polygons.

:func:`run_batch` plans the scenes (:mod:`.scenes`), maps the ones not yet complete on an executor
(:mod:`.executors`: here, or on a Ray cluster with :mod:`.ray_executor`) and builds the regional outputs
(:mod:`.mosaic`). Ray is imported only when the Ray executor is chosen.
"""

from landslide_engine.batch.run import BATCH_REPORT, BatchRequest, BatchResult, run_batch

__all__ = ["BATCH_REPORT", "BatchRequest", "BatchResult", "run_batch"]
