"""From an analyst's Sentinel-2 and DEM rasters to georeferenced landslide layers.

:func:`predict_scene` identifies the bands, builds the reference grid, streams
the scene through the model as rows of overlapping patches and writes
``probability.tif``, ``landslides.tif``, ``landslides.gpkg`` and ``run.json``.
Memory is bounded by one patch-high strip of the scene width, whatever the
scene height: inputs are read per chunk of patches (at most about
``_CHUNK_PX`` wide) in a reader thread one chunk ahead of the model, so I/O
overlaps inference, and the rows two patch rows share are read once; predictions
are blended in a strip that slides down the scene, and finished rows are written
by a writer thread, which also overlaps inference. ``run.json`` records the seconds
spent per stage (read/warp, scale, infer, blend, write, polygonize). Beyond that, GDAL's block cache
(``GDAL_CACHEMAX``, set by the host application; the CLI caps it) fills with
decoded source blocks; it needs one row of the sources' blocks across the
scene width to decode each block once.

All four outputs are written to temporary files and renamed into place only
when the whole run succeeded; a cancelled or failed run leaves none of them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from landslide_engine import __version__
from landslide_engine.bands import L4S_BANDS, L4S_S2_BANDS
from landslide_engine.errors import Cancelled, InputError
from landslide_engine.grid import Grid, reference_grid
from landslide_engine.outputs import ResultRasters, peak_memory_mb, raster_profile, write_polygons, write_report
from landslide_engine.rasterio_io import atomic_output
from landslide_engine.scaling import L2A_WARNING, resolve_scaling, scale_warning
from landslide_engine.sources import identify_s2
from landslide_engine.stack import SceneStack
from landslide_engine.tiling import RowBlender, predict_tta, reflect_pad, tile_starts

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
IsCancelled = Callable[[], bool]

_CHUNK_PX = 2048
_STACK_BLOCK_ROWS = 256
STACK_NODATA = -9999.0
_SCALE_CHECK_BANDS = ("B2", "B3", "B4", "B8")
PROBABILITY_FILE = "probability.tif"
MASK_FILE = "landslides.tif"
POLYGONS_FILE = "landslides.gpkg"
REPORT_FILE = "run.json"


@dataclass
class PredictRequest:
    """Everything a scene prediction needs; see the CLI's ``predict --help`` for each option."""

    s2: list[str]
    dem: str
    out_dir: str
    slope: str | None = None
    model: str | None = None
    device: str = "auto"
    backend: str = "auto"
    batch_size: int = 16
    overlap: int = 32
    threshold: float | None = None
    tta: bool = False
    extent: tuple[float, float, float, float] | None = None
    extent_crs: str | None = None
    band_map: dict[str, str] | None = None
    reflectance_scale: str = "l1c"
    baseline_offset: str | int = "auto"
    resolution: float | None = None
    min_area_m2: float = 0.0


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
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Scene:
    """An opened scene ready to be read band-stack by window, with what was learnt on the way."""

    stack: SceneStack
    grid: Grid
    inputs: dict[str, Any]
    warnings: list[str]


def _open_scene(
    s2: Sequence[str],
    dem: str,
    slope: str | None,
    bands: Sequence[str],
    fill_values: Mapping[str, float],
    band_map: Mapping[str, str] | None,
    reflectance_scale: str,
    baseline_offset: str | int,
    extent: tuple[float, float, float, float] | None,
    extent_crs: str | None,
    resolution: float | None,
) -> _Scene:
    """Identify bands, check that ``bands`` can be supplied, build the grid and open the stack."""
    unknown = [b for b in bands if b not in L4S_BANDS]
    if unknown:
        raise InputError(f"the model needs band(s) {', '.join(unknown)}, which are not Landslide4Sense bands")
    identified = identify_s2(list(s2), band_map)
    needed = [b for b in bands if b in L4S_S2_BANDS]
    missing = identified.missing(needed)
    not_fillable = [b for b in missing if b not in fill_values]
    if not_fillable:
        raise InputError(identified.describe_missing(not_fillable))
    warnings: list[str] = []
    if identified.level == "L2A":
        warnings.append(L2A_WARNING)
    fills = {b: float(fill_values[b]) for b in missing}
    for band, value in fills.items():
        warnings.append(f"band {band} is not in the input; filled with the model's constant {value:g} (l4s units)")
    scaling, scaling_warnings = resolve_scaling(identified, reflectance_scale, baseline_offset)
    warnings += scaling_warnings
    s2_files = list(dict.fromkeys(identified.bands[b].path for b in needed if b in identified.bands))
    others = [dem, *([slope] if slope else [])]
    grid = reference_grid(s2_files or list(s2), others, extent, extent_crs, resolution)
    stack = SceneStack(identified, dem, grid, scaling, slope=slope, fill_values=fills)
    try:
        check_bands = [b for b in _SCALE_CHECK_BANDS if b in identified.bands and b in needed]
        problem = scale_warning(scaling, stack.sample_reflectance(check_bands))
    except BaseException:
        stack.close()
        raise
    if problem:
        warnings.append(problem)
    for line in warnings:
        log.warning(line)
    inputs = {
        "s2": list(s2),
        "dem": dem,
        "slope": slope,
        "bands": {b: asdict(identified.bands[b]) for b in needed if b in identified.bands},
        "filled_bands": fills,
        "slope_source": "file" if slope else "computed from DEM (Horn)",
        "level": identified.level,
        "product_date": identified.product_date.isoformat() if identified.product_date else None,
        "reflectance_scale": scaling.scale,
        "baseline_offset": {"value": scaling.offset, "evidence": scaling.offset_evidence},
    }
    return _Scene(stack, grid, inputs, warnings)


def _grid_report(grid: Grid) -> dict[str, Any]:
    return {
        "crs": grid.crs.to_string(),
        "transform": list(grid.transform)[:6],
        "width": grid.width,
        "height": grid.height,
        "resolution": grid.resolution[0],
    }


def _create_runner(req: PredictRequest):
    from landslide_engine.models.backends import create_runner
    from landslide_engine.models.catalog import resolve_model

    return create_runner(resolve_model(req.model), backend=req.backend, device=req.device, batch_size=req.batch_size)


def predict_scene(
    req: PredictRequest,
    progress: Progress | None = None,
    cancelled: IsCancelled | None = None,
    runner=None,
) -> PredictResult:
    """Run the model over the scene of ``req`` and write the four outputs to ``req.out_dir``.

    ``runner`` (anything with ``predict``, ``metadata``, ``device`` and
    ``backend``) replaces the model named in ``req``. Raises InputError for bad
    input and Cancelled when ``cancelled()`` turns true; neither leaves output.
    """
    started = time.perf_counter()
    report_progress = progress or (lambda percent, message: None)
    is_cancelled = cancelled or (lambda: False)
    report_progress(0.0, "loading the model")
    runner = runner if runner is not None else _create_runner(req)
    meta = runner.metadata
    threshold = float(meta.threshold if req.threshold is None else req.threshold)
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"threshold must be between 0 and 1, got {threshold}")
    tile = int(meta.tile_size)
    report_progress(1.0, "reading the inputs")
    scene = _open_scene(
        req.s2,
        req.dem,
        req.slope,
        list(meta.bands),
        dict(meta.fillable_bands),
        req.band_map,
        req.reflectance_scale,
        req.baseline_offset,
        req.extent,
        req.extent_crs,
        req.resolution,
    )
    seconds: dict[str, float] = {"prepare": time.perf_counter() - started}
    clock = StageClock()
    out_dir = Path(req.out_dir)
    paths = {name: out_dir / name for name in (PROBABILITY_FILE, MASK_FILE, POLYGONS_FILE, REPORT_FILE)}
    with scene.stack, contextlib.ExitStack() as outputs:
        rows = tile_starts(scene.grid.height, tile, req.overlap)
        cols = tile_starts(scene.grid.width, tile, req.overlap)
        tmp = {name: outputs.enter_context(atomic_output(path)) for name, path in paths.items()}
        t0 = time.perf_counter()
        rasters = ResultRasters(tmp[PROBABILITY_FILE], tmp[MASK_FILE], scene.grid, threshold)
        try:
            _predict_strips(scene, runner, rows, cols, req, rasters, report_progress, is_cancelled, clock)
        finally:
            with clock.measure("write"):
                rasters.close()
        seconds["predict"] = time.perf_counter() - t0
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
                "architecture": meta.architecture,
                "encoder": meta.encoder,
                "bands": list(meta.bands),
                "tile_size": tile,
            },
            "device": runner.device,
            "backend": runner.backend,
            "batch_size": req.batch_size,
            "overlap": req.overlap,
            "tta": req.tta,
            "threshold": threshold,
            "min_area_m2": req.min_area_m2,
            "patches": n_patches,
            "landslides": n_landslides,
            "landslide_area_m2": area,
            "landslide_pixels": rasters.landslide_pixels,
            "seconds": seconds,
            "stage_seconds": {stage: round(value, 3) for stage, value in clock.seconds.items()},
            "peak_memory_mb": peak_memory_mb(),
            "warnings": scene.warnings,
            "outputs": {name: str(path) for name, path in paths.items()},
        }
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
        n_landslides=n_landslides,
        landslide_area_m2=area,
        warnings=list(scene.warnings),
    )


@dataclass(frozen=True)
class _ChunkPatches:
    """The patches of one chunk of a patch row, ready for the model."""

    top: int
    cols: list[int]
    left: int
    patches: np.ndarray  # (n, C, tile, tile) float32, l4s units, no NaN
    invalid: np.ndarray  # (tile, right - left) bool: pixels where some input had no data


class StageClock:
    """Seconds spent in each stage of a run, summed; the reader thread and the main thread both add to it.

    Stages that run in the reader thread overlap inference, so the stages add up to more than the wall time;
    ``wait_for_input`` is how long inference sat idle waiting for the reader.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, stage: str):
        started = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed


def _chunk_columns(cols: list[int], tile: int, overlap: int) -> list[list[int]]:
    """Patch columns split into chunks of at most about ``_CHUNK_PX`` pixels, as equal in size as possible.

    Equal chunks keep the model's batches full: 43 columns become 15 + 14 + 14, not 21 + 21 + 1.
    """
    most = max(1, _CHUNK_PX // max(1, tile - overlap))
    n_chunks = -(-len(cols) // most)
    size, extra = divmod(len(cols), n_chunks)
    bounds = itertools.accumulate((size + (i < extra) for i in range(n_chunks)), initial=0)
    return [cols[a:b] for a, b in itertools.pairwise(bounds)]


def _prefetched(jobs: Sequence[Any], produce: Callable[[Any], Any]) -> Iterator[Any]:
    """``produce(job)`` for each job in order, computing the next one in a thread while the caller works.

    GDAL reads and most numpy work release the GIL, so reading the next chunk overlaps inference on this
    one. At most two chunks are in memory. Datasets read by ``produce`` must not be used by the caller
    meanwhile (GDAL dataset handles are not thread-safe); the caller only touches the output files.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="landslide-reader") as pool:
        pending = pool.submit(produce, jobs[0]) if jobs else None
        try:
            for job in jobs[1:]:
                ready = pending.result()
                pending = pool.submit(produce, job)
                yield ready
            if pending is not None:
                ready, pending = pending.result(), None
                yield ready
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(BaseException):
                    pending.result()  # let a running read finish before the datasets are closed


class _BackgroundWriter:
    """Writes finished rows to the result rasters in a thread of its own, one strip at a time.

    Compressing and writing a strip then overlaps inference on the next patch row instead of holding it up.
    At most one strip is being written while the next is blended, so memory stays at two strips. Only this
    thread touches the result rasters until :meth:`close` returns; a write's error is raised by the next call.
    """

    def __init__(self, rasters: ResultRasters, clock: StageClock) -> None:
        self._rasters = rasters
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landslide-writer")
        self._pending: Future | None = None

    def _write(self, row: int, block: np.ndarray) -> None:
        with self._clock.measure("write"):
            self._rasters.write_rows(row, block, np.isfinite(block))

    def write_rows(self, row: int, block: np.ndarray) -> None:
        """Queue ``block`` (blended probabilities, NaN = no data) for rows from ``row`` on."""
        self.finish()
        self._pending = self._pool.submit(self._write, row, block)

    def finish(self) -> None:
        """Wait for the strip being written; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with self._clock.measure("wait_for_writer"):
                pending.result()

    def close(self) -> None:
        """Stop the thread after the strip being written (an error then is dropped: another one is on its way)."""
        if self._pending is not None:
            with contextlib.suppress(BaseException):
                self._pending.result()
        self._pool.shutdown(wait=True)


def _predict_strips(
    scene: _Scene,
    runner,
    rows: list[int],
    cols: list[int],
    req: PredictRequest,
    rasters: ResultRasters,
    progress: Progress,
    cancelled: IsCancelled,
    clock: StageClock,
) -> None:
    """Predict patch row by patch row, writing each finished strip of rows; inputs are read one chunk ahead."""
    meta = runner.metadata
    tile = int(meta.tile_size)
    height, width = scene.grid.height, scene.grid.width
    bands = list(meta.bands)
    fill = np.asarray(meta.mean, dtype=np.float32)[:, None, None]
    blender = RowBlender(width, tile, req.overlap)
    jobs = [(top, chunk) for top in rows for chunk in _chunk_columns(cols, tile, req.overlap)]
    predict = runner.predict

    following_top = dict(itertools.pairwise(rows))
    # Per chunk (keyed by its first column): the first row, values and invalid mask of the rows that the next
    # patch row shares with this one, so they are read and scaled once, not twice (a quarter of all rows at
    # the default overlap). Only the reader thread touches it, one job after another.
    shared_rows: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}

    def read_rows(c0: int, c1: int, r0: int, r1: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene rows ``r0:r1``, columns ``c0:c1`` in l4s units with no-data filled, and where it was."""
        with clock.measure("read_warp"):
            native = scene.stack.read_native(Window(c0, r0, c1 - c0, r1 - r0), bands)
        with clock.measure("scale"):
            data = scene.stack.to_l4s(native)
            missing = ~np.isfinite(data)
            np.copyto(data, np.broadcast_to(fill, data.shape), where=missing)
            return data, missing.any(axis=0)

    def read_chunk(job: tuple[int, list[int]]) -> _ChunkPatches:
        top, chunk = job
        left, right = chunk[0], chunk[-1] + tile
        r0, r1 = max(0, top), min(height, top + tile)
        c0, c1 = max(0, left), min(width, right)
        first, kept, kept_invalid = shared_rows.pop(left, (None, None, None))
        if first == r0 and r0 + kept.shape[1] >= r1:  # the last patch row can lie inside the one before
            data, invalid = kept[:, : r1 - r0], kept_invalid[: r1 - r0]
        elif first == r0:
            fresh, fresh_invalid = read_rows(c0, c1, r0 + kept.shape[1], r1)
            with clock.measure("scale"):
                data = np.concatenate([kept, fresh], axis=1)
                invalid = np.concatenate([kept_invalid, fresh_invalid])
        else:
            data, invalid = read_rows(c0, c1, r0, r1)
        with clock.measure("scale"):
            following = following_top.get(top)
            if following is not None and r0 <= following < r1:
                shared_rows[left] = (following, data[:, following - r0 :].copy(), invalid[following - r0 :].copy())
            pads = (r0 - top, top + tile - r1, c0 - left, right - c1)
            data = reflect_pad(data, *pads)
            invalid = reflect_pad(invalid[None], *pads)[0]
            patches = np.stack([data[:, :, c - left : c - left + tile] for c in chunk])
        return _ChunkPatches(top, chunk, left, patches, invalid)

    finished_rows = 0
    chunks = _prefetched(jobs, read_chunk)
    writer = _BackgroundWriter(rasters, clock)
    try:
        while True:
            if cancelled():
                raise Cancelled("cancelled")
            with clock.measure("wait_for_input"):
                item = next(chunks, None)
            if item is None:
                break
            with clock.measure("infer"):
                probs = predict_tta(predict, item.patches) if req.tta else predict(item.patches)
            with clock.measure("blend"):
                for j, c in enumerate(item.cols):
                    p = np.array(probs[j], dtype=np.float32)
                    p[item.invalid[:, c - item.left : c - item.left + tile]] = np.nan
                    blender.add(p, item.top, c)
            if item.cols[-1] != cols[-1]:
                continue
            k = finished_rows = finished_rows + 1
            until = min(height, rows[k]) if k < len(rows) else height
            if until > blender.first_row:
                start = blender.first_row
                with clock.measure("blend"):
                    block = blender.take_rows(until)
                writer.write_rows(start, block)
            progress(2.0 + 88.0 * k / len(rows), f"patch row {k} of {len(rows)}")
        writer.finish()
    finally:
        writer.close()
        chunks.close()


def stack_to_file(
    s2: Sequence[str],
    dem: str,
    out: str,
    slope: str | None = None,
    *,
    bands: Sequence[str] = L4S_BANDS,
    fill_values: Mapping[str, float] | None = None,
    band_map: Mapping[str, str] | None = None,
    reflectance_scale: str = "l1c",
    baseline_offset: str | int = "auto",
    extent: tuple[float, float, float, float] | None = None,
    extent_crs: str | None = None,
    resolution: float | None = None,
    progress: Progress | None = None,
    cancelled: IsCancelled | None = None,
) -> Path:
    """Write ``bands`` (default all 14) in L4S units as a float32 GeoTIFF on the reference grid.

    This is exactly what the model sees; nodata is -9999. Missing bands are
    an InputError unless ``fill_values`` gives them a constant (l4s units).
    """
    report_progress = progress or (lambda percent, message: None)
    is_cancelled = cancelled or (lambda: False)
    scene = _open_scene(
        s2,
        dem,
        slope,
        list(bands),
        dict(fill_values or {}),
        band_map,
        reflectance_scale,
        baseline_offset,
        extent,
        extent_crs,
        resolution,
    )
    grid = scene.grid
    profile = raster_profile(grid, "float32", STACK_NODATA, count=len(bands))
    with scene.stack, atomic_output(out) as tmp, rasterio.open(tmp, "w", **profile) as dst:
        for i, band in enumerate(bands, start=1):
            dst.set_band_description(i, band)
        for r0 in range(0, grid.height, _STACK_BLOCK_ROWS):
            if is_cancelled():
                raise Cancelled("cancelled")
            window = Window(0, r0, grid.width, min(_STACK_BLOCK_ROWS, grid.height - r0))
            data = scene.stack.stack_bands(window, list(bands))
            data[:, ~np.isfinite(data).all(axis=0)] = STACK_NODATA
            dst.write(data, window=window)
            report_progress(100.0 * (r0 + window.height) / grid.height, "stacking bands")
    return Path(out)
