"""From the numbers in the user's Sentinel-2 files to Landslide4Sense units.

L4S reflectance bands are L1C digital numbers (TOA reflectance x 1e4) divided
by a per-band divisor. Products in the wild differ in three ways, each handled
here:

* the reflectance scale: ESA DNs (x 1e4, the default ``"l1c"``), ``"x1000"``
  (ARCSI and others) or ``"0-1"`` floats; chosen explicitly, because a wrong
  guess silently ruins every prediction. :func:`scale_warning` flags values that
  do not look like the declared scale.
* the processing-baseline offset: from baseline 04.00 (2022-01-25) ESA adds 1000
  to every DN. It is removed when the metadata or product date says so
  (``baseline_offset="auto"``) or when given as a number. A SAFE product's
  metadata gives it per band (``RADIO_ADD_OFFSET``/``BOA_ADD_OFFSET``), with the
  quantification value, and those are used for the product's bands.
* L2A input lacks B10 (cirrus, top of atmosphere only). It is filled with the
  constant the model's metadata allows (``fillable_bands``), and the run warns
  that L4S models were trained on L1C top-of-atmosphere reflectance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from landslide_engine.bands import divisor
from landslide_engine.errors import InputError
from landslide_engine.options import REFLECTANCE_SCALE_ALIASES, REFLECTANCE_SCALES
from landslide_engine.sources import S2Inputs, offset_from_date

# Multiplier from each declared scale (landslide_engine.options.REFLECTANCE_SCALES) to L1C DN (reflectance x 1e4).
TO_DN: dict[str, float] = {"l1c": 1.0, "x1000": 10.0, "0-1": 10000.0}

# Median DN of land scenes lies well inside this range; far outside means a wrong scale.
_PLAUSIBLE_MEDIAN_DN = (100.0, 8000.0)


@dataclass(frozen=True)
class ReflectanceScaling:
    """``l4s = (native - offset) * to_dn / divisor(band)`` for every reflectance band.

    ``band_offsets`` replaces ``offset`` for the bands it names (a SAFE product's per-band metadata).
    """

    scale: str
    to_dn: float
    offset: float
    offset_evidence: str
    band_offsets: Mapping[str, float] = field(default_factory=dict)

    def offset_of(self, band: str) -> float:
        """The DN offset removed from ``band``."""
        return float(self.band_offsets.get(band, self.offset))

    def to_l4s(self, native: np.ndarray, band: str, out: np.ndarray | None = None) -> np.ndarray:
        """Native values of ``band`` (float, NaN = nodata) in L4S units, as float32 (into ``out`` if given).

        float32 input is converted in place in ``out`` (same values, no temporaries: this runs on every pixel
        of every band of a scene); wider input is computed in its own precision first.
        """
        factor = self.to_dn / divisor(band)
        offset = self.offset_of(band)
        if native.dtype != np.float32:
            result = ((native - offset) * factor).astype(np.float32)
            if out is None:
                return result
            out[...] = result
            return out
        out = np.subtract(native, offset, out=out)
        return np.multiply(out, factor, out=out)


def resolve_scaling(
    inputs: S2Inputs, reflectance_scale: str = "l1c", baseline_offset: str | int | float = "auto"
) -> tuple[ReflectanceScaling, list[str]]:
    """The scaling for ``inputs`` and the warnings the analyst should see."""
    scale = str(reflectance_scale).strip().lower()
    scale = REFLECTANCE_SCALE_ALIASES.get(scale, scale)
    if scale not in REFLECTANCE_SCALES:
        raise InputError(f"reflectance_scale {reflectance_scale!r} is not one of {', '.join(REFLECTANCE_SCALES)}")
    warnings: list[str] = []
    offset, evidence = _resolve_offset(inputs, scale, baseline_offset, warnings)
    product = inputs.product
    if product is not None and TO_DN[scale] == 1.0:
        # The product's metadata says how its DNs become reflectance: DN / quantification, after the offset.
        to_dn = 10000.0 / product.quantification
        band_offsets = {}
        if str(baseline_offset).strip().lower() == "auto":
            band_offsets = {
                band: -product.offsets.get(band, 0.0)
                for band, source in inputs.bands.items()
                if source.path == product.bands.get(band)
            }
        return ReflectanceScaling(scale, to_dn, offset, evidence, band_offsets), warnings
    return ReflectanceScaling(scale, TO_DN[scale], offset, evidence), warnings


def _resolve_offset(inputs: S2Inputs, scale: str, option: str | int | float, warnings: list[str]) -> tuple[float, str]:
    text = str(option).strip().lower()
    if text != "auto":
        try:
            return float(text), "baseline_offset option"
        except ValueError:
            raise InputError(f"baseline_offset {option!r} is neither 'auto' nor a number") from None
    offset, evidence = offset_from_date(inputs)
    if offset is None:
        return 0.0, "no processing-baseline metadata or date found"
    if TO_DN[scale] != 1.0:
        if offset:
            warnings.append(
                f"{evidence} implies the baseline 04.00 offset of {offset:g} DN, but reflectance_scale is {scale}; "
                f"not removing it (set baseline_offset to remove it)"
            )
        return 0.0, f"{evidence}; not applied to {scale} values"
    return offset, evidence


def scale_warning(scaling: ReflectanceScaling, sample: np.ndarray) -> str | None:
    """A warning when ``sample`` (native reflectance values, NaN = nodata) does not fit the declared scale."""
    valid = sample[np.isfinite(sample)]
    if valid.size == 0:
        return None
    median_dn = float(np.median((valid - scaling.offset) * scaling.to_dn))
    low, high = _PLAUSIBLE_MEDIAN_DN
    if low <= median_dn <= high:
        return None
    return (
        f"reflectance values look wrong for reflectance_scale={scaling.scale}: median {float(np.median(valid)):g} "
        f"gives {median_dn:.0f} DN where land scenes have {low:.0f}-{high:.0f}; check the scale option"
    )


L2A_WARNING = (
    "L2A (surface reflectance) input: Landslide4Sense models were trained on L1C top-of-atmosphere reflectance, "
    "so expect more false alarms and misses"
)
