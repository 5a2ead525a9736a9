"""Process-wide memory settings for a program that runs the scene pipeline: GDAL's block cache and the C heap.

Both are settings of the whole process, so the engine never makes them on its own: the CLI (its own process)
and the benchmarks call :func:`configure_for_scenes`; a host such as QGIS keeps its own.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

# GDAL's block cache defaults to 5 % of RAM and keeps every source block it decoded; capped, any scene runs in
# the same memory. A column band needs one or two rows of decoded source blocks (13 bands in 512 px tiles across
# 3100 px: about 50 MB each) plus the warped DEM's; below 256 MB the read stage of a 4000 px scene grew (+15 %
# at 192 MB, +25 % at 128 MB) as blocks were decoded again. An explicit GDAL_CACHEMAX in the environment wins.
GDAL_CACHE_MB = "256"

# Arrays of this size and larger get memory of their own from the OS, returned when they are freed. glibc's
# default threshold climbs up to 32 MB after the first such array is freed; the pipeline's strips and batches
# (5 to 30 MB, allocated and freed by five threads) then come from per-thread heaps that keep what they once
# held: 100 MB more at the peak of a 10000 px scene.
_MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024
_M_MMAP_THRESHOLD = -3  # mallopt parameter number in glibc's malloc.h


def configure_for_scenes() -> None:
    """Cap GDAL's block cache (unless the environment sets it) and have large arrays returned to the OS."""
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)
    return_large_arrays_to_os()


def return_large_arrays_to_os(threshold: int = _MMAP_THRESHOLD_BYTES) -> bool:
    """Set glibc's mmap threshold to ``threshold`` bytes; False where the C library is not glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    libc = ctypes.CDLL(name)
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:  # musl and others
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, threshold))
