"""The Ray executor: the scenes of a batch mapped by model-holding actors on a Ray cluster.

Ray is an optional dependency (``pip install '.[ray]'``, ``make setup-ray``), imported only here and only when
``--executor ray`` is chosen; the plugin and ``predict`` never import it.

* The unit of work is a scene. Each actor loads the model once (one per CPU slot the cluster offers, one per
  GPU when ``--device cuda``, or one per share of a GPU with ``--ray-gpus-per-actor``: :func:`actor_resources`)
  and maps the scenes it is given with the same
  :func:`~landslide_engine.batch.scenes.map_scene` as the local executor, so the outputs are the same files.
* Workers read the inputs and write the outputs on storage every node sees (the paths are absolute); only
  the scene's description goes out and its outcome (a few hundred bytes) comes back. No raster passes
  through Ray's object store.
* A worker that dies (killed, out of memory, its node lost) is restarted by Ray and the scene it was mapping
  is retried there, up to :data:`RETRIES` times; a scene whose every attempt killed its worker fails alone
  with that reason. Scene folders are published as a set with the report last, so a retry never sees half a
  scene, and a scene that a lost worker had already finished is reported, not mapped again.
* Scenes go to whichever actor is free (not round-robin in advance), so a slow scene holds up no other.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landslide_engine.batch.scenes import IsCancelled, Progress, SceneJob, SceneOutcome, map_scene
from landslide_engine.errors import Cancelled, InputError, first_line

RETRIES = 3  # attempts after the first, per scene, when its worker dies
_POLL_S = 0.5  # how often the driver checks for cancellation while scenes run


def actor_resources(gpus_per_actor: float | None, device: str) -> dict[str, float]:
    """What each scene-mapping actor asks Ray for: ``{"num_cpus": ..., "num_gpus": ...}``.

    ``gpus_per_actor`` (``--ray-gpus-per-actor``) None: a whole GPU per actor with ``--device cuda``, else a CPU
    slot. A share under 1 puts several actors, each with its scene pipeline and its copy of the model, on one
    GPU: the GPU's work per scene is small next to the pipeline's CPU work (``bench/README.md``, cost model), so
    one scene at a time leaves it idle. 0 maps on CPU slots only. Above 1 is refused: the model runs on one GPU.
    """
    if gpus_per_actor is None:
        gpus = 1.0 if device == "cuda" else 0.0
    elif not isinstance(gpus_per_actor, (int, float)) or not 0 <= gpus_per_actor <= 1:  # NaN is refused too
        given = f"{gpus_per_actor:g}" if isinstance(gpus_per_actor, (int, float)) else repr(gpus_per_actor)
        raise InputError(
            f"--ray-gpus-per-actor must be a share of one GPU from 0 to 1 (0.5: two actors per GPU; 0: CPUs only), "
            f"not {given}"
        )
    else:
        gpus = float(gpus_per_actor)
    if gpus == 0 and device == "cuda":
        raise InputError("--ray-gpus-per-actor 0 gives the actors no GPU, but --device cuda needs one; use a share "
                         "such as 0.5, or another device")  # fmt: skip
    if gpus > 0 and device == "cpu":
        raise InputError(f"--ray-gpus-per-actor {gpus:g} reserves GPUs that --device cpu would not use; use 0")
    return {"num_cpus": 0 if gpus else 1, "num_gpus": gpus}


def actor_count(cluster: Mapping[str, float], resources: Mapping[str, float], scenes: int, actors: int | None) -> int:
    """How many actors to start: ``actors`` if given, else as many as ``cluster``'s resources hold, at most one
    per scene and at least one (Ray queues an actor the cluster cannot place yet)."""
    return min(scenes, actors or max(1, _slots(cluster, resources)))


def _slots(resources_held: Mapping[str, float], request: Mapping[str, float]) -> int:
    """How many actors asking ``request`` fit in ``resources_held`` (a cluster's or one node's)."""
    if request["num_gpus"]:
        return int(resources_held.get("GPU", 0) / request["num_gpus"] + 1e-6)  # 1 / (1/3) is 2.9999...
    return int(resources_held.get("CPU", 0))


def actor_class(ray: Any, resources: Mapping[str, float]) -> Any:
    """:class:`SceneMapper` as a Ray actor class asking ``resources`` (:func:`actor_resources`), restarted
    whenever its worker dies and its scene retried up to :data:`RETRIES` times."""
    return ray.remote(**resources, max_restarts=-1, max_task_retries=RETRIES)(SceneMapper)


class SceneMapper:
    """A Ray actor's state: the model, loaded once, and the scenes it maps one after another."""

    def __init__(self, options: Mapping[str, Any], resources: Mapping[str, float]) -> None:
        from landslide_engine.memory import configure_for_scenes
        from landslide_engine.pipeline import PredictRequest, runner_for

        configure_for_scenes()  # the process settings the CLI makes for its own scenes (GDAL's block cache)
        self._options = dict(options)
        request = PredictRequest(s2=[], dem="", out_dir="", **self._options)
        self._runner = runner_for(request, cores=_cores_per_actor(resources))

    def map(self, job: SceneJob, out_dir: str) -> SceneOutcome:
        return map_scene(job, self._options, Path(out_dir), self._runner)


def _cores_per_actor(resources: Mapping[str, float]) -> int:
    """This node's cores divided among the actors it can hold: the share of one actor's model and pipeline.

    Ray does not pin actors to cores, and a model that took every core in each of a node's actors would run
    actors x cores threads on it. Measured in the actor, on its node.
    """
    import ray

    from landslide_engine.cpus import usable_cpu_count

    node = ray.get_runtime_context().get_node_id()
    held: dict[str, float] = next((n["Resources"] for n in ray.nodes() if n["NodeID"] == node), {})
    return max(1, usable_cpu_count() // max(1, _slots(held, resources)))


def _ray():
    try:
        import ray
    except ImportError:
        raise InputError("--executor ray needs Ray: pip install 'landslide-mapper[ray]' (or make setup-ray)") from None
    return ray


class RayExecutor:
    """Scenes on a Ray cluster: the one at ``address``, or a local one started for the batch."""

    name = "ray"

    def __init__(self, address: str | None, resources: Mapping[str, float], actors: int | None = None) -> None:
        self.address = address
        self.resources = dict(resources)  # what each actor asks Ray for: actor_resources()
        self.actors = actors

    def run(
        self,
        jobs: Sequence[SceneJob],
        options: Mapping[str, Any],
        out_dir: Path,
        report,
        progress: Progress,
        cancelled: IsCancelled,
    ) -> None:
        if not jobs:
            return
        from landslide_engine.models.catalog import resolve_model

        resolve_model(options.get("model"))  # a model that does not exist fails the batch here, not every actor
        ray = _ray()
        progress(0.0, f"connecting to the Ray cluster at {self.address}" if self.address else "starting Ray")
        quiet = {"log_to_driver": False, "logging_level": logging.WARNING}
        try:
            if self.address:
                ray.init(address=self.address, **quiet)
            else:  # a cluster of this machine alone, reachable only from it
                ray.init(address="local", include_dashboard=False, _node_ip_address="127.0.0.1", **quiet)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise InputError(f"--ray-address {self.address}: cannot connect ({first_line(exc)})") from None
        try:
            self._run(ray, jobs, options, out_dir, report, progress, cancelled)
        finally:
            ray.shutdown()

    def _run(self, ray, jobs, options, out_dir: Path, report, progress: Progress, cancelled: IsCancelled) -> None:
        count = actor_count(ray.cluster_resources(), self.resources, len(jobs), self.actors)
        mapper = actor_class(ray, self.resources)
        progress(0.0, f"loading the model in {count} Ray worker(s)")
        idle = [mapper.remote(dict(options), self.resources) for _ in range(count)]
        waiting = list(jobs)
        running: dict[Any, tuple[Any, SceneJob]] = {}
        finished = 0
        while waiting or running:
            while waiting and idle:
                actor, job = idle.pop(), waiting.pop(0)
                running[actor.map.remote(job, str(out_dir))] = (actor, job)
            ready, _ = ray.wait(list(running), num_returns=1, timeout=_POLL_S)
            if cancelled():
                for actor in idle + [actor for actor, _ in running.values()]:
                    ray.kill(actor)
                raise Cancelled("cancelled")
            for ref in ready:
                actor, job = running.pop(ref)
                idle.append(actor)
                report(self._outcome(ray, ref, job))
                finished += 1
                progress(100.0 * finished / len(jobs), f"{job.scene_id}: finished ({finished} of {len(jobs)})")

    @staticmethod
    def _outcome(ray, ref, job: SceneJob) -> SceneOutcome:
        started = time.time()
        try:
            return ray.get(ref)
        except ray.exceptions.RayError as exc:  # every attempt lost its worker
            return SceneOutcome(
                job.scene_id, job.s2, job.dem, "failed",
                reason=f"its Ray worker died {RETRIES + 1} times ({first_line(exc)[:200]})",
                seconds=round(time.time() - started, 3),
            )  # fmt: skip
