"""Clouds, cloud shadows and snow as no data: bright clouds are exactly what a landslide model calls landslide.

The mask comes from the product itself (:class:`~landslide_engine.products.ProductMask`):

* L2A: the scene classification ``SCL`` (20 m), read at full resolution with nearest neighbour on the grid.
  The JPEG 2000 file is opened with ``OVERVIEW_LEVEL=NONE``: a reduced-resolution read of a class raster
  mixes codes into classes that do not exist.
* L1C from baseline 04.00: ``MSK_CLASSI_B00.jp2`` (60 m; bands: opaque clouds, cirrus, snow).
* Older L1C (and L2A without SCL): the vector ``MSK_CLOUDS_B00.gml`` (OPAQUE and CIRRUS polygons),
  rasterized on the grid.
* Earth Engine exports: their ``SCL`` band (L2A), else their ``QA60`` band (bit 10 opaque clouds, bit 11
  cirrus: the GML masks rasterized by Earth Engine).

One option list chooses what is masked, in SCL codes (``options.SCL_CLASSES``; by default
``options.DEFAULT_MASK_CLASSES``: cloud shadows (3), clouds (8, 9), cirrus (10) and snow (11)). The L1C masks
know fewer classes; each is masked when any SCL code it stands for is chosen (:data:`L1C_MASK_CLASSES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from xml.etree import ElementTree

import numpy as np
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.features import rasterize
from rasterio.warp import transform_geom
from rasterio.windows import Window

from landslide_engine.errors import InputError
from landslide_engine.grid import Grid
from landslide_engine.options import DEFAULT_MASK_CLASSES, SCL_CLASSES
from landslide_engine.products import ProductMask
from landslide_engine.warp import GridWarp

# The classes of the L1C masks, the SCL codes that select each, and the MSK_CLASSI band that holds it.
L1C_MASK_CLASSES: dict[str, tuple[int, ...]] = {"opaque clouds": (8, 9), "cirrus": (10,), "snow": (11,)}
_MSK_CLASSI_BANDS = {"opaque clouds": 1, "cirrus": 2, "snow": 3}
_GML_TYPES = {"OPAQUE": "opaque clouds", "CIRRUS": "cirrus"}
_QA60_BITS = {"opaque clouds": 1 << 10, "cirrus": 1 << 11}
_SHARE_BLOCK_ROWS = 512


def parse_mask_classes(value: str | Iterable[int | str] | None) -> tuple[int, ...]:
    """SCL codes to mask from an option: None -> the default; ``"none"`` -> nothing; ``"3,8,9"`` or a list."""
    if value is None:
        return DEFAULT_MASK_CLASSES
    items = re.split(r"[\s,]+", value.strip()) if isinstance(value, str) else [str(v).strip() for v in value]
    items = [i for i in items if i]
    if [i.lower() for i in items] in ([], ["none"]):
        return ()
    codes = []
    for item in items:
        if not item.isdigit() or int(item) not in SCL_CLASSES:
            choices = ", ".join(f"{code} {name}" for code, name in SCL_CLASSES.items())
            raise InputError(f"mask class {item!r} is not an SCL class code ({choices}) or 'none'")
        codes.append(int(item))
    return tuple(sorted(set(codes)))


def masked_labels(kind: str, classes: Sequence[int]) -> list[str]:
    """The names of the classes of a ``kind`` mask that ``classes`` selects."""
    if kind == "SCL":
        return [SCL_CLASSES[c] for c in classes]
    names = L1C_MASK_CLASSES if kind == "MSK_CLASSI" else {k: L1C_MASK_CLASSES[k] for k in _GML_TYPES.values()}
    return [name for name, codes in names.items() if set(codes) & set(classes)]


class MaskReader:
    """Which pixels of a window of ``grid`` are no data, and why: ``by_class`` gives each masked class's pixels."""

    grid: Grid
    labels: list[str]

    def by_class(self, window: Window) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the reader holds open."""

    def read(self, window: Window) -> np.ndarray:
        """(h, w) bool: pixels of ``window`` in any masked class."""
        masked = np.zeros((int(window.height), int(window.width)), dtype=bool)
        for pixels in self.by_class(window).values():
            masked |= pixels
        return masked

    def shares(self) -> dict[str, float]:
        """Share of the grid's pixels in each masked class, and ``"all masked"``: one pass over the grid."""
        counts = dict.fromkeys(self.labels, 0)
        total = 0
        grid = self.grid
        for r0 in range(0, grid.height, _SHARE_BLOCK_ROWS):
            window = Window(0, r0, grid.width, min(_SHARE_BLOCK_ROWS, grid.height - r0))
            by_class = self.by_class(window)
            masked = np.zeros((int(window.height), grid.width), dtype=bool)
            for name, pixels in by_class.items():
                counts[name] += int(pixels.sum())
                masked |= pixels
            total += int(masked.sum())
        size = grid.width * grid.height
        return {**{name: count / size for name, count in counts.items()}, "all masked": total / size}


class CloudMask(MaskReader):
    """One product mask on ``grid``: which pixels of a window to treat as no data, and why.

    Opens its own dataset, so each reader thread's stack has one (GDAL handles are not shared between threads).
    """

    def __init__(self, mask: ProductMask, grid: Grid, classes: Sequence[int]) -> None:
        self.mask = mask
        self.grid = grid
        self.classes = tuple(classes)
        self.labels = masked_labels(mask.kind, self.classes)
        self._src = None
        self._warp: GridWarp | None = None
        self._polygons: dict[str, list[dict]] = {}
        if mask.kind == "GML":
            self._polygons = _gml_polygons(mask, grid.crs)
        elif self.labels:
            import rasterio
            from rasterio.errors import RasterioIOError

            try:
                self._src = rasterio.open(mask.path, OVERVIEW_LEVEL="NONE")
            except RasterioIOError as exc:
                raise InputError(f"cannot read the {mask.kind} cloud mask {mask.path}: {exc}") from None
            self._warp = GridWarp(self._src, grid, Resampling.nearest, src_nodata=None)

    def close(self) -> None:
        if self._warp is not None:
            self._warp.close()
        if self._src is not None:
            self._src.close()

    def by_class(self, window: Window) -> dict[str, np.ndarray]:
        """For each masked class, the (h, w) bool array of its pixels in ``window``."""
        if not self.labels:
            return {}
        if self.mask.kind == "GML":
            return self._rasterized(window)
        warp, src = self._warp, self._src
        if warp is None or src is None:
            return {}
        if self.mask.kind == "SCL":
            codes = warp.read(self.mask.band, window)
            return {SCL_CLASSES[c]: codes == c for c in self.classes}
        if self.mask.kind == "QA60":
            bits = np.nan_to_num(warp.read(self.mask.band, window), nan=0.0).astype(np.uint16)
            return {name: (bits & _QA60_BITS[name]) > 0 for name in self.labels}
        bands = [_MSK_CLASSI_BANDS[name] for name in self.labels]
        flags = warp.read([b for b in bands if b <= src.count], window)
        return {name: np.nan_to_num(f, nan=0.0) > 0 for name, f in zip(self.labels, flags, strict=False)}

    def _rasterized(self, window: Window) -> dict[str, np.ndarray]:
        """The GML mask's polygons of each masked class burnt into ``window`` (pixel centres inside)."""
        shape = (int(window.height), int(window.width))
        transform = self.grid.window_transform(window)
        result = {}
        for name in self.labels:
            polygons = self._polygons.get(name, [])
            result[name] = (
                rasterize(polygons, out_shape=shape, transform=transform, fill=0, default_value=1, dtype="uint8") > 0
                if polygons
                else np.zeros(shape, dtype=bool)
            )
        return result


def describe_shares(kind: str, shares: dict[str, float]) -> str:
    """One line for the analyst: how much of the scene each class made no data."""
    parts = ", ".join(f"{name} {100 * share:.1f} %" for name, share in shares.items() if name != "all masked")
    return f"{100 * shares['all masked']:.1f} % of the scene masked as no data by the {kind} cloud mask ({parts})"


def _gml_polygons(mask: ProductMask, crs: CRS) -> dict[str, list[dict]]:
    """The OPAQUE and CIRRUS polygons of a GML cloud mask as GeoJSON-like dicts in ``crs``, by class name."""
    try:
        root = ElementTree.fromstring(mask.text or "")
    except ElementTree.ParseError as exc:
        raise InputError(f"cannot read the cloud mask {mask.path}: not valid XML ({exc})") from None
    source_crs = _gml_crs(root)
    polygons: dict[str, list[dict]] = {}
    for feature in (e for e in root.iter() if _local(e.tag) == "MaskFeature"):
        kind = next((e.text.strip() for e in feature.iter() if _local(e.tag) == "maskType" and e.text), "")
        name = _GML_TYPES.get(kind.upper())
        if name is None:
            continue
        for polygon in (e for e in feature.iter() if _local(e.tag) == "Polygon"):
            rings = [_pos_list(ring) for ring in polygon.iter() if _local(ring.tag) == "posList"]
            if not rings:
                continue
            if source_crs is None:
                raise InputError(f"the cloud mask {mask.path} has polygons but no srsName")
            geometry = {"type": "Polygon", "coordinates": rings}
            if source_crs != crs:
                geometry = transform_geom(source_crs, crs, geometry)
            polygons.setdefault(name, []).append(geometry)
    return polygons


def _gml_crs(root: ElementTree.Element) -> CRS | None:
    """The CRS of the first ``srsName`` (``urn:ogc:def:crs:EPSG:8.7:32633`` -> EPSG:32633); None without one."""
    srs = next((e.get("srsName") for e in root.iter() if e.get("srsName")), None)
    if srs is None:
        return None
    code = re.search(r"(\d+)\s*$", srs)
    return CRS.from_epsg(int(code.group(1))) if code else CRS.from_user_input(srs)


def _pos_list(element: ElementTree.Element) -> list[tuple[float, float]]:
    values = [float(v) for v in (element.text or "").split()]
    dim = int(element.get("srsDimension", "2"))
    return [(values[i], values[i + 1]) for i in range(0, len(values) - dim + 1, dim)]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]
