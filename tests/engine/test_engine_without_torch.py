"""The engine runs ``.onnx`` models in a Python that has onnxruntime but neither torch nor onnx.

That is an analyst's QGIS Python after ``pip install onnxruntime``. The packages are made here, with torch; the
engine then runs in a child Python whose imports of torch, segmentation-models-pytorch and onnx fail.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import rasterio
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.models.package import ModelMetadata, export_onnx, save_torch_package
from landslide_engine.models.registry import create_model
from tests.paths import ROOT
from tests.scenes import make_scene

BLOCKED_MODULES = ("torch", "segmentation_models_pytorch", "onnx")

# Installed as sitecustomize.py ahead of everything else on the child's path, so the block is in place before the
# engine (or anything it imports) runs. Only exact top-level names are blocked: onnxruntime stays importable.
BLOCKER = f"""
import sys

BLOCKED = {BLOCKED_MODULES!r}


class BlockModules:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in BLOCKED:
            raise ImportError(f"No module named {{name!r}} (blocked by the test)", name=name)
        return None


sys.meta_path.insert(0, BlockModules())
"""


@pytest.fixture(scope="module")
def packages(tmp_path_factory) -> dict[str, Path]:
    """The same tiny 14-band network as an .onnx and a .pt package, in a models folder."""
    folder = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    model = create_model("unet_plain_w16", in_channels=14).eval()
    metadata = ModelMetadata.from_spec(
        "unet_plain_w16", name="tiny-no-torch", bands=list(L4S_BANDS), mean=[1.0] * 14, std=[0.5] * 14
    )
    return {
        "onnx": export_onnx(model, metadata, folder / "tiny.onnx"),
        "pt": save_torch_package(model, metadata, folder / "tiny.pt"),
    }


@pytest.fixture
def without_torch(tmp_path, packages) -> dict[str, str]:
    """Environment for a child Python that cannot import torch, smp or onnx, with the packages as user models."""
    blocker_dir = tmp_path / "blocker"
    blocker_dir.mkdir()
    (blocker_dir / "sitecustomize.py").write_text(BLOCKER)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(blocker_dir), str(ROOT), env.get("PYTHONPATH")) if p)
    env["LANDSLIDE_MAPPER_MODELS"] = str(packages["onnx"].parent)
    return env


def run_engine(env: dict[str, str], *args: str | Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "landslide_engine", *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_blocker_really_hides_torch_and_onnx_but_not_onnxruntime(without_torch):
    probe = "import sys; __import__(sys.argv[1])"
    for name in BLOCKED_MODULES:
        proc = subprocess.run([sys.executable, "-c", probe, name], env=without_torch, capture_output=True, text=True)
        assert proc.returncode != 0 and "blocked by the test" in proc.stderr, name
    proc = subprocess.run([sys.executable, "-c", probe, "onnxruntime"], env=without_torch, capture_output=True)
    assert proc.returncode == 0, proc.stderr


def test_predict_with_an_onnx_package_needs_no_torch(tmp_path, packages, without_torch):
    s2, dem = make_scene(tmp_path, 90, 100)
    out = tmp_path / "out"
    proc = run_engine(
        without_torch, "predict", "--s2", s2, "--dem", dem, "--model", packages["onnx"], "--out", out, "--device", "cpu"
    )
    assert proc.returncode == 0, proc.stderr
    assert "(onnx)" in proc.stdout
    for name in ("probability.tif", "landslides.tif", "landslides.gpkg", "run.json"):
        assert (out / name).is_file(), name
    with rasterio.open(out / "probability.tif") as src, rasterio.open(s2) as reference:
        assert (src.width, src.height) == (reference.width, reference.height)
        probability = src.read(1, masked=True)
    assert probability.min() >= 0.0 and probability.max() <= 1.0


def test_models_json_lists_the_onnx_package_and_skips_the_pt_one_saying_why(packages, without_torch):
    proc = run_engine(without_torch, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    entries = [(m["name"], m["format"], Path(m["path"]).name) for m in listed]
    assert ("tiny-no-torch", "onnx", "tiny.onnx") in entries
    assert not any(name == "tiny.pt" for _, _, name in entries)
    assert all(fmt == "onnx" for _, fmt, _ in entries)  # the built-in model, if shipped, is ONNX too
    assert "tiny.pt" in proc.stderr and "needs torch" in proc.stderr


def test_a_pt_package_without_torch_is_one_line_saying_torch_is_needed_and_onnx_works(
    tmp_path, packages, without_torch
):
    s2, dem = make_scene(tmp_path, 40, 40)
    out = tmp_path / "out"
    proc = run_engine(without_torch, "predict", "--s2", s2, "--dem", dem, "--model", packages["pt"], "--out", out)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "tiny.pt" in lines[0] and "needs torch" in lines[0] and ".onnx model packages run without it" in lines[0]
    assert not out.exists() or not any(out.iterdir())
