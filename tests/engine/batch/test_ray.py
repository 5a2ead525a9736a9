"""``batch --executor ray`` on a real two-node Ray cluster on this machine, seeing only loopback.

Three small real scenes (crops of the Aberystwyth mosaic with its SRTM DEM) are mapped by the built-in model with
the local executor and on the cluster, where a worker is killed while it writes a scene; every output must be
the same. The cluster runs in its own network and process namespaces (``bench/loopback_cluster.py``), so no
traffic leaves loopback and everything it started ends with it. Needs root (``unshare``) and Ray
(``make setup-ray``); skipped with the reason otherwise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio

from landslide_engine.batch import BatchRequest, run_batch
from tests.paths import ROOT
from tests.scenes import features

sys.path.insert(0, str(ROOT / "bench"))

from loopback_cluster import loopback_namespaces_problem, run_on_loopback_cluster

OPTIONS = ["--reflectance-scale", "x1000"]


@pytest.fixture(scope="module")
def cluster_ready():
    pytest.importorskip("ray", reason="Ray is not installed (make setup-ray)")
    problem = loopback_namespaces_problem()
    if problem:
        pytest.skip(problem)


def visible_files(folder: Path) -> list[str]:
    """Every file under ``folder`` but hidden ones (a killed worker's staging folder stays until it is stale)."""
    relative = (p.relative_to(folder) for p in folder.rglob("*") if p.is_file())
    return sorted(str(r) for r in relative if not any(part.startswith(".") for part in r.parts))


def test_ray_cluster_maps_like_the_local_executor_when_a_worker_is_killed(cluster_ready, scenes, tmp_path):
    from tests.scenes import SIZE, crop

    south = crop(scenes["dem"].parent / "sen2_20210527_aber_10band_mosaic_epsg27700.tif",
                 tmp_path / "south.tif", 390, 520, *SIZE)  # fmt: skip
    paths = [str(scenes["west"]), str(scenes["east"]), str(south)]
    local = run_batch(
        BatchRequest(paths, [str(scenes["dem"])], str(tmp_path / "local_out"), options={"reflectance_scale": "x1000"})
    )
    assert [o.status for o in local.outcomes] == ["done"] * 3

    ray = run_on_loopback_cluster([*paths, "--dem", str(scenes["dem"]), *OPTIONS], tmp_path / "ray_out", tmp_path,
                                  nodes=2, cpus=1, kill=True)  # fmt: skip
    print(json.dumps(ray, indent=1))  # shown with -s: timings, the kill, the driver's output
    assert ray["returncode"] == 0, ray["stderr"]
    killed = ray["killed"]
    assert killed is not None, "the batch ended before a worker could be killed"
    report = json.loads((tmp_path / "ray_out" / "batch.json").read_text())
    assert report["executor"] == "ray" and report["counts"] == {"done": 3, "skipped": 0, "failed": 0}
    by_scene = {s["scene_id"]: s for s in report["scenes"]}
    assert by_scene[killed["scene"]]["worker"].split(":")[1] != str(killed["pid"])  # redone by another process
    workers = {s["worker"] for s in report["scenes"]}
    assert all(not w.endswith(f":{os.getpid()}") for w in workers)  # mapped on the cluster, not by the driver

    local_out, ray_out = tmp_path / "local_out", tmp_path / "ray_out"
    assert visible_files(local_out) and visible_files(ray_out) == visible_files(local_out)
    for name in visible_files(local_out):
        ours, theirs = local_out / name, ray_out / name
        if name.endswith((".tif", ".vrt")):
            with rasterio.open(ours) as a, rasterio.open(theirs) as b:
                assert a.transform == b.transform and a.crs == b.crs, name
                np.testing.assert_array_equal(a.read(), b.read(), err_msg=name)
        elif name.endswith(".gpkg"):
            assert features(ours) == features(theirs), name
        elif name.endswith("run.json"):
            a, b = json.loads(ours.read_text()), json.loads(theirs.read_text())
            for key in ("inputs", "grid", "model", "patches", "landslides", "landslide_area_m2", "landslide_pixels"):
                assert a[key] == b[key], (name, key)


def test_without_an_address_a_local_ray_cluster_is_started(cluster_ready, scenes, tmp_path):
    args = [str(scenes["west"]), "--dem", str(scenes["dem"]), *OPTIONS]
    local = run_batch(
        BatchRequest([args[0]], [args[2]], str(tmp_path / "local"), options={"reflectance_scale": "x1000"})
    )
    assert local.outcomes[0].status == "done"
    command = f"ip link set lo up && exec {sys.executable} -m landslide_engine batch {' '.join(args)} "
    command += f"--out {tmp_path / 'ray'} --executor ray"
    home_ray = Path.home() / ".ray"
    before = sorted(home_ray.rglob("*")) if home_ray.exists() else None
    env = dict(os.environ, HOME=str(tmp_path), RAY_USAGE_STATS_ENABLED="0")  # Ray's ~/.ray stays in tmp_path
    done = subprocess.run(["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", command],
                          capture_output=True, text=True, timeout=600, cwd=ROOT, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert (sorted(home_ray.rglob("*")) if home_ray.exists() else None) == before  # the user's ~/.ray untouched
    report = json.loads((tmp_path / "ray" / "batch.json").read_text())
    assert report["executor"] == "ray" and report["ray_address"] is None
    assert report["ray_actor_resources"] == {"num_cpus": 1, "num_gpus": 0.0}  # no GPU asked without --device cuda
    assert report["scenes"][0]["status"] == "done" and report["scenes"][0]["worker"].split(":")[1] != str(os.getpid())
    with (
        rasterio.open(tmp_path / "ray/west/probability.tif") as a,
        rasterio.open(tmp_path / "local/west/probability.tif") as b,
    ):
        np.testing.assert_array_equal(a.read(), b.read())


def test_the_single_scene_path_and_the_local_batch_never_import_ray(scenes, tmp_path):
    code = f"""
import sys
from landslide_engine.cli import main
assert main(["predict", "--s2", {str(scenes["west"])!r}, "--dem", {str(scenes["dem"])!r},
             "--reflectance-scale", "x1000", "--out", {str(tmp_path / "one")!r}]) == 0
assert main(["batch", {str(scenes["west"])!r}, "--dem", {str(scenes["dem"])!r},
             "--reflectance-scale", "x1000", "--out", {str(tmp_path / "many")!r}]) == 0
assert "ray" not in sys.modules, "ray was imported"
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
