"""Spectral indices computed inside the network: correct values, and they survive packaging and ONNX export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.metadata import ModelMetadata
from landslide_engine.models.spectral_indices import SpectralIndexInput


def _metadata(bands=L4S_BANDS, **extra) -> ModelMetadata:
    rng = np.random.default_rng(1)
    return ModelMetadata(
        name="indices",
        architecture="plain_unet",
        encoder=None,
        architecture_options={"base_width": 16, "spectral_indices": 1},
        bands=list(bands),
        mean=rng.uniform(0.8, 1.5, len(bands)).tolist(),
        std=rng.uniform(0.2, 0.6, len(bands)).tolist(),
        **extra,
    )


def test_indices_match_the_reflectance_formulae():
    from training.studies.features import spectral_indices

    metadata = _metadata()
    module = SpectralIndexInput(metadata.bands, metadata.mean, metadata.std, torch.nn.Identity())
    rng = np.random.default_rng(0)
    images = rng.uniform(0.3, 2.5, size=(2, 14, 8, 8)).astype(np.float32)
    normalized = (images - np.array(metadata.mean)[:, None, None]) / np.array(metadata.std)[:, None, None]
    ours = module.indices(torch.from_numpy(normalized.astype(np.float32))).numpy()
    expected = spectral_indices(images)
    for i, name in enumerate(("ndvi", "nbr", "bsi")):
        assert np.allclose(ours[:, i], np.clip(expected[name], -1, 1), atol=1e-4)


def test_package_round_trip_and_onnx_parity(tmp_path):
    from landslide_engine.models.backends import create_runner
    from landslide_engine.models.package import build_model, export_onnx, save_torch_package

    metadata = _metadata()
    model = build_model(metadata)
    assert isinstance(model, SpectralIndexInput)
    pt = save_torch_package(model, metadata, tmp_path / "m.pt")
    onnx_path = export_onnx(model, metadata, tmp_path / "m.onnx")  # checks ONNX vs torch within 1e-3
    x = np.random.default_rng(2).uniform(0.3, 2.0, size=(2, 14, 128, 128)).astype(np.float32)
    torch_probs = create_runner(pt, backend="torch", device="cpu").predict(x)
    onnx_probs = create_runner(onnx_path, backend="onnx", device="cpu").predict(x)
    assert np.abs(torch_probs - onnx_probs).max() < 1e-3


def test_indices_need_their_bands():
    with pytest.raises(InputError, match="B8"):
        SpectralIndexInput(["B2", "B4", "B11", "B12"], [0] * 4, [1] * 4, torch.nn.Identity())
