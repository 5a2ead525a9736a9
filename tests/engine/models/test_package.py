"""The model package format: metadata validation, .pt weights-only loading, ONNX export with embedded metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.package import (
    CHECKPOINT_FORMAT,
    ONNX_METADATA_KEY,
    SCHEMA_VERSION,
    ModelMetadata,
    build_model,
    export_onnx,
    load_package,
    load_torch_model,
    save_torch_package,
)
from landslide_engine.models.registry import create_model

SUBSET = [b for b in L4S_BANDS if b not in ("B1", "B9", "B10")]


def _metadata(bands: tuple[str, ...] | list[str] = L4S_BANDS, **values) -> ModelMetadata:
    rng = np.random.default_rng(len(bands))
    return ModelMetadata.from_spec(
        "unet_plain_w16",
        bands=list(bands),
        mean=[float(v) for v in rng.uniform(0.5, 1.5, len(bands))],
        std=[float(v) for v in rng.uniform(0.1, 0.5, len(bands))],
        **values,
    )


def _tiny_model(in_channels: int = 14) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("unet_plain_w16", in_channels=in_channels).eval()


class _RunsCodeWhenUnpickled:
    """Unpickling this writes a file: the kind of payload weights-only loading must refuse."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "code ran"))


def test_metadata_round_trips_through_a_dict_and_json():
    metadata = _metadata(SUBSET, fillable_bands={"B11": 0.8}, metrics={"f1": 0.5}, training_data={"patches": 12})
    restored = ModelMetadata.from_dict(json.loads(json.dumps(metadata.to_dict())))
    assert restored == metadata
    assert restored.in_channels == len(SUBSET) == 11
    assert restored.schema_version == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"schema_version": SCHEMA_VERSION + 1}, f"schema version {SCHEMA_VERSION + 1}"),
        ({"bands": [*L4S_BANDS[:-1], "B8A"]}, r"unknown band name\(s\) \['B8A'\]"),
        ({"mean": [0.0] * 13}, "mean has 13 values but bands has 14"),
        ({"std": [0.0] * 14}, "std values must be positive"),
        ({"bands": ["B2", "B2"], "mean": [0, 0], "std": [1, 1]}, "more than once"),
        ({"fillable_bands": {"B99": 1.0}}, "not among the model's bands"),
        ({"input_scaling": "reflectance"}, "input_scaling 'reflectance'"),
        ({"tile_size": 100}, "multiple of 32"),
        ({"threshold": 1.5}, "threshold"),
        ({"architecture": "segformer"}, "unknown architecture 'segformer'"),
        ({"pretrained_on": "imagenet"}, r"unknown metadata key\(s\) \['pretrained_on'\]"),
    ],
)
def test_metadata_that_differs_is_refused_saying_what_differs(change, message):
    data = {**_metadata().to_dict(), **change}
    with pytest.raises(InputError, match=message) as caught:
        ModelMetadata.from_dict(data, source="model.onnx")
    assert str(caught.value).startswith("model.onnx: ")
    assert "\n" not in str(caught.value)


def test_metadata_without_required_keys_is_refused():
    data = _metadata().to_dict()
    del data["std"]
    with pytest.raises(InputError, match=r"lacks required key\(s\) \['std'\]"):
        ModelMetadata.from_dict(data)


def test_torch_package_round_trip_gives_identical_predictions(tmp_path):
    model, metadata = _tiny_model(11), _metadata(SUBSET)
    path = save_torch_package(model, metadata, tmp_path / "tiny.pt")
    package = load_package(path)
    assert (package.format, package.metadata) == ("torch", metadata)
    x = torch.randn(2, 11, 128, 128)
    with torch.no_grad():
        assert torch.equal(load_torch_model(package)(x), model(x))
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.pt"], "the atomic write left no temporary file"


def test_a_checkpoint_carrying_arbitrary_objects_is_refused_without_running_them(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.pt"
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": _tiny_model().state_dict(),
        "metadata": _metadata().to_dict(),
        "payload": _RunsCodeWhenUnpickled(marker),
    }
    torch.save(checkpoint, path)
    with pytest.raises(InputError, match=r"refused to load .*evil\.pt"):
        load_package(path)
    assert not marker.exists()


def test_weights_that_do_not_fit_the_declared_architecture_are_refused(tmp_path):
    path = tmp_path / "mismatch.pt"
    wider = create_model("unet_plain_w32").state_dict()
    torch.save({"format": CHECKPOINT_FORMAT, "state_dict": wider, "metadata": _metadata().to_dict()}, path)
    with pytest.raises(InputError, match="weights do not fit plain_unet with 14 bands"):
        load_torch_model(load_package(path))


def test_saving_weights_under_metadata_of_another_network_is_a_programming_error(tmp_path):
    with pytest.raises(ValueError, match="does not match its metadata"):
        save_torch_package(_tiny_model(14), _metadata(SUBSET), tmp_path / "x.pt")


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("broken.pt", b"not a zip archive", "cannot read PyTorch checkpoint"),
        ("broken.onnx", b"\x00\xffgarbage", "cannot read ONNX model"),
        ("model.h5", b"", "expected a .onnx or .pt"),
    ],
)
def test_unreadable_model_files_are_input_errors_naming_the_file(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        load_package(path)
    assert name in str(caught.value)


def test_a_truncated_onnx_package_is_an_input_error_naming_the_file(tmp_path):
    path = export_onnx(_tiny_model(), _metadata(), tmp_path / "whole.onnx", check=False)
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match=r"cannot read ONNX model .*cut\.onnx: not an ONNX protobuf"):
        load_package(cut)


def test_missing_model_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        load_package(tmp_path / "absent.onnx")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_plain_onnx_file_without_our_metadata_is_refused(tmp_path):
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(torch.nn.Conv2d(14, 1, 1), (torch.zeros(1, 14, 8, 8),), str(path), dynamo=False)
    with pytest.raises(InputError, match="no Landslide Mapper metadata"):
        load_package(path)


def test_onnx_export_embeds_metadata_has_dynamic_batch_and_matches_torch(tmp_path):
    model, metadata = _tiny_model(11), _metadata(SUBSET, threshold=0.4)
    path = export_onnx(model, metadata, tmp_path / "tiny.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"], "one self-contained file"

    proto = onnx.load(str(path))
    embedded = {entry.key: entry.value for entry in proto.metadata_props}[ONNX_METADATA_KEY]
    assert ModelMetadata.from_dict(json.loads(embedded)) == metadata
    assert load_package(path).metadata == metadata
    assert proto.opset_import[0].version == 17

    x = np.random.default_rng(3).normal(size=(5, 11, 128, 128)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    onnx_logits = session.run(None, {"input": x})[0]
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x)).numpy()
    assert onnx_logits.shape == (5, 1, 128, 128)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)


def test_build_model_rebuilds_the_declared_network():
    metadata = _metadata(SUBSET)
    model = build_model(metadata)
    assert set(model.state_dict()) == set(_tiny_model(11).state_dict())
    assert next(model.parameters()).shape[1] == 11
