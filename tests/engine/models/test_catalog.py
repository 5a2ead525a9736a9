"""The model catalog: listing built-in and user packages, and resolving --model references."""

from __future__ import annotations

import pytest
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models import catalog
from landslide_engine.models.package import ModelMetadata, save_torch_package
from landslide_engine.models.registry import create_model


def _save(path, name: str, metrics: dict | None = None):
    metadata = ModelMetadata.from_spec(
        "unet_plain_w16", name=name, bands=list(L4S_BANDS), mean=[0.0] * 14, std=[1.0] * 14, metrics=metrics or {}
    )
    torch.manual_seed(0)
    return save_torch_package(create_model("unet_plain_w16"), metadata, path)


@pytest.fixture
def folders(tmp_path, monkeypatch):
    builtin, user, extra = (tmp_path / name for name in ("builtin", "user", "extra"))
    for folder in (builtin, user, extra):
        folder.mkdir()
    monkeypatch.setattr(catalog, "builtin_models_dir", lambda: builtin)
    monkeypatch.setenv(catalog.USER_MODELS_ENV, str(user))
    return builtin, user, extra


def test_lists_builtin_default_first_then_user_and_extra_models(folders):
    builtin, user, extra = folders
    _save(builtin / "another.pt", "zz-builtin")
    _save(builtin / "default.pt", "l4s-default", {"f1": 0.6})
    _save(user / "mine.pt", "my-model")
    _save(extra / "theirs.pt", "their-model")
    (user / "notes.txt").write_text("not a model")

    infos = catalog.list_models(extra_dirs=[extra])
    assert [(i.name, i.origin) for i in infos] == [
        ("l4s-default", "builtin"),
        ("zz-builtin", "builtin"),
        ("my-model", "user"),
        ("their-model", "user"),
    ]
    first = infos[0]
    assert first.metrics == {"f1": 0.6}
    assert first.size_bytes == (builtin / "default.pt").stat().st_size > 0
    assert (first.architecture, first.encoder, first.format) == ("plain_unet", None, "torch")
    assert first.to_dict()["path"] == str(builtin / "default.pt")


def test_a_broken_package_is_skipped_not_fatal(folders, caplog):
    _builtin, user, _extra = folders
    (user / "broken.onnx").write_bytes(b"garbage")
    _save(user / "good.pt", "good")
    assert [i.name for i in catalog.list_models()] == ["good"]
    assert "broken.onnx" in caplog.text


def test_resolves_builtin_names_files_and_refuses_the_unknown(folders, tmp_path):
    builtin, user, _extra = folders
    with pytest.raises(InputError, match="no built-in model is installed"):
        catalog.resolve_model(None)
    default = _save(builtin / "default.pt", "l4s-default")
    mine = _save(user / "mine.pt", "my-model")
    loose = _save(tmp_path / "loose.pt", "loose")

    assert catalog.resolve_model(None) == catalog.resolve_model("builtin") == default
    assert catalog.resolve_model("my-model") == catalog.resolve_model("mine") == mine
    assert catalog.resolve_model(str(loose)) == loose
    assert catalog.describe_model(loose).origin == "file"
    with pytest.raises(InputError, match=r"unknown model 'nope'; available models: l4s-default, my-model"):
        catalog.resolve_model("nope")
    with pytest.raises(InputError, match=r"model file not found: .*absent\.onnx"):
        catalog.resolve_model(str(tmp_path / "absent.onnx"))


def test_registry_architectures_are_not_mistaken_for_trained_models(folders):
    with pytest.raises(InputError, match="unknown model 'unet_resnet34'"):
        catalog.resolve_model("unet_resnet34")


def test_builtin_folder_is_inside_the_package():
    assert catalog.builtin_models_dir().parent.name == "models"
    assert (catalog.builtin_models_dir() / "README.md").is_file()
