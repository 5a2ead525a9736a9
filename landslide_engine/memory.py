"""Process-wide memory settings for a program that runs the scene pipeline.

GDAL's block cache is a setting of the whole process, so the engine never makes it on its own: the CLI (its
own process) and the benchmarks call :func:`configure_for_scenes`; a host such as QGIS keeps its own.

Left alone on purpose: glibc's mmap threshold. Fixed at 4 MiB it returned the pipeline's large arrays to the OS
(peak of a 10000 px scene 1417 -> 1331 MiB), but PyTorch then paid page faults on every large activation:
bf16 on 2 cores fell from 163 to 129 patches/s (ONNX Runtime, with its own arena, did not change).
"""

from __future__ import annotations

import os

# GDAL's block cache defaults to 5 % of RAM and keeps every source block it decoded; capped, any scene runs in
# the same memory. A column band needs one or two rows of decoded source blocks (13 bands in 512 px tiles across
# 3100 px: about 50 MB each) plus the warped DEM's; below 256 MB the read stage of a 4000 px scene grew (+15 %
# at 192 MB, +25 % at 128 MB) as blocks were decoded again. An explicit GDAL_CACHEMAX in the environment wins.
GDAL_CACHE_MB = "256"


def configure_for_scenes() -> None:
    """Cap GDAL's block cache at :data:`GDAL_CACHE_MB` unless the environment sets it."""
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
