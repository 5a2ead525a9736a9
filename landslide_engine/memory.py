"""Process-wide memory: GDAL's block cache for programs that run scenes, and returning free heap pages.

GDAL's block cache is a setting of the whole process, so the engine never makes it on its own: the CLI (its
own process) and the benchmarks call :func:`configure_for_scenes`; a host such as QGIS keeps its own.
:func:`release_free_memory` changes no setting; the pipeline calls it as it goes.

Left alone on purpose: glibc's mmap threshold. Fixed at 4 MiB it returned the pipeline's large arrays to the OS
(peak of a 10000 px scene 1417 -> 1331 MiB), but PyTorch then paid page faults on every large activation:
bf16 on 2 cores fell from 163 to 129 patches/s (ONNX Runtime, with its own arena, did not change).
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


def configure_for_scenes() -> None:
    """Cap GDAL's block cache at :data:`GDAL_CACHE_MB` unless the environment sets it."""
    os.environ.setdefault("GDAL_CACHEMAX", GDAL_CACHE_MB)


def _load_malloc_trim():
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    if not sys.platform.startswith("linux"):
        return None
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
        trim.restype = ctypes.c_int
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_free_memory() -> None:
    """Give the C heap's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    The scene pipeline allocates and frees arrays of a few MB to a few tens of MB in five threads; glibc keeps
    what each thread's heap once held, fragmented, so a long scene's resident memory crept up with its height
    although the arrays alive at any time did not. Trimming now and then returns those pages.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
