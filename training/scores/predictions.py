"""Scoring a split: predict every patch, then apply the two metric protocols at a threshold.

Probabilities of a whole split are kept in memory (245 validation patches are 16 MB), so the
threshold can be tuned on the precision-recall curve and the scores then recomputed at the
chosen threshold, batch by batch in the same order, for the Seed's per-batch protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from training.data.dataset import PatchDataset
from training.scores.metrics import MetricAccumulator, PrecisionRecallCurve

#: Batch size of the per-batch (Seed) protocol; the Seed evaluated with its training batch of 16.
EVAL_BATCH_SIZE = 16


def score_predictions(
    probabilities: np.ndarray, masks: np.ndarray, threshold: float, batch_size: int = EVAL_BATCH_SIZE
) -> tuple[dict[str, float | int], PrecisionRecallCurve]:
    """Scores of (N, H, W) probabilities against (N, H, W) masks at ``threshold``, and the PR curve.

    Batches for the per-batch protocol are consecutive runs of ``batch_size`` patches.
    """
    accumulator = MetricAccumulator(threshold)
    for start in range(0, len(probabilities), batch_size):
        accumulator.update(probabilities[start : start + batch_size], masks[start : start + batch_size])
    return accumulator.result(), accumulator.curve()


@torch.no_grad()
def predict_dataset(
    model: nn.Module,
    dataset: PatchDataset,
    device: torch.device,
    batch_size: int = EVAL_BATCH_SIZE,
    mixed_precision: bool = False,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, float]:
    """(probabilities (N,H,W) float32, masks (N,H,W) uint8, mean loss) of ``model`` over ``dataset``.

    The mean loss is NaN when no ``loss_fn`` is given.
    """
    was_training = model.training
    model.eval()
    probabilities, masks, losses = [], [], []
    batches: Iterable[int] = range(0, len(dataset), batch_size)
    if progress:
        batches = tqdm(batches, desc="evaluate", unit="batch", leave=False)
    for start in batches:
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images = torch.stack([image for image, _ in items]).to(device)
        targets = torch.stack([mask for _, mask in items]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed_precision and device.type == "cuda"):
            logits = model(images)
        logits = logits.float()
        if loss_fn is not None:
            losses.append(float(loss_fn(logits, targets)) * len(items))
        probabilities.append(torch.sigmoid(logits)[:, 0].cpu().numpy())
        masks.append(targets[:, 0].cpu().numpy().astype(np.uint8))
    model.train(was_training)
    mean_loss = sum(losses) / len(dataset) if losses else float("nan")
    return np.concatenate(probabilities), np.concatenate(masks), mean_loss
