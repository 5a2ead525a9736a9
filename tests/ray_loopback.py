"""A batch on a real two-node Ray cluster that sees only loopback, with a worker killed mid-run.

Run by ``tests/test_batch_ray.py`` as ``unshare -n -p -f --mount-proc python tests/ray_loopback.py CONFIG``: a
network namespace holding only ``lo`` (so Ray cannot probe or bind anything else) and a process namespace of
its own (so ``ray stop`` sees only this cluster, and everything it started ends with it). It starts a head and
a second node (one CPU each, ``--node-ip-address 127.0.0.1``), runs ``python -m landslide_engine batch
--executor ray`` against them, SIGKILLs the Ray worker that is writing the first scene it sees being written
(its process id is in the name of the scene's staging folder), waits for the batch, stops the cluster and
prints what happened as JSON.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = re.compile(r"^\.run\.landslide-tmp\.(\d+)\.")
BATCH_TIMEOUT_S = 300


def ray_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).with_name("ray")), *args]


def start_cluster(port: int, temp_dir: str, env: dict[str, str]) -> None:
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
    head = ray_command("start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp_dir)
    subprocess.run([*head, *common], check=True, env=env, capture_output=True, timeout=120)
    worker = ray_command("start", "--address", f"127.0.0.1:{port}")
    subprocess.run([*worker, *common], check=True, env=env, capture_output=True, timeout=120)


def kill_a_writer(out: Path, driver: subprocess.Popen) -> dict | None:
    """SIGKILL the first process seen writing a scene (not the driver); None if the batch ended first."""
    while driver.poll() is None:
        for staging in out.glob("*/.run.landslide-tmp.*"):
            pid = int(STAGING.match(staging.name).group(1))
            if pid != driver.pid:
                os.kill(pid, signal.SIGKILL)
                return {"pid": pid, "scene": staging.parent.name}
        time.sleep(0.01)
    return None


def main(config_path: str) -> None:
    config = json.loads(Path(config_path).read_text())
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT))
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    result: dict = {}
    try:
        started = time.perf_counter()
        start_cluster(config["port"], temp_dir, env)
        result["cluster_start_s"] = round(time.perf_counter() - started, 2)
        out = Path(config["out"])
        command = [sys.executable, "-m", "landslide_engine", "batch", *config["scenes"], "--dem", config["dem"]]
        command += ["--out", str(out), "--executor", "ray", "--ray-address", f"127.0.0.1:{config['port']}"]
        command += config["options"]
        started = time.perf_counter()
        driver = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        result["killed"] = kill_a_writer(out, driver) if config["kill"] else None
        stdout, stderr = driver.communicate(timeout=BATCH_TIMEOUT_S)
        result.update(returncode=driver.returncode, stdout=stdout, stderr=stderr[-4000:])
        result["batch_s"] = round(time.perf_counter() - started, 2)
    finally:
        subprocess.run(ray_command("stop", "--force"), env=env, capture_output=True, timeout=120)
        subprocess.run(["rm", "-rf", temp_dir], check=False)
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1])
