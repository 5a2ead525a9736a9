"""Several DEM tiles read as one DEM: a GDAL VRT mosaic built on the fly, in memory.

Analysts download DEMs as tiles: Copernicus GLO-30 (1° tiles), ALOS AW3D30, SRTM. The mosaic is a VRT in
GDAL's ``/vsimem/`` (nothing written to disk) whose sources are the tiles, so the engine reads it like any
single DEM and only the tiles under a window are decoded.

The tiles' own conventions are kept:

* GLO-30 tiles are pixel-is-point (``AREA_OR_POINT=Point``): pixel centres sit on whole arc-seconds, so the
  tile's corner lies half a pixel outside the whole degree (-118.000139°). GDAL already reports the
  corner-based transform of such a file, and the mosaic places each tile by that transform; it adds no
  second half-pixel shift.
* Above 60°N GLO-30 widens the longitude spacing (2″ × 1″ from 60° to 70°, more further north). The mosaic
  takes the finest spacing of its tiles in each direction; a coarser tile is interpolated bilinearly into it.
* Each tile's nodata value (NaN in GLO-30 voids, -32768 in SRTM and AW3D30 Int16 tiles) stays the tile's:
  those pixels do not cover a neighbour's data, and the mosaic's own nodata is NaN (Float32).

Tiles must share one CRS; a tile set that does not is refused with one line.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from pathlib import Path
from xml.sax.saxutils import escape

from landslide_engine.errors import InputError
from landslide_engine.rasterio_io import open_raster

_MOSAICS: dict[str, object] = {}  # VRT text hash -> the MemoryFile holding it, alive for the process


def dem_files(dem: str | Sequence[str]) -> list[str]:
    """The DEM file(s) of a request: one path or a list of tiles."""
    files = [dem] if isinstance(dem, str) else [str(d) for d in dem]
    if not files:
        raise InputError("no DEM given")
    return files


def dem_path(dem: str | Sequence[str]) -> str:
    """One GDAL path for the DEM: the file itself, or a mosaic VRT of the tiles when several are given."""
    files = dem_files(dem)
    if len(files) == 1:
        return files[0]
    return _memory_vrt(mosaic_vrt(files))


def mosaic_vrt(tiles: Sequence[str]) -> str:
    """The VRT XML of ``tiles`` mosaicked at their finest spacing, later tiles over earlier ones."""
    infos = []
    for path in tiles:
        with open_raster(path, what="DEM tile") as src:
            if src.crs is None:
                raise InputError(f"DEM tile {path} has no coordinate reference system")
            if src.transform.b or src.transform.d:
                raise InputError(f"DEM tile {path} has a rotated grid; warp it to a north-up grid first")
            infos.append((path, src.crs, src.transform, src.width, src.height, src.nodata))
    first_crs = infos[0][1]
    for path, crs, *_ in infos[1:]:
        if crs != first_crs:
            raise InputError(
                f"DEM tiles {infos[0][0]} and {path} are in different CRSs ({first_crs.to_string()}, "
                f"{crs.to_string()}); give tiles in one CRS"
            )
    xres = min(abs(t.a) for _, _, t, *_ in infos)
    yres = min(abs(t.e) for _, _, t, *_ in infos)
    left = min(t.c for _, _, t, *_ in infos)
    top = max(t.f for _, _, t, *_ in infos)
    right = max(t.c + w * abs(t.a) for _, _, t, w, _, _ in infos)
    bottom = min(t.f - h * abs(t.e) for _, _, t, _, h, _ in infos)
    width, height = _pixels((right - left) / xres), _pixels((top - bottom) / yres)
    sources = "".join(_source(path, t, w, h, nodata, left, top, xres, yres) for path, _, t, w, h, nodata in infos)
    return (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">'
        f"<SRS>{escape(first_crs.to_wkt())}</SRS>"
        f"<GeoTransform>{left!r}, {xres!r}, 0, {top!r}, 0, {-yres!r}</GeoTransform>"
        f'<VRTRasterBand dataType="Float32" band="1"><NoDataValue>nan</NoDataValue>{sources}</VRTRasterBand>'
        f"</VRTDataset>"
    )


def _pixels(size: float) -> int:
    """Whole pixels of a span that should be whole up to float error."""
    return max(1, math.ceil(size - 1e-6))


def _source(path, transform, width, height, nodata, left, top, xres, yres) -> str:
    dst = (
        f'<DstRect xOff="{(transform.c - left) / xres!r}" yOff="{(top - transform.f) / yres!r}" '
        f'xSize="{width * abs(transform.a) / xres!r}" ySize="{height * abs(transform.e) / yres!r}"/>'
    )
    nodata_tag = "" if nodata is None else f"<NODATA>{'nan' if math.isnan(nodata) else repr(float(nodata))}</NODATA>"
    return (
        '<ComplexSource resampling="bilinear">'
        f'<SourceFilename relativeToVRT="0">{escape(_absolute(path))}</SourceFilename><SourceBand>1</SourceBand>'
        f'<SrcRect xOff="0" yOff="0" xSize="{width}" ySize="{height}"/>{dst}{nodata_tag}'
        "</ComplexSource>"
    )


def _absolute(path: str) -> str:
    """``path`` as the VRT must name it: absolute, as the VRT lives in /vsimem/ (GDAL virtual paths as given)."""
    return path if path.startswith("/vsi") or "://" in path else str(Path(path).resolve())


def _memory_vrt(xml: str) -> str:
    """A ``/vsimem/`` path holding ``xml`` (one per distinct mosaic, kept for the process's life)."""
    from rasterio import MemoryFile

    key = hashlib.sha256(xml.encode()).hexdigest()
    if key not in _MOSAICS:
        _MOSAICS[key] = MemoryFile(xml.encode(), filename=f"dem_mosaic_{key[:12]}.vrt")
    return _MOSAICS[key].name  # type: ignore[attr-defined]
