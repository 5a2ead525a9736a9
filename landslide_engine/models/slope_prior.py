"""A physical prior inside the network: no landslide on nearly flat ground.

Landslides start on slopes, and in the Landslide4Sense labels 0.6 % of landslide pixels lie on
slopes under 8 degrees against 2.5 % of the background. A model trained on a few mountain
patches instead learns "bright bare ground" and, in lowland scenes, flags bare fields,
quarries and building sites. Forcing the output to "no landslide" below ``min_slope_deg`` removes
exactly those false alarms at a known, small cost in recall. It lives inside the network, so
ONNX and PyTorch packages, the scene pipeline and ``.h5`` prediction all apply it alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS, SLOPE_BAND
from landslide_engine.errors import InputError

FLAT_LOGIT = -20.0  # sigmoid(-20) ~ 2e-9: a probability of zero for every practical threshold


class SlopePrior(nn.Module):
    """Wraps ``network``; where the input slope is under ``min_slope_deg`` the logit becomes FLAT_LOGIT."""

    def __init__(
        self,
        bands: Sequence[str],
        mean: Sequence[float],
        std: Sequence[float],
        min_slope_deg: float,
        network: nn.Module,
    ) -> None:
        super().__init__()
        if SLOPE_BAND not in bands:
            raise InputError(f"a slope prior needs band {SLOPE_BAND} (slope), which the model does not take")
        self.network = network
        self.position = list(bands).index(SLOPE_BAND)
        divisor = float(L4S_DIVISORS[L4S_BANDS.index(SLOPE_BAND)])
        # slope in degrees = (normalized * std + mean) * divisor
        self.scale = float(std[self.position]) * divisor
        self.offset = float(mean[self.position]) * divisor
        self.min_slope_deg = float(min_slope_deg)

    def slope_degrees(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) slope in degrees of normalized inputs ``x``."""
        return x[:, self.position : self.position + 1] * self.scale + self.offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.network(x)
        flat = self.slope_degrees(x) < self.min_slope_deg
        return torch.where(flat, torch.full_like(logits, FLAT_LOGIT), logits)
