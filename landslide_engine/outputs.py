"""Writing the results: probability and mask GeoTIFFs, landslide polygons, run report, QGIS styles.

The rasters are written a row of blocks of one column band at a time as the scene is processed, each
compressed and released as soon as it is complete. Polygons are
traced by GDAL straight from the mask file (``rasterio.features.shapes`` on a
dataset band), so even a huge mask is never loaded whole; each polygon's area
and probability statistics come from a window around it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.features import geometry_mask, shapes
from rasterio.windows import Window

from landslide_engine.errors import Cancelled, OutputError, writing
from landslide_engine.grid import Grid
from landslide_engine.targets import gdal_checked, gdal_write_error

# The nodata value of every float raster the engine writes: probability, model-input stack, slope.
FLOAT_NODATA = -9999.0
MASK_NODATA = 255
POLYGON_LAYER = "landslides"
# The one definition of how results look in QGIS, used by the sidecars below and by the plugin's layers.
STYLES = Path(__file__).resolve().parent / "qgis_styles"
PROBABILITY_STYLE = STYLES / "probability.qml"
MASK_STYLE = STYLES / "mask.qml"
POLYGONS_STYLE = STYLES / "polygons.qml"
_BLOCK = 256
_STATS_BLOCK_ROWS = 256  # rows of a polygon's bounding window read at a time for its statistics


def raster_profile(grid: Grid, dtype: str, nodata: float, count: int = 1) -> dict[str, Any]:
    """A tiled, compressed GeoTIFF profile on ``grid``."""
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": count,
        "dtype": dtype,
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": nodata,
        "compress": "deflate",
        "BIGTIFF": "IF_SAFER",
    }
    if grid.width >= _BLOCK and grid.height >= _BLOCK:
        profile.update(tiled=True, blockxsize=_BLOCK, blockysize=_BLOCK)
    return profile


def _float_compression() -> list[str]:
    """Creation options for the probability raster: ZSTD at level 1 where this GDAL has ZSTD (every QGIS 3 build
    and GDAL from 2.3 read it), else deflate at level 1; no predictor.

    ZSTD writes about twice as fast as deflate. The floating-point predictor (``PREDICTOR=3``) is left out:
    a trained model's probabilities are mostly exact zeros and, at int8, few distinct values, which ZSTD packs
    better as they are; on the built-in model's output the predictor doubled the CPU of the write (0.22-0.31
    against 0.11-0.17 ms per 128 px patch) and made the file as large or 2.5 times larger. It pays only on
    smooth, noisy values such as a random-weight model's (21 against 26 MB, the same CPU). See
    ``bench/optimization_log.md``. The values are the same either way.
    """
    from osgeo import gdal

    creation = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    if "ZSTD" in creation:
        return ["COMPRESS=ZSTD", "ZSTD_LEVEL=1"]
    return ["COMPRESS=DEFLATE", "ZLEVEL=1"]


class _BlockRowWriter:
    """One single-band GeoTIFF written through GDAL in whole rows of blocks, each dropped from memory once written.

    Rasterio leaves written blocks in GDAL's block cache until the file is closed, so a scene's output fills
    the cache (up to ``GDAL_CACHEMAX``) and pushes out the source tiles still being read. Here rows are
    gathered in a buffer of one row of blocks until it is complete, then written and flushed, which compresses
    those blocks and frees them: memory holds one row of output blocks of one column band, whatever the scene
    size, and no block is compressed twice. The caller fills the buffer in place (:meth:`rows`), so a row is
    copied once on its way to GDAL, into memory that is used again for every row of blocks (fresh memory costs
    a page fault per 4 KiB). Column bands start on block boundaries (:attr:`block_width`) and are written one
    after another, each from the top row to the bottom one.
    """

    def __init__(self, path: str, grid: Grid, dtype: str, nodata: float, description: str) -> None:
        from osgeo import gdal

        options = [*(_float_compression() if dtype == "float32" else ["COMPRESS=DEFLATE"]), "BIGTIFF=IF_SAFER"]
        if grid.width >= _BLOCK and grid.height >= _BLOCK:
            options += ["TILED=YES", f"BLOCKXSIZE={_BLOCK}", f"BLOCKYSIZE={_BLOCK}"]
        gdal_type = {"float32": gdal.GDT_Float32, "uint8": gdal.GDT_Byte}[dtype]
        self._path = path
        with gdal_checked(path):
            self._dataset = gdal.GetDriverByName("GTiff").Create(path, grid.width, grid.height, 1, gdal_type, options)
            if self._dataset is None:
                raise OutputError(f"cannot create {path}: {gdal.GetLastErrorMsg()}")
            self._dataset.SetProjection(grid.crs.to_wkt())
            self._dataset.SetGeoTransform(grid.transform.to_gdal())
            self._band = self._dataset.GetRasterBand(1)
            self._band.SetNoDataValue(nodata)
            self._band.SetDescription(description)
        self.block_width, self._block_rows = self._band.GetBlockSize()
        self._height = grid.height
        self._dtype = np.dtype(dtype)
        self._col = 0
        self._first_row = 0  # the first row of the buffer
        self._filled = 0  # rows of the buffer filled so far
        self._buffer = np.empty((0, 0), self._dtype)

    def rows(self, row: int, count: int, width: int, col: int = 0) -> np.ndarray:
        """The buffer's place for up to ``count`` rows from ``row`` on, ``width`` columns from ``col`` on, for
        the caller to fill and then :meth:`commit`: as many rows as fit before the end of the row of blocks.

        Within a column band rows must arrive in order, each row once, and a band must be finished (down to its
        last row) before the next starts.
        """
        if col != self._col:
            if self._first_row + self._filled != self._height:
                raise ValueError(f"{self._path}: column band at {self._col} left unfinished for the one at {col}")
            self._write_filled()
            self._col, self._first_row = col, 0
        if row != self._first_row + self._filled:
            raise ValueError(f"{self._path}: rows must be written in order; got row {row}")
        if self._buffer.shape[1] != width:
            self._write_filled()
            self._buffer = np.empty((self._block_rows, width), self._dtype)
        block_end = min(self._height, (row // self._block_rows + 1) * self._block_rows)
        return self._buffer[self._filled : self._filled + min(count, block_end - row)]

    def commit(self, count: int) -> None:
        """Take the ``count`` rows just filled; write the row of blocks once it is complete."""
        self._filled += count
        if (self._first_row + self._filled) % self._block_rows == 0 or self._first_row + self._filled == self._height:
            self._write_filled()

    def _write_filled(self) -> None:
        """Write and flush the filled rows; a GDAL failure (a full disk shows here) is an OutputError."""
        if not self._filled:
            return
        with gdal_checked(self._path):
            if self._band.WriteArray(self._buffer[: self._filled], self._col, self._first_row) != 0:
                raise gdal_write_error(self._path)
            self._dataset.FlushCache()
        self._first_row += self._filled
        self._filled = 0

    def close(self) -> None:
        """Write what is buffered and close the file."""
        if self._dataset is None:
            return
        with gdal_checked(self._path):
            try:
                self._write_filled()
            finally:
                self._band = None
                self._dataset = None  # closes the file: its last blocks and header are written here


class ResultRasters:
    """The probability (float32 0-1) and mask (uint8 0/1) GeoTIFFs, written in row blocks."""

    def __init__(self, probability_path: str, mask_path: str, grid: Grid, threshold: float) -> None:
        self.threshold = threshold
        self.landslide_pixels = 0
        self._probability = _BlockRowWriter(probability_path, grid, "float32", FLOAT_NODATA, "landslide probability")
        self._mask = _BlockRowWriter(mask_path, grid, "uint8", MASK_NODATA, f"landslide (probability >= {threshold:g})")

    @property
    def block_width(self) -> int:
        """Columns per output block: column bands must start on multiples of it."""
        return self._probability.block_width

    def write_rows(self, row: int, probability: np.ndarray, valid: np.ndarray | None = None, col: int = 0) -> None:
        """Write rows starting at ``row`` and columns at ``col`` (see :class:`_BlockRowWriter` for the order);
        pixels where the probability is not finite (NaN: no data) or ``valid`` is False become nodata."""
        height, width = probability.shape
        done = 0
        while done < height:  # in pieces that end where a row of blocks of either raster ends
            into = self._probability.rows(row + done, height - done, width, col)
            mask = self._mask.rows(row + done, len(into), width, col)
            n = len(mask)
            flags = None if valid is None else valid[done : done + n]
            self._fill(probability[done : done + n], flags, into[:n], mask)
            self._probability.commit(n)
            self._mask.commit(n)
            done += n

    def _fill(self, probability: np.ndarray, valid: np.ndarray | None, into: np.ndarray, mask: np.ndarray) -> None:
        """``into`` the probability with nodata, ``mask`` the mask: one pass each where every pixel has data."""
        np.copyto(into, probability, casting="same_kind")
        np.greater_equal(probability, self.threshold, out=mask.view(np.bool_))
        if valid is None and np.isfinite(probability.sum()):  # no NaN nor infinity: every pixel has data
            self.landslide_pixels += int(np.count_nonzero(mask))
            return
        invalid = ~np.isfinite(probability)
        if valid is not None:
            invalid |= ~valid
        into[invalid] = FLOAT_NODATA
        mask[invalid] = MASK_NODATA
        self.landslide_pixels += int(np.count_nonzero(mask == 1))

    def close(self) -> None:
        try:
            self._probability.close()
        finally:
            self._mask.close()


@dataclass(frozen=True)
class PolygonAttribute:
    """A field added to every polygon: its name, its kind (``"string"``, ``"real"`` or ``"integer"``) and how
    its value follows from the polygon's GeoJSON geometry (in the grid's CRS)."""

    name: str
    kind: str
    value: Callable[[dict], Any]


def write_polygons(
    mask_path: str,
    probability_path: str,
    out_path: str,
    grid: Grid,
    min_area_m2: float = 0.0,
    cancelled: Callable[[], bool] | None = None,
    extra: Sequence[PolygonAttribute] = (),
) -> tuple[int, float]:
    """One polygon per 4-connected landslide of the mask, with area_m2, mean_prob, max_prob and the ``extra`` fields.

    Landslides smaller than ``min_area_m2`` are left out. Returns the number of
    polygons written and their total area in square metres.
    """
    with gdal_checked(out_path):
        return _write_polygons(mask_path, probability_path, out_path, grid, min_area_m2, cancelled, extra)


def _write_polygons(
    mask_path: str,
    probability_path: str,
    out_path: str,
    grid: Grid,
    min_area_m2: float,
    cancelled: Callable[[], bool] | None,
    extra: Sequence[PolygonAttribute],
) -> tuple[int, float]:
    """:func:`write_polygons` with every OGR call's result checked (OGR reports failures, it does not raise)."""
    from osgeo import ogr, osr

    kinds = {"string": ogr.OFTString, "real": ogr.OFTReal, "integer": ogr.OFTInteger64}

    def check(ok: bool, doing: str) -> None:
        if not ok:
            from osgeo import gdal

            raise OutputError(f"cannot write polygons {out_path}: {doing} failed: {gdal.GetLastErrorMsg()}".strip())

    driver = ogr.GetDriverByName("GPKG")
    datasource = driver.CreateDataSource(out_path)
    check(datasource is not None, "creating the GeoPackage")
    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid.crs.to_wkt())
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    layer = datasource.CreateLayer(POLYGON_LAYER, srs, ogr.wkbPolygon)
    check(layer is not None, "creating the layer")
    for name in ("area_m2", "mean_prob", "max_prob"):
        check(layer.CreateField(ogr.FieldDefn(name, ogr.OFTReal)) == 0, f"adding field {name}")
    for attribute in extra:
        check(
            layer.CreateField(ogr.FieldDefn(attribute.name, kinds[attribute.kind])) == 0,
            f"adding field {attribute.name}",
        )
    defn = layer.GetLayerDefn()
    count, total_area = 0, 0.0
    check(layer.StartTransaction() == 0, "starting the transaction")
    with rasterio.open(mask_path) as mask_ds, rasterio.open(probability_path) as prob_ds:
        band = rasterio.band(mask_ds, 1)
        # Used as its own mask: 0 (no landslide) is skipped, 1 and nodata (255) are traced.
        for geometry, value in shapes(band, mask=band, connectivity=4, transform=grid.transform):
            if cancelled is not None and cancelled():
                raise Cancelled("cancelled while writing polygons")
            if value != 1:
                continue
            area, mean_prob, max_prob = _polygon_stats(geometry, prob_ds, grid)
            if area < min_area_m2:
                continue
            feature = ogr.Feature(defn)
            feature.SetField("area_m2", area)
            feature.SetField("mean_prob", mean_prob)
            feature.SetField("max_prob", max_prob)
            for attribute in extra:
                feature.SetField(attribute.name, attribute.value(geometry))
            feature.SetGeometry(ogr.CreateGeometryFromJson(json.dumps(geometry)))
            check(layer.CreateFeature(feature) == 0, "adding a polygon")
            count += 1
            total_area += area
    check(layer.CommitTransaction() == 0, "committing the polygons")
    qml = POLYGONS_STYLE.read_text("utf-8")
    _store_default_style(datasource, POLYGON_LAYER, layer.GetGeometryColumn(), qml, check)
    datasource.FlushCache()
    layer = None
    datasource = None  # closes the GeoPackage before the caller renames it
    return count, total_area


def _store_default_style(
    datasource, table: str, geometry_column: str, qml: str, check: Callable[[bool, str], None]
) -> None:
    """Store ``qml`` as the default QGIS style of ``table`` inside the GeoPackage (QGIS's ``layer_styles``).

    A GeoPackage's polygons and the mask GeoTIFF share a base name, so one ``.qml`` sidecar cannot serve both;
    QGIS reads a style stored in the GeoPackage itself first, and it travels with the file.
    """
    from osgeo import ogr

    styles = datasource.CreateLayer("layer_styles", None, ogr.wkbNone)
    check(styles is not None, "creating the style table")
    for name in ("f_table_catalog", "f_table_schema", "f_table_name", "f_geometry_column", "styleName"):
        styles.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    for name in ("styleQML", "styleSLD", "description", "owner", "ui"):
        styles.CreateField(ogr.FieldDefn(name, ogr.OFTString))
    use_as_default = ogr.FieldDefn("useAsDefault", ogr.OFTInteger)
    use_as_default.SetSubType(ogr.OFSTBoolean)
    styles.CreateField(use_as_default)
    styles.CreateField(ogr.FieldDefn("update_time", ogr.OFTDateTime))
    feature = ogr.Feature(styles.GetLayerDefn())
    for name, value in (
        ("f_table_catalog", ""),
        ("f_table_schema", ""),
        ("f_table_name", table),
        ("f_geometry_column", geometry_column),
        ("styleName", table),
        ("styleQML", qml),
        ("styleSLD", ""),
        ("description", "Landslide Mapper"),
        ("owner", ""),
        ("ui", ""),
    ):
        feature.SetField(name, value)
    feature.SetField("useAsDefault", 1)
    check(styles.CreateFeature(feature) == 0, "storing the style")


def write_style_sidecars(probability: Path, mask: Path) -> None:
    """``<name>.qml`` next to the probability and mask rasters, so that QGIS opens them styled.

    Without them a dragged-in mask is an opaque black-and-white rectangle over the imagery.
    """
    for raster, style in ((probability, PROBABILITY_STYLE), (mask, MASK_STYLE)):
        sidecar = Path(raster).with_suffix(".qml")
        with writing(sidecar, "style"):
            sidecar.write_text(style.read_text("utf-8"), encoding="utf-8")


def polygon_pixels(geometry: dict, grid: Grid) -> Iterator[tuple[Window, np.ndarray]]:
    """The polygon's bounding window in blocks of ``_STATS_BLOCK_ROWS`` rows, each with the pixels inside it.

    Block by block, so a landslide as large as the scene (an untrained or miscalibrated model can mask
    everything) costs a few MB, not several copies of a whole raster.
    """
    ring = np.asarray(geometry["coordinates"][0], dtype=np.float64)
    # the affine coefficients applied to whole arrays: ``Affine * (xs, ys)`` with arrays is deprecated in affine 2.4+
    inverse = ~grid.transform
    cols = inverse.a * ring[:, 0] + inverse.b * ring[:, 1] + inverse.c
    rows = inverse.d * ring[:, 0] + inverse.e * ring[:, 1] + inverse.f
    c0, c1 = int(np.floor(cols.min() + 1e-6)), int(np.ceil(cols.max() - 1e-6))
    r0, r1 = int(np.floor(rows.min() + 1e-6)), int(np.ceil(rows.max() - 1e-6))
    for top in range(r0, r1, _STATS_BLOCK_ROWS):
        window = Window(c0, top, c1 - c0, min(r1, top + _STATS_BLOCK_ROWS) - top)
        shape = (int(window.height), int(window.width))
        inside = geometry_mask([geometry], out_shape=shape, transform=grid.window_transform(window), invert=True)
        if inside.any():
            yield window, inside


def _polygon_stats(geometry: dict, prob_ds, grid: Grid) -> tuple[float, float, float]:
    """Area in m2 and mean/max probability of the pixels inside ``geometry``."""
    count, total, peak, area = 0, 0.0, -np.inf, 0.0
    for window, inside in polygon_pixels(geometry, grid):
        values = prob_ds.read(1, window=window)[inside]
        count += values.size
        total += float(values.sum(dtype=np.float64))
        peak = max(peak, float(values.max()))
        if grid.crs.is_geographic:
            top = int(window.row_off)
            row_area = np.array([grid.pixel_area_m2(r) for r in range(top, top + inside.shape[0])])
            area += float((inside.sum(axis=1) * row_area).sum())
    if not grid.crs.is_geographic:
        area = count * grid.pixel_area_m2(0)  # the same in every row of a projected grid
    return area, total / count, peak


def peak_memory_mb() -> float | None:
    """Peak resident memory of this process in MiB (None where the OS does not say).

    On Linux this is ``VmHWM`` from ``/proc/self/status``: the peak of this process image. ``ru_maxrss`` would
    carry over the parent's peak into a freshly started child (it survives fork and exec), so a small run
    launched from a big process would report the big one's memory.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def write_report(path: str, report: dict[str, Any]) -> None:
    """The run report as indented JSON."""
    with writing(path, "run report"):
        Path(path).write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
