"""import-deepslide: Lightning key layouts are accepted, anything that does not fit exactly is refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from landslide_engine.errors import InputError
from landslide_engine.models.package import load_package, load_torch_model
from landslide_engine.models.registry import create_model
from training.cli import main

MODEL = "unet_plain_w16"


def _lightning_file(tmp_path: Path, prefix: str, edit=None) -> tuple[Path, dict[str, torch.Tensor]]:
    torch.manual_seed(7)
    weights = create_model(MODEL).state_dict()
    state = {prefix + key: value for key, value in weights.items()}
    if edit is not None:
        edit(state)
    path = tmp_path / f"deepslide_{prefix.count('.')}.pth"
    torch.save({"epoch": 42, "global_step": 1000, "state_dict": state}, path)
    return path, weights


@pytest.mark.parametrize("prefix", ["model.model.", "model."])
def test_lightning_checkpoint_becomes_a_package_with_identical_weights(tmp_path: Path, prefix: str) -> None:
    path, weights = _lightning_file(tmp_path, prefix)
    out = tmp_path / "imported.pt"
    assert main(["import-deepslide", str(path), "--model", MODEL, "--out", str(out)]) == 0
    package = load_package(out)
    assert package.metadata.name == MODEL
    assert package.metadata.mean == [0.0] * 14 and package.metadata.std == [1.0] * 14
    loaded = load_torch_model(package).state_dict()
    assert loaded.keys() == weights.keys()
    assert all(torch.equal(loaded[key], weights[key]) for key in weights)


def test_missing_unexpected_and_mismatched_keys_are_listed(tmp_path: Path, capsys) -> None:
    def damage(state: dict) -> None:
        keys = list(state)
        del state[keys[0]]
        state["model.model.extra.weight"] = torch.zeros(1)
        state[keys[1]] = torch.zeros(3, 3)

    path, weights = _lightning_file(tmp_path, "model.model.", damage)
    first, second = list(weights)[:2]
    out = tmp_path / "refused.pt"
    assert main(["import-deepslide", str(path), "--model", MODEL, "--out", str(out)]) == 2
    message = capsys.readouterr().err.strip()
    assert len(message.splitlines()) == 1 and str(path) in message
    assert f"1 missing: {first}" in message
    assert "1 unexpected: extra.weight" in message
    assert f"1 mismatched: {second}" in message
    assert not out.exists()


def test_keys_outside_the_lightning_prefixes_are_refused(tmp_path: Path) -> None:
    from training.packaging.deepslide import import_deepslide

    path, _ = _lightning_file(tmp_path, "model.", lambda state: state.update({"criterion.pos_weight": torch.ones(1)}))
    with pytest.raises(InputError, match=r"criterion\.pos_weight"):
        import_deepslide(path, MODEL, tmp_path / "x.pt")
    with pytest.raises(InputError, match="unknown"):
        import_deepslide(path, "unet_resnet1000", tmp_path / "x.pt")
