"""Put the files the engine wrote where Processing asked for them.

The engine writes fixed names (GeoTIFF, GeoPackage) into one work folder. Processing
destinations can be anywhere and in any format the user picked in the output widget,
so each file is moved when the format matches and converted with GDAL/OGR otherwise; either way
nothing half-written is ever left under the final name.
A raster's QGIS style sidecar (``.qml``) follows it, so the output opens styled wherever it went, and the run
report (``run.json``) goes beside the probability raster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from osgeo import gdal
from qgis.core import QgsProcessingException

from landslide_engine.outputs import POLYGON_LAYER
from landslide_engine.targets import (
    TEMP_TAG,
    check_distinct,
    check_output_file,
    check_output_folder,
    gdal_checked,
    place_file,
)
from landslide_qgis.toolbox.engine_bridge import engine_errors


def check_destinations(destinations: list[str], inputs: list[str | None]) -> None:
    """Before a run: every destination a file that can be written, none an input, no two the same file.

    Otherwise the second of two equal destinations would silently replace the first, and a folder given as a
    destination would receive the file inside it.
    """
    with engine_errors():
        for dest in destinations:
            check_output_file(dest, [i for i in inputs if i])
        check_distinct(destinations, "outputs")


def place_raster(src: Path, dest: str) -> str:
    """Move or convert the GeoTIFF ``src`` (and its ``.qml`` style) to ``dest``; returns ``dest``."""
    style = src.with_suffix(".qml")
    if Path(dest).suffix.lower() in (".tif", ".tiff"):
        _move(src, dest)
    else:
        _convert(dest, lambda tmp: gdal.Translate(tmp, str(src)))
        src.unlink()
    if style.is_file():
        _move(style, str(Path(dest).with_suffix(".qml")))
    return dest


def report_path(raster_dest: str) -> str:
    """Where a run's report goes: beside its probability raster, ``probability.tif`` -> ``probability.run.json``."""
    return str(Path(raster_dest).with_suffix(".run.json"))


def place_report(src: Path, raster_dest: str) -> str:
    """Move the run report ``src`` (run.json) beside ``raster_dest``; returns its new path.

    The engine writes it into Processing's temporary folder, which QGIS and qgis_process empty when they end,
    and it is the record of what the run read (the product's baseline and offsets, the cloud mask's shares).
    """
    return _move(src, report_path(raster_dest))


def place_vector(src: Path, dest: str) -> str:
    """Move or convert the GeoPackage ``src`` to ``dest`` (any OGR format QGIS offered); returns ``dest``."""
    if Path(dest).suffix.lower() == ".gpkg":
        return _move(src, dest)
    # the polygons only: not the GeoPackage's own style table
    _convert(dest, lambda tmp: gdal.VectorTranslate(tmp, str(src), layers=[POLYGON_LAYER]))
    src.unlink()
    return dest


def _move(src: Path, dest: str) -> str:
    """Atomically, also across file systems (where ``shutil.move`` copies in place and can leave half a file)."""
    with engine_errors():
        place_file(src, dest)
    return dest


def _convert(dest: str, translate: Callable[[str], object]) -> None:
    """Run ``translate(path)`` into a temporary folder beside ``dest``, then move what it wrote into place.

    A format may write several files (a shapefile's .shp, .shx, .dbf, .prj): all are written first, so a
    failed conversion leaves nothing under the final name.
    """
    target = Path(dest)
    with engine_errors():
        folder = check_output_folder(target.parent)
        folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.stem}{TEMP_TAG}.{os.getpid()}.", dir=folder))
    try:
        with engine_errors(), gdal_checked(dest), _gdal_errors(dest):  # the dataset is closed inside gdal_checked
            if translate(str(staging / target.name)) is None:
                raise RuntimeError(gdal.GetLastErrorMsg() or "GDAL could not write it")
        for written in sorted(staging.iterdir()):
            _move(written, str(folder / written.name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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
