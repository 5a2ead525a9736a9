"""``python -m landslide_engine``: exit 0 on success, exit 2 with one line naming the problem on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from rasterio.transform import from_origin

from landslide_engine.bands import L4S_BANDS, L4S_S2_BANDS
from landslide_engine.cli import main
from tests.test_pipeline import l4s_s2_stack, make_scene, write_raster

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny 14-band plain U-Net package (.pt)."""
    from landslide_engine.models.package import ModelMetadata, save_torch_package
    from landslide_engine.models.registry import create_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("cli_model")
    model = create_model("unet_plain_w16", in_channels=14).eval()
    metadata = ModelMetadata.from_spec(
        "unet_plain_w16", name="tiny-cli", bands=list(L4S_BANDS), mean=[1.0] * 14, std=[0.5] * 14
    )
    return save_torch_package(model, metadata, folder / "tiny.pt")


@pytest.fixture
def scene(tmp_path) -> tuple[Path, Path]:
    return make_scene(tmp_path, 90, 100)


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_bad_input(code: int, err: str, *needles: str) -> None:
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_predict_writes_all_outputs_and_exits_0(capsys, tmp_path, scene, tiny_model):
    s2, dem = scene
    out = tmp_path / "result"
    code, stdout, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--model", tiny_model, "--out", out)
    assert code == 0, err
    assert {p.name for p in out.iterdir()} == {"probability.tif", "landslides.tif", "landslides.gpkg", "run.json"}
    assert "landslide(s)" in stdout
    assert json.loads((out / "run.json").read_text())["model"]["name"] == "tiny-cli"


def test_missing_band(capsys, tmp_path, scene, tiny_model):
    _, dem = scene
    data = l4s_s2_stack(np.ones((12, 90, 100)))
    names = [b for b in L4S_S2_BANDS if b not in ("B1", "B9")]
    keep = [L4S_S2_BANDS.index(b) for b in names]
    s2 = write_raster(tmp_path / "ten.tif", data[keep], "EPSG:32633", from_origin(500000, 5200000, 10, 10), names)
    code, _, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--model", tiny_model, "--out", tmp_path / "o")
    assert_bad_input(code, err, "B1, B9")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_extents_that_do_not_overlap(capsys, tmp_path, scene, tiny_model):
    s2, _ = scene
    far = write_raster(
        tmp_path / "far_dem.tif", np.ones((50, 50), np.float32), "EPSG:32633", from_origin(900000, 5200000, 30, 30)
    )
    code, _, err = run_cli(capsys, "predict", "--s2", s2, "--dem", far, "--model", tiny_model, "--out", tmp_path / "o")
    assert_bad_input(code, err, "far_dem.tif", "does not overlap")


def test_corrupt_geotiff(capsys, tmp_path, scene, tiny_model):
    _, dem = scene
    corrupt = tmp_path / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + os.urandom(200))
    code, _, err = run_cli(
        capsys, "predict", "--s2", corrupt, "--dem", dem, "--model", tiny_model, "--out", tmp_path / "o"
    )
    assert_bad_input(code, err, "corrupt.tif")
    code, _, err = run_cli(capsys, "slope", "--dem", tmp_path / "missing.tif", "--out", tmp_path / "s.tif")
    assert_bad_input(code, err, "missing.tif")


def test_model_whose_bands_do_not_match(capsys, tmp_path, scene, tiny_model):
    s2, dem = scene
    checkpoint = torch.load(tiny_model, weights_only=True)
    checkpoint["metadata"]["bands"] = [*L4S_BANDS[:13], "B15"]
    bad = tmp_path / "bad_bands.pt"
    torch.save(checkpoint, bad)
    code, _, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--model", bad, "--out", tmp_path / "o")
    assert_bad_input(code, err, "B15")


def test_bad_band_map_option(capsys, tmp_path, scene, tiny_model):
    s2, dem = scene
    code, _, err = run_cli(
        capsys, "stack", "--s2", s2, "--dem", dem, "--band-map", "B4", "--out", tmp_path / "stack.tif"
    )
    assert_bad_input(code, err, "--band-map", "B4")


def test_stack_and_slope_commands(capsys, tmp_path, scene):
    s2, dem = scene
    code, _, err = run_cli(capsys, "stack", "--s2", s2, "--dem", dem, "--out", tmp_path / "stack.tif")
    assert code == 0, err
    with rasterio.open(tmp_path / "stack.tif") as src:
        assert src.count == 14 and src.descriptions == L4S_BANDS
    code, _, err = run_cli(capsys, "slope", "--dem", dem, "--out", tmp_path / "slope.tif")
    assert code == 0, err
    with rasterio.open(tmp_path / "slope.tif") as src:
        assert np.nanmax(src.read(1)) > 5  # the synthetic DEM is a tilted plane


def test_models_json_lists_name_and_path(capsys):
    code, stdout, _ = run_cli(capsys, "models", "--json")
    assert code == 0
    models = json.loads(stdout)
    assert isinstance(models, list)
    for entry in models:
        assert {"name", "path"} <= set(entry)


def test_module_entry_point_exits_2_without_traceback(tmp_path):
    dem = tmp_path / "dem.tif"
    dem.write_bytes(b"not a raster")
    proc = subprocess.run(
        [sys.executable, "-m", "landslide_engine", "slope", "--dem", str(dem), "--out", str(tmp_path / "s.tif")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert_bad_input(proc.returncode, proc.stderr, "dem.tif")
