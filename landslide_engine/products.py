"""Sentinel-2 SAFE products, as a folder or as the ``.zip`` the Copernicus Data Space delivers.

A product is what an analyst downloads, and it says more than its band files do: the processing level, the
processing baseline, the quantification value and, from baseline 04.00 on, a radiometric offset per band
(``RADIO_ADD_OFFSET`` in ``MTD_MSIL1C.xml``, ``BOA_ADD_OFFSET`` in ``MTD_MSIL2A.xml``). These are read from the
product metadata, never guessed from the sensing date: a scene sensed in 2020 may be reprocessed at baseline
05.00 and carry the offset.

Band images are found in the product tree (L1C ``GRANULE/*/IMG_DATA/*_B??.jp2``; L2A
``GRANULE/*/IMG_DATA/R10m|R20m|R60m/*_B??_{10,20,60}m.jp2``, each band at its finest resolution), together
with the product's own cloud mask: the L2A scene classification (``SCL_20m``), the L1C classification mask
``MSK_CLASSI_B00.jp2`` (baseline 04.00 on) or the older vector ``MSK_CLOUDS_B00.gml``.

A zip is never unpacked: its table of contents and metadata are read with :mod:`zipfile`, and its images
through GDAL's ``/vsizip/`` virtual file system, so a 1 GB product costs no disk space.
"""

from __future__ import annotations

import datetime as dt
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from xml.etree import ElementTree

from landslide_engine.bands import canonical_band
from landslide_engine.errors import InputError

METADATA_FILES = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}
# Products in the format before December 2016 name it S2A_OPER_MTD_SAFL1C_PDMC_....xml.
_OLD_METADATA_FILE = re.compile(r"^S2[A-D]_OPER_MTD_SAF(L1C|L2A)_.*\.xml$", re.IGNORECASE)
_L1C_IMAGE = re.compile(r"(?:^|/)GRANULE/[^/]+/IMG_DATA/[^/]*_(B(?:0[1-9]|1[0-2]|8A))\.jp2$", re.IGNORECASE)
_L2A_IMAGE = re.compile(
    r"(?:^|/)GRANULE/[^/]+/IMG_DATA/R(10|20|60)m/[^/]*_(B(?:0[1-9]|1[0-2]|8A))_(10|20|60)m\.jp2$", re.IGNORECASE
)
_SCL_IMAGE = re.compile(r"(?:^|/)GRANULE/[^/]+/IMG_DATA/R(20|60)m/[^/]*_SCL_(20|60)m\.jp2$", re.IGNORECASE)
_CLASSI_MASK = re.compile(r"(?:^|/)GRANULE/[^/]+/QI_DATA/MSK_CLASSI_B00\.jp2$", re.IGNORECASE)
_GML_CLOUDS = re.compile(r"(?:^|/)GRANULE/[^/]+/QI_DATA/[^/]*MSK_CLOUDS_B00\.gml$", re.IGNORECASE)
_GRANULE = re.compile(r"(?:^|/)GRANULE/([^/]+)/")


@dataclass(frozen=True)
class ProductMask:
    """The product's own cloud mask: ``kind`` is ``SCL``, ``MSK_CLASSI`` or ``GML``; ``path`` a GDAL path.

    ``text`` holds a GML mask's XML, read with the metadata (GDAL cannot rasterize it without OGR). ``band``
    is the band of ``path`` that holds the mask (an SCL or QA60 band inside an Earth Engine export).
    """

    kind: str
    path: str
    text: str | None = None
    band: int = 1


@dataclass(frozen=True)
class Product:
    """What a product (a SAFE folder or zip, a STAC item) holds: band images (GDAL paths) and what its metadata
    says about them.

    ``offsets`` are the metadata's ``*_ADD_OFFSET`` per band as written (-1000 from baseline 04.00); reflectance
    is ``(DN + offset) / quantification``. Bands without an entry have no offset (products before 04.00).
    ``offset_evidence`` says where the offsets come from, for run.json.
    """

    path: str
    level: str
    baseline: str | None
    quantification: float
    offsets: dict[str, float]
    offset_tag: str
    sensing_date: dt.date | None
    metadata_file: str
    bands: dict[str, str]
    offset_evidence: str
    mask: ProductMask | None = None
    granule: str | None = None
    kind: str = "SAFE product"

    @property
    def name(self) -> str:
        return Path(self.path.rstrip("/")).name

    def describe(self) -> str:
        """One line for the analyst: level, baseline and date."""
        date = self.sensing_date.isoformat() if self.sensing_date else "date unknown"
        baseline = f"baseline {self.baseline}" if self.baseline else "baseline unknown"
        return f"{self.level}, {baseline}, sensed {date}"

    def to_report(self) -> dict:
        """The product's facts as ``run.json`` records them."""
        return {
            "path": self.path,
            "kind": self.kind,
            "level": self.level,
            "processing_baseline": self.baseline,
            "sensing_date": self.sensing_date.isoformat() if self.sensing_date else None,
            "quantification_value": self.quantification,
            "offsets": {"tag": self.offset_tag, "values": dict(self.offsets)},
            "metadata_file": self.metadata_file,
            "granule": self.granule,
            "cloud_mask": {"kind": self.mask.kind, "path": self.mask.path} if self.mask else None,
        }


class _Tree:
    """The files of a product folder or zip, by path relative to its top, and how GDAL reaches each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        if path.is_dir():
            self.names = [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]
        else:
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise InputError(f"cannot read Sentinel-2 product {path}: {exc}") from None
            self.names = [n for n in self._zip.namelist() if not n.endswith("/")]

    def read(self, name: str) -> bytes:
        if self._zip is not None:
            return self._zip.read(name)
        return (self.path / name).read_bytes()

    def gdal_path(self, name: str) -> str:
        if self._zip is not None:
            return f"/vsizip/{self.path.resolve()}/{name}"
        return str(self.path / name)

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


def looks_like_product(path: str | Path) -> bool:
    """Whether ``path`` is meant as a SAFE product: a ``.SAFE`` folder, a folder with an ``MTD_MSIL*.xml``,
    that metadata file itself, or a ``.zip``."""
    p = Path(str(path))
    if metadata_level(p.name) or p.suffix.lower() == ".zip":
        return True
    if p.is_dir():
        return p.suffix.upper() == ".SAFE" or any(metadata_level(child.name) for child in p.iterdir())
    return False


def metadata_level(name: str) -> str | None:
    """``L1C``/``L2A`` when ``name`` is a product metadata file's name (``MTD_MSIL1C.xml``, or the older
    ``S2A_OPER_MTD_SAFL1C_....xml``), else None."""
    if name in METADATA_FILES:
        return METADATA_FILES[name]
    match = _OLD_METADATA_FILE.match(name)
    return match.group(1).upper() if match else None


def open_product(path: str | Path) -> Product:
    """Read the product at ``path`` (see :func:`looks_like_product`); InputError with one line if it is not
    a usable Sentinel-2 product."""
    p = Path(str(path))
    if metadata_level(p.name):
        p = p.parent
    if not p.exists():
        raise InputError(f"Sentinel-2 product not found: {p}")
    tree = _Tree(p)
    try:
        return _read_product(tree, str(path))
    finally:
        tree.close()


def _read_product(tree: _Tree, given: str) -> Product:
    metadata = _top_metadata(tree.names)
    if metadata is None:
        raise InputError(f"{given} is not a Sentinel-2 product: no MTD_MSIL1C.xml or MTD_MSIL2A.xml in it")
    top = str(PurePosixPath(metadata).parent)
    inside = [n for n in tree.names if top == "." or n.startswith(top + "/")]
    try:
        root = ElementTree.fromstring(tree.read(metadata))
    except ElementTree.ParseError as exc:
        raise InputError(f"cannot read {given}: {PurePosixPath(metadata).name} is not valid XML ({exc})") from None
    facts = _metadata_facts(root)
    level = (
        _level(facts.get("PROCESSING_LEVEL", ""), facts.get("PRODUCT_TYPE", ""))
        or metadata_level(PurePosixPath(metadata).name)
        or "L1C"
    )
    bands, granule = _band_images(inside, level)
    if not bands:
        raise InputError(
            f"{given} holds {PurePosixPath(metadata).name} but no band images (GRANULE/*/IMG_DATA/*.jp2): "
            f"the download is incomplete"
        )
    offset_tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    quantification_tag = "BOA_QUANTIFICATION_VALUE" if level == "L2A" else "QUANTIFICATION_VALUE"
    quantification = _number(facts.get(quantification_tag) or facts.get("QUANTIFICATION_VALUE"), 10000.0)
    if not quantification > 0:
        raise InputError(f"{given}: {quantification_tag} {quantification:g} in {metadata} is not positive")
    offsets = _offsets(root, offset_tag, given)
    name = PurePosixPath(metadata).name
    baseline = facts.get("PROCESSING_BASELINE")
    common = max(set(offsets.values()), key=list(offsets.values()).count) if offsets else 0.0
    evidence = f"{offset_tag} {common:g} in {name}" if offsets else f"no {offset_tag} in {name}"
    return Product(
        path=given,
        level=level,
        baseline=baseline,
        quantification=quantification,
        offsets=offsets,
        offset_tag=offset_tag,
        sensing_date=_date(facts.get("PRODUCT_START_TIME") or facts.get("DATATAKE_SENSING_START") or ""),
        metadata_file=tree.gdal_path(metadata),
        offset_evidence=f"{evidence}, baseline {baseline}",
        bands={band: tree.gdal_path(name) for band, name in bands.items()},
        mask=_product_mask(tree, inside, level),
        granule=granule,
    )


def _top_metadata(names: Iterable[str]) -> str | None:
    """The product metadata file nearest the top of the tree."""
    found = [n for n in names if metadata_level(PurePosixPath(n).name)]
    return min(found, key=lambda n: n.count("/")) if found else None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _metadata_facts(root: ElementTree.Element) -> dict[str, str]:
    """Text of the first element of each name (namespaces dropped)."""
    facts: dict[str, str] = {}
    for element in root.iter():
        name = _local(element.tag)
        if name not in facts and element.text and element.text.strip():
            facts[name] = element.text.strip()
    return facts


def _level(processing_level: str, product_type: str) -> str | None:
    text = f"{processing_level} {product_type}".upper()
    if "LEVEL-2A" in text or "2A" in product_type.upper():
        return "L2A"
    if "LEVEL-1C" in text or "1C" in product_type.upper():
        return "L1C"
    return None


def _number(text: str | None, default: float) -> float:
    if text is None:
        return default
    try:
        return float(text)
    except ValueError:
        return default


def _offsets(root: ElementTree.Element, tag: str, given: str) -> dict[str, float]:
    """``tag`` per band, by physical band name (``band_id`` indexes the Spectral_Information list)."""
    physical: dict[str, str] = {}
    for element in root.iter():
        if _local(element.tag) == "Spectral_Information":
            band = canonical_band(element.get("physicalBand", ""))
            band_id = element.get("bandId")
            if band and band_id is not None:
                physical[band_id] = band
    offsets: dict[str, float] = {}
    for element in root.iter():
        if _local(element.tag) != tag:
            continue
        band_id = element.get("band_id", "")
        band = physical.get(band_id) or (canonical_band(f"B{int(band_id) + 1}") if band_id.isdigit() else None)
        try:
            value = float((element.text or "").strip())
        except ValueError:
            raise InputError(f"{given}: {tag} of band_id {band_id} is not a number") from None
        if band is not None:
            offsets[band] = value
    return offsets


def _date(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        return None


def _band_images(names: list[str], level: str | None) -> tuple[dict[str, str], str | None]:
    """Band -> member name of its image (the finest resolution for L2A), and the granule they are in."""
    chosen: dict[str, tuple[int, str]] = {}
    for name in names:
        if level == "L2A":
            match = _L2A_IMAGE.search(name)
            if not match:
                continue
            resolution, band = int(match.group(1)), canonical_band(match.group(2))
        else:
            match = _L1C_IMAGE.search(name)
            if not match:
                continue
            resolution, band = 0, canonical_band(match.group(1))
        if band is not None and (band not in chosen or resolution < chosen[band][0]):
            chosen[band] = (resolution, name)
    granules = {m.group(1) for _, name in chosen.values() if (m := _GRANULE.search(name))}
    if len(granules) > 1:
        raise InputError(
            f"the product holds {len(granules)} granules ({', '.join(sorted(granules))}); "
            f"give the band files of one granule instead"
        )
    return {band: name for band, (_, name) in chosen.items()}, (granules.pop() if granules else None)


def _product_mask(tree: _Tree, names: list[str], level: str | None) -> ProductMask | None:
    """The product's cloud mask: SCL at its finest resolution (L2A), else MSK_CLASSI, else the GML mask."""
    if level == "L2A":
        scl = sorted((int(m.group(1)), n) for n in names if (m := _SCL_IMAGE.search(n)))
        if scl:
            return ProductMask("SCL", tree.gdal_path(scl[0][1]))
    for pattern, kind in ((_CLASSI_MASK, "MSK_CLASSI"), (_GML_CLOUDS, "GML")):
        found = sorted(n for n in names if pattern.search(n))
        if found:
            text = tree.read(found[0]).decode("utf-8", errors="replace") if kind == "GML" else None
            return ProductMask(kind, tree.gdal_path(found[0]), text)
    return None
