"""Landslide mapping engine: rasters in, georeferenced landslide layers out.

Pure Python (numpy, rasterio, onnxruntime/torch); it never imports qgis, so the
QGIS plugin, the command line (``python -m landslide_engine``) and the training
package all share one implementation of band handling, tiling and inference.
"""

__version__ = "0.1.0"
