"""A network input stage that appends NDVI, NBR and a bare-soil index to the model's bands.

A fresh landslide scar is bare soil or rock where vegetation was: low NDVI and NBR, a high
bare-soil index. These are ratios of reflectances, which a network trained on a few patches
struggles to learn from normalized bands. Computing them inside the network, from the
de-normalized bands, keeps the engine's contract unchanged (the runner still feeds the
declared bands, normalized by the package's mean/std), and the indices travel with the
model into ONNX.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS
from landslide_engine.errors import InputError

INDEX_BANDS = ("B2", "B4", "B8", "B11", "B12")
N_INDICES = 3
_EPS = 1e-6


class SpectralIndexInput(nn.Module):
    """Wraps ``network`` (built with ``len(bands) + 3`` inputs); forward takes the normalized bands."""

    positions: torch.Tensor
    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, bands: Sequence[str], mean: Sequence[float], std: Sequence[float], network: nn.Module) -> None:
        super().__init__()
        missing = [b for b in INDEX_BANDS if b not in bands]
        if missing:
            raise InputError(f"spectral indices need bands {', '.join(missing)}, which the model does not take")
        self.network = network
        positions = [list(bands).index(b) for b in INDEX_BANDS]
        self.register_buffer("positions", torch.tensor(positions, dtype=torch.long), persistent=False)
        scale = torch.tensor([float(std[p]) for p in positions]) * torch.tensor(
            [float(L4S_DIVISORS[L4S_BANDS.index(b)]) for b in INDEX_BANDS]
        )
        offset = torch.tensor([float(mean[p]) for p in positions]) * torch.tensor(
            [float(L4S_DIVISORS[L4S_BANDS.index(b)]) for b in INDEX_BANDS]
        )
        # reflectance (DN) = (normalized * std + mean) * divisor = normalized * scale + offset
        self.register_buffer("scale", scale.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("offset", offset.view(1, -1, 1, 1), persistent=False)

    def indices(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W): NDVI, NBR and BSI of normalized inputs ``x``."""
        dn = x.index_select(1, self.positions) * self.scale + self.offset
        b2, b4, b8, b11, b12 = dn.unbind(1)
        ndvi = (b8 - b4) / (b8 + b4 + _EPS)
        nbr = (b8 - b12) / (b8 + b12 + _EPS)
        bsi = ((b11 + b4) - (b8 + b2)) / ((b11 + b4) + (b8 + b2) + _EPS)
        return torch.stack([ndvi, nbr, bsi], dim=1).clamp(-1.0, 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(torch.cat([x, self.indices(x)], dim=1))
