"""Segmentation models: the architecture registry, the model package format, inference backends and the catalog.

Submodules are imported explicitly (``from landslide_engine.models import registry``) so that importing this
package stays cheap: torch, segmentation-models-pytorch and ONNX Runtime load only when a module needs them.
"""
