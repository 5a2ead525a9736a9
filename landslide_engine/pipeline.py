"""From an analyst's Sentinel-2 and DEM rasters to georeferenced landslide layers.

:func:`predict_scene` identifies the bands, builds the reference grid, streams
the scene through the model as rows of overlapping patches and writes
``probability.tif``, ``landslides.tif``, ``landslides.gpkg`` and ``run.json``.
The scene is processed in column bands about ``_BAND_PX`` wide, each from top to bottom one patch row at a
time, so memory is the same for any scene size: a few band-wide patch strips, plus the columns two bands
share (:mod:`landslide_engine.tiling`). A reader thread reads, warps and scales the chunks (one band, one
patch row) ahead of the model, and the rows two patch rows share are read once; the runner's workers (one
per core on the CPU) each run one batch at a time; predictions are blended in a strip that slides down the
band, and finished rows are written by a writer thread (:mod:`landslide_engine.streaming`). ``run.json``
records the seconds spent per stage (read/warp, scale, infer, blend, write, polygonize). Beyond that, GDAL's
block cache (``GDAL_CACHEMAX``, set by the host application; the CLI caps it) holds decoded source blocks;
it needs one row of the sources' blocks across a band to decode each block about once.

The parts: :func:`open_scene` opens a scene from its :class:`SceneInputs`; :class:`_ChunkReader` reads the
chunks, :class:`_Pieces` cuts them into batches for the runner (any :class:`SceneRunner`), and
:class:`_Stitcher` blends the results and hands finished rows to the writer.

All four outputs are written into a temporary folder and published as a set only when the whole run
succeeded (:class:`~landslide_engine.targets.OutputSet`): a cancelled or failed run leaves the folder as it
was, and ``run.json`` is published last, so a folder with a report holds that run's whole set.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import rasterio
from rasterio.windows import Window

from landslide_engine import __version__
from landslide_engine.bands import L1C_ESA_ORDER, L4S_BANDS, L4S_S2_BANDS
from landslide_engine.cloudmask import describe_shares, parse_mask_classes
from landslide_engine.demtiles import dem_files, dem_path
from landslide_engine.errors import Cancelled, InputError, ParameterError
from landslide_engine.grid import Grid, reference_grid
from landslide_engine.memory import release_free_memory
from landslide_engine.notices import Info, Warn, Warnings, inform
from landslide_engine.options import DEFAULT_MIN_AREA_M2, DEFAULT_PRECISION
from landslide_engine.outputs import (
    FLOAT_NODATA,
    ResultRasters,
    peak_memory_mb,
    raster_profile,
    write_polygons,
    write_report,
    write_style_sidecars,
)
from landslide_engine.parameters import (
    check_baseline_offset,
    check_batch_size,
    check_extent,
    check_fill_values,
    check_grid_size,
    check_min_area,
    check_overlap,
    check_resolution,
    check_threshold,
)
from landslide_engine.products import ProductMask
from landslide_engine.rasterio_io import OpenRasters
from landslide_engine.s2cloudless import BANDS as S2CLOUDLESS_BANDS
from landslide_engine.s2cloudless import S2CloudlessMask, detect_clouds
from landslide_engine.scaling import L2A_WARNING, ReflectanceScaling, resolve_scaling
from landslide_engine.sources import S2Inputs, identify_s2
from landslide_engine.stack import SceneStack
from landslide_engine.streaming import BackgroundWriter, StageClock, prefetched, run_in_order
from landslide_engine.targets import OutputSet, atomic_output, check_output_file, gdal_checked
from landslide_engine.tiling import ColumnBand, RowBlender, column_bands, predict_tta, reflect_fill, tile_starts

if TYPE_CHECKING:
    from landslide_engine.models.metadata import ModelMetadata

Progress = Callable[[float, str], None]
IsCancelled = Callable[[], bool]

_MAX_READERS = 4
_TRIM_EVERY_CHUNKS = 16  # chunks between giving the C heap's free pages back (a few ms each time)
_BAND_PX = 3072  # about this wide; wider bands decode fewer source tiles twice, narrower ones use less memory
_STACK_BLOCK_ROWS = 256
PROBABILITY_FILE = "probability.tif"
MASK_FILE = "landslides.tif"
POLYGONS_FILE = "landslides.gpkg"
REPORT_FILE = "run.json"
# QGIS style sidecars (landslide_engine.outputs.write_style_sidecars): the rasters open styled in QGIS
STYLE_FILES = ("probability.qml", "landslides.qml")
NO_DATA_WARNING = (
    "the inputs have no pixel with data on the grid (all no-data, outside the DEM, or masked): the result is "
    "all no-data, not a map without landslides"
)
OUTPUT_FILES = (PROBABILITY_FILE, MASK_FILE, POLYGONS_FILE, *STYLE_FILES, REPORT_FILE)


class SceneRunner(Protocol):
    """What :func:`predict_scene` needs of a model runner; :class:`~landslide_engine.models.backends.Runner` is one.

    A runner may also have ``predict_serial`` (called from the pipeline's own threads), ``workers`` (how many of
    those may call it at once) and ``precision``; the pipeline uses them when present.
    """

    metadata: ModelMetadata
    device: str
    backend: str

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (N, H, W) of patches (N, C, H, W) in l4s units; ``x`` may be a read-only view into the
        pipeline's strip (not contiguous, patches may share columns): copy it before changing it."""
        ...


@dataclass
class PredictRequest:
    """Everything a scene prediction needs; see the CLI's ``predict --help`` for each option."""

    s2: list[str]
    dem: str | list[str]  # one DEM, or tiles mosaicked on the fly (landslide_engine.demtiles)
    out_dir: str
    slope: str | None = None
    model: str | None = None
    device: str = "auto"
    backend: str = "auto"
    precision: str = DEFAULT_PRECISION  # auto: int8 version on the CPU (models.backends.number_format)
    batch_size: int = 16
    overlap: int = 32
    threshold: float | None = None
    tta: bool = False
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str | None = None
    band_map: dict[str, str] | None = None
    reflectance_scale: str = "auto"  # see options.REFLECTANCE_SCALES
    baseline_offset: str | int = "auto"
    resolution: float | None = None
    min_area_m2: float = DEFAULT_MIN_AREA_M2  # polygons smaller than this are dropped (the mask keeps them)
    mask_classes: str | list[int] | None = None  # SCL codes made no data; None: cloudmask.DEFAULT_MASK_CLASSES
    s2cloudless: bool = False  # find clouds with s2cloudless (L1C without a cloud mask of its own)
    scl: str | None = None  # an L2A scene classification raster for inputs that are not a SAFE product
    readers: int | None = None  # reader threads; None: one on the CPU (the model needs every core), more on a GPU


@dataclass(frozen=True)
class PredictResult:
    """Where the outputs are and a summary of the run."""

    probability: Path
    mask: Path
    polygons: Path
    report: Path
    device: str
    backend: str
    n_patches: int
    n_landslides: int
    landslide_area_m2: float
    n_patches_without_data: int = 0  # of n_patches: no pixel with data, so not run
    warnings: list[str] = field(default_factory=list)


@dataclass
class OpenScene:
    """An opened scene ready to be read band-stack by window, with what was learnt on the way."""

    stack: SceneStack
    grid: Grid
    inputs: dict[str, Any]
    warnings: list[str]


@dataclass(frozen=True)
class SceneInputs:
    """The rasters of one scene and how to read them: what ``predict`` and ``stack`` share of their options."""

    s2: Sequence[str]
    dem: str | Sequence[str]  # one DEM, or tiles mosaicked on the fly (landslide_engine.demtiles)
    slope: str | None = None
    band_map: Mapping[str, str] | None = None
    reflectance_scale: str = "l1c"
    baseline_offset: str | float = "auto"
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str | None = None
    resolution: float | None = None
    mask_classes: str | Sequence[int] | None = None
    scl: str | None = None
    s2cloudless: bool = False  # a cloud mask from s2cloudless for L1C inputs without one

    @classmethod
    def of(cls, req: PredictRequest) -> SceneInputs:
        """The scene inputs of a prediction request."""
        return cls(
            req.s2,
            req.dem,
            req.slope,
            req.band_map,
            req.reflectance_scale,
            req.baseline_offset,
            req.extent,
            req.extent_crs,
            req.resolution,
            req.mask_classes,
            req.scl,
            req.s2cloudless,
        )


def open_scene(
    inputs: SceneInputs,
    bands: Sequence[str],
    fill_values: Mapping[str, float],
    warn: Warnings | None = None,
    info: Info | None = None,
) -> OpenScene:
    """Identify bands, check that ``bands`` can be supplied, build the grid and open the stack.

    Each warning goes to ``warn`` as soon as it is known, so the analyst sees it while the run goes on; the
    reflectance scale read from the scene goes to ``info``.
    """
    warn = warn if warn is not None else Warnings()
    s2, dem, slope, band_map, scl = inputs.s2, inputs.dem, inputs.slope, inputs.band_map, inputs.scl
    reflectance_scale, extent_crs, s2cloudless = inputs.reflectance_scale, inputs.extent_crs, inputs.s2cloudless
    classes = parse_mask_classes(inputs.mask_classes)
    extent, resolution = check_extent(inputs.extent), check_resolution(inputs.resolution)
    baseline_offset = check_baseline_offset(inputs.baseline_offset)
    unknown = [b for b in bands if b not in L4S_BANDS]
    if unknown:
        raise InputError(f"the model needs band(s) {', '.join(unknown)}, which are not Landslide4Sense bands")
    rasters = OpenRasters()  # each input opened once: identified, gridded and read through the same dataset
    try:
        identified = identify_s2(list(s2), band_map, rasters)
        needed = [b for b in bands if b in L4S_S2_BANDS]
        missing = identified.missing(needed)
        not_fillable = [b for b in missing if b not in fill_values]
        if not_fillable:
            raise InputError(identified.describe_missing(not_fillable))
        if identified.level == "L2A":
            warn(L2A_WARNING)
        fills = {b: float(fill_values[b]) for b in missing}
        for band, value in fills.items():
            warn(f"band {band} is not in the input; filled with the model's constant {value:g} (l4s units)")
        s2_files = list(dict.fromkeys(identified.bands[b].path for b in needed if b in identified.bands))
        dem_tiles = dem_files(dem)
        dem = dem_path(dem_tiles)  # one file, or the tiles' mosaic
        others = [dem, *([slope] if slope else [])]
        grid = reference_grid(s2_files or list(s2), others, extent, extent_crs, resolution, rasters)
        check_grid_size(grid.width, grid.height)
        use_s2cloudless = s2cloudless and bool(classes)
        cloud_mask: ProductMask | S2CloudlessMask | None = (
            None if use_s2cloudless else ProductMask("SCL", scl) if scl else identified.cloud_mask
        )
        if use_s2cloudless:
            _check_s2cloudless_inputs(identified)
        stack = SceneStack(identified, dem, grid, None, slope, fills, cloud_mask, classes, rasters)
    except BaseException:
        rasters.close()
        raise
    try:
        stack.check_terrain()
        sample = stack.sample_native([b for b in L1C_ESA_ORDER if b in identified.bands])
        scaling, scaling_warnings = resolve_scaling(identified, reflectance_scale, baseline_offset, sample)
        stack.scaling = scaling
        warn.extend(scaling_warnings)
        inform(
            info,
            f"reflectance scale {scaling.scale} ({scaling.scale_evidence}); baseline offset {scaling.offset:g} DN "
            f"({scaling.offset_evidence})",
        )
        if use_s2cloudless:
            found = detect_clouds(grid, stack.reflectance_on)
            stack.use_mask(found)
            cloud_mask = found
        masking = _mask_report(stack, cloud_mask, classes, warn)
    except BaseException:
        stack.close()
        raise
    if cloud_mask is None and classes and (identified.level == "L1C" or identified.product is not None):
        warn("the input has no cloud mask: clouds may be mapped as landslides (L1C: use the s2cloudless option)")
    report = {
        "s2": list(s2),
        "dem": dem_tiles[0] if len(dem_tiles) == 1 else dem_tiles,
        "slope": slope,
        "bands": {b: asdict(identified.bands[b]) for b in needed if b in identified.bands},
        "filled_bands": fills,
        "slope_source": "file" if slope else "computed from DEM (Horn)",
        "level": identified.level,
        "product_date": identified.product_date.isoformat() if identified.product_date else None,
        "reflectance_scale": scaling.scale,
        "reflectance_scale_detection": {**scaling.detection, "conclusion": scaling.scale_evidence},
        "baseline_offset": {
            "value": scaling.offset,
            "evidence": scaling.offset_evidence,
            "per_band": dict(scaling.band_offsets),
        },
        "product": identified.product.to_report() if identified.product else None,
        "cloud_mask": masking,
    }
    return OpenScene(stack, grid, report, warn.lines)


def _check_s2cloudless_inputs(identified: S2Inputs) -> None:
    """s2cloudless reads top-of-atmosphere reflectance of ten bands; refuse what it cannot run on."""
    if identified.level == "L2A":
        raise InputError("s2cloudless needs L1C (top-of-atmosphere) input; an L2A product's SCL masks its clouds")
    lacking = [b for b in S2CLOUDLESS_BANDS if b not in identified.bands]
    if lacking:
        raise InputError(f"s2cloudless needs band(s) {', '.join(lacking)}, which the input lacks")


def _mask_report(
    stack: SceneStack, cloud_mask: ProductMask | S2CloudlessMask | None, classes: Sequence[int], warn: Warnings
) -> dict[str, Any] | None:
    """What the cloud mask made no data, per class, for run.json; the analyst is told the shares."""
    if cloud_mask is None:
        return None
    report: dict[str, Any] = {"kind": cloud_mask.kind, "path": cloud_mask.path, "classes": list(classes)}
    if isinstance(cloud_mask, S2CloudlessMask):
        report |= {
            "seconds": round(cloud_mask.seconds, 3),
            "seconds_per_megapixel": round(cloud_mask.seconds_per_megapixel, 4),
            "grid_factor": cloud_mask.factor,
        }
    if stack.mask is None:
        return report | {"shares": {}}
    shares = stack.mask.shares()
    warn(describe_shares(cloud_mask.kind, shares))
    return report | {"shares": {name: round(share, 6) for name, share in shares.items()}}


def read_scaling(
    s2: Sequence[str],
    band_map: Mapping[str, str] | None = None,
    reflectance_scale: str = "auto",
    baseline_offset: str | float = "auto",
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
) -> tuple[ReflectanceScaling, list[str]]:
    """The scaling a run on ``s2`` would use, read from the same sample of the scene, and its warnings.

    For a front end that shows the scale before a run, and for ``bench/scale_detection.py``. Raises
    InputError where a run would.
    """
    with OpenRasters() as rasters:
        identified = identify_s2(list(s2), band_map, rasters)
        files = list(dict.fromkeys(source.path for source in identified.bands.values())) or list(s2)
        grid = reference_grid(files, (), extent, extent_crs, rasters=rasters)
        with SceneStack(identified, None, grid, None, rasters=rasters) as stack:
            sample = stack.sample_native([b for b in L1C_ESA_ORDER if b in identified.bands])
    return resolve_scaling(identified, reflectance_scale, check_baseline_offset(baseline_offset), sample)


def _grid_report(grid: Grid) -> dict[str, Any]:
    return {
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "width": grid.width,
        "height": grid.height,
        "resolution": grid.resolution[0],
    }


def runner_for(req: PredictRequest, cores: int | None = None):
    """The model runner that ``req`` names (model, backend, device, batch size, precision).

    On the CPU it uses ``cores`` cores, one single-thread worker each (default: every usable core); a process
    that shares its machine with other scene runs (a Ray actor) passes its share.
    """
    from landslide_engine.models.backends import create_runner
    from landslide_engine.models.catalog import resolve_model

    return create_runner(
        resolve_model(req.model),
        backend=req.backend,
        device=req.device,
        batch_size=req.batch_size,
        precision=req.precision,
        threads=cores,
        workers=cores,
    )


def _input_files(
    s2: Sequence[str],
    dem: str | Sequence[str],
    slope: str | None,
    band_map: Mapping[str, str] | None,
    scl: str | None,
) -> list[str]:
    """Every file a run reads, so that no output can replace one: band-map sources (``file.tif:3``) included."""
    mapped = [
        value.rpartition(":")[0] if value.rpartition(":")[2].isdigit() else value for value in (band_map or {}).values()
    ]
    return [*s2, *dem_files(dem), *([slope] if slope else []), *mapped, *([scl] if scl else [])]


def _check_request(req: PredictRequest) -> None:
    """Refuse parameters that are not finite or beyond their bounds, before the model is even loaded."""
    if req.threshold is not None:
        check_threshold(req.threshold)
    check_min_area(req.min_area_m2)
    check_batch_size(req.batch_size)
    check_extent(req.extent)
    check_baseline_offset(req.baseline_offset)
    check_resolution(req.resolution)
    if req.readers is not None and (
        isinstance(req.readers, bool) or not isinstance(req.readers, int) or req.readers < 1
    ):
        raise ParameterError(f"readers must be a positive whole number, got {req.readers!r}")


def predict_scene(
    req: PredictRequest,
    progress: Progress | None = None,
    cancelled: IsCancelled | None = None,
    runner: SceneRunner | None = None,
    warn: Warn | None = None,
    info: Info | None = None,
) -> PredictResult:
    """Run the model over the scene of ``req`` and write the four outputs to ``req.out_dir``.

    ``runner`` (anything with ``predict``, ``metadata``, ``device`` and
    ``backend``) replaces the model named in ``req``. Raises InputError for bad
    input and Cancelled when ``cancelled()`` turns true; neither leaves output.
    Warnings go to ``warn`` as they arise (:mod:`landslide_engine.notices`), and into ``run.json``; what
    the run found about its inputs (the reflectance scale it read from the scene) goes to ``info``.
    """
    started = time.perf_counter()
    report_progress = progress or (lambda percent, message: None)
    is_cancelled = cancelled or (lambda: False)
    _check_request(req)
    inputs = [*_input_files(req.s2, req.dem, req.slope, req.band_map, req.scl), *([req.model] if req.model else [])]
    outputs = OutputSet(req.out_dir, OUTPUT_FILES, report=REPORT_FILE, inputs=inputs)  # refused before any work
    report_progress(0.0, "loading the model")
    runner = runner if runner is not None else runner_for(req)
    meta = runner.metadata
    threshold = check_threshold(meta.threshold if req.threshold is None else req.threshold)
    tile = int(meta.tile_size)
    check_overlap(req.overlap, tile)
    report_progress(1.0, "reading the inputs")
    notices = Warnings(warn)
    scene = open_scene(SceneInputs.of(req), list(meta.bands), dict(meta.fillable_bands), notices, info)
    seconds: dict[str, float] = {"prepare": time.perf_counter() - started}
    clock = StageClock()
    paths = {name: outputs.final(name) for name in OUTPUT_FILES}
    with scene.stack, outputs:
        rows = tile_starts(scene.grid.height, tile, req.overlap)
        cols = tile_starts(scene.grid.width, tile, req.overlap)
        tmp = {name: outputs.path(name) for name in OUTPUT_FILES}
        t0 = time.perf_counter()
        rasters = ResultRasters(tmp[PROBABILITY_FILE], tmp[MASK_FILE], scene.grid, threshold)
        try:
            readers = req.readers or _reader_threads(runner)
            without_data = _predict_bands(
                scene, runner, rows, req, rasters, report_progress, is_cancelled, clock, readers
            )
        finally:
            with clock.measure("write"):
                rasters.close()
        seconds["predict"] = time.perf_counter() - t0
        if without_data == len(rows) * len(cols):
            notices(NO_DATA_WARNING)
        peak_before_polygons = peak_memory_mb()  # the polygons' own peak depends on the mask, not the scene size
        report_progress(90.0, "tracing landslide polygons")
        t0 = time.perf_counter()
        with clock.measure("polygonize"):
            n_landslides, area = write_polygons(
                tmp[MASK_FILE], tmp[PROBABILITY_FILE], tmp[POLYGONS_FILE], scene.grid, req.min_area_m2, is_cancelled
            )
        seconds["polygons"] = time.perf_counter() - t0
        seconds["total"] = time.perf_counter() - started
        n_patches = len(rows) * len(cols)
        report = {
            "engine_version": __version__,
            "finished": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "inputs": scene.inputs,
            "grid": _grid_report(scene.grid),
            "model": {
                "name": meta.name,
                "path": str(req.model) if req.model else "builtin",
                "file": getattr(runner, "source", None),  # the package run: the int8 version with precision auto
                "architecture": meta.architecture,
                "encoder": meta.encoder,
                "bands": list(meta.bands),
                "tile_size": tile,
            },
            "device": runner.device,
            "backend": runner.backend,
            "precision": getattr(runner, "precision", req.precision),
            "workers": getattr(runner, "workers", 1),
            "batch_size": req.batch_size,
            "overlap": req.overlap,
            "tta": req.tta,
            "threshold": threshold,
            "min_area_m2": req.min_area_m2,
            "patches": n_patches,
            "patches_without_data": without_data,
            "landslides": n_landslides,
            "landslide_area_m2": area,
            "landslide_pixels": rasters.landslide_pixels,
            "seconds": seconds,
            "stage_seconds": {stage: round(value, 3) for stage, value in clock.seconds.items()},
            "stage_cpu_seconds": {stage: round(value, 3) for stage, value in clock.cpu_seconds.items()},
            "peak_memory_mb": peak_memory_mb(),
            "peak_memory_mb_before_polygons": peak_before_polygons,
            "warnings": scene.warnings,
            "outputs": {name: str(path) for name, path in paths.items()},
        }
        write_style_sidecars(Path(tmp[PROBABILITY_FILE]), Path(tmp[MASK_FILE]))
        write_report(tmp[REPORT_FILE], report)
    report_progress(100.0, f"{n_landslides} landslide(s), {area:.0f} m2")
    return PredictResult(
        probability=paths[PROBABILITY_FILE],
        mask=paths[MASK_FILE],
        polygons=paths[POLYGONS_FILE],
        report=paths[REPORT_FILE],
        device=runner.device,
        backend=runner.backend,
        n_patches=n_patches,
        n_patches_without_data=without_data,
        n_landslides=n_landslides,
        landslide_area_m2=area,
        warnings=list(scene.warnings),
    )


@dataclass(frozen=True)
class _ChunkPatches:
    """The input of one column band in one patch row, from which the model's patches are cut."""

    top: int
    band: ColumnBand
    strip: np.ndarray  # (C, tile, right - left) float32, l4s units, no NaN, reflect-padded beyond the scene
    invalid: np.ndarray  # (tile, right - left) bool: pixels where some input had no data

    @property
    def left(self) -> int:
        return self.band.cols[0]

    def patches(self, indices: Sequence[int]) -> np.ndarray:
        """The band's patches ``indices`` as one (n, C, tile, tile) array.

        Patches evenly spaced along the strip (the usual batch) come as a read-only view into it, with no copy:
        the runner's normalisation makes the one copy the model needs. Others are stacked into a new array.
        Cut one batch at a time, when a worker needs them: overlapping patches stacked all at once would
        take a third more memory than the strip they come from.
        """
        tile = self.strip.shape[1]
        starts = [self.band.cols[j] - self.left for j in indices]
        steps = {b - a for a, b in itertools.pairwise(starts)}
        if len(steps) > 1:
            return np.stack([self.strip[:, :, c : c + tile] for c in starts])
        step = steps.pop() if steps else tile
        first = self.strip[:, :, starts[0] :]
        band_stride, row_stride, col_stride = first.strides
        return np.lib.stride_tricks.as_strided(
            first,
            shape=(len(starts), first.shape[0], tile, tile),
            strides=(step * col_stride, band_stride, row_stride, col_stride),
            writeable=False,
        )

    def with_data(self) -> list[int]:
        """Indices of the band's patches that have at least one pixel with data.

        A patch with no data at all (outside a Sentinel-2 granule's swath, beyond a DEM's coverage) would come
        out all no-data after blending whatever the model said, so it is not run.
        """
        tile = self.strip.shape[1]
        column_empty = self.invalid.all(axis=0)
        return [j for j, c in enumerate(self.band.cols) if not column_empty[c - self.left : c - self.left + tile].all()]


@dataclass(frozen=True)
class _Piece:
    """Up to one batch of a chunk's patches: what one model worker runs at a time.

    ``indices`` may be empty (a chunk without data still finishes its rows); ``last`` marks the chunk's last piece.
    """

    chunk: _ChunkPatches
    indices: tuple[int, ...]  # the patches' indices in the chunk's band
    last: bool


def _reader_threads(runner: SceneRunner) -> int:
    """Reader threads for ``runner``: one on the CPU, where the model needs every core; on an accelerator,
    enough to keep it fed (one reader prepares a few hundred patches a second), leaving cores for the rest."""
    if str(getattr(runner, "device", "cpu")).startswith("cpu"):
        return 1
    from landslide_engine.cpus import usable_cpu_count

    return max(1, min(_MAX_READERS, usable_cpu_count() - 2))


class _ColumnPartReaders:
    """Reads a window in up to ``count`` column parts at once, part ``i`` always in the same thread.

    Each part's thread reads through a stack of its own (GDAL dataset handles are not thread-safe), so each
    keeps its own decoded source blocks; as a part covers the same columns of a band from one patch row to the
    next, each block is decoded about once. With ``count`` 1 everything is read in the calling thread.
    """

    def __init__(self, stack: SceneStack, count: int, min_width: int) -> None:
        self._stacks = [stack]
        self._pools: list[ThreadPoolExecutor] = []
        self._min_width = min_width
        try:
            for _ in range(count - 1):
                self._stacks.append(stack.reopen())
                self._pools.append(ThreadPoolExecutor(1, thread_name_prefix="landslide-reader-part"))
        except BaseException:
            self.close()
            raise

    def read(self, window: Window, read_part: Callable[[SceneStack, Window, slice], None]) -> None:
        """``read_part(stack, part_window, columns)`` for each part of ``window`` (``columns`` relative to it)."""
        width = int(window.width)
        count = max(1, min(len(self._stacks), width // self._min_width))
        bounds = [round(i * width / count) for i in range(count + 1)]
        parts = [
            (Window(window.col_off + a, window.row_off, b - a, window.height), slice(a, b))
            for a, b in itertools.pairwise(bounds)
        ]
        futures = [
            pool.submit(read_part, stack, part, cols)
            for pool, stack, (part, cols) in zip(self._pools, self._stacks[1:], parts[1:], strict=False)
        ]
        try:
            read_part(self._stacks[0], *parts[0])
        finally:
            errors = []
            for future in futures:
                try:
                    future.result()
                except BaseException as exc:  # every part must have finished before the strip is used
                    errors.append(exc)
        if errors:
            raise errors[0]

    def close(self) -> None:
        """Stop the part threads and close the stacks they read through (not the scene's own)."""
        for pool in self._pools:
            pool.shutdown(wait=True)
        for stack in self._stacks[1:]:
            stack.close()


def _band_patches(tile: int, overlap: int, batch_size: int) -> int:
    """Patches per column band: whole batches, about ``_BAND_PX`` wide."""
    batches = max(1, round(_BAND_PX / ((tile - overlap) * batch_size)))
    return batches * batch_size


class _ChunkReader:
    """Reads chunks (one column band, one patch row) into arrays of the padded size: l4s units, no-data filled.

    Each chunk is read in column parts at once (:class:`_ColumnPartReaders`). The rows that the next patch row of
    the same band shares with this one are kept, so they are read and scaled once, not twice (a quarter of all
    rows at the default overlap). Only the reader thread calls it, one chunk after another.
    """

    def __init__(
        self,
        stack: SceneStack,
        metadata: ModelMetadata,
        rows: list[int],
        shape: tuple[int, int],
        readers: int,
        clock: StageClock,
    ) -> None:
        self._bands = list(metadata.bands)
        self._fill = np.asarray(metadata.mean, dtype=np.float32)[:, None, None]
        self._tile = int(metadata.tile_size)
        self._height, self._width = shape
        self._clock = clock
        self._following_top = dict(itertools.pairwise(rows))
        # by the band's first column: the first row, values and invalid mask of the rows the next patch row shares
        self._shared_rows: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}
        self._parts = _ColumnPartReaders(stack, readers, min_width=self._tile)

    def close(self) -> None:
        """Stop the part readers (the scene's own stack stays open)."""
        self._parts.close()

    def __call__(self, job: tuple[int, ColumnBand]) -> _ChunkPatches:
        """The band's strip for the patch row at ``top``, read straight into an array of the padded size."""
        top, band = job
        tile = self._tile
        left, right = band.cols[0], band.cols[-1] + tile
        r0, r1 = max(0, top), min(self._height, top + tile)
        c0, c1 = max(0, left), min(self._width, right)
        strip = np.empty((len(self._bands), tile, right - left), dtype=np.float32)
        invalid = np.empty((tile, right - left), dtype=bool)
        cs = slice(c0 - left, c1 - left)
        done = self._reuse_shared_rows(left, top, r0, r1, strip[:, :, cs], invalid[:, cs])
        if r0 + done < r1:
            rs = slice(r0 + done - top, r1 - top)
            self._read_rows(Window(c0, r0 + done, c1 - c0, r1 - r0 - done), strip[:, rs, cs], invalid[rs, cs])
        with self._clock.measure("scale"):
            following = self._following_top.get(top)
            if following is not None and r0 <= following < r1:
                shared = slice(following - top, r1 - top)
                self._shared_rows[left] = (following, strip[:, shared, cs].copy(), invalid[shared, cs].copy())
            pads = (r0 - top, top + tile - r1, c0 - left, right - c1)
            reflect_fill(strip, *pads)
            reflect_fill(invalid, *pads)
        return _ChunkPatches(top, band, strip, invalid)

    def _reuse_shared_rows(self, left: int, top: int, r0: int, r1: int, strip: np.ndarray, invalid: np.ndarray) -> int:
        """Copy the rows kept from the patch row before into ``strip``/``invalid``; returns how many there were."""
        kept = self._shared_rows.pop(left, None)
        if kept is None or kept[0] != r0:
            return 0
        _, kept_rows, kept_invalid = kept
        done = min(kept_rows.shape[1], r1 - r0)  # the last patch row can lie inside the one before
        if done:
            with self._clock.measure("scale"):
                strip[:, r0 - top : r0 - top + done] = kept_rows[:, :done]
                invalid[r0 - top : r0 - top + done] = kept_invalid[:done]
        return done

    def _read_rows(self, window: Window, out: np.ndarray, out_invalid: np.ndarray) -> None:
        def into(stack: SceneStack, part: Window, cols: slice) -> None:
            self._read_part(stack, part, out[:, :, cols], out_invalid[:, cols])

        self._parts.read(window, into)

    def _read_part(self, stack: SceneStack, window: Window, out: np.ndarray, out_invalid: np.ndarray) -> None:
        """Scene ``window`` in l4s units into ``out`` (C, h, w), no-data filled; where it was into ``out_invalid``."""
        with self._clock.measure("read_warp"):
            native = stack.read_native(window, self._bands, stored=True)
        with self._clock.measure("scale"):
            stack.to_l4s(native, out=out, invalid=out_invalid)
            if out_invalid.any():
                np.copyto(out, np.broadcast_to(self._fill, out.shape), where=~np.isfinite(out))


class _Pieces:
    """Cuts prefetched chunks into pieces of up to one batch of the patches with data; counts those without."""

    def __init__(self, batch_size: int, cancelled: IsCancelled, clock: StageClock) -> None:
        self._batch_size = batch_size
        self._cancelled = cancelled
        self._clock = clock
        self.without_data = 0

    def of(self, chunks: Generator[_ChunkPatches, None, None]) -> Generator[_Piece, None, None]:
        """The pieces of ``chunks`` in order; a chunk without data still yields one empty piece, to end its rows."""
        try:
            while True:
                if self._cancelled():
                    raise Cancelled("cancelled")
                with self._clock.measure("wait_for_input"):
                    chunk = next(chunks, None)
                if chunk is None:
                    return
                with self._clock.measure("cut"):
                    run = chunk.with_data()
                self.without_data += len(chunk.band.cols) - len(run)
                size = self._batch_size
                for first in range(0, len(run), size) if run else [0]:
                    yield _Piece(chunk, tuple(run[first : first + size]), last=first + size >= len(run))
        finally:
            chunks.close()


def _infer(piece: _Piece, predict: Callable[[np.ndarray], np.ndarray], tta: bool, clock: StageClock) -> np.ndarray:
    """The model's probabilities for ``piece``'s patches (none for an empty piece)."""
    if not piece.indices:
        tile = piece.chunk.strip.shape[1]
        return np.empty((0, tile, tile), dtype=np.float32)
    with clock.measure("cut"):
        patches = piece.chunk.patches(piece.indices)
    with clock.measure("infer"):
        return predict_tta(predict, patches) if tta else predict(patches)


class _Stitcher:
    """Blends the pieces' probabilities band by band, in order, and hands finished rows to the writer.

    Rows are finished when the patch row below can no longer reach them; the columns a column band shares with
    the next one are carried over (sums and weights) until that band adds its own patches to them.
    """

    def __init__(self, height: int, rows: list[int], overlap: int, writer: BackgroundWriter, clock: StageClock) -> None:
        self._height = height
        self._rows = rows
        self._row_number = {top: k for k, top in enumerate(rows, start=1)}
        self._overlap = overlap
        self._writer = writer
        self._clock = clock
        self._blender: RowBlender | None = None
        self._carried: tuple[np.ndarray, np.ndarray] | None = None  # from the band before, for all rows done so far
        self._carry: tuple[np.ndarray, np.ndarray] | None = None  # for the band after

    def add(self, piece: _Piece, probabilities: np.ndarray) -> None:
        """Blend ``piece``'s probabilities, NaN where its chunk had no data."""
        chunk, band = piece.chunk, piece.chunk.band
        tile = chunk.strip.shape[1]
        if self._blender is None or self._blender.origin != band.own_start:
            self._blender = RowBlender(band.reach - band.own_start, tile, self._overlap, origin=band.own_start)
            self._carried, self._carry = self._carry, None
        with self._clock.measure("blend"):
            for j, p in zip(piece.indices, probabilities, strict=True):
                c = band.cols[j]
                invalid = chunk.invalid[:, c - chunk.left : c - chunk.left + tile]
                if invalid.any():  # a copy with NaN there; a patch all with data is blended as it is
                    p = np.array(p, dtype=np.float32)
                    p[invalid] = np.nan
                self._blender.add(np.asarray(p, dtype=np.float32), chunk.top, c)

    def finish_rows(self, chunk: _ChunkPatches) -> int:
        """Write the rows that ``chunk``, its band's last piece blended, finished; returns its patch row number."""
        blender = self._blender
        if blender is None:
            raise RuntimeError("rows finished before any piece was blended")
        band, height = chunk.band, self._height
        k = self._row_number[chunk.top]
        until = min(height, self._rows[k]) if k < len(self._rows) else height
        if until > blender.first_row:
            start = blender.first_row
            with self._clock.measure("blend"):
                carried = self._carried
                rows_in = None if carried is None else (carried[0][start:until], carried[1][start:until])
                keep = band.own_stop - band.own_start
                block, (extra_sum, extra_weight) = blender.take_rows(
                    until, rows_in, keep=keep, out=self._writer.strip(until - start, keep)
                )
                if extra_sum.shape[1]:
                    if self._carry is None:
                        self._carry = (
                            np.zeros((height, extra_sum.shape[1]), np.float32),
                            np.zeros((height, extra_sum.shape[1]), np.float32),
                        )
                    self._carry[0][start:until] = extra_sum
                    self._carry[1][start:until] = extra_weight
            self._writer.write_rows(start, block, band.own_start)
        return k


def _predict_bands(
    scene: OpenScene,
    runner: SceneRunner,
    rows: list[int],
    req: PredictRequest,
    rasters: ResultRasters,
    progress: Progress,
    cancelled: IsCancelled,
    clock: StageClock,
    readers: int = 1,
) -> int:
    """Predict column band by column band, each patch row by patch row, writing finished strips as they come.

    A reader thread prepares the chunks (one band, one patch row) ahead of the model (:class:`_ChunkReader`);
    each chunk's patches with data are cut into pieces of one batch (:class:`_Pieces`) that the runner's workers
    run at once; results are blended in order and written (:class:`_Stitcher`). Returns the number of patches
    without any data, which were not run.
    """
    meta = runner.metadata
    tile = int(meta.tile_size)
    grid = scene.grid
    layout = column_bands(
        grid.width, tile, req.overlap, _band_patches(tile, req.overlap, req.batch_size), rasters.block_width
    )
    jobs = [(top, band) for band in layout for top in rows]
    describe_band = {band: f"column band {i} of {len(layout)}" for i, band in enumerate(layout, start=1)}
    predict = getattr(runner, "predict_serial", runner.predict)
    infer = functools.partial(_infer, predict=predict, tta=req.tta, clock=clock)
    reader = _ChunkReader(scene.stack, meta, rows, (grid.height, grid.width), readers, clock)
    writer = BackgroundWriter(rasters, clock)
    stitcher = _Stitcher(grid.height, rows, req.overlap, writer, clock)
    pieces = _Pieces(req.batch_size, cancelled, clock)
    # Two chunks ahead: the reader shares the cores with the model, so its pace varies from chunk to chunk.
    source = pieces.of(prefetched(jobs, reader, ahead=2))
    results = run_in_order(source, infer, int(getattr(runner, "workers", 1)))
    done = 0
    try:
        for piece, probabilities in results:
            stitcher.add(piece, probabilities)
            if not piece.last:
                continue
            done += 1
            if done % _TRIM_EVERY_CHUNKS == 0:
                release_free_memory()
            k = stitcher.finish_rows(piece.chunk)
            progress(2.0 + 88.0 * done / len(jobs), f"patch row {k} of {len(rows)}, {describe_band[piece.chunk.band]}")
        writer.finish()
    finally:
        results.close()
        source.close()  # waits for the read under way: only then may the datasets be closed
        reader.close()
        writer.close()
    return pieces.without_data


def stack_to_file(
    s2: Sequence[str],
    dem: str | Sequence[str],
    out: str,
    slope: str | None = None,
    *,
    bands: Sequence[str] = L4S_BANDS,
    fill_values: Mapping[str, float] | None = None,
    band_map: Mapping[str, str] | None = None,
    reflectance_scale: str = "auto",
    baseline_offset: str | int = "auto",
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    resolution: float | None = None,
    progress: Progress | None = None,
    cancelled: IsCancelled | None = None,
    warn: Warn | None = None,
    info: Info | None = None,
    mask_classes: str | Sequence[int] | None = None,
    scl: str | None = None,
    s2cloudless: bool = False,
) -> Path:
    """Write ``bands`` (default all 14) in L4S units as a float32 GeoTIFF on the reference grid.

    This is exactly what the model sees; nodata is ``FLOAT_NODATA`` (-9999). Missing bands are
    an InputError unless ``fill_values`` gives them a constant (l4s units). Warnings go to ``warn``,
    findings (the reflectance scale) to ``info``.
    """
    report_progress = progress or (lambda percent, message: None)
    is_cancelled = cancelled or (lambda: False)
    target = check_output_file(out, _input_files(s2, dem, slope, band_map, scl), what="stack output")
    notices = Warnings(warn)
    inputs = SceneInputs(
        s2,
        dem,
        slope,
        band_map,
        reflectance_scale,
        baseline_offset,
        extent,
        extent_crs,
        resolution,
        mask_classes,
        scl,
        s2cloudless,
    )
    scene = open_scene(inputs, list(bands), check_fill_values(fill_values), notices, info)
    grid = scene.grid
    with_data = False
    profile = raster_profile(grid, "float32", FLOAT_NODATA, count=len(bands))
    with (
        scene.stack,
        atomic_output(target, "stack output") as tmp,
        gdal_checked(target, "stack output"),
        rasterio.open(tmp, "w", **profile) as dst,
    ):
        for i, band in enumerate(bands, start=1):
            dst.set_band_description(i, band)
        for r0 in range(0, grid.height, _STACK_BLOCK_ROWS):
            if is_cancelled():
                raise Cancelled("cancelled")
            window = Window(0, r0, grid.width, min(_STACK_BLOCK_ROWS, grid.height - r0))
            data = scene.stack.stack_bands(window, list(bands))
            valid = np.isfinite(data).all(axis=0)
            with_data = with_data or bool(valid.any())
            data[:, ~valid] = FLOAT_NODATA
            dst.write(data, window=window)
            report_progress(100.0 * (r0 + window.height) / grid.height, "stacking bands")
        if not with_data:
            notices(NO_DATA_WARNING)
    return Path(out)
