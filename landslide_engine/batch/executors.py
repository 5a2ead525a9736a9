"""Where the scenes of a batch run: here, one after another (``local``), or on a Ray cluster (``ray``).

An executor maps every job it is given with :func:`~landslide_engine.batch.scenes.map_scene` and hands each
outcome to ``report`` as it arrives; a scene that fails is an outcome like any other, so the others go on.
Only cancellation stops an executor early.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from landslide_engine.batch.scenes import IsCancelled, Progress, SceneJob, SceneOutcome, map_scene
from landslide_engine.errors import InputError

EXECUTORS = ("local", "ray")
Report = Callable[[SceneOutcome], None]


class Executor(Protocol):
    name: str

    def run(
        self,
        jobs: Sequence[SceneJob],
        options: Mapping[str, Any],
        out_dir: Path,
        report: Report,
        progress: Progress,
        cancelled: IsCancelled,
    ) -> None:
        """Map every job, calling ``report`` once per job with its outcome."""


class LocalExecutor:
    """Scenes one after another in this process, through one model loaded once (or the ``runner`` given)."""

    name = "local"

    def __init__(self, runner=None) -> None:
        self._runner = runner

    def run(self, jobs, options, out_dir, report, progress, cancelled) -> None:
        if not jobs:
            return
        runner = self._runner
        if runner is None:
            from landslide_engine.pipeline import PredictRequest, runner_for

            progress(0.0, "loading the model")
            runner = runner_for(PredictRequest(s2=[], dem="", out_dir="", **options))
        for index, job in enumerate(jobs):

            def scene_progress(percent: float, message: str, index: int = index, job: SceneJob = job) -> None:
                progress(100.0 * (index + percent / 100.0) / len(jobs), f"{job.scene_id}: {message}")

            report(map_scene(job, options, out_dir, runner, scene_progress, cancelled))


def create_executor(
    name: str,
    runner=None,
    ray_address: str | None = None,
    ray_gpus_per_actor: float | None = None,
    device: str = "auto",
) -> Executor:
    """The executor called ``name``; ``ray_address`` is Ray's (None: a local Ray cluster is started) and
    ``ray_gpus_per_actor`` the share of a GPU each Ray actor asks for (None: Ray's executor decides from
    ``device``). Options that do not fit are refused here, before any scene or report is written."""
    if name == "local":
        if ray_address:
            raise InputError("--ray-address is for --executor ray")
        if ray_gpus_per_actor is not None:
            raise InputError("--ray-gpus-per-actor is for --executor ray")
        return LocalExecutor(runner)
    if name == "ray":
        if runner is not None:
            raise InputError("a runner object cannot be sent to Ray workers; they load the model themselves")
        from landslide_engine.batch.ray_executor import RayExecutor, actor_resources

        return RayExecutor(ray_address, actor_resources(ray_gpus_per_actor, device))
    raise InputError(f"--executor must be one of {', '.join(EXECUTORS)}, not {name!r}")
