"""The scenes of a batch and how one of them is mapped into its own folder.

A scene is one input that ``predict`` accepts as one file (a multi-band raster, a SAFE folder or zip) with its
DEM. Its outputs go to ``OUT/<scene id>/``, written by ``predict_scene`` itself, so they are complete or absent
exactly as ``predict``'s are: published as a set with ``run.json`` last. A folder with a ``run.json`` of the
same inputs is complete and is what a re-run skips; a folder without one (a run killed mid-scene) is mapped again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from landslide_engine.errors import Cancelled, InputError, classify, first_line, one_line
from landslide_engine.pipeline import (
    MASK_FILE,
    POLYGONS_FILE,
    PROBABILITY_FILE,
    REPORT_FILE,
    PredictRequest,
    predict_scene,
)

log = logging.getLogger(__name__)

SCENE_OUTPUTS = (PROBABILITY_FILE, MASK_FILE, POLYGONS_FILE, REPORT_FILE)
_SUFFIXES = (".tif", ".tiff", ".vrt", ".jp2", ".img", ".zip", ".safe", ".json", ".xml")

Progress = Callable[[float, str], None]
IsCancelled = Callable[[], bool]


@dataclass(frozen=True)
class SceneJob:
    """One scene of a batch: its id (its folder's name), its input, and the region's DEM (and slope)."""

    scene_id: str
    s2: str
    dem: str | list[str]  # one DEM, or the region's DEM tiles (each scene reads the part it covers)
    slope: str | None = None


@dataclass(frozen=True)
class SceneOutcome:
    """What became of one scene: ``done``, ``skipped`` (complete from an earlier run) or ``failed`` (``reason``)."""

    scene_id: str
    s2: str
    dem: str | list[str]
    status: str
    reason: str | None = None
    seconds: float | None = None
    started: str | None = None
    finished: str | None = None
    patches: int | None = None
    patches_without_data: int | None = None
    landslides: int | None = None
    landslide_area_m2: float | None = None
    valid_pixels: int | None = None
    pixels: int | None = None
    product_date: str | None = None
    crs: str | None = None
    worker: str | None = None
    warnings: list[str] = dataclasses.field(default_factory=list)
    findings: list[str] = dataclasses.field(default_factory=list)  # what predict found about the inputs (info)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def scene_id(path: str) -> str:
    """The scene's folder name: its file or folder name without raster, archive and SAFE suffixes."""
    name = Path(path.rstrip("/\\")).name
    while True:
        stem, suffix = os.path.splitext(name)
        if suffix.lower() not in _SUFFIXES or not stem:
            return name
        name = stem


def plan_scenes(scenes: Sequence[str], dems: Sequence[str], slope: str | None = None) -> list[SceneJob]:
    """One job per scene, all with the region's DEM (one file, or tiles mosaicked for each scene) and slope.

    Paths become absolute, so workers with another working directory (Ray's) read the same files. Two scenes
    whose ids coincide would write one folder and are refused.
    """
    if not scenes:
        raise InputError("batch: no scenes given")
    if not dems:
        raise InputError("--dem: give the DEM (one file or its tiles)")
    absolute = [os.path.abspath(d) for d in dems]
    dem: str | list[str] = absolute[0] if len(absolute) == 1 else absolute
    jobs: list[SceneJob] = []
    seen: dict[str, str] = {}
    for scene in scenes:
        sid = scene_id(scene)
        if sid in seen:
            raise InputError(f"scenes {seen[sid]} and {scene} would both write the folder {sid}; rename one")
        seen[sid] = scene
        jobs.append(SceneJob(sid, os.path.abspath(scene), dem, os.path.abspath(slope) if slope else None))
    return jobs


def completed_outcome(job: SceneJob, folder: Path, status: str) -> SceneOutcome | None:
    """The outcome of ``job`` from its complete output ``folder``; None when the folder is absent.

    A folder without a report is an unfinished run's, None too: predict publishes the report last. Raises
    InputError when the folder holds the outputs of other inputs: skipping it would put another scene's map into
    the mosaic, and mapping over it would destroy it.
    """
    try:
        report = json.loads((folder / REPORT_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise InputError(
            f"{folder / REPORT_FILE} is unreadable ({exc}); remove {folder} to map the scene again"
        ) from None
    missing = [name for name in SCENE_OUTPUTS if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{folder} lacks {', '.join(missing)} beside its report; remove it to map the scene again")
    inputs = report.get("inputs", {})
    if inputs.get("s2") != [job.s2] or inputs.get("dem") != job.dem:
        raise InputError(f"{folder} holds the outputs of {inputs.get('s2')}, not of {job.s2}; remove it or rename")
    valid, pixels = count_valid_pixels(folder / MASK_FILE)
    return SceneOutcome(
        scene_id=job.scene_id,
        s2=job.s2,
        dem=job.dem,
        status=status,
        seconds=report.get("seconds", {}).get("total"),
        finished=report.get("finished"),
        patches=report.get("patches"),
        patches_without_data=report.get("patches_without_data"),
        landslides=report.get("landslides"),
        landslide_area_m2=report.get("landslide_area_m2"),
        valid_pixels=valid,
        pixels=pixels,
        product_date=inputs.get("product_date"),
        crs=report.get("grid", {}).get("crs"),
        warnings=list(report.get("warnings", [])),
    )


def count_valid_pixels(mask_path: Path) -> tuple[int, int]:
    """Pixels of the mask with data and all pixels, read block by block."""
    import rasterio

    valid = 0
    with rasterio.open(mask_path) as src:
        for _, window in src.block_windows(1):
            valid += int(np.count_nonzero(src.read(1, window=window) != src.nodata))
        return valid, src.width * src.height


def map_scene(
    job: SceneJob,
    options: Mapping[str, Any],
    out_dir: Path,
    runner,
    progress: Progress | None = None,
    cancelled: IsCancelled | None = None,
) -> SceneOutcome:
    """Map ``job`` with ``runner`` into ``out_dir/<scene id>``; a scene that cannot be mapped is ``failed``.

    A folder that is already complete (a worker that finished it was lost before it reported) is reported as
    done from its run report, so a retried scene is mapped once. Cancellation propagates, leaving nothing.
    The scene's warnings (from its run.json) and findings (predict's ``info``, e.g. the reflectance scale it
    detected) come back in the outcome, for the caller to show with the scene's name, wherever the scene ran.
    """
    final = out_dir / job.scene_id
    worker = f"{socket.gethostname()}:{os.getpid()}"
    started = time.time()
    created = not final.exists()
    try:
        already = completed_outcome(job, final, "done")
        if already is not None:
            return dataclasses.replace(already, worker=worker)
        request = PredictRequest(s2=[job.s2], dem=job.dem, slope=job.slope, out_dir=str(final), **options)
        findings: list[str] = []
        predict_scene(
            request, progress=progress, cancelled=cancelled, runner=runner, warn=_kept_for_outcome,
            info=findings.append,
        )  # fmt: skip
        outcome = completed_outcome(job, final, "done")
    except BaseException as exc:
        if created:
            with contextlib.suppress(OSError):
                final.rmdir()  # the folder this run made, left empty: absent, as before
        if isinstance(exc, (Cancelled, KeyboardInterrupt)) or not isinstance(exc, Exception):
            raise
        # one scene's failure, even a bug, must not stop the others; the reason says what
        problem = classify(exc)
        if isinstance(problem, InputError):
            return _failed(job, one_line(str(problem)), started, worker)
        log.error("scene %s failed", job.scene_id, exc_info=True)  # a bug: its traceback goes to the log
        return _failed(job, f"{type(exc).__name__}: {one_line(first_line(exc))}", started, worker)
    assert outcome is not None
    finished = time.time()
    return dataclasses.replace(
        outcome, seconds=round(finished - started, 3), started=_iso(started), finished=_iso(finished), worker=worker,
        findings=findings,
    )  # fmt: skip


def _kept_for_outcome(message: str) -> None:
    """Warnings reach the caller through the outcome, which reads them from run.json."""


def _failed(job: SceneJob, reason: str, started: float, worker: str) -> SceneOutcome:
    return SceneOutcome(
        job.scene_id, job.s2, job.dem, "failed", reason=reason, seconds=round(time.time() - started, 3),
        started=_iso(started), finished=_iso(time.time()), worker=worker,
    )  # fmt: skip


def _iso(seconds: float) -> str:
    """UTC to the millisecond: batch.json's times also measure what a scene costs beyond its own run."""
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).isoformat(timespec="milliseconds")
