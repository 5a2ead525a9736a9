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
from tests.paths import ROOT
from tests.scenes import l4s_s2_stack, make_scene, write_raster


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
    assert {p.name for p in out.iterdir()} == {
        "probability.tif",
        "landslides.tif",
        "landslides.gpkg",
        "run.json",
        "probability.qml",  # QGIS style sidecars: the rasters open styled when dragged into QGIS
        "landslides.qml",
    }
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
    from landslide_engine.models.catalog import builtin_model_path

    builtin = [entry for entry in models if entry.get("origin") == "builtin"]
    assert len(builtin) == 1, "the built-in model is always listed"
    assert Path(builtin[0]["path"]) == builtin_model_path() and builtin[0]["name"]
    assert all({"name", "path"} <= set(entry) for entry in models)


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


def test_predict_precision_bf16_runs_the_torch_model_in_bf16(capsys, tmp_path, scene, tiny_model):
    s2, dem = scene
    probabilities = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        code, _, err = run_cli(
            capsys, "predict", "--s2", s2, "--dem", dem, "--model", tiny_model, "--device", "cpu",
            "--precision", precision, "--out", out,
        )  # fmt: skip
        assert code == 0, err
        with rasterio.open(out / "probability.tif") as src:
            probabilities[precision] = src.read(1, masked=True)
    difference = np.abs(probabilities["bf16"] - probabilities["fp32"])
    assert 0 < difference.max() < 0.05  # another number format, yet close


def test_precision_bf16_with_an_onnx_model_exits_2_with_one_line(capsys, tmp_path, scene):
    from tests.qgis_helpers import tiny_model_package

    s2, dem = scene
    model = tiny_model_package(tmp_path / "tiny.onnx")
    out = tmp_path / "o"
    code, _, err = run_cli(
        capsys, "predict", "--s2", s2, "--dem", dem, "--model", model, "--precision", "bf16", "--out", out
    )
    assert_bad_input(code, err, "precision bf16 is available with the torch backend only")
    assert not out.exists() or not any(out.iterdir())


def test_predict_h5_precision_reaches_its_runner(capsys, tmp_path):
    from tests.qgis_helpers import tiny_model_package
    from tests.scenes import write_l4s_patches

    files = write_l4s_patches(tmp_path / "img", 2)
    onnx_model = tiny_model_package(tmp_path / "tiny.onnx")
    code, _, err = run_cli(
        capsys, "predict-h5", *files, "--model", onnx_model, "--precision", "bf16", "--out", tmp_path / "o"
    )
    assert_bad_input(code, err, "precision bf16 is available with the torch backend only")
    pt_model = tiny_model_package(tmp_path / "tiny.pt")
    code, _, err = run_cli(
        capsys, "predict-h5", *files, "--model", pt_model, "--device", "cpu", "--precision", "bf16",
        "--out", tmp_path / "bf16",
    )  # fmt: skip
    assert code == 0, err
    assert len(list((tmp_path / "bf16").rglob("*.npy"))) == 2


def test_quantize_writes_an_int8_package_that_predict_runs(capsys, tmp_path, scene, tiny_model):
    from landslide_engine.models.package import load_package
    from tests.scenes import write_l4s_patches

    write_l4s_patches(tmp_path / "l4s" / "TrainData" / "img", 6)
    int8 = tmp_path / "tiny-int8.onnx"
    code, stdout, err = run_cli(
        capsys, "quantize", "--model", tiny_model, "--calibration", tmp_path / "l4s", "--out", int8, "--patches", "3"
    )
    assert code == 0, err
    assert stdout.strip().splitlines() == [
        f"int8 model written to {int8}, calibrated on 3 patch(es) from {tmp_path / 'l4s' / 'TrainData' / 'img'}"
    ]
    assert load_package(int8).metadata.name == "tiny-cli"
    s2, dem = scene
    code, stdout, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--model", int8, "--out", tmp_path / "r")
    assert code == 0, err
    assert "(onnx)" in stdout


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no_folder", "calibration folder not found"),
        ("no_h5", "no .h5 patches"),
        ("not_onnx", "must end in .onnx"),
        ("zero_patches", "(--patches) must be a positive integer, got 0"),
        ("unknown_model", "unknown model 'no-such-model'"),
        ("not_hdf5", "cannot read"),
    ],
)
def test_quantize_bad_input_exits_2_with_one_line(capsys, tmp_path, tiny_model, case, needle):
    from tests.scenes import write_l4s_patches

    good = tmp_path / "patches"
    write_l4s_patches(good, 2)
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "image_1.h5").write_bytes(b"not hdf5")
    args = {"--model": tiny_model, "--calibration": good, "--out": tmp_path / "int8.onnx", "--patches": "2"}
    args.update(
        {
            "no_folder": {"--calibration": tmp_path / "nowhere"},
            "no_h5": {"--calibration": tmp_path / "empty"},
            "not_onnx": {"--out": tmp_path / "int8.pt"},
            "zero_patches": {"--patches": "0"},
            "unknown_model": {"--model": "no-such-model"},
            "not_hdf5": {"--calibration": tmp_path / "broken"},
        }[case]
    )
    code, _, err = run_cli(capsys, "quantize", *(item for pair in args.items() for item in pair))
    assert_bad_input(code, err, needle)
    assert not list(tmp_path.glob("int8*"))


def test_the_cli_caps_gdal_cache_unless_the_environment_sets_it(monkeypatch):
    from landslide_engine import memory

    monkeypatch.delenv("GDAL_CACHEMAX", raising=False)
    memory.configure_for_scenes()
    assert os.environ["GDAL_CACHEMAX"] == memory.GDAL_CACHE_MB
    monkeypatch.setenv("GDAL_CACHEMAX", "64")
    memory.configure_for_scenes()
    assert os.environ["GDAL_CACHEMAX"] == "64"  # an explicit setting wins


def test_free_heap_pages_go_back_to_the_os_on_glibc(monkeypatch):
    from landslide_engine import memory

    if not sys.platform.startswith("linux"):
        pytest.skip("malloc_trim is glibc's")
    assert memory._MALLOC_TRIM is not None
    assert memory._MALLOC_TRIM(0) in (0, 1)  # glibc's binding works: 1 when pages went back, 0 when none could
    calls = []
    monkeypatch.setattr(memory, "_MALLOC_TRIM", lambda pad: calls.append(pad) or 0)
    memory.release_free_memory()
    assert calls == [0], "release_free_memory trims the whole heap (no padding kept)"


def test_predict_runs_the_builtin_int8_version_by_default_and_records_it(capsys, tmp_path, scene, tiny_model):
    from landslide_engine.models.catalog import builtin_model_path, int8_version

    s2, dem = scene
    reports, probabilities = {}, {}
    for precision in (None, "fp32"):
        out = tmp_path / str(precision)
        chosen = ["--precision", precision] if precision else []
        code, _, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--device", "cpu", *chosen, "--out", out)
        assert code == 0, err
        reports[precision] = json.loads((out / "run.json").read_text())
        with rasterio.open(out / "probability.tif") as src:
            probabilities[precision] = src.read(1, masked=True)
    assert (reports[None]["precision"], reports[None]["model"]["file"]) == (
        "int8",
        str(int8_version(builtin_model_path())),
    )
    assert (reports["fp32"]["precision"], reports["fp32"]["model"]["file"]) == ("fp32", str(builtin_model_path()))
    assert np.abs(probabilities[None] - probabilities["fp32"]).mean() < 0.01
    code, _, err = run_cli(capsys, "predict", "--s2", s2, "--dem", dem, "--model", tiny_model,
                           "--precision", "int8", "--out", tmp_path / "int8")  # fmt: skip
    assert_bad_input(code, err, "precision int8: model", "has no int8 version")


def test_the_baseline_offset_choices_and_help_are_the_engines_option_list():
    import argparse

    from landslide_engine.cli import build_parser
    from landslide_engine.options import BASELINE_OFFSET_HELP, BASELINE_OFFSETS

    subcommands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("predict", "stack", "batch"):
        action = next(a for a in subcommands.choices[command]._actions if "--baseline-offset" in a.option_strings)
        assert action.default == BASELINE_OFFSETS[0] and action.help.startswith(BASELINE_OFFSET_HELP), command
        assert all(choice in action.metavar for choice in BASELINE_OFFSETS), command
