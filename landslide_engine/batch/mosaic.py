"""Regional results from the scene outputs: mosaics of probability and mask, and one layer of polygons.

The mosaics are GDAL VRTs over the scenes' own GeoTIFFs (nothing is copied). Where scenes overlap, the
**clearer scene wins**: the one with the larger share of its pixels with data (clouds and swath edges masked
out), ties going to the newer product date and then to the scene id. This holds pixel by pixel: where the
winner has no data the next scene shows through, so probability, mask and ``scenes.vrt`` (which scene each
pixel comes from, numbered as in ``batch.json``) always agree.

Polygons are traced from the mask mosaic, not copied from the scenes, so a landslide that one scene's edge
cuts is one polygon where another scene covers the rest. Each polygon names the scene most of its pixels
come from (``scene``) and every scene it draws on (``scenes``).

Scenes in another CRS than most of them are warped (nearest neighbour, aligned to the pixel size) through a
VRT of their own in ``mosaic_sources/`` before they join.
"""

from __future__ import annotations

import contextlib
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

from landslide_engine.grid import Grid
from landslide_engine.options import DEFAULT_MIN_AREA_M2
from landslide_engine.outputs import (
    FLOAT_NODATA,
    MASK_NODATA,
    PolygonAttribute,
    polygon_pixels,
    write_polygons,
    write_style_sidecars,
)
from landslide_engine.pipeline import MASK_FILE, PROBABILITY_FILE
from landslide_engine.targets import atomic_output

PROBABILITY_MOSAIC = "probability.vrt"
MASK_MOSAIC = "landslides.vrt"
SCENE_MOSAIC = "scenes.vrt"
REGIONAL_POLYGONS = "landslides.gpkg"
WARPED_SOURCES = "mosaic_sources"
OVERLAP_RULE = (
    "where scenes overlap, the clearer scene wins (larger share of pixels with data), then the newer product "
    "date, then the scene id; where the winner has no data the next scene shows through"
)
SCENE_NODATA = 0  # scenes.vrt numbers scenes from 1


@dataclass(frozen=True)
class MosaicScene:
    """A mapped scene as the mosaic sees it."""

    scene_id: str
    folder: Path
    crs: str
    valid_share: float
    product_date: str | None


@dataclass(frozen=True)
class RegionalOutputs:
    probability: Path
    mask: Path
    scenes: Path
    polygons: Path
    order: list[str]  # scene ids, lowest priority first; scenes.vrt value k is order[k - 1]
    landslides: int
    landslide_area_m2: float
    crs: str


def priority_order(scenes: Sequence[MosaicScene]) -> list[MosaicScene]:
    """The scenes from the one that yields first to the one that wins (VRT sources drawn later cover earlier)."""
    return sorted(scenes, key=lambda s: (s.valid_share, s.product_date or "", s.scene_id))


def build_regional_outputs(
    scenes: Sequence[MosaicScene], out_dir: Path, min_area_m2: float = DEFAULT_MIN_AREA_M2, cancelled=None
) -> RegionalOutputs:
    """Write the three mosaics and the regional polygons into ``out_dir``, each atomically."""
    order = priority_order(scenes)
    crs = Counter(s.crs for s in scenes).most_common(1)[0][0]
    probability_sources = [_in_crs(s, PROBABILITY_FILE, crs, FLOAT_NODATA, out_dir) for s in order]
    mask_sources = [_in_crs(s, MASK_FILE, crs, MASK_NODATA, out_dir) for s in order]
    paths = {name: out_dir / name for name in (PROBABILITY_MOSAIC, MASK_MOSAIC, SCENE_MOSAIC, REGIONAL_POLYGONS)}
    _build_vrt(paths[PROBABILITY_MOSAIC], probability_sources, FLOAT_NODATA)
    _build_vrt(paths[MASK_MOSAIC], mask_sources, MASK_NODATA)
    _build_scene_vrt(paths[MASK_MOSAIC], paths[SCENE_MOSAIC])
    write_style_sidecars(paths[PROBABILITY_MOSAIC], paths[MASK_MOSAIC])  # styled in QGIS as the scenes' are
    grid = _vrt_grid(paths[MASK_MOSAIC])
    names = [s.scene_id for s in order]
    with rasterio.open(paths[SCENE_MOSAIC]) as scene_ds, atomic_output(paths[REGIONAL_POLYGONS]) as tmp:
        attribution = _SceneAttribution(scene_ds, grid, names)
        count, area = write_polygons(
            str(paths[MASK_MOSAIC]),
            str(paths[PROBABILITY_MOSAIC]),
            tmp,
            grid,
            min_area_m2,
            cancelled,
            extra=[
                PolygonAttribute("scene", "string", attribution.main_scene),
                PolygonAttribute("scenes", "string", attribution.all_scenes),
            ],
        )
    return RegionalOutputs(
        probability=paths[PROBABILITY_MOSAIC],
        mask=paths[MASK_MOSAIC],
        scenes=paths[SCENE_MOSAIC],
        polygons=paths[REGIONAL_POLYGONS],
        order=names,
        landslides=count,
        landslide_area_m2=area,
        crs=crs,
    )


@contextlib.contextmanager
def _gdal() -> Iterator[Any]:
    """GDAL with exceptions on (a failed VRT must not pass silently), its previous mode restored afterwards."""
    from osgeo import gdal

    previous = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        yield gdal
    finally:
        if not previous:
            gdal.DontUseExceptions()


def _in_crs(scene: MosaicScene, name: str, crs: str, nodata: float, out_dir: Path) -> str:
    """The scene's output ``name``, or a warped VRT of it in ``crs`` when the scene is in another CRS."""
    source = scene.folder / name
    if scene.crs == crs:
        return str(source)
    with rasterio.open(source) as src:
        resolution = abs(src.transform.a)
    warped = out_dir / WARPED_SOURCES / f"{scene.scene_id}_{Path(name).stem}.vrt"
    with atomic_output(warped) as tmp, _gdal() as gdal:
        gdal.Warp(
            tmp,
            str(source),
            format="VRT",
            dstSRS=crs,
            xRes=resolution,
            yRes=resolution,
            targetAlignedPixels=True,
            resampleAlg="near",
            srcNodata=nodata,
            dstNodata=nodata,
        )
        _relative_sources(Path(tmp), warped.parent)
    return str(warped)


def _build_vrt(path: Path, sources: Sequence[str], nodata: float) -> None:
    with atomic_output(path) as tmp, _gdal() as gdal:
        gdal.BuildVRT(tmp, list(sources), srcNodata=nodata, VRTNodata=nodata, resolution="highest").FlushCache()


def _build_scene_vrt(mask_vrt: Path, path: Path) -> None:
    """``scenes.vrt``: the mask mosaic's sources, each drawn as its number (1, 2, ...) where it has data."""
    tree = ET.parse(mask_vrt)
    band = tree.getroot().find("VRTRasterBand")
    nodata = band.find("NoDataValue") if band is not None else None
    if band is None or nodata is None:
        raise ValueError(f"{mask_vrt}: not a single-band VRT with a nodata value")
    band.set("dataType", "UInt16")
    nodata.text = str(SCENE_NODATA)
    for number, source in enumerate(band.findall("ComplexSource"), start=1):
        for tag, value in (("ScaleOffset", number), ("ScaleRatio", 0)):
            element = source.find(tag)
            if element is None:
                element = ET.SubElement(source, tag)
            element.text = str(value)
    with atomic_output(path) as tmp:
        tree.write(tmp, encoding="unicode")


def _relative_sources(vrt: Path, folder: Path) -> None:
    """Make a warped VRT name its source relative to ``folder``, so the output folder can move as a whole."""
    tree = ET.parse(vrt)
    for element in tree.getroot().iter("SourceDataset"):
        if element.get("relativeToVRT") != "1" and element.text:
            element.text = os.path.relpath(element.text, folder)
            element.set("relativeToVRT", "1")
    tree.write(vrt, encoding="unicode")


def _vrt_grid(path: Path) -> Grid:
    with rasterio.open(path) as src:
        return Grid(CRS.from_wkt(src.crs.to_wkt()), Affine(*src.transform[:6]), src.width, src.height)


class _SceneAttribution:
    """Which scenes a polygon's pixels come from, read from ``scenes.vrt`` inside the polygon."""

    def __init__(self, dataset, grid: Grid, names: Sequence[str]) -> None:
        self._dataset = dataset
        self._grid = grid
        self._names = list(names)
        self._last: tuple[dict, list[str]] | None = None  # both fields of one polygon read its pixels once

    def _scenes(self, geometry: dict) -> list[str]:
        if self._last is not None and self._last[0] is geometry:
            return self._last[1]
        counts = np.zeros(len(self._names) + 1, dtype=np.int64)
        for window, inside in polygon_pixels(geometry, self._grid):
            values = self._dataset.read(1, window=window)[inside]
            counts += np.bincount(values, minlength=counts.size)[: counts.size]
        ranked = [self._names[k - 1] for k in np.argsort(-counts[1:], kind="stable") + 1 if counts[k] > 0]
        self._last = (geometry, ranked)
        return ranked

    def main_scene(self, geometry: dict) -> str:
        """The scene most of the polygon's pixels come from."""
        ranked = self._scenes(geometry)
        return ranked[0] if ranked else ""

    def all_scenes(self, geometry: dict) -> str:
        """Every scene the polygon draws on, most pixels first, comma-separated."""
        return ",".join(self._scenes(geometry))
