"""Running the packaged plugin through ``qgis_process.bin`` with a throwaway profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


def build_plugin_zip(out_dir: Path) -> Path:
    """Run ``make package`` into ``out_dir`` and return the zip path."""
    dist = out_dir / "dist"
    subprocess.run(["make", "-s", "package", f"DIST={dist}"], cwd=ROOT, check=True, capture_output=True)
    (zip_path,) = dist.glob("landslide_qgis-*.zip")
    return zip_path


def qgis_process_env(plugin_path: Path, profile: Path) -> dict[str, str]:
    """Environment for qgis_process.bin: headless, throwaway profile, our venv's packages visible.

    QGIS embeds the system Python; the venv's site-packages (onnxruntime, torch) are added
    to PYTHONPATH the way an analyst would add them to QGIS's Python.
    """
    env = dict(os.environ)
    site = sysconfig.get_paths()["purelib"]
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugin_path),
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        PYTHONPATH=os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p),
        HF_HUB_OFFLINE="1",
    )
    env.pop("PYTHONHOME", None)
    return env


def run_qgis_process(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_json(args: list[str], env: dict[str, str], timeout: float = 600) -> dict:
    """Run an algorithm with ``--json`` output and return the parsed result."""
    proc = run_qgis_process(["--json", *args], env, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"qgis_process {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start:])


__all__ = ["QGIS_PROCESS", "build_plugin_zip", "qgis_process_env", "run_json", "run_qgis_process", "sys"]
