"""Which Sentinel-2 band lives in which file, and what the product metadata says.

Analysts bring Sentinel-2 in many shapes: one multi-band raster (a 13-band L1C
stack in ESA order, a 12-band L2A stack without B10, exactly the 12 L4S bands,
sen2r's 11-band L2A) or separate single-band files (``*_B04.jp2``, ``B04.tif``,
``*_B8A_20m.jp2``). Bands are identified, in this order of trust, from the
band descriptions, band metadata (``BANDNAME``), the file name and finally the
band count of well-known layouts. Anything still ambiguous can be named with an
explicit ``band_map``: ``{"B4": "scene.tif:3", "B8": "nir.tif", "B2": "1"}``
(a bare number is a band of the only input file).

The same pass reads what the metadata tells about the processing level (L1C or
L2A), the acquisition date and the processing-baseline offset, which scaling
needs later.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from landslide_engine.bands import (
    L1C_ESA_ORDER,
    L2A_ESA_ORDER,
    L2A_WITHOUT_B8A_ORDER,
    L4S_S2_BANDS,
    canonical_band,
    find_band_token,
)
from landslide_engine.errors import InputError
from landslide_engine.products import Product, ProductMask, looks_like_product, open_product
from landslide_engine.rasterio_io import OpenRasters, opened
from landslide_engine.stac import looks_like_stac_item, read_stac_item

# ESA processing baseline 04.00 (products from 2022-01-25 on) adds 1000 to every DN.
BASELINE_04_DATE = dt.date(2022, 1, 25)
BASELINE_04_OFFSET = 1000.0

_L2A_NAME = re.compile(r"(?:^|[^A-Za-z0-9])(?:MSIL2A|L2A|BOA|S2[AB]2A)(?:$|[^A-Za-z0-9])", re.IGNORECASE)
_L1C_NAME = re.compile(r"(?:^|[^A-Za-z0-9])(?:MSIL1C|L1C|TOA|S2[AB]1C)(?:$|[^A-Za-z0-9])", re.IGNORECASE)
_DATE_IN_NAME = re.compile(r"(?<!\d)(20\d{2})(\d{2})(\d{2})(?!\d)")
# Band names of Earth Engine's Sentinel-2 collections that are not reflectance.
EARTH_ENGINE_AUXILIARY_BANDS = frozenset(
    {"QA10", "QA20", "QA60", "AOT", "WVP", "SCL", "TCI_R", "TCI_G", "TCI_B", "MSK_CLDPRB", "MSK_SNWPRB"}
    | {"MSK_CLASSI_OPAQUE", "MSK_CLASSI_CIRRUS", "MSK_CLASSI_SNOW_ICE"}
)
_SEN2COR_BANDS = frozenset({"AOT", "WVP", "SCL", "MSK_CLDPRB", "MSK_SNWPRB"})
_EARTH_ENGINE_BAND = re.compile(r"^B(?:[1-9]|1[0-2]|8A)$")
_BAND_NAME_TAGS = ("BANDNAME", "BAND_NAME", "BAND", "NAME")


@dataclass(frozen=True)
class BandSource:
    """One Sentinel-2 band: ``band`` is read from band ``index`` (1-based) of ``path``."""

    band: str
    path: str
    index: int
    identified_by: str


@dataclass
class S2Inputs:
    """The identified Sentinel-2 bands and what the metadata says about the product."""

    bands: dict[str, BandSource]
    level: str | None = None
    product_date: dt.date | None = None
    detected_offset: float | None = None
    offset_evidence: str = ""
    unidentified: list[str] = field(default_factory=list)
    product: Product | None = None
    cloud_mask: ProductMask | None = None

    def missing(self, required: Sequence[str]) -> list[str]:
        """The bands of ``required`` that no input provides."""
        return [b for b in required if b not in self.bands]

    def describe_missing(self, missing: Sequence[str]) -> str:
        """One line naming the missing bands and any file whose bands could not be identified."""
        line = f"missing Sentinel-2 band(s) {', '.join(missing)}"
        if self.unidentified:
            line += f" ({'; '.join(self.unidentified)}; name the bands with band_map)"
        return line


def identify_s2(
    paths: Sequence[str | Path], band_map: Mapping[str, str] | None = None, rasters: OpenRasters | None = None
) -> S2Inputs:
    """Identify the Sentinel-2 bands in ``paths``; ``band_map`` overrides or completes the guess.

    With ``rasters`` the files stay open there for the grid and the reads that follow.

    Raises InputError for unreadable files, a band found in two files, or a
    malformed band_map entry. Missing bands are *not* an error here: which bands
    are required depends on the model, so the caller checks with ``missing()``.
    """
    if not paths:
        raise InputError("no Sentinel-2 input given")
    explicit = _parse_band_map(band_map or {}, [str(p) for p in paths])
    result = S2Inputs(bands={})
    found: dict[str, BandSource] = {}
    products = [str(p) for p in paths if is_product_input(p)]
    if len(products) > 1:
        raise InputError(f"give one Sentinel-2 product at a time, not {len(products)} ({', '.join(products)})")
    for path in products:
        _add_product(open_product_input(path), result, found, explicit)
    for path in (str(p) for p in paths if str(p) not in products):
        with opened(path, "Sentinel-2", rasters) as src:
            _read_product_metadata(src, path, result)
            for source in _identify_file(src, path, result):
                if source.band in explicit:
                    continue
                if source.band in found:
                    raise InputError(
                        f"band {source.band} found in both {found[source.band].path} and {path}; "
                        f"choose one with band_map"
                    )
                found[source.band] = source
    for band, source in explicit.items():
        with opened(source.path, f"Sentinel-2 band {band}", rasters) as src:
            if not 1 <= source.index <= src.count:
                raise InputError(f"band_map {band}: {source.path} has {src.count} band(s), not band {source.index}")
        found[band] = source
    result.bands = found
    return result


def is_product_input(path: str | Path) -> bool:
    """Whether ``path`` names a product (a SAFE folder, zip or metadata file; a STAC item) rather than rasters."""
    return looks_like_product(path) or looks_like_stac_item(path)


def open_product_input(path: str | Path) -> Product:
    """The product at ``path`` (see :func:`is_product_input`), read from its metadata; InputError if unusable."""
    return read_stac_item(path) if looks_like_stac_item(path) else open_product(path)


def _add_product(
    product: Product, result: S2Inputs, found: dict[str, BandSource], explicit: Mapping[str, BandSource]
) -> None:
    """The product's band images and metadata; its metadata is trusted before any file's tags or name."""
    result.product = product
    result.cloud_mask = product.mask
    result.level = product.level
    result.product_date = product.sensing_date
    result.detected_offset = 0.0 - _common_offset(product)  # the DN offset removed; 0.0 - 0.0 is 0, never "-0"
    result.offset_evidence = product.offset_evidence
    for band, path in product.bands.items():
        if band not in explicit:
            found[band] = BandSource(band, path, 1, f"{product.kind} {product.name}")


def _common_offset(product: Product) -> float:
    """The offset most bands of ``product`` carry (all do in every product so far); 0 without offsets."""
    values = list(product.offsets.values())
    return max(set(values), key=values.count) if values else 0.0


def _parse_band_map(band_map: Mapping[str, str], paths: list[str]) -> dict[str, BandSource]:
    parsed: dict[str, BandSource] = {}
    for key, value in band_map.items():
        band = canonical_band(key)
        if band is None:
            raise InputError(f"band_map: {key!r} is not a Sentinel-2 band name such as B4 or B8A")
        if band in parsed:
            raise InputError(f"band_map names band {band} twice ({key!r} is another name for it)")
        value = str(value).strip()
        if value.isdigit():
            if len(paths) != 1:
                raise InputError(f"band_map {key}={value}: a bare band number needs exactly one Sentinel-2 file")
            path, index = paths[0], int(value)
        else:
            head, sep, tail = value.rpartition(":")
            path, index = (head, int(tail)) if sep and tail.isdigit() and head else (value, 1)
        source = BandSource(band, path, index, "band_map")
        twin = next((b for b, other in parsed.items() if (other.path, other.index) == (path, index)), None)
        if twin is not None:
            raise InputError(f"band_map gives {path} band {index} to both {twin} and {band}")
        parsed[band] = source
    return parsed


def _distinct_bands(bands: Sequence[str | None], count: int) -> list[str] | None:
    """``bands`` when each of the ``count`` bands is named and no two alike, else None."""
    named = [b for b in bands if b]
    return named if len(named) == len(bands) and len(set(named)) == count else None


def _identify_earth_engine(src, path: str, result: S2Inputs) -> list[BandSource] | None:
    """The bands of an Earth Engine export of ``COPERNICUS/S2_HARMONIZED`` or ``S2_SR_HARMONIZED``, else None.

    Earth Engine names the bands ``B1`` ... ``B12``, ``B8A`` beside auxiliary bands (``QA60``, ``SCL``, ``AOT``,
    ...); one auxiliary band tells such an export from any other file with band names. The harmonized
    collections have the baseline 04.00 offset already removed, so none is removed here; L2A is told by its
    Sen2Cor bands; its SCL band (else the QA60 band) is the cloud mask.
    """
    names = [(d or "").strip().upper() for d in src.descriptions]
    auxiliary = {n: i + 1 for i, n in enumerate(names) if n in EARTH_ENGINE_AUXILIARY_BANDS}
    bands = {n: i + 1 for i, n in enumerate(names) if _EARTH_ENGINE_BAND.match(n)}
    if not auxiliary or not bands or len(auxiliary) + len(bands) != src.count:
        return None
    if result.level is None:
        result.level = "L2A" if set(auxiliary) & _SEN2COR_BANDS else "L1C"
    if result.detected_offset is None:
        result.detected_offset = 0.0
        result.offset_evidence = f"Earth Engine *_HARMONIZED export {Path(path).name}: offset already removed"
    if result.cloud_mask is None:
        for kind in ("SCL", "QA60"):
            if kind in auxiliary:
                result.cloud_mask = ProductMask(kind, path, band=auxiliary[kind])
                break
    return [BandSource(str(canonical_band(n)), path, i, "Earth Engine band name") for n, i in bands.items()]


def _identify_file(src, path: str, result: S2Inputs) -> list[BandSource]:
    """Bands of one opened file, or [] with a note in ``result.unidentified``."""
    name = Path(path).name
    earth_engine = _identify_earth_engine(src, path, result)
    if earth_engine is not None:
        return earth_engine
    by_description = _distinct_bands([canonical_band(d) if d else None for d in src.descriptions], src.count)
    if by_description is not None:
        return [BandSource(b, path, i + 1, "band description") for i, b in enumerate(by_description)]
    by_tags = _distinct_bands([_band_from_tags(src.tags(i + 1)) for i in range(src.count)], src.count)
    if by_tags is not None:
        return [BandSource(b, path, i + 1, "band metadata") for i, b in enumerate(by_tags)]
    if src.count == 1:
        band = find_band_token(Path(path).stem)
        if band is not None:
            return [BandSource(band, path, 1, "file name")]
        result.unidentified.append(f"cannot tell which band {name} holds")
        return []
    layout = _layout_for_count(src.count, result.level)
    if layout is None:
        result.unidentified.append(f"{name} has {src.count} bands without Sentinel-2 band names")
        return []
    return [BandSource(b, path, i + 1, "band count") for i, b in enumerate(layout)]


def _layout_for_count(count: int, level: str | None) -> tuple[str, ...] | None:
    """Well-known band orders of whole-product rasters, told apart by their band count."""
    if count == 13:
        return L1C_ESA_ORDER
    if count == 12:
        # 12 bands are either L2A in ESA order (with B8A, without B10) or exactly the L4S bands.
        return L2A_ESA_ORDER if level == "L2A" else L4S_S2_BANDS
    if count == 11:
        return L2A_WITHOUT_B8A_ORDER
    return None


def _band_from_tags(tags: Mapping[str, str]) -> str | None:
    for key in _BAND_NAME_TAGS:
        if key in tags:
            band = canonical_band(tags[key])
            if band:
                return band
    return None


def _read_product_metadata(src, path: str, result: S2Inputs) -> None:
    """Fill level, date and baseline offset from tags and the file name (first evidence wins)."""
    tags = {k.upper(): v for k, v in src.tags().items()}
    for i in range(1, src.count + 1):
        for k, v in src.tags(i).items():
            tags.setdefault(k.upper(), v)
    name = Path(path).name
    if result.level is None:
        result.level = _level_from(tags, name)
    if result.product_date is None:
        result.product_date = _date_from(tags, name)
    if result.detected_offset is None:
        _read_offset(tags, name, result)


def _level_from(tags: Mapping[str, str], name: str) -> str | None:
    """ "L1C" or "L2A" from the processing-level tags, else the file name; None when neither says."""
    level_text = " ".join(v for k, v in tags.items() if "PROCESSING_LEVEL" in k or "PRODUCT_TYPE" in k)
    for text in (level_text, name):
        if _L2A_NAME.search(text) or "LEVEL-2A" in text.upper():
            return "L2A"
        if _L1C_NAME.search(text) or "LEVEL-1C" in text.upper():
            return "L1C"
    return None


def _date_from(tags: Mapping[str, str], name: str) -> dt.date | None:
    """The sensing date from the date tags, else the file name."""
    date_text = [v for k, v in tags.items() if "SENSING" in k or "PRODUCT_START_TIME" in k or "DATATAKE" in k]
    for text in [*date_text, name]:
        date = _first_date(text)
        if date:
            return date
    return None


def _read_offset(tags: Mapping[str, str], name: str, result: S2Inputs) -> None:
    """The baseline offset and its evidence: an ``*ADD_OFFSET`` tag, else ``PROCESSING_BASELINE``."""
    for key, value in tags.items():
        if key.endswith("ADD_OFFSET"):
            try:
                result.detected_offset = 0.0 - float(value)  # 0 stays 0, not "-0"
            except ValueError:
                continue
            result.offset_evidence = f"{key}={value} in {name}"
            return
    baseline = tags.get("PROCESSING_BASELINE")
    if baseline:
        try:
            newer = float(baseline) >= 4.0
        except ValueError:
            return
        result.detected_offset = BASELINE_04_OFFSET if newer else 0.0
        result.offset_evidence = f"PROCESSING_BASELINE={baseline} in {name}"


def _first_date(text: str) -> dt.date | None:
    for y, m, d in _DATE_IN_NAME.findall(text.replace("-", "")):
        try:
            return dt.date(int(y), int(m), int(d))
        except ValueError:
            continue
    return None


def offset_from_date(inputs: S2Inputs) -> tuple[float | None, str]:
    """The baseline offset implied by the product date, when no metadata says it directly."""
    if inputs.detected_offset is not None:
        return inputs.detected_offset, inputs.offset_evidence
    if inputs.product_date is None:
        return None, ""
    newer = inputs.product_date >= BASELINE_04_DATE
    return (BASELINE_04_OFFSET if newer else 0.0), f"product date {inputs.product_date.isoformat()}"
