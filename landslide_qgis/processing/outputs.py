"""Put the files the engine wrote where Processing asked for them.

The engine writes fixed names (GeoTIFF, GeoPackage) into one work folder. Processing
destinations can be anywhere and in any format the user picked in the output widget,
so each file is moved when the format matches and converted with GDAL/OGR otherwise.
A raster's QGIS style sidecar (``.qml``) follows it, so the output opens styled wherever it went.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

from osgeo import gdal
from qgis.core import QgsProcessingException

from landslide_engine.outputs import POLYGON_LAYER


def place_raster(src: Path, dest: str) -> str:
    """Move or convert the GeoTIFF ``src`` (and its ``.qml`` style) to ``dest``; returns ``dest``."""
    style = src.with_suffix(".qml")
    if Path(dest).suffix.lower() in (".tif", ".tiff"):
        _move(src, dest)
    else:
        with _gdal_errors(dest):
            gdal.Translate(dest, str(src))
        src.unlink()
    if style.is_file():
        shutil.move(str(style), str(Path(dest).with_suffix(".qml")))
    return dest


def place_vector(src: Path, dest: str) -> str:
    """Move or convert the GeoPackage ``src`` to ``dest`` (any OGR format QGIS offered); returns ``dest``."""
    if Path(dest).suffix.lower() == ".gpkg":
        return _move(src, dest)
    with _gdal_errors(dest):  # the polygons only: not the GeoPackage's own style table
        gdal.VectorTranslate(dest, str(src), layers=[POLYGON_LAYER])
    src.unlink()
    return dest


def _move(src: Path, dest: str) -> str:
    Path(dest).parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(src), dest)
    return dest


@contextlib.contextmanager
def _gdal_errors(dest: str) -> Iterator[None]:
    """Raise GDAL failures as QgsProcessingException naming ``dest``, restoring GDAL's error mode."""
    previous = gdal.GetUseExceptions()
    gdal.UseExceptions()
    try:
        yield
    except RuntimeError as exc:
        raise QgsProcessingException(f"cannot write output {dest}: {exc}") from exc
    finally:
        if not previous:
            gdal.DontUseExceptions()
