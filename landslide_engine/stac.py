"""STAC items (a JSON file or an URL) of Sentinel-2 scenes, read as a product.

Earth Search, Planetary Computer and the Copernicus Data Space publish each scene as a STAC item whose assets
are the band images, usually cloud-optimised GeoTIFFs on HTTP. Each band is found by its asset key or its
``eo:bands`` entry, as Earth Search names them (``blue``, ``red``, ``nir``, ``rededge1``, ...) or as band ids
(``B02``, ``B8A``, ...), and read through GDAL's ``/vsicurl/``: only the tiles under the scene's windows are
fetched, with HTTP range requests, never the whole file.

The reflectance of a band is ``DN * scale + offset`` with ``raster:bands`` ``scale`` and ``offset``; the offset
(-0.1, i.e. -1000 DN, from baseline 04.00) becomes the product's per-band ADD_OFFSET. Earth Search's
``sentinel-2-l2a`` collection subtracts the offset from its COGs itself and says so with
``earthsearch:boa_offset_applied: true``; its ``raster:bands`` still state -0.1 (Element84/earth-search#9),
so then no offset is removed. The ``scl`` asset, when there is one, is the cloud mask.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from landslide_engine.bands import canonical_band
from landslide_engine.errors import InputError
from landslide_engine.products import Product, ProductMask

# Earth Search asset keys and eo:bands common names -> band. Earth Search calls all three red-edge bands
# "rededge" in eo:bands, so those are told apart by asset key or band id only.
COMMON_NAMES: dict[str, str] = {
    "coastal": "B1",
    "blue": "B2",
    "green": "B3",
    "red": "B4",
    "rededge1": "B5",
    "rededge2": "B6",
    "rededge3": "B7",
    "nir": "B8",
    "nir08": "B8A",
    "nir09": "B9",
    "cirrus": "B10",
    "swir16": "B11",
    "swir22": "B12",
}
_SCL_KEYS = ("scl", "SCL")
_TIMEOUT_S = 60
# GDAL must not list the "directory" of each COG on the server before reading it (a request per file), and retries
# a failed range request. Given in each /vsicurl? path, not as process-wide configuration: GDAL_DISABLE_READDIR_ON_OPEN
# set for the process would also hide local rasters' side files (.msk masks, .aux.xml) for the rest of the session.
_VSICURL_OPTIONS = "max_retry=3&empty_dir=yes"


def looks_like_stac_item(path: str | Path) -> bool:
    """A ``.json`` file or an http(s) URL that is not an image (a STAC item or an API's item URL)."""
    text = str(path)
    if text.lower().endswith(".json"):
        return True
    is_url = text.startswith(("http://", "https://"))
    return is_url and not text.lower().split("?")[0].endswith((".tif", ".tiff", ".jp2", ".vrt"))


def read_stac_item(location: str | Path) -> Product:
    """The Sentinel-2 product described by the STAC item at ``location``; InputError with one line if it is not
    one, or its bands cannot be reached."""
    text = str(location)
    item = _load_json(text)
    if item.get("type") != "Feature" or not isinstance(item.get("assets"), dict):
        raise InputError(f"{text} is not a STAC item (no 'type': 'Feature' with 'assets')")
    props = item.get("properties") or {}
    level = _level(item, props)
    bands: dict[str, str] = {}
    offsets: dict[str, float] = {}
    scales: set[float] = set()
    for key, asset in _band_assets(item["assets"]):
        band = _asset_band(key, asset)
        if band is None or band in bands:
            continue
        bands[band] = _gdal_path(asset["href"], text)
        scale, offset = _scale_offset(asset)
        scales.add(scale)
        offsets[band] = offset / scale
    if not bands:
        raise InputError(f"STAC item {text} has no Sentinel-2 band assets (blue, red, nir, ... or B02, B04, B08, ...)")
    if len(scales) > 1:
        raise InputError(f"STAC item {text}: the bands have different raster:bands scales ({sorted(scales)})")
    applied = props.get("earthsearch:boa_offset_applied")
    evidence = f"raster:bands offset/scale in STAC item {Path(text).name}"
    if applied is True:
        offsets = {}
        evidence = f"earthsearch:boa_offset_applied true in STAC item {Path(text).name}: offset already removed"
    scl = next((item["assets"][k] for k in _SCL_KEYS if k in item["assets"]), None)
    return Product(
        path=text,
        level=level,
        baseline=props.get("s2:processing_baseline"),
        quantification=1.0 / scales.pop() if scales else 10000.0,
        offsets={b: v for b, v in offsets.items() if v},
        offset_tag="raster:bands offset",
        sensing_date=_date(props.get("datetime") or props.get("start_datetime") or ""),
        metadata_file=text,
        bands=bands,
        offset_evidence=evidence,
        mask=ProductMask("SCL", _gdal_path(scl["href"], text)) if scl else None,
        granule=props.get("s2:granule_id") or item.get("id"),
        kind="STAC item",
    )


def _load_json(location: str) -> dict[str, Any]:
    try:
        if location.startswith(("http://", "https://")):
            with urllib.request.urlopen(location, timeout=_TIMEOUT_S) as response:
                raw = response.read()
        else:
            raw = Path(location).read_bytes()
    except FileNotFoundError:
        raise InputError(f"STAC item not found: {location}") from None
    except (OSError, urllib.error.URLError) as exc:
        raise InputError(f"cannot read STAC item {location}: {getattr(exc, 'reason', exc)}") from None
    try:
        item = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"STAC item {location} is not valid JSON ({exc})") from None
    if not isinstance(item, dict):
        raise InputError(f"{location} is not a STAC item (a JSON object)")
    return item


def _level(item: dict[str, Any], props: dict[str, Any]) -> str:
    text = f"{props.get('s2:product_type', '')} {item.get('collection', '')} {item.get('id', '')}".upper()
    if "2A" in text:
        return "L2A"
    if "1C" in text:
        return "L1C"
    raise InputError(f"STAC item {item.get('id')}: neither L1C nor L2A (s2:product_type, collection)")


def _band_assets(assets: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Assets that can hold one band, cloud-optimised GeoTIFFs before JPEG 2000 copies of the same band."""
    usable = [
        (key, asset)
        for key, asset in assets.items()
        if isinstance(asset, dict) and "href" in asset and len(asset.get("eo:bands") or [None]) == 1
    ]
    return sorted(usable, key=lambda kv: "jp2" in str(kv[1].get("type", "")) or kv[0].endswith("-jp2"))


def _asset_band(key: str, asset: dict[str, Any]) -> str | None:
    """The band an asset holds: by asset key (``red``, ``B04``), else its eo:bands name or common name."""
    roles = asset.get("roles") or ["data"]
    if not {"data", "reflectance"} & set(roles):
        return None
    base = key.removesuffix("-jp2")
    band = COMMON_NAMES.get(base) or canonical_band(base)
    if band:
        return band
    for entry in asset.get("eo:bands") or []:
        band = canonical_band(str(entry.get("name", ""))) or COMMON_NAMES.get(str(entry.get("common_name", "")))
        if band:
            return band
    return None


def _scale_offset(asset: dict[str, Any]) -> tuple[float, float]:
    """``raster:bands`` scale and offset of a one-band asset; DN x 1e-4 without them, as ESA's products."""
    info = (asset.get("raster:bands") or [{}])[0]
    return float(info.get("scale", 1e-4)), float(info.get("offset", 0.0))


def _gdal_path(href: str, item_location: str) -> str:
    """How GDAL reads ``href``: ``/vsicurl/`` for http(s), ``/vsis3/`` for s3://, a path relative to the item."""
    if href.startswith(("http://", "https://")):
        return _vsicurl(href)
    if href.startswith("s3://"):
        return "/vsis3/" + href.removeprefix("s3://")
    if item_location.startswith(("http://", "https://")):
        return _vsicurl(urllib.parse.urljoin(item_location, href))
    return str((Path(item_location).parent / href).resolve()) if not Path(href).is_absolute() else href


def _vsicurl(url: str) -> str:
    """GDAL's path for ``url`` with this module's options in it (GDAL's ``/vsicurl?key=value&url=`` form)."""
    return f"/vsicurl?{_VSICURL_OPTIONS}&url={urllib.parse.quote(url, safe='')}"


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text)[:10])
    except ValueError:
        return None
