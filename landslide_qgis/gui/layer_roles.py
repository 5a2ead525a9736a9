"""Guess which loaded rasters are the Sentinel-2 bands, the DEM and the slope.

Analysts load their rasters with whatever names the download gave them
(``T45RUL_20150425T050649_B04.jp2``, ``S2A_MSIL1C_…``, ``ALOS_PALSAR_RTC_dem``,
``srtm_57_07``), so the dock pre-selects roles from layer names and band
descriptions. It is only a suggestion: the analyst can change every picker. The dock and the
Toolbox dialogs of detect and stack ask the same suggestion, so neither offers a Sentinel-2 stack as the DEM.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from landslide_engine.bands import canonical_band, find_band_token

_SLOPE = re.compile(r"slope|neigung|pente|pendiente", re.IGNORECASE)
# product names are often glued to other words (AberSRTM, ALOSPALSAR_RTC), so no word boundaries
_DEM = re.compile(r"dem|dtm|dsm|srtm|elev|height|alos|palsar|aster|glo[-_ ]?30|glo[-_ ]?90", re.IGNORECASE)
_S2 = re.compile(r"sentinel|sen2|(?<![a-z0-9])s2[ab]?(?![0-9])|msil1c|msil2a|l1c|l2a|toa|boa", re.IGNORECASE)


@dataclass(frozen=True)
class RasterInfo:
    """What the suggestion looks at: a layer's id, name, file name and band descriptions."""

    layer_id: str
    name: str
    file_stem: str
    band_descriptions: tuple[str, ...]


@dataclass
class RoleSuggestion:
    s2: list[str] = field(default_factory=list)
    dem: str | None = None
    slope: str | None = None


def suggest_roles(rasters: Sequence[RasterInfo]) -> RoleSuggestion:
    """Layer ids suggested as Sentinel-2 band(s), DEM and slope."""
    suggestion = RoleSuggestion()
    single_band_s2: dict[str, str] = {}
    multi_band_s2: list[tuple[int, str]] = []
    for info in rasters:
        text = f"{info.name} {info.file_stem}"
        if _SLOPE.search(text):
            suggestion.slope = suggestion.slope or info.layer_id
            continue
        described = sum(canonical_band(d) is not None for d in info.band_descriptions if d)
        if len(info.band_descriptions) > 1 and (described >= 2 or _S2.search(text)):
            multi_band_s2.append((described, info.layer_id))
            continue
        band = find_band_token(info.name) or find_band_token(info.file_stem)
        if len(info.band_descriptions) == 1 and band is not None and band not in single_band_s2:
            single_band_s2[band] = info.layer_id
            continue
        if len(info.band_descriptions) == 1 and _DEM.search(text):
            suggestion.dem = suggestion.dem or info.layer_id
    if len(single_band_s2) >= 2:
        suggestion.s2 = list(single_band_s2.values())
    elif multi_band_s2:
        # several multi-band rasters are usually several dates: suggest the best-described one only
        suggestion.s2 = [max(multi_band_s2, key=lambda item: item[0])[1]]
    return suggestion


def raster_info(layer) -> RasterInfo:
    """What :func:`suggest_roles` looks at for a QGIS raster layer.

    Band descriptions come from GDAL: QGIS 3.22's provider API does not expose them.
    """
    from pathlib import Path

    from osgeo import gdal

    descriptions = [""] * layer.bandCount()
    if layer.providerType() == "gdal":
        dataset = gdal.OpenEx(layer.source(), gdal.OF_RASTER)
        if dataset is not None:
            descriptions = [dataset.GetRasterBand(b).GetDescription() for b in range(1, dataset.RasterCount + 1)]
    return RasterInfo(layer.id(), layer.name(), Path(layer.source()).stem, tuple(descriptions))
