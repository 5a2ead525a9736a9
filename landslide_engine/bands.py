"""Band names, order and units of the Landslide4Sense (L4S) input.

Landslide4Sense stacks 14 bands: Sentinel-2 B1..B12 *without* B8A (so "B8" is
the 842 nm NIR band and B9..B12 follow), then B13 = slope in degrees and
B14 = DEM in metres. Every band is stored as ``raw / divisor`` with a fixed
per-band divisor, where raw is the L1C digital number (TOA reflectance x 1e4),
the integer slope in degrees or the integer elevation in metres. A model
trained on L4S only makes sense on inputs brought into exactly these units.

Sentinel-2 products name bands ``B01``..``B12`` plus ``B8A``; the engine's
canonical names are the L4S ones (``B1``..``B12``) plus ``B8A``, which is read
when present but never fed to an L4S model.
"""

from __future__ import annotations

import re

import numpy as np

L4S_BANDS: tuple[str, ...] = tuple(f"B{i}" for i in range(1, 15))

L4S_DIVISORS: np.ndarray = np.array(
    [
        1111.81236406,
        824.63171476,
        663.41636217,
        445.17289745,
        645.8582926,
        1547.73508126,
        1960.44401001,
        1941.32229668,
        674.07572865,
        9.04787384,
        1113.98338755,
        519.90397929,
        20.29228266,
        772.83144788,
    ],
    dtype=np.float64,
)

RGB_BANDS: tuple[str, str, str] = ("B4", "B3", "B2")

SLOPE_BAND = "B13"
DEM_BAND = "B14"

# The 12 Sentinel-2 bands of L4S (B1..B12 without B8A).
L4S_S2_BANDS: tuple[str, ...] = L4S_BANDS[:12]

# Band layouts of whole-product rasters, in file order.
L1C_ESA_ORDER: tuple[str, ...] = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
L2A_ESA_ORDER: tuple[str, ...] = tuple(b for b in L1C_ESA_ORDER if b != "B10")
# sen2r and similar tools write L2A as the L4S order without B10 (no B8A either).
L2A_WITHOUT_B8A_ORDER: tuple[str, ...] = tuple(b for b in L4S_S2_BANDS if b != "B10")

S2_BAND_NAMES: frozenset[str] = frozenset(L1C_ESA_ORDER)

_BAND_TOKEN = re.compile(r"(?<![A-Za-z0-9])B(8A|0?[1-9]|1[0-2])(?![0-9A-Za-z])", re.IGNORECASE)


def divisor(band: str) -> float:
    """The L4S divisor of ``band`` (one of :data:`L4S_BANDS`)."""
    return float(L4S_DIVISORS[L4S_BANDS.index(band)])


def canonical_band(text: str) -> str | None:
    """``"B04"``, ``"b4"``, ``"B8a"`` -> ``"B4"``, ``"B8A"``; anything else -> None.

    Only a whole ``B<number>`` token counts, so GDAL's generic descriptions such
    as ``"Band 1"`` are *not* mistaken for Sentinel-2 band B1.
    """
    match = _BAND_TOKEN.fullmatch(text.strip())
    return _from_match(match) if match else None


def find_band_token(text: str) -> str | None:
    """The single Sentinel-2 band token inside ``text`` (a file stem), or None.

    ``T33UUU_20170216T102101_B04`` -> ``"B4"``, ``T33_B8A_20m`` -> ``"B8A"``.
    Several different tokens are ambiguous and give None.
    """
    found = {_from_match(m) for m in _BAND_TOKEN.finditer(text.replace("_", " ").replace("-", " ").replace(".", " "))}
    return found.pop() if len(found) == 1 else None


def _from_match(match: re.Match[str]) -> str:
    token = match.group(1).upper()
    return "B8A" if token == "8A" else f"B{int(token)}"
