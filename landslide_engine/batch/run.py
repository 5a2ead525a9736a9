"""A batch from start to end: plan the scenes, skip the complete ones, map the rest, build the regional outputs.

``batch.json`` in the output folder says what became of every scene (done, skipped, failed and why), with
times and counts, and where the regional outputs are. It is rewritten after every scene, so a long batch can
be watched, and read at the start of the next run: a folder mapped with other options is refused rather than
mixed into one mosaic.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from landslide_engine import __version__
from landslide_engine.batch.executors import Executor, create_executor
from landslide_engine.batch.mosaic import OVERLAP_RULE, MosaicScene, RegionalOutputs, build_regional_outputs
from landslide_engine.batch.scenes import SceneJob, SceneOutcome, completed_outcome, plan_scenes
from landslide_engine.errors import InputError, writing
from landslide_engine.notices import Info, Warn
from landslide_engine.outputs import write_report
from landslide_engine.pipeline import PredictRequest
from landslide_engine.targets import atomic_output, check_output_folder

BATCH_REPORT = "batch.json"
_PER_SCENE = {"s2", "dem", "slope", "scl", "out_dir"}  # a scene's own files; SAFE scenes carry their SCL
# Options that change a scene's map: a folder mapped with other values of these is not resumed.
_RESULT_OPTIONS = (
    "model",
    "precision",
    "overlap",
    "threshold",
    "tta",
    "extent",
    "extent_crs",
    "band_map",
    "reflectance_scale",
    "baseline_offset",
    "resolution",
    "min_area_m2",
    "mask_classes",
    "s2cloudless",
)

Progress = Callable[[float, str], None]


@dataclass
class BatchRequest:
    """Scenes, the region's DEM (one file or tiles) and slope, the output folder and how to run."""

    scenes: list[str]
    dems: list[str]
    out_dir: str
    slope: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # PredictRequest fields other than the scene's files
    executor: str = "local"
    ray_address: str | None = None  # the Ray executor's cluster; None starts a local one
    ray_gpus_per_actor: float | None = None  # share of a GPU per Ray actor; None: 1 with device cuda, else 0


@dataclass(frozen=True)
class BatchResult:
    outcomes: list[SceneOutcome]
    regional: RegionalOutputs | None
    report: Path

    @property
    def failed(self) -> list[SceneOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]


def run_batch(
    request: BatchRequest,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    runner=None,
    warn: Warn | None = None,
    info: Info | None = None,
) -> BatchResult:
    """Map every scene of ``request`` and build the regional outputs from those that are complete.

    A scene that fails is recorded and the others go on. Raises InputError only for a request that cannot
    start (no scenes, no DEM, unknown options, a folder mapped with other options); ``runner`` replaces
    the model for the local executor. Each scene's warnings go to ``warn`` as ``"<scene id>: <warning>"`` and
    its findings (the reflectance scale it detected) to ``info`` likewise, when the scene is done.
    """
    report_progress = progress or (lambda percent, message: None)
    is_cancelled = cancelled or (lambda: False)
    tell = warn or (lambda message: None)
    found = info or (lambda message: None)
    started = time.time()
    options = _checked_options(request.options)
    executor = create_executor(
        request.executor, runner, request.ray_address, request.ray_gpus_per_actor, options.get("device", "auto")
    )
    jobs = plan_scenes(request.scenes, request.dems, request.slope)
    out_dir = check_output_folder(Path(request.out_dir).absolute(), "--out")
    with writing(out_dir, "output folder"):
        out_dir.mkdir(parents=True, exist_ok=True)
    report_path = out_dir / BATCH_REPORT
    _check_same_options(report_path, options)

    outcomes: dict[str, SceneOutcome] = {}
    pending: list[SceneJob] = []
    for job in jobs:
        try:
            done = completed_outcome(job, out_dir / job.scene_id, "skipped")
        except InputError as exc:
            outcomes[job.scene_id] = SceneOutcome(job.scene_id, job.s2, job.dem, "failed", reason=str(exc))
            continue
        if done is None:
            pending.append(job)
        else:
            outcomes[job.scene_id] = done

    def write(regional: dict[str, Any] | None = None) -> None:
        _write_batch_report(report_path, request, options, jobs, outcomes, started, regional, executor)

    def record(outcome: SceneOutcome) -> None:
        outcomes[outcome.scene_id] = outcome
        write()
        for line in outcome.findings:
            found(f"{outcome.scene_id}: {line}")
        for line in outcome.warnings:
            tell(f"{outcome.scene_id}: {line}")

    write()
    try:
        executor.run(pending, options, out_dir, record, report_progress, is_cancelled)
    finally:
        write()
    report_progress(99.0, "building the regional mosaics and polygons")
    usable = [
        MosaicScene(o.scene_id, out_dir / o.scene_id, o.crs or "", (o.valid_pixels or 0) / max(1, o.pixels or 1),
                    o.product_date)
        for o in (outcomes[job.scene_id] for job in jobs)
        if o.status in ("done", "skipped")
    ]  # fmt: skip
    regional = None
    if usable:
        min_area = float(_result_options(options)["min_area_m2"])  # the engine's default when not given
        regional = build_regional_outputs(usable, out_dir, min_area, is_cancelled)
    write(_regional_report(regional) if regional else None)
    report_progress(100.0, f"{len(usable)} of {len(jobs)} scene(s) mapped")
    return BatchResult([outcomes[job.scene_id] for job in jobs], regional, report_path)


def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
    allowed = {f.name for f in fields(PredictRequest)} - _PER_SCENE
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise InputError(f"batch: unknown option(s) {', '.join(unknown)}")
    return dict(options)


def _result_options(options: Mapping[str, Any]) -> dict[str, Any]:
    defaults = {f.name: f.default for f in fields(PredictRequest) if f.name in _RESULT_OPTIONS}
    merged = {name: options.get(name, defaults[name]) for name in _RESULT_OPTIONS}
    return json.loads(json.dumps(merged, default=str))  # tuples as lists, as read back from batch.json


def _check_same_options(report_path: Path, options: Mapping[str, Any]) -> None:
    """Refuse to add scenes to a folder whose earlier batch used options that give other maps."""
    try:
        earlier = json.loads(report_path.read_text(encoding="utf-8")).get("options", {})
    except (OSError, ValueError):
        return
    now = _result_options(options)
    differ = [name for name in _RESULT_OPTIONS if name in earlier and earlier[name] != now[name]]
    if differ:
        name = differ[0]
        raise InputError(
            f"{report_path.parent} was mapped with {name} {earlier[name]!r}, not {now[name]!r}; "
            "use another output folder or remove it"
        )


def _regional_report(regional: RegionalOutputs) -> dict[str, Any]:
    return {
        "probability": str(regional.probability),
        "mask": str(regional.mask),
        "scenes": str(regional.scenes),
        "polygons": str(regional.polygons),
        "crs": regional.crs,
        "landslides": regional.landslides,
        "landslide_area_m2": regional.landslide_area_m2,
        "scene_numbers": {str(k): sid for k, sid in enumerate(regional.order, start=1)},
        "overlap_rule": OVERLAP_RULE,
    }


def _write_batch_report(
    path: Path,
    request: BatchRequest,
    options: Mapping[str, Any],
    jobs: Sequence[SceneJob],
    outcomes: Mapping[str, SceneOutcome],
    started: float,
    regional: dict[str, Any] | None,
    executor: Executor,
) -> None:
    scenes = []
    for job in jobs:
        outcome = outcomes.get(job.scene_id)
        scenes.append(outcome.to_dict() if outcome else {"scene_id": job.scene_id, "s2": job.s2, "dem": job.dem,
                                                          "status": "pending"})  # fmt: skip
    counts = {status: sum(1 for s in scenes if s["status"] == status) for status in ("done", "skipped", "failed")}
    report = {
        "engine_version": __version__,
        "started": dt.datetime.fromtimestamp(started, dt.timezone.utc).isoformat(timespec="milliseconds"),
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds"),
        "seconds": round(time.time() - started, 3),
        "executor": request.executor,
        "ray_address": request.ray_address,
        "ray_actor_resources": getattr(executor, "resources", None),  # what each Ray actor asked for
        "options": _result_options(options),
        "counts": counts,
        "scenes": scenes,
        "regional": regional,
    }
    with atomic_output(path) as tmp:
        write_report(tmp, report)
