"""What the numbers in a Sentinel-2 product are: the reflectance scale and the baseline offset, from the data.

Products in the wild store reflectance as ESA digital numbers (reflectance x 1e4, from processing baseline
04.00 with 1000 added), as reflectance x 1000 (ARCSI, some national archives) or as 0-1 floats, and their
files rarely say which. A wrong guess does not fail: it maps nothing, or everything. So the scale is read
from the scene itself, with statistics that do not depend on the scale:

* **Land pixels** are those whose near infrared (B8, else B8A or B7) is brighter than both green (B3) and red
  (B4). The order of two bands survives any scale and any offset, and it leaves out water (dark in the NIR),
  snow and most cloud (bright in the visible), whose reflectance says little about the scale.
* **The land NIR median** of vegetation, soil, rock and towns, top of atmosphere or surface, lies between
  :data:`LAND_NIR_REFLECTANCE` (0.06 and 0.6). The range is ten-fold wide and half open, so of the scales
  (which differ ten-fold or more) at most one puts the median inside it; none means the values are not any
  of them, and too few land pixels means the scene cannot tell (all water, snow or cloud).
* **The offset** of baseline 04.00 puts every reflectance of 0 or more at 1000 DN or above. So a band with
  a few percent of its values under 1000 DN has no offset; and B10 (cirrus, reflectance well under 0.05
  away from thick cirrus) with a median of 1000 DN or more has it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

LAND_NIR_REFLECTANCE = (0.06, 0.6)
"""Median near-infrared reflectance of land pixels in any scene, from dark conifers to bright bare rock."""

MIN_LAND_PIXELS = 200
"""Fewer land pixels than this in the sample: the scene cannot tell its scale."""

SCALE_UNITS: dict[str, float] = {"l1c": 10000.0, "x1000": 1000.0, "0-1": 1.0}
"""Stored value of reflectance 1 in each scale."""

OFFSET_DN = 1000.0
_NO_OFFSET_SHARE = 0.02  # share of a band's values under OFFSET_DN that only a product without the offset has
_NIR_BANDS = ("B8", "B8A", "B7")


@dataclass(frozen=True)
class SceneValues:
    """Scale-free statistics of a sample of the scene's pixels (native values, all bands on the same pixels)."""

    valid_pixels: int
    land_pixels: int
    nir_band: str | None
    nir_land_median: float | None  # native units
    darkest_band: str | None  # the band with the lowest median
    darkest_share_below_offset: float | None  # its share of values under OFFSET_DN
    b10_median: float | None

    def as_reflectance(self, scale: str, offset: float = 0.0) -> float | None:
        """The land NIR median as reflectance if the values were ``scale`` (with ``offset`` DN removed)."""
        if self.nir_land_median is None:
            return None
        return (self.nir_land_median - offset) / SCALE_UNITS[scale]

    def report(self) -> dict:
        return {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}


def measure(sample: Mapping[str, np.ndarray]) -> SceneValues:
    """Statistics of ``sample`` (band -> native values of the same pixels, NaN = nodata, 0 = no data too)."""
    nir_band = next((b for b in _NIR_BANDS if b in sample), None)
    darkest, share, b10 = _darkest_band(sample)
    if nir_band is None or "B3" not in sample or "B4" not in sample:
        return SceneValues(0, 0, nir_band, None, darkest, share, b10)
    nir, green, red = (np.asarray(sample[b], dtype=np.float64) for b in (nir_band, "B3", "B4"))
    valid = np.isfinite(nir) & np.isfinite(green) & np.isfinite(red) & (nir > 0) & (green > 0) & (red > 0)
    land = valid & (nir > green) & (nir > red)
    median = float(np.median(nir[land])) if land.any() else None
    return SceneValues(int(valid.sum()), int(land.sum()), nir_band, median, darkest, share, b10)


def _darkest_band(sample: Mapping[str, np.ndarray]) -> tuple[str | None, float | None, float | None]:
    medians: dict[str, float] = {}
    values: dict[str, np.ndarray] = {}
    for band, data in sample.items():
        v = np.asarray(data, dtype=np.float64)
        v = v[np.isfinite(v) & (v > 0)]
        if v.size:
            values[band], medians[band] = v, float(np.median(v))
    if not medians:
        return None, None, None
    darkest = min(medians, key=lambda band: medians[band])
    share = float(np.mean(values[darkest] < OFFSET_DN))
    return darkest, share, medians.get("B10")


def fitting_scales(values: SceneValues, l1c_offset: float) -> list[str]:
    """The scales under which the land NIR median is a land reflectance (at most one; none if unknown)."""
    if values.land_pixels < MIN_LAND_PIXELS:
        return []
    low, high = LAND_NIR_REFLECTANCE
    fits = []
    for scale in SCALE_UNITS:
        reflectance = values.as_reflectance(scale, l1c_offset if scale == "l1c" else 0.0)
        if reflectance is not None and low <= reflectance < high:
            fits.append(scale)
    return fits


def offset_in_data(values: SceneValues) -> tuple[float | None, str]:
    """The baseline offset that the values of an L1C-scaled product show (None: they do not tell) and why."""
    share, band = values.darkest_share_below_offset, values.darkest_band
    if share is not None and share >= _NO_OFFSET_SHARE:
        return 0.0, f"{share:.0%} of {band} values are under {OFFSET_DN:g} DN, impossible with the offset"
    if values.b10_median is not None and values.b10_median >= OFFSET_DN:
        return OFFSET_DN, f"B10 (cirrus) median {values.b10_median:g} DN is {OFFSET_DN:g} or more"
    return None, "no band has values under 1000 DN and B10 is absent, so the data do not tell"


def describe(values: SceneValues, l1c_offset: float) -> str:
    """One clause: the land NIR median and what it is as reflectance in each scale."""
    if values.valid_pixels == 0:
        return "no pixels with data in B3, B4 and a near-infrared band (B8, B8A or B7) to measure"
    if values.land_pixels < MIN_LAND_PIXELS:
        return (
            f"only {values.land_pixels} of {values.valid_pixels} sampled pixels are land ({values.nir_band} "
            f"brighter than B3 and B4), too few to tell: water, snow or cloud"
        )
    as_scales = ", ".join(
        f"{values.as_reflectance(s, l1c_offset if s == 'l1c' else 0.0):.3g} as {s}" for s in SCALE_UNITS
    )
    low, high = LAND_NIR_REFLECTANCE
    offset = f" less {l1c_offset:g}" if l1c_offset else ""
    return (
        f"land {values.nir_band} median {values.nir_land_median:g}{offset} over {values.land_pixels} pixels is "
        f"reflectance {as_scales} (land: {low:g}-{high:g})"
    )
