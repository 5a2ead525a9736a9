"""From the numbers in the user's Sentinel-2 files to Landslide4Sense units.

L4S reflectance bands are L1C digital numbers (TOA reflectance x 1e4) divided
by a per-band divisor. Products in the wild differ in three ways, each handled
here:

* the reflectance scale: ESA DNs (x 1e4, ``"l1c"``), ``"x1000"`` (ARCSI and
  others) or ``"0-1"`` floats. The default ``"auto"`` reads it from the scene
  (:mod:`landslide_engine.scale_detection`) and refuses when the scene cannot
  tell; an explicit scale that the data contradict by an order of magnitude is
  refused too, because a wrong scale silently ruins every prediction.
* the processing-baseline offset: from baseline 04.00 (2022-01-25) ESA adds 1000
  to every DN. With ``baseline_offset="auto"`` the values decide when they can
  (values under 1000 DN exclude the offset, a B10 median over 1000 DN shows it),
  else the metadata or the product date; a number is taken as given. A SAFE product's metadata gives it
  per band (``RADIO_ADD_OFFSET``/``BOA_ADD_OFFSET``), with the quantification value, and those are used
  for the product's bands.
* L2A input lacks B10 (cirrus, top of atmosphere only). It is filled with the
  constant the model's metadata allows (``fillable_bands``), and the run warns
  that L4S models were trained on L1C top-of-atmosphere reflectance.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from landslide_engine.bands import divisor
from landslide_engine.errors import InputError
from landslide_engine.options import REFLECTANCE_SCALE_ALIASES, REFLECTANCE_SCALES
from landslide_engine.scale_detection import (
    SCALE_UNITS,
    SceneValues,
    describe,
    fitting_scales,
    measure,
    offset_in_data,
)
from landslide_engine.sources import S2Inputs, offset_from_date

# Integer types whose every value float32 holds exactly (Sentinel-2 DNs are uint16).
_EXACT_INTEGERS = frozenset(np.dtype(t) for t in ("uint8", "int8", "uint16", "int16"))

_TO_DN = {scale: SCALE_UNITS["l1c"] / unit for scale, unit in SCALE_UNITS.items()}
# Named by the command line's flag; a front end with its own names translates the flag (QGIS: its parameter)
_OPTION_NAME = "reflectance scale (--reflectance-scale)"
_OFFSET_NAME = "baseline offset (--baseline-offset)"


def parse_scale(option: str) -> str:
    """``option`` as one of :data:`~landslide_engine.options.REFLECTANCE_SCALES` (or one of its aliases)."""
    scale = str(option).strip().lower()
    scale = REFLECTANCE_SCALE_ALIASES.get(scale, scale)
    if scale not in REFLECTANCE_SCALES:
        raise InputError(f"reflectance_scale {option!r} is not one of {', '.join(REFLECTANCE_SCALES)}")
    return scale


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
    scale_evidence: str = "reflectance_scale option"
    detection: dict[str, Any] = field(default_factory=dict)  # what the scene's values showed, for run.json
    # keeps_finite's answers by (band, type): asked for every band of every window a scene reader scales
    _finite: dict[tuple[str, np.dtype], bool] = field(default_factory=dict, init=False, repr=False, compare=False)

    def offset_of(self, band: str) -> float:
        """The DN offset removed from ``band``."""
        return float(self.band_offsets.get(band, self.offset))

    def to_l4s(self, native: np.ndarray, band: str, out: np.ndarray | None = None) -> np.ndarray:
        """Native values of ``band`` (float, NaN = nodata) in L4S units, as float32 (into ``out`` if given).

        float32 input is converted in place in ``out`` (same values, no temporaries: this runs on every pixel
        of every band of a scene), and so are 8- and 16-bit integers given an ``out``, with the values their
        float32 conversion would give; wider input is computed in its own precision first.
        """
        factor = self.to_dn / divisor(band)
        offset = self.offset_of(band)
        if out is not None and native.dtype in _EXACT_INTEGERS:
            # Integers that float32 holds exactly, converted on the way: the bits of converting them to float32
            # first, without the float32 copy (the scene reader passes a source's DNs as read).
            if offset == 0:  # x - 0 is x: one pass instead of two
                return np.multiply(native, factor, out=out, dtype=np.float32)
            np.subtract(native, offset, out=out, dtype=np.float32)
            return np.multiply(out, factor, out=out)
        if native.dtype != np.float32:
            result = ((native - offset) * factor).astype(np.float32)
            if out is None:
                return result
            out[...] = result
            return out
        if offset == 0:
            return np.multiply(native, factor, out=out)
        out = np.subtract(native, offset, out=out)
        return np.multiply(out, factor, out=out)

    def keeps_finite(self, band: str, dtype: np.dtype) -> bool:
        """Whether :meth:`to_l4s` turns every integer of ``dtype`` into a finite float32 for ``band``.

        The conversion is monotonic, so the type's two extremes decide; any scale and offset a scene can have keep
        them finite, an absurd one could overflow. Lets a caller skip looking for NaN in bands read as integers.
        """
        key = (band, np.dtype(dtype))
        if key not in self._finite:
            info = np.iinfo(key[1])
            with np.errstate(over="ignore", invalid="ignore"):
                ends = self.to_l4s(np.array([info.min, info.max], dtype=key[1]), band, out=np.empty(2, np.float32))
            self._finite[key] = bool(np.isfinite(ends).all())
        return self._finite[key]


def resolve_scaling(
    inputs: S2Inputs,
    reflectance_scale: str = "auto",
    baseline_offset: str | int | float = "auto",
    sample: Mapping[str, np.ndarray] | None = None,
) -> tuple[ReflectanceScaling, list[str]]:
    """The scaling for ``inputs`` and the warnings the analyst should see.

    ``sample`` (band -> native values of the same pixels of the scene, NaN = nodata) is what the scale and
    the offset are read from, except for a SAFE product, whose metadata says both. Raises InputError when
    ``reflectance_scale`` is "auto" and the sample cannot tell, or when it contradicts an explicit scale by
    an order of magnitude.
    """
    scale = parse_scale(reflectance_scale)
    values = measure(sample or {})
    warnings: list[str] = []
    offset_warnings: list[str] = []  # about the offset of ESA's DNs: kept only if the values are DNs
    offset, offset_evidence = _resolve_offset(inputs, values, baseline_offset, offset_warnings)
    fits = fitting_scales(values, offset or 0.0)
    found = describe(values, offset or 0.0)
    detection = {"option": scale, "fits": fits, "evidence": found, **values.report()}
    scale, scale_evidence = _decide_scale(inputs, scale, fits, found, warnings)
    if scale == "l1c":
        if offset is None:  # 0.1 of reflectance in every band: a wrong guess is a silently wrong map
            raise InputError(
                f"cannot tell whether the Sentinel-2 values carry the +1000 DN offset of processing baseline 04.00: "
                f"{offset_evidence}; set the {_OFFSET_NAME}: 0 or 1000"
            )
        warnings += offset_warnings
    else:
        offset, offset_evidence = _offset_for_scaled_values(inputs, scale, baseline_offset, warnings)
    detection["scale"] = scale
    to_dn, band_offsets = _TO_DN[scale], {}
    product = inputs.product
    if product is not None:
        # The product's metadata says how its DNs become reflectance: DN / quantification, after the offset.
        to_dn = 10000.0 / product.quantification
        if str(baseline_offset).strip().lower() == "auto":
            band_offsets = {
                band: -product.offsets.get(band, 0.0)
                for band, source in inputs.bands.items()
                if source.path == product.bands.get(band)
            }
    scaling = ReflectanceScaling(scale, to_dn, offset, offset_evidence, band_offsets, scale_evidence, detection)
    return scaling, warnings


def _decide_scale(inputs: S2Inputs, option: str, fits: list[str], found: str, warnings: list[str]) -> tuple[str, str]:
    """The scale to use and why: a SAFE product's metadata, else the one scale the data fit (``auto``), else
    the option, refused when the data fit another one."""
    product = inputs.product
    if product is not None:  # a SAFE product's metadata says what its numbers are: no guess needed
        if option not in ("auto", "l1c"):
            raise InputError(
                f"{product.name} holds ESA digital numbers (quantification value {product.quantification:g}); "
                f"set the {_OPTION_NAME} to auto or l1c, not {option}"
            )
        return "l1c", f"{product.name} metadata: digital numbers, quantification value {product.quantification:g}"
    if option == "auto":
        if len(fits) != 1:
            raise InputError(
                f"cannot tell the scale of the Sentinel-2 values: {found}; set the {_OPTION_NAME}: l1c, x1000 or 0-1"
            )
        return fits[0], f"detected: {found}"
    if fits and option not in fits:
        raise InputError(
            f"reflectance scale {option} contradicts the data ({found}); they look like {fits[0]}: "
            f"set the {_OPTION_NAME} to {fits[0]} or auto"
        )
    if fits:
        return option, f"reflectance_scale option, which the data confirm: {found}"
    warnings.append(f"could not check reflectance scale {option} against the data: {found}")
    return option, "reflectance_scale option, not checked against the data"


def _resolve_offset(
    inputs: S2Inputs, values: SceneValues, option: str | int | float, warnings: list[str]
) -> tuple[float | None, str]:
    """The DN offset of L1C-scaled values: the option's number, else a SAFE product's metadata, else what the
    values show, else the metadata of other files or the product date; None when none of them tells."""
    text = str(option).strip().lower()
    if text != "auto":
        try:
            return float(text), "baseline_offset option"
        except ValueError:
            raise InputError(f"baseline_offset {option!r} is neither 'auto' nor a number") from None
    metadata, metadata_evidence = offset_from_date(inputs)
    shown, data_evidence = offset_in_data(values)
    if inputs.product is not None and metadata is not None:  # the product's own XML: exact, per band
        if shown == 0.0 and metadata:  # values an offset product cannot hold: images of an older baseline beside it
            raise InputError(
                f"{metadata_evidence}, but {data_evidence}: the band images are not this product's; give the "
                "product's own images, or these band files without its metadata"
            )
        if shown is not None and shown != metadata:  # bright data (cirrus) can look offset: the metadata decides
            warnings.append(
                f"{metadata_evidence}, but {data_evidence}: are the band images this product's? The metadata's "
                "offsets were used"
            )
        return metadata, metadata_evidence
    if shown is not None:
        if metadata == shown:
            return shown, f"{metadata_evidence}, and {data_evidence}"
        if metadata is not None:
            warnings.append(
                f"{metadata_evidence} implies a baseline offset of {metadata:g} DN, but {data_evidence}: "
                f"using {shown:g} (set the {_OFFSET_NAME} to override)"
            )
        return shown, data_evidence
    if metadata is not None:
        return metadata, metadata_evidence
    return None, f"no processing-baseline metadata or date, and {data_evidence}"


def _offset_for_scaled_values(
    inputs: S2Inputs, scale: str, option: str | int | float, warnings: list[str]
) -> tuple[float, str]:
    """The offset for x1000 and 0-1 values: only an explicit one (the baseline offset belongs to ESA's DNs)."""
    text = str(option).strip().lower()
    if text != "auto":
        return float(text), "baseline_offset option"
    offset, evidence = offset_from_date(inputs)
    if offset:
        warnings.append(
            f"{evidence} implies the baseline 04.00 offset of {offset:g} DN, but reflectance_scale is {scale}; "
            f"not removing it (set the {_OFFSET_NAME} to remove it)"
        )
    return 0.0, (f"{evidence}; not applied to {scale} values" if evidence else f"none for {scale} values")


#: The cost quoted is the built-in model's (cross-validation with B10 filled: MODEL_CARD.md, README).
L2A_WARNING = (
    "L2A (surface reflectance) input: Landslide4Sense models were trained on L1C top-of-atmosphere reflectance, "
    "so expect more false alarms and misses (built-in model, cross-validation with B10 filled: "
    "pixel F1 0.707 -> 0.522)"
)
