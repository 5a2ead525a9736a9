"""The slope prior: no landslide on flat ground, unchanged elsewhere, and kept through packaging."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS
from landslide_engine.errors import InputError
from landslide_engine.models.metadata import ModelMetadata
from landslide_engine.models.slope_prior import FLAT_LOGIT, SlopePrior

SLOPE = L4S_BANDS.index("B13")


class _ConstantLogit(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x[:, :1], 3.0)


def test_flat_pixels_get_no_landslide_and_steep_ones_keep_the_network_output():
    mean, std = [1.0] * 14, [0.5] * 14
    prior = SlopePrior(L4S_BANDS, mean, std, 8, _ConstantLogit())
    degrees = torch.tensor([0.0, 7.9, 8.0, 35.0])
    x = torch.zeros(4, 14, 1, 1)
    x[:, SLOPE, 0, 0] = (degrees / float(L4S_DIVISORS[SLOPE]) - 1.0) / 0.5  # normalized as the runner does
    logits = prior(x)[:, 0, 0, 0]
    assert torch.allclose(prior.slope_degrees(x)[:, 0, 0, 0], degrees, atol=1e-4)
    assert logits.tolist() == [FLAT_LOGIT, FLAT_LOGIT, 3.0, 3.0]


def test_prior_survives_packaging_and_onnx_export(tmp_path):
    from landslide_engine.models.backends import create_runner
    from landslide_engine.models.package import build_model, export_onnx

    rng = np.random.default_rng(0)
    metadata = ModelMetadata(
        name="prior",
        architecture="plain_unet",
        encoder=None,
        architecture_options={"base_width": 16, "min_slope_deg": 10},
        bands=list(L4S_BANDS),
        mean=rng.uniform(0.8, 1.5, 14).tolist(),
        std=rng.uniform(0.2, 0.6, 14).tolist(),
    )
    model = build_model(metadata)
    assert isinstance(model, SlopePrior)
    path = export_onnx(model, metadata, tmp_path / "prior.onnx")
    x = rng.uniform(0.5, 2.0, size=(1, 14, 128, 128)).astype(np.float32)
    x[0, SLOPE, :64] = 5 / L4S_DIVISORS[SLOPE]  # top half flat (5 degrees), bottom half steep
    x[0, SLOPE, 64:] = 30 / L4S_DIVISORS[SLOPE]
    probabilities = create_runner(path, backend="onnx", device="cpu").predict(x)[0]
    assert probabilities[:64].max() < 1e-6
    assert probabilities[64:].min() > 1e-6


def test_prior_needs_the_slope_band():
    with pytest.raises(InputError, match="B13"):
        SlopePrior(["B2", "B3"], [0, 0], [1, 1], 8, _ConstantLogit())
