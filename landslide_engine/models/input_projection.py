"""A learned 1×1 convolution in front of a network built for fewer input channels than the model's bands.

Its own module because it needs torch: the registry that refers to it must import without torch.
"""

from __future__ import annotations

import torch
from torch import nn


class InputProjection(nn.Module):
    """A learned 1×1 convolution mapping the input bands to the channel count a network was designed for.

    The Seed fed its 14 bands to the MiT (SegFormer) encoder through a 14→3 1×1 convolution, because that
    transformer's patch embedding is built around 3 channels; we keep the same design so its row is comparable.
    """

    def __init__(self, in_channels: int, out_channels: int, net: nn.Module) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, out_channels, kernel_size=1)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.project(x))
