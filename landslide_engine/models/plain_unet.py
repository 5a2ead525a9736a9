"""The plain U-Net of the Landslide4Sense baseline: four down-sampling levels, no pre-trained encoder.

Written in torch rather than taken from segmentation-models-pytorch because smp has no encoder-free U-Net, and the
Seed paper compares the encoder-based U-Nets against exactly this classic design (Ronneberger et al., 2015):
two 3×3 conv + batch-norm + ReLU per level, max-pool down, transposed-conv up, skip connections by concatenation.
``base_width`` scales every level, so a narrow variant (16 or 32) makes a small, fast built-in model.
"""

from __future__ import annotations

import torch
from torch import nn


class _DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by batch-norm and ReLU; keeps the spatial size."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class _UpBlock(nn.Module):
    """Double the resolution, concatenate the skip connection, then a double conv."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(in_channels, out_channels, kernel_size=2, stride=2)
        self.conv = _DoubleConv(2 * out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([skip, self.up(x)], dim=1))


class PlainUNet(nn.Module):
    """A 4-level U-Net returning one logit channel at the input resolution.

    The input height and width must be multiples of 16 (four 2× poolings); 128×128 patches give an 8×8 bottleneck.
    """

    LEVELS = 4

    def __init__(self, in_channels: int, base_width: int = 64, classes: int = 1) -> None:
        super().__init__()
        widths = [base_width * 2**level for level in range(self.LEVELS + 1)]
        self.down = nn.ModuleList()
        previous = in_channels
        for width in widths[:-1]:
            self.down.append(_DoubleConv(previous, width))
            previous = width
        self.pool = nn.MaxPool2d(kernel_size=2)
        self.bottleneck = _DoubleConv(widths[-2], widths[-1])
        self.up = nn.ModuleList(_UpBlock(widths[i + 1], widths[i]) for i in reversed(range(self.LEVELS)))
        self.head = nn.Conv2d(widths[0], classes, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(x, skip)
        return self.head(x)
