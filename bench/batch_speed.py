"""Batch rows: scenes per hour with the local executor and with Ray on one and two nodes of this machine.

``python bench/batch_speed.py --out bench/BATCH_RESULTS.md`` (``make bench-batch``) runs only these rows, in
about two minutes; ``make bench`` (``bench/run.py``) runs them too and puts them in ``RESULTS.md``.

The same generated scenes (``scenes.write_scene``: a 13-band L1C-like GeoTIFF and a 30 m DEM on a shifted
grid, so each scene warps the DEM and computes slope) are mapped with the built-in model (fp32 ONNX, the
compact U-Net analysts run) by ``python -m landslide_engine batch``, each configuration from an empty output
folder, in a fresh process:

* ``local``: scene after scene in the command's process;
* Ray on one node with one CPU (one actor): the local executor's work plus what Ray adds, scene by scene;
* Ray on one node with two CPUs, and on two nodes with one CPU each (two actors, one per slot).

Ray clusters run in a loopback-only network namespace (``loopback_cluster.py``). From each run's
``batch.json`` (times to the millisecond): the one-time cost before the first scene starts (starting Ray or
connecting, loading the model in each actor), the steady seconds per scene (first scene started to last
finished, over the scenes, times the actors), and the mean seconds inside ``map_scene``. The fixed cost Ray
adds per scene is Ray with one actor against local, steady seconds per scene.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from loopback_cluster import loopback_namespaces_problem, run_on_loopback_cluster
from machine import machine_details
from scenes import write_scene

REPO = Path(__file__).resolve().parents[1]
SCENES = 6
SIZE = 1000
# (label, nodes, CPUs per node); None: the local executor
CONFIGS: list[tuple[str, int | None, int | None]] = [
    ("local", None, None),
    ("Ray, 1 node x 1 CPU (1 actor)", 1, 1),
    ("Ray, 1 node x 2 CPUs (2 actors)", 1, 2),
    ("Ray, 2 nodes x 1 CPU (2 actors)", 2, 1),
]


def prepare_scenes(work: Path, count: int, size: int) -> tuple[list[Path], Path]:
    """``count`` scenes of ``size``² px (one generated scene under as many names) and their DEM."""
    scene = write_scene(work / "scenes", size)
    folder = work / f"batch_scenes_{size}"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"S2A_bench_{size}_{i:02d}.tif"
        if not path.exists():
            os.link(scene.s2, path)  # a second name of the same file: regular, like a downloaded scene
        paths.append(path)
    return paths, scene.dem


def _seconds(text: str) -> float:
    return dt.datetime.fromisoformat(text).timestamp()


def summarise(report: dict, wall_s: float, actors: int) -> dict:
    """Timings of one run from its ``batch.json``: one-time cost, steady and inside seconds per scene."""
    scenes = [s for s in report["scenes"] if s["status"] == "done"]
    first = min(_seconds(s["started"]) for s in scenes)
    last = max(_seconds(s["finished"]) for s in scenes)
    return {
        "scenes": len(scenes),
        "failed": report["counts"]["failed"],
        "wall_s": wall_s,
        "scenes_per_hour": len(scenes) / wall_s * 3600,
        "one_time_s": first - _seconds(report["started"]),
        "steady_s_per_scene": (last - first) / len(scenes) * actors,
        "inside_s_per_scene": sum(s["seconds"] for s in scenes) / len(scenes),
        "patches": sum(s["patches"] for s in scenes),
    }


def run_local(batch_args: list[str], out: Path) -> dict:
    started = time.perf_counter()
    command = [sys.executable, "-m", "landslide_engine", "batch", *batch_args, "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"local batch failed ({done.returncode}): {done.stderr[-2000:]}")
    return summarise(json.loads((out / "batch.json").read_text()), wall, actors=1)


def measure(work: Path, count: int = SCENES, size: int = SIZE) -> dict:
    """Every configuration on the same scenes; rows, and why Ray rows are missing when they are."""
    paths, dem = prepare_scenes(work, count, size)
    batch_args = [*map(str, paths), "--dem", str(dem), "--device", "cpu"]
    rows: list[dict] = []
    skipped = None
    try:
        import ray  # noqa: F401
    except ImportError:
        skipped = "Ray is not installed (make setup-ray)"
    skipped = skipped or loopback_namespaces_problem()
    for label, nodes, cpus in CONFIGS:
        out = work / "batch_out" / ("local" if nodes is None else f"ray_{nodes}x{cpus}")
        shutil.rmtree(out, ignore_errors=True)
        print(f"  batch {label} ...", flush=True)
        if nodes is None:
            row = run_local(batch_args, out)
        elif skipped:
            continue
        else:
            result = run_on_loopback_cluster(batch_args, out, work, nodes=nodes, cpus=cpus)
            if result["returncode"] != 0:
                raise RuntimeError(f"{label}: batch failed: {result['stderr'][-2000:]}")
            row = summarise(json.loads((out / "batch.json").read_text()), result["batch_s"], actors=nodes * cpus)
            row["cluster_start_s"] = result["cluster_start_s"]
        row.update(label=label, nodes=nodes, cpus=cpus)
        rows.append(row)
        print(f"    {row['wall_s']:.1f} s, {row['scenes_per_hour']:.0f} scenes/h", flush=True)
    return {"rows": rows, "count": count, "size": size, "ray_skipped": skipped, "load": os.getloadavg()}


def render(result: dict) -> list[str]:
    """The batch section of a report, in Markdown."""
    rows = result["rows"]
    patches = rows[0]["patches"] // rows[0]["scenes"] if rows else 0
    lines = [
        "## Batch: scenes per hour, local and Ray",
        "",
        f"{result['count']} scenes of {result['size']}² px ({patches} patches each, overlap 32) mapped by "
        "`python -m landslide_engine batch` with the built-in model (ONNX Runtime fp32) on the CPU, each "
        "configuration from an empty output folder in a fresh process. Ray clusters run on this machine in a "
        "loopback-only network namespace (`bench/loopback_cluster.py`); *cluster start* (`ray start` of every "
        "node) is not in *wall s*. *one-time s*: from the batch's start to its first scene's (starting or "
        "connecting to Ray, loading the model in each actor). *steady s/scene*: first scene started to last "
        "finished, per scene, times the actors (a scene's cost in one actor's time). *inside s/scene*: mean time "
        "in `map_scene`; *outside s/scene*: the difference, what the executor costs beyond the scene's own run. "
        "Every actor's model uses every core (one single-thread ONNX Runtime worker per core), so two actors on "
        "two cores share them.",
        "",
        "| executor | wall s | scenes/h | one-time s | steady s/scene | inside s/scene | outside s/scene "
        "| cluster start s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        start = f"{r['cluster_start_s']:.1f}" if "cluster_start_s" in r else ""
        outside = r["steady_s_per_scene"] - r["inside_s_per_scene"]
        lines.append(
            f"| {r['label']} | {r['wall_s']:.1f} | {r['scenes_per_hour']:.0f} | {r['one_time_s']:.2f} | "
            f"{r['steady_s_per_scene']:.2f} | {r['inside_s_per_scene']:.2f} | {outside:.3f} | {start} |"
        )
    local = next((r for r in rows if r["nodes"] is None), None)
    single = next((r for r in rows if r["nodes"] == 1 and r["cpus"] == 1), None)
    lines.append("")
    if local and single:
        added = single["steady_s_per_scene"] - local["steady_s_per_scene"]
        dispatch = single["steady_s_per_scene"] - single["inside_s_per_scene"]
        lines.append(
            f"- fixed cost Ray adds per scene (one actor against local, steady s/scene): **{added:+.2f} s** "
            f"({single['steady_s_per_scene']:.2f} against {local['steady_s_per_scene']:.2f}), of which "
            f"{dispatch:.3f} s outside the scene's own run (dispatch, outcome, batch.json) and the rest the scene "
            f"itself running slower or faster in the worker; once per batch "
            f"{single['one_time_s'] - local['one_time_s']:+.1f} s to connect and start the actor, and "
            f"{single['cluster_start_s']:.1f} s for `ray start`"
        )
    if result["ray_skipped"]:
        lines.append(f"- Ray rows not measured: {result['ray_skipped']}")
    lines.append(f"- load average after the batch rows: {', '.join(f'{x:.2f}' for x in result['load'])}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("BATCH_RESULTS.md"))
    parser.add_argument("--scenes", type=int, default=SCENES)
    parser.add_argument("--size", type=int, default=SIZE, help="scene size in px")
    parser.add_argument("--work-dir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "landslide_bench")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    details = machine_details()
    result = measure(args.work_dir, args.scenes, args.size)
    command = " ".join(["python", "bench/batch_speed.py", *(argv if argv is not None else sys.argv[1:])])
    lines = [
        "# Batch rows",
        "",
        f"Produced by `{command}` in {(time.perf_counter() - started) / 60:.1f} min on "
        f"{details.get('date (UTC)', '')}, {details.get('cores usable / online', '?')} cores usable, load "
        f"average at start {details.get('load average at start', '?')} (the machine is shared: compare rows "
        "within this run).",
        "",
        *render(result),
    ]
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
