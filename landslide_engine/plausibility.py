"""Is this raster what the analyst says it is? A DEM, a slope layer: plausible values, or a refusal.

A wrong layer in the DEM or slope slot does not fail by itself: band 1 of a 10-band Sentinel-2 scene read as
elevations, or a DEM read as degrees of slope, gives a map of hundreds of "landslides" and exit 0. So before
a run each is checked, on the scene's own area:

* a DEM is **one band** of elevations in metres, all between :data:`ELEVATION_RANGE_M` (-500 m, the Dead Sea
  shore is -430 m; 9000 m, Everest is 8849 m). A DEM in feet or centimetres, or a reflectance band, leaves
  that range somewhere in any real scene;
* a slope layer is **one band** of degrees, all between 0 and 90 (a few hundredths beyond, for rounding);
* a multi-band raster given as a DEM or slope is refused, saying so (a Sentinel-2 scene has several bands).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landslide_engine.errors import InputError

ELEVATION_RANGE_M = (-500.0, 9000.0)
SLOPE_RANGE_DEG = (0.0, 90.0)
_SLOPE_TOLERANCE_DEG = 0.05  # slope layers written by other tools round a little beyond 0 and 90
_ROBUST = 0.001  # the extreme thousandths left out: a stray spike does not refuse a real DEM


def check_one_band(count: int, path: str | Path, what: str, descriptions: tuple[str | None, ...] = ()) -> None:
    """Refuse a ``what`` ("DEM", "slope") raster that is not one band."""
    if count == 1:
        return
    named = [d for d in descriptions if d]
    hint = f" ({', '.join(named[:4])}{', ...' if len(named) > 4 else ''})" if named else ""
    raise InputError(
        f"{what} {Path(str(path)).name} has {count} bands{hint}: a {what} is one band "
        f"({'elevations in metres' if what == 'DEM' else 'degrees'}); it looks like a multi-band "
        f"(e.g. Sentinel-2 reflectance) raster"
    )


def check_elevations(values: np.ndarray, path: str | Path) -> None:
    """Refuse DEM values (NaN = nodata) that are not elevations in metres."""
    low, high = _robust_range(values)
    if low is None or high is None:
        return
    lowest, highest = ELEVATION_RANGE_M
    if low < lowest or high > highest:
        raise InputError(
            f"DEM {Path(str(path)).name} has values from {low:g} to {high:g}, not elevations in metres "
            f"({lowest:g} to {highest:g}): is it a DEM in metres (not feet or centimetres, not a reflectance band), "
            f"with its nodata value declared?"
        )


def check_slopes(values: np.ndarray, path: str | Path) -> None:
    """Refuse slope values (NaN = nodata) that are not degrees from 0 to 90."""
    low, high = _robust_range(values)
    if low is None or high is None:
        return
    lowest, highest = SLOPE_RANGE_DEG
    if low < lowest - _SLOPE_TOLERANCE_DEG or high > highest + _SLOPE_TOLERANCE_DEG:
        raise InputError(
            f"slope {Path(str(path)).name} has values from {low:g} to {high:g}, not degrees from 0 to 90: "
            f"is it a DEM, or slope in percent? Give the DEM as --dem and leave out --slope to compute it"
        )


def _robust_range(values: np.ndarray) -> tuple[float | None, float | None]:
    valid = np.asarray(values, dtype=np.float64)
    valid = valid[np.isfinite(valid)]
    if valid.size == 0:
        return None, None
    low, high = np.quantile(valid, [_ROBUST, 1.0 - _ROBUST])
    return float(low), float(high)
