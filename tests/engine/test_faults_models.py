"""Fault suite: hostile and broken model packages reach nothing beyond themselves and are refused with one line.

Each case runs the CLI as a separate process and asserts the exit code, the one line, and the files left.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from landslide_engine.errors import ModelError
from landslide_engine.models.package import load_package
from tests.faults import assert_refused, cli, files_under, metadata_dict, onnx_package


@pytest.fixture(scope="module")
def patch(tmp_path_factory) -> Path:
    """One Landslide4Sense-shaped .h5 patch (synthetic values in l4s units)."""
    import h5py

    path = tmp_path_factory.mktemp("patch") / "image_1.h5"
    with h5py.File(path, "w") as handle:
        handle["img"] = np.random.default_rng(0).uniform(0.5, 1.5, (128, 128, 14))
    return path


def test_a_model_named_dot_dot_cannot_write_beside_the_output_folder(tmp_path, patch):
    model = onnx_package(tmp_path / "m.onnx", metadata_dict(name=".."))
    work = tmp_path / "work"
    work.mkdir()
    proc = cli("predict-h5", patch, "--model", model, "--out", work / "out")
    assert_refused(proc, "m.onnx", "name")
    assert files_under(work) == set()


@pytest.mark.parametrize("name", ["a/b", "..\\x", "red\x1b[31mname", "x\rerror: forged", ".hidden", "x" * 65])
def test_model_names_that_are_not_plain_names_are_refused(tmp_path, name):
    with pytest.raises(ModelError, match="not a plain name"):
        load_package(onnx_package(tmp_path / "m.onnx", metadata_dict(name=name)))


def test_models_never_prints_control_characters(tmp_path):
    onnx_package(tmp_path / "forged.onnx", metadata_dict(name="x\r\x1b[2Kerror: forged"))
    onnx_package(tmp_path / "good.onnx", metadata_dict(name="good-one"))
    proc = cli("models", env={"LANDSLIDE_MAPPER_MODELS": str(tmp_path)})
    assert proc.returncode == 0
    shown = proc.stdout + proc.stderr
    assert "\x1b" not in shown and "\r" not in shown
    assert "good-one" in proc.stdout
    warnings = [line for line in proc.stderr.splitlines() if "forged.onnx" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")


def test_onnx_external_data_is_refused_and_never_read(tmp_path, patch):
    """The weights point at a file in the working directory: the model is refused, not run on that file."""
    work = tmp_path / "cwd"
    work.mkdir()
    (work / "README.md").write_bytes(np.full(14, 0.5, np.float32).tobytes())
    model = onnx_package(tmp_path / "ext.onnx", external_location="README.md")
    proc = cli("predict-h5", patch, "--model", model, "--out", tmp_path / "out", cwd=work)
    assert_refused(proc, "ext.onnx", "external data")
    assert not (tmp_path / "out").exists()
    assert files_under(work) == {"README.md"}


@pytest.mark.parametrize("location", ["/etc/hostname", "../../etc/hostname", "data.bin"])
def test_every_external_location_is_refused_at_load(tmp_path, location):
    with pytest.raises(ModelError, match="external data"):
        load_package(onnx_package(tmp_path / "ext.onnx", external_location=location))


@pytest.mark.parametrize(
    ("shapes", "needle"),
    [
        ({"input_shape": ("N", 12, 128, 128)}, "12"),  # the metadata says 14 bands
        ({"input_shape": ("N", 14, 64, 64)}, "tile size 128"),
        ({"output_shape": ("N", 2, 128, 128), "out_channels": 2}, "one logit per pixel"),
    ],
)
def test_graphs_that_do_not_fit_their_metadata_are_refused_naming_the_file(tmp_path, patch, shapes, needle):
    model = onnx_package(tmp_path / "misfit.onnx", **shapes)
    proc = cli("predict-h5", patch, "--model", model, "--out", tmp_path / "out")
    assert_refused(proc, "misfit.onnx", needle)
    assert not (tmp_path / "out").exists()


def test_a_graph_whose_real_output_does_not_fit_is_refused_when_loaded(tmp_path, patch):
    """Symbolic shapes pass the static check; the probe run at load catches the two-channel output."""
    model = onnx_package(tmp_path / "liar.onnx", output_shape=("N", "C", "H", "W"), out_channels=2)
    proc = cli("predict-h5", patch, "--model", model, "--out", tmp_path / "out")
    assert_refused(proc, "liar.onnx", "one logit per pixel")
    assert not (tmp_path / "out").exists()


def test_one_bad_package_does_not_stop_all_models(tmp_path, patch):
    models = tmp_path / "models"
    models.mkdir()
    onnx_package(models / "good.onnx", metadata_dict(name="good"))
    onnx_package(models / "liar.onnx", metadata_dict(name="liar"), output_shape=("N", "C", "H", "W"), out_channels=2)
    onnx_package(models / "misfit.onnx", metadata_dict(name="misfit"), input_shape=("N", 3, 128, 128))
    proc = cli(
        "predict-h5", patch, "--all-models", "--out", tmp_path / "out", env={"LANDSLIDE_MAPPER_MODELS": str(models)}
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    warned = [line for line in proc.stderr.splitlines() if line.startswith("warning: ")]
    assert any("liar.onnx" in line for line in warned) and any("misfit.onnx" in line for line in warned)
    written = files_under(tmp_path / "out")
    assert {"good/image_1.npy", "good/image_1.png"} <= written
    assert not any(path.startswith(("liar", "misfit")) for path in written)


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"tile_size": 2**20}, "tile_size"),
        ({"architecture_options": {"base_width": 2**20}}, "base_width"),
        ({"architecture_options": {"depth": 3}}, "unknown architecture option"),
    ],
)
def test_metadata_cannot_ask_for_unbounded_work(tmp_path, overrides, needle):
    onnx_package(tmp_path / "big.onnx", metadata_dict(**overrides))
    with pytest.raises(ModelError, match=needle):
        load_package(tmp_path / "big.onnx")
    proc = cli("predict-h5", "x.h5", "--model", tmp_path / "big.onnx", "--out", tmp_path / "out")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_pt_weights_that_do_not_fit_their_metadata_are_refused_at_load(tmp_path):
    from landslide_engine.models.package import CHECKPOINT_FORMAT

    state = {"conv.weight": torch.zeros(3, 3)}
    path = tmp_path / "misfit.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": state, "metadata": metadata_dict()}, path)
    with pytest.raises(ModelError, match=r"misfit\.pt.*weights do not fit"):
        load_package(path)


def test_a_truncated_onnx_package_is_one_line(tmp_path, patch):
    model = onnx_package(tmp_path / "cut.onnx")
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    proc = cli("predict-h5", patch, "--model", model, "--out", tmp_path / "out")
    assert_refused(proc, "cut.onnx")
    assert files_under(tmp_path / "out") == set()
