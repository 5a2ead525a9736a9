"""Patches per second of a network, for inference and for training steps, on synthetic input.

Speed does not depend on pixel values, so random 14-band patches are used; the first batches
(memory allocation, cuDNN autotuning, lazy initialisation) are run untimed.
"""

from __future__ import annotations

import time

import torch
from torch import nn

WARMUP_BATCHES = 1


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def inference_patches_per_second(
    model: nn.Module, device: torch.device, batch_size: int = 16, batches: int = 3, in_channels: int = 14
) -> float:
    """Forward passes only (eval mode, no gradients)."""
    model = model.to(device).eval()
    sample = torch.randn(batch_size, in_channels, 128, 128, device=device)
    with torch.inference_mode():
        for _ in range(WARMUP_BATCHES):
            model(sample)
        _synchronize(device)
        started = time.perf_counter()
        for _ in range(batches):
            model(sample)
        _synchronize(device)
    return batch_size * batches / (time.perf_counter() - started)


def training_patches_per_second(
    model: nn.Module,
    device: torch.device,
    batch_size: int = 16,
    steps: int = 5,
    mixed_precision: bool = False,
    in_channels: int = 14,
) -> float:
    """Forward, BCE loss, backward and an Adam step per batch."""
    model = model.to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    images = torch.randn(batch_size, in_channels, 128, 128, device=device)
    targets = (torch.rand(batch_size, 1, 128, 128, device=device) < 0.04).float()
    autocast = mixed_precision and device.type == "cuda"

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(images)
        loss = nn.functional.binary_cross_entropy_with_logits(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(WARMUP_BATCHES):
        step()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    return batch_size * steps / (time.perf_counter() - started)


def parameter_count(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
