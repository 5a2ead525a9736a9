"""The one training loop's parts: the optimiser step, the validation rule, and early stopping.

``python -m training train`` (:mod:`training.fitting.trainer`: epochs over files, DDP, resumable) and the
small-data cross-validation (:mod:`training.studies.crossval`: steps over patches in memory) differ only in
where batches come from and how often they validate. Both drive a :class:`FitLoop`, so the step,
the score that decides early stopping, the threshold search (the precision-recall curve's
:meth:`~training.scores.metrics.PrecisionRecallCurve.best_threshold`) and the best weights kept are one
each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from training.scores.predictions import score_predictions


@dataclass(frozen=True)
class Validation:
    """One validation: scores at the recipe's threshold, and the best threshold on the precision-recall curve.

    ``metric`` is what early stopping compares: F1 at the best threshold when the recipe tunes it, else F1 at
    the recipe's threshold; ``threshold`` is the one the model would ship with.
    """

    scores: dict[str, float | int]
    best_threshold: float
    best_f1: float
    tune_threshold: bool
    recipe_threshold: float

    @property
    def metric(self) -> float:
        return self.best_f1 if self.tune_threshold else float(self.scores["f1"])

    @property
    def threshold(self) -> float:
        return self.best_threshold if self.tune_threshold else self.recipe_threshold


def validate(probabilities: np.ndarray, masks: np.ndarray, threshold: float, tune_threshold: bool) -> Validation:
    """Score (N, H, W) ``probabilities`` against ``masks`` at ``threshold`` and search the best threshold."""
    scores, curve = score_predictions(probabilities, masks, threshold)
    best_threshold, best_f1 = curve.best_threshold()
    return Validation(scores, best_threshold, best_f1, tune_threshold, threshold)


class EarlyStopping:
    """Keeps the weights of the best validation so far; says stop after ``patience`` rounds without a better one."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_metric = -1.0
        self.best_round = -1
        self.best_threshold: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None
        self.stale = 0

    def update(self, validation: Validation, round_number: int, model: nn.Module) -> bool:
        """Record the validation of ``round_number``; True when training should stop."""
        if validation.metric > self.best_metric:
            self.best_metric, self.best_round, self.stale = validation.metric, round_number, 0
            self.best_threshold = validation.threshold
            self.best_state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
            return False
        self.stale += 1
        return self.stale >= self.patience


class FitLoop:
    """The optimiser step of one network: forward (bf16 autocast when asked), loss, backward, step."""

    def __init__(
        self,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        device: torch.device,
        bf16: bool,
    ) -> None:
        self.network = network
        self.optimizer = optimizer
        self.loss_fn = loss_fn
        self.device = device
        self.bf16 = bf16

    def step(self, images: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch of normalised ``images`` and (N, 1, H, W) ``targets``; returns the loss."""
        self.network.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            logits = self.network(images)
        loss = self.loss_fn(logits.float(), targets)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss
