"""Segmentation losses for the rare landslide class (about 4 % of pixels).

BCE alone is dominated by the background; soft Dice optimises overlap directly but is noisy on
patches with few positives, so both recipes mix the two. The Seed recipe up-weights positives
in BCE (pos_weight 5); focal loss is the alternative that down-weights easy background pixels.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from landslide_engine.errors import InputError

LOSS_NAMES = ("bce-dice", "focal-dice")


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    """1 - soft Dice of the landslide class over the whole batch (pixels pooled)."""
    probabilities = torch.sigmoid(logits.float())
    intersection = (probabilities * target).sum()
    return 1.0 - (2.0 * intersection + smooth) / (probabilities.sum() + target.sum() + smooth)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0, alpha: float = 0.75) -> torch.Tensor:
    """Binary focal loss (Lin et al. 2017); ``alpha`` weighs the positive class."""
    logits = logits.float()
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_true = torch.exp(-bce)
    weight = alpha * target + (1.0 - alpha) * (1.0 - target)
    return (weight * (1.0 - p_true) ** gamma * bce).mean()


class CompoundLoss(nn.Module):
    """``bce_weight`` × (BCE or focal) + ``dice_weight`` × soft Dice, on logits."""

    def __init__(self, kind: str = "bce-dice", pos_weight: float = 1.0, bce_weight: float = 0.5) -> None:
        super().__init__()
        if kind not in LOSS_NAMES:
            raise InputError(f"--loss {kind!r}: expected one of {', '.join(LOSS_NAMES)}")
        self.kind = kind
        self.bce_weight = bce_weight
        self.register_buffer("pos_weight", torch.tensor([pos_weight]))

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.kind == "focal-dice":
            pixel_loss = focal_loss(logits, target)
        else:
            pixel_loss = F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=self.pos_weight)
        return self.bce_weight * pixel_loss + (1.0 - self.bce_weight) * soft_dice_loss(logits, target)
