"""Reduced precision: the request's precision reaching the runner, and int8 packages from ``quantize_static``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.h5io import read_l4s_image
from landslide_engine.models.backends import create_runner
from landslide_engine.models.package import load_package
from landslide_engine.models.quantize import quantize_static, read_calibration_patches
from landslide_engine.options import DEFAULT_PRECISION
from landslide_engine.pipeline import PredictRequest, runner_for
from tests.qgis_helpers import TINY_MODEL_BANDS, tiny_model_package
from tests.scenes import write_l4s_patches


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("precision_models")
    return {suffix: tiny_model_package(folder / f"tiny{suffix}", via_torch=True) for suffix in (".pt", ".onnx")}


@pytest.fixture(scope="module")
def l4s_folder(tmp_path_factory) -> Path:
    """A Landslide4Sense-layout root with ten synthetic training patches."""
    root = tmp_path_factory.mktemp("l4s")
    write_l4s_patches(root / "TrainData" / "img", 10)
    return root


def _request(model: Path, **options) -> PredictRequest:
    return PredictRequest(s2=["unused.tif"], dem="unused.tif", out_dir="unused", model=str(model), **options)


def test_request_precision_reaches_the_runner(tiny):
    assert runner_for(_request(tiny[".pt"], device="cpu")).precision == "fp32"
    runner = runner_for(_request(tiny[".pt"], device="cpu", precision="bf16"))
    assert (runner.backend, runner.precision) == ("torch", "bf16")
    with pytest.raises(InputError, match="precision bf16 is available with the torch backend only"):
        runner_for(_request(tiny[".onnx"], device="cpu", precision="bf16"))


def test_calibration_patches_come_from_traindata_spread_over_it_in_the_model_bands(tiny, l4s_folder):
    metadata = load_package(tiny[".pt"]).metadata
    patches, source = read_calibration_patches(l4s_folder, metadata, limit=4)
    assert source == l4s_folder / "TrainData" / "img"
    assert patches.shape == (4, len(TINY_MODEL_BANDS), 128, 128) and patches.dtype == np.float32
    files = sorted(source.glob("*.h5"))  # 10 files, 4 wanted: every second file from the first
    expected = read_l4s_image(files[2])[[L4S_BANDS.index(b) for b in TINY_MODEL_BANDS]]
    np.testing.assert_array_equal(patches[1], expected)


@pytest.mark.parametrize(
    ("where", "limit", "needle"),
    [
        ("missing", 4, "calibration folder not found"),
        ("empty", 4, "no .h5 patches"),
        ("root", 0, "(--patches) must be a positive integer, got 0"),
    ],
)
def test_unusable_calibration_input_is_one_line(tiny, l4s_folder, tmp_path, where, limit, needle):
    folder = {"missing": tmp_path / "nowhere", "empty": tmp_path, "root": l4s_folder}[where]
    with pytest.raises(InputError) as info:
        read_calibration_patches(folder, load_package(tiny[".pt"]).metadata, limit)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_int8_package_loads_like_any_onnx_package_and_stays_close_to_fp32(tiny, l4s_folder, tmp_path):
    import onnx

    fp32 = load_package(tiny[".onnx"])
    calibration, _ = read_calibration_patches(l4s_folder, fp32.metadata, limit=8)
    out = quantize_static(fp32, calibration, tmp_path / "int8" / "tiny-int8.onnx")

    package = load_package(out)
    assert package.format == "onnx" and package.metadata.to_dict() == fp32.metadata.to_dict()
    assert out.stat().st_size < 0.5 * fp32.path.stat().st_size
    ops = {node.op_type for node in onnx.load(out).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops

    held_out = np.stack(
        [read_l4s_image(p)[[L4S_BANDS.index(b) for b in TINY_MODEL_BANDS]] for p in write_l4s_patches(tmp_path, 3, 9)]
    )
    int8_runner = create_runner(out, device="cpu", batch_size=2)
    assert int8_runner.backend == "onnx"
    reference = create_runner(fp32, device="cpu", batch_size=2).predict(held_out)
    reduced = int8_runner.predict(held_out)
    assert np.abs(reduced - reference).max() < 0.05
    assert not np.array_equal(reduced, reference)  # it really is another graph
    assert not list(out.parent.glob(".*part*"))  # written atomically: no temporary file left


def test_pt_packages_are_exported_then_quantized(tiny, l4s_folder, tmp_path):
    metadata = load_package(tiny[".pt"]).metadata
    calibration, _ = read_calibration_patches(l4s_folder, metadata, limit=4)
    out = quantize_static(tiny[".pt"], calibration, tmp_path / "from-pt.onnx")
    reference = create_runner(tiny[".pt"], device="cpu").predict(calibration)
    assert np.abs(create_runner(out, device="cpu").predict(calibration) - reference).max() < 0.05


@pytest.mark.parametrize(
    ("out_name", "error", "needle"),
    [("tiny.pt", InputError, "must end in .onnx"), ("SAME", InputError, "is the model being quantized")],
)
def test_quantize_refuses_an_unusable_destination(tiny, l4s_folder, tmp_path, out_name, error, needle):
    calibration, _ = read_calibration_patches(l4s_folder, load_package(tiny[".onnx"]).metadata, limit=2)
    out = tiny[".onnx"] if out_name == "SAME" else tmp_path / out_name
    before = tiny[".onnx"].read_bytes()
    with pytest.raises(error, match=needle):
        quantize_static(tiny[".onnx"], calibration, out)
    assert tiny[".onnx"].read_bytes() == before
    assert not (tmp_path / "tiny.pt").exists()


def test_calibration_patches_of_the_wrong_shape_are_refused(tiny, tmp_path):
    with pytest.raises(ValueError, match=r"calibration patches must be \(n >= 1, 11, 128, 128\)"):
        quantize_static(tiny[".onnx"], np.ones((2, 14, 128, 128), np.float32), tmp_path / "x.onnx")
    assert not (tmp_path / "x.onnx").exists()


def test_int8_builtin_model_keeps_its_mask_on_real_patches(l4s_root, tmp_path):
    """The trained built-in model, calibrated on TrainData, scored on TestData (bench/PRECISION_BUILTIN.md)."""
    from landslide_engine.models.catalog import builtin_model_path

    fp32 = load_package(builtin_model_path())
    calibration, _ = read_calibration_patches(l4s_root, fp32.metadata, limit=16)
    out = quantize_static(fp32, calibration, tmp_path / "builtin-int8.onnx")
    test_files = sorted((l4s_root / "TestData" / "img").glob("*.h5"))[:14]
    patches = np.stack([read_l4s_image(p) for p in test_files])
    reference = create_runner(fp32, device="cpu").predict(patches)
    reduced = create_runner(out, device="cpu").predict(patches)
    threshold = fp32.metadata.threshold
    ref_mask, red_mask = reference >= threshold, reduced >= threshold
    f1 = 2 * np.sum(ref_mask & red_mask) / (np.sum(ref_mask) + np.sum(red_mask))
    assert np.abs(reduced - reference).mean() < 0.01
    assert f1 > 0.98, f1


def test_runners_name_their_number_format(tiny, l4s_folder, tmp_path):
    """run.json records the runner's precision: an int8 package must say int8, a float one fp32."""
    patches, _ = read_calibration_patches(l4s_folder, load_package(tiny[".onnx"]).metadata, limit=4)
    int8_path = quantize_static(tiny[".onnx"], patches, tmp_path / "tiny.int8.onnx")
    assert create_runner(tiny[".onnx"], device="cpu").precision == "fp32"
    assert create_runner(int8_path, device="cpu").precision == "int8"


def test_builtin_runs_its_int8_version_on_the_cpu_by_default(l4s_root):
    """Precision auto (the engine's default) runs default.int8.onnx on the CPU; fp32 runs default.onnx."""
    from landslide_engine.models.catalog import builtin_model_path, int8_version, list_models

    fp32_path = builtin_model_path()
    assert PredictRequest(s2=[], dem="", out_dir="").precision == DEFAULT_PRECISION == "auto"
    auto = runner_for(PredictRequest(s2=[], dem="", out_dir="", device="cpu"))
    assert (auto.precision, Path(auto.source)) == ("int8", int8_version(fp32_path))
    assert Path(runner_for(_request(fp32_path, device="cpu", precision="int8")).source) == int8_version(fp32_path)
    fp32 = runner_for(PredictRequest(s2=[], dem="", out_dir="", device="cpu", precision="fp32"))
    assert (fp32.precision, Path(fp32.source)) == ("fp32", fp32_path)
    assert int8_version(fp32_path) not in [m.path for m in list_models()]  # a version of the model, not another one
    assert load_package(int8_version(fp32_path)).metadata == load_package(fp32_path).metadata
    patches = np.stack([read_l4s_image(p) for p in sorted((l4s_root / "TestData" / "img").glob("*.h5"))])
    assert np.abs(auto.predict(patches) - fp32.predict(patches)).mean() < 0.01


def test_shipped_int8_version_is_the_quantize_commands_output(l4s_root, tmp_path):
    """default.int8.onnx is what `quantize --model builtin --calibration L4S_ROOT` writes (MODEL_CARD.md)."""
    from landslide_engine.models.catalog import builtin_model_path, int8_version

    fp32 = load_package(builtin_model_path())
    calibration, _ = read_calibration_patches(l4s_root, fp32.metadata)
    fresh = quantize_static(fp32, calibration, tmp_path / "default.int8.onnx")
    patches = np.stack([read_l4s_image(p) for p in sorted((l4s_root / "TestData" / "img").glob("*.h5"))])
    shipped = create_runner(int8_version(fp32.path), device="cpu").predict(patches)
    # identical with the ONNX Runtime that wrote it; calibrated on other patches (TestData) it was 4.5e-3 off
    assert np.abs(create_runner(fresh, device="cpu").predict(patches) - shipped).mean() < 5e-4


def test_a_model_with_an_int8_version_beside_it_runs_it_on_the_cpu(tiny, l4s_folder, tmp_path):
    from landslide_engine.models.catalog import list_models

    folder = tmp_path / "models"
    folder.mkdir()
    model = folder / "tiny.onnx"
    model.write_bytes(tiny[".onnx"].read_bytes())
    assert create_runner(model, device="cpu", precision="auto").precision == "fp32"  # no int8 version: fp32
    with pytest.raises(InputError, match=r"precision int8: model .*tiny.onnx has no int8 version .*quantize --model"):
        create_runner(model, device="cpu", precision="int8")
    calibration, _ = read_calibration_patches(l4s_folder, load_package(model).metadata, limit=4)
    quantize_static(model, calibration, folder / "tiny.int8.onnx")
    assert create_runner(model, device="cpu", precision="auto").precision == "int8"
    assert create_runner(model, device="cpu", precision="fp32").precision == "fp32"
    assert [m.path.name for m in list_models([folder]) if m.origin == "user"] == ["tiny.onnx"]


@pytest.mark.parametrize(
    ("backend", "device", "needle"),
    [
        ("onnx", "cuda", "precision int8 runs on the CPU with ONNX Runtime, not with backend onnx on device cuda"),
        ("torch", "cpu", "precision int8 runs on the CPU with ONNX Runtime, not with backend torch on device cpu"),
    ],
)
def test_int8_where_it_cannot_run_is_one_line(tiny, l4s_folder, tmp_path, backend, device, needle):
    model = tmp_path / "tiny.pt"
    model.write_bytes(tiny[".pt"].read_bytes())
    calibration, _ = read_calibration_patches(l4s_folder, load_package(model).metadata, limit=2)
    quantize_static(model, calibration, tmp_path / "tiny.int8.onnx")
    with pytest.raises(InputError, match=needle):
        create_runner(model, backend=backend, device=device, precision="int8")
    assert create_runner(model, backend="auto", device="cpu", precision="int8").precision == "int8"
