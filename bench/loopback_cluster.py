"""A batch on a real Ray cluster on this machine that sees only loopback, optionally with a worker killed.

Run by ``tests/engine/batch/test_ray.py`` and ``bench/batch_speed.py`` through :func:`run_on_loopback_cluster`, which
starts ``unshare -n -p -f --mount-proc python bench/loopback_cluster.py CONFIG``: a network namespace holding
only ``lo`` (so Ray cannot probe or bind anything else) and a process namespace of its own (so ``ray stop``
sees only this cluster, and everything it started ends with it). Inside, it starts a head and ``nodes - 1``
more nodes (each ``--num-cpus``, ``--node-ip-address 127.0.0.1``), runs ``python -m landslide_engine batch
ARGS --executor ray`` against them, with ``kill`` SIGKILLs the Ray worker writing the first scene it sees
being written (its process id is in the name of the scene's staging folder), waits for the batch, stops the
cluster and prints what happened as JSON.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
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


def start_cluster(port: int, nodes: int, cpus: int, temp_dir: str, env: dict[str, str]) -> None:
    common = ["--node-ip-address", "127.0.0.1", "--num-cpus", str(cpus), "--disable-usage-stats"]
    head = ray_command("start", "--head", "--port", str(port), "--include-dashboard", "false", "--temp-dir", temp_dir)
    _ray_start([*head, *common], env)
    for _ in range(nodes - 1):
        _ray_start([*ray_command("start", "--address", f"127.0.0.1:{port}"), *common], env)


def _ray_start(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        output = (done.stdout + done.stderr)[-2500:]
        raise RuntimeError(f"{' '.join(command[1:3])} failed ({done.returncode}): {output}")


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
    temp_dir = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    # HOME too: Ray keeps state there (~/.ray/auth_token), which must neither leak in nor stay behind
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", PYTHONPATH=str(ROOT), HOME=temp_dir)
    result: dict = {}
    try:
        started = time.perf_counter()
        start_cluster(config["port"], config["nodes"], config["cpus"], temp_dir, env)
        result["cluster_start_s"] = round(time.perf_counter() - started, 2)
        out = Path(config["out"])
        command = [sys.executable, "-m", "landslide_engine", "batch", *config["batch_args"], "--out", str(out)]
        command += ["--executor", "ray", "--ray-address", f"127.0.0.1:{config['port']}"]
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


def loopback_namespaces_problem() -> str | None:
    """Why the loopback-only namespaces cannot be made here (not root, no unshare), or None."""
    try:
        probe = subprocess.run(
            ["unshare", "-n", "-p", "-f", "--mount-proc", "sh", "-c", "ip link set lo up"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except OSError as exc:
        return f"cannot run unshare: {exc}"
    return None if probe.returncode == 0 else f"cannot make a loopback-only namespace: {probe.stderr.strip()}"


def free_port() -> int:
    """A TCP port free on loopback here, hence in a fresh network namespace too."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_on_loopback_cluster(
    batch_args: list[str], out: Path, config_dir: Path, nodes: int = 2, cpus: int = 1, kill: bool = False
) -> dict:
    """Run ``batch BATCH_ARGS --out OUT`` on a fresh loopback-only cluster of ``nodes`` nodes; what happened."""
    config = config_dir / f"ray_{nodes}x{cpus}.json"
    spec = {"port": free_port(), "nodes": nodes, "cpus": cpus, "batch_args": batch_args, "out": str(out), "kill": kill}
    config.write_text(json.dumps(spec))
    command = ["unshare", "-n", "-p", "-f", "--mount-proc", sys.executable, str(Path(__file__).resolve()), str(config)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"the loopback cluster run failed ({done.returncode}): {done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main(sys.argv[1])
