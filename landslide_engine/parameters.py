"""Checks on a run's parameters, each with the rule that says why: finite, unique, and within bounds that keep
the work finite.

Every front end (CLI, Toolbox, dock) ends in the engine's entry points, which call these, so a NaN threshold,
an overlap that multiplies the patches by thousands or a grid of a trillion pixels is refused with one line
naming the parameter, whatever the front end, before any work.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from landslide_engine.bands import L4S_BANDS, canonical_band
from landslide_engine.errors import ParameterError

MAX_OVERLAP_SHARE = 0.75
"""Overlap at most three quarters of a tile (96 of 128 px, the most the Toolbox and dock offer): the stride
(tile - overlap) is then at least a quarter tile, so every pixel is predicted at most 4 x 4 times. At overlap 127
of 128 the stride is one pixel and a 300 px scene needs 89,401 patches instead of 16."""
MAX_GRID_PIXELS = 2**31 - 1
"""About 46,000 x 46,000 px (four Sentinel-2 tiles at 10 m in each direction): beyond it GDAL's window offsets
overflow 32-bit integers and the run would take days on a CPU; a finer --resolution than the data only adds
pixels that carry no new information."""
MAX_BATCH_SIZE = 1024
"""A batch of 1024 patches of 14 bands at 128 px is 0.9 GB of input alone before the network's activations
(tens of times that); larger batches gain no speed on any device."""


def finite(value: Any, name: str) -> float:
    """``value`` as a finite float, or ParameterError naming ``name``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(f"{name} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise ParameterError(f"{name} {value!r} is not a finite number")
    return number


def check_threshold(value: Any, name: str = "threshold") -> float:
    """A probability threshold: finite, between 0 and 1."""
    threshold = finite(value, name)
    if not 0.0 <= threshold <= 1.0:
        raise ParameterError(f"{name} must be between 0 and 1, got {threshold:g}")
    return threshold


def check_min_area(value: Any) -> float:
    """A minimum polygon area in m2: finite and not negative."""
    area = finite(value, "min_area_m2")
    if area < 0:
        raise ParameterError(f"min_area_m2 must not be negative, got {area:g}")
    return area


def check_extent(extent: Sequence[Any] | None) -> tuple[float, float, float, float] | None:
    """xmin, ymin, xmax, ymax: four finite numbers with min < max (None: no extent)."""
    if extent is None:
        return None
    if len(extent) != 4:
        raise ParameterError(f"extent {list(extent)} is not xmin, ymin, xmax, ymax")
    xmin, ymin, xmax, ymax = (finite(v, "extent") for v in extent)
    if not (xmin < xmax and ymin < ymax):
        raise ParameterError(f"extent {list(extent)} is not xmin, ymin, xmax, ymax with min < max")
    return xmin, ymin, xmax, ymax


def check_baseline_offset(value: Any) -> str | float:
    """``"auto"`` or a finite DN offset."""
    if str(value).strip().lower() == "auto":
        return "auto"
    return finite(value, "baseline_offset")


def check_resolution(value: Any) -> float | None:
    """A positive, finite pixel size (None: the default)."""
    if value is None:
        return None
    resolution = finite(value, "resolution")
    if resolution <= 0:
        raise ParameterError(f"resolution must be positive, got {resolution:g}")
    return resolution


def check_overlap(overlap: Any, tile: int) -> int:
    """Overlap in pixels between neighbouring patches of ``tile`` px: 0 up to three quarters of a tile."""
    if isinstance(overlap, bool) or not isinstance(overlap, int):
        raise ParameterError(f"overlap must be a whole number of pixels, got {overlap!r}")
    largest = int(tile * MAX_OVERLAP_SHARE)
    if not 0 <= overlap <= largest:
        raise ParameterError(
            f"overlap {overlap} is outside 0..{largest} for {tile} px patches (a stride of at least a quarter "
            "patch, so each pixel is predicted at most 16 times)"
        )
    return overlap


def check_batch_size(batch_size: Any) -> int:
    """Patches per model call: 1 up to :data:`MAX_BATCH_SIZE`."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ParameterError(f"batch size must be a whole number from 1 to {MAX_BATCH_SIZE}, got {batch_size!r}")
    return batch_size


def check_grid_size(
    width: int, height: int, what: str = "the grid", hint: str = "choose a coarser resolution or a smaller extent"
) -> None:
    """Refuse a grid (or raster) of more than :data:`MAX_GRID_PIXELS` pixels."""
    if width * height > MAX_GRID_PIXELS:
        raise ParameterError(
            f"{what} is {width} x {height} px ({width * height:.2e}), above {MAX_GRID_PIXELS:.2e} pixels: {hint}"
        )


def check_fill_values(fill_values: Mapping[str, Any] | None) -> dict[str, float]:
    """Constants for missing bands: known Landslide4Sense band names, each once, finite values."""
    result: dict[str, float] = {}
    for key, value in (fill_values or {}).items():
        band = key if key in L4S_BANDS else canonical_band(str(key))
        if band not in L4S_BANDS:
            raise ParameterError(f"fill {key!r} is not a Landslide4Sense band ({', '.join(L4S_BANDS)})")
        if band in result:
            raise ParameterError(f"fill for band {band} is given twice")
        result[band] = finite(value, f"fill {key}")
    return result
