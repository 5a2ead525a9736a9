"""The training loop: one model, one recipe, one split; single process or DDP under torchrun.

A run validates every file first (rank 0, result broadcast), trains with a seeded, exactly
resumable data order, evaluates on validation after each epoch, and on completion writes the
model packages (.pt and .onnx with metadata), metrics, history and plots. Ctrl-C (or a
KeyboardInterrupt from the step callback) saves the position down to the batch, and ``resume``
continues from it as if nothing had happened.
"""

from __future__ import annotations

import copy
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.registry import MODEL_SPECS, create_model
from training.data.dataset import PatchDataset, validate_patches
from training.data.normalization import BandStatistics, identity_normalization
from training.data.splits import DEFAULT_GROUP_WIDTH, DEFAULT_VAL_FRACTION, DataSplits, resolve_splits
from training.fitting.checkpoint import load_checkpoint, save_checkpoint
from training.fitting.distributed import (
    DistributedContext,
    broadcast_from_main,
    setup_distributed,
    teardown_distributed,
)
from training.fitting.loop import EarlyStopping, FitLoop, validate
from training.fitting.losses import CompoundLoss
from training.fitting.recipes import DEFAULT, Recipe
from training.packaging.reporting import write_run_outputs
from training.scores.predictions import predict_dataset

CHECKPOINT_NAME = "checkpoint.pt"

#: Called after every optimiser step with (epoch, step within the epoch, batch loss).
StepCallback = Callable[[int, int, float], None]


@dataclass
class TrainConfig:
    """Everything one training run needs; the command line maps onto it one to one."""

    data: Path
    model: str
    out: Path
    recipe: Recipe = DEFAULT
    seed: int = 0
    folds: int | None = None
    fold: int | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    group_width: int = DEFAULT_GROUP_WIDTH
    device: str = "auto"
    workers: int = 0
    max_steps_per_epoch: int | None = None
    resume: Path | None = None
    export_onnx: bool = True
    progress: bool = True


@dataclass
class TrainResult:
    """What a finished run wrote (on ranks other than 0 only ``checkpoint`` is set)."""

    out: Path
    checkpoint: Path
    packages: list[Path] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the position was saved to ``checkpoint``."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"training interrupted; resume with --resume {checkpoint}")
        self.checkpoint = checkpoint


def train(config: TrainConfig, on_step: StepCallback | None = None) -> TrainResult:
    """Run ``config`` to completion (or early stop) and write its outputs under ``config.out``."""
    context = setup_distributed(config.device)
    try:
        return _Trainer(config, context, on_step).run()
    finally:
        teardown_distributed(context)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch, and make cuDNN pick deterministic kernels."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def prepare_data(config: TrainConfig, normalize: bool) -> tuple[DataSplits, list[float], list[float]]:
    """Resolve the splits, read and check every file, and compute the training split's band statistics."""
    splits = resolve_splits(
        config.data, config.seed, config.val_fraction, config.group_width, config.folds, config.fold
    )
    statistics = BandStatistics(len(L4S_BANDS)) if normalize else None
    for patches in (splits.train, splits.val, splits.test):
        if patches:
            validate_patches(patches, statistics if patches is splits.train else None)
    mean, std = statistics.mean_std() if statistics else identity_normalization(len(L4S_BANDS))
    return splits, mean, std


class _Trainer:
    def __init__(self, config: TrainConfig, context: DistributedContext, on_step: StepCallback | None) -> None:
        self.config = config
        self.context = context
        self.on_step = on_step
        self.out = Path(config.out)
        self.checkpoint_path = self.out / CHECKPOINT_NAME
        if config.model not in MODEL_SPECS:
            raise InputError(f"--model {config.model!r}: unknown; known: {', '.join(MODEL_SPECS)}")
        resumed = load_checkpoint(config.resume) if config.resume else None
        self.recipe = config.recipe
        seed_everything(config.seed)
        self.splits, self.mean, self.std = self._prepare_data_on_main()
        if resumed is not None:
            self._check_resumable(resumed)
            self.mean, self.std = resumed["mean"], resumed["std"]
        self.model = create_model(config.model, in_channels=len(L4S_BANDS)).to(context.device)
        self.network = (
            DistributedDataParallel(self.model, device_ids=[context.device] if context.device.type == "cuda" else None)
            if context.is_distributed
            else self.model
        )
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=self.recipe.learning_rate)
        self.scheduler = torch.optim.lr_scheduler.StepLR(
            self.optimizer, step_size=self.recipe.step_size, gamma=self.recipe.step_gamma
        )
        self.loss_fn = CompoundLoss(self.recipe.loss, self.recipe.pos_weight, self.recipe.bce_weight).to(context.device)
        self.train_set = PatchDataset(self.splits.train, self.mean, self.std, self.recipe.augment, config.seed)
        self.val_set = PatchDataset(self.splits.val, self.mean, self.std)
        self.mixed_precision = self.recipe.mixed_precision and context.device.type == "cuda"
        self.loop = FitLoop(self.network, self.optimizer, self.loss_fn, context.device, self.mixed_precision)
        # Without a patience the run keeps its last weights and never stops early.
        self.stopping = EarlyStopping(self.recipe.early_stopping_patience or 0)
        self.epoch = 0
        self.step = 0
        self.epoch_loss_sum = 0.0
        self.epoch_samples = 0
        self.history: list[dict[str, float]] = []
        if resumed is not None:
            self._restore(resumed)

    # -- set-up ---------------------------------------------------------------------------------------------------

    def _prepare_data_on_main(self) -> tuple[DataSplits, list[float], list[float]]:
        """Rank 0 reads every file once; the others get its splits and statistics, or its error."""
        payload: tuple[str, Any] = ("error", "")
        if self.context.is_main:
            try:
                payload = ("ok", prepare_data(self.config, self.recipe.normalize))
            except InputError as exc:
                payload = ("error", str(exc))
        status, value = broadcast_from_main(self.context, payload)
        if status == "error":
            raise InputError(value)
        return value

    def _check_resumable(self, state: dict[str, Any]) -> None:
        """The checkpoint must come from the same model, recipe (but its epochs), seed and split."""
        source = f"--resume {self.config.resume}"
        if state["model_name"] != self.config.model:
            raise InputError(f"{source}: checkpoint is of model {state['model_name']}, not {self.config.model}")
        saved_recipe = dict(state["recipe"], epochs=self.recipe.epochs)
        if saved_recipe != self.recipe.to_dict():
            differing = sorted(k for k, v in self.recipe.to_dict().items() if saved_recipe.get(k) != v)
            raise InputError(f"{source}: checkpoint used other recipe settings ({', '.join(differing)})")
        if state["seed"] != self.config.seed or state["split"] != self.splits.describe():
            raise InputError(f"{source}: checkpoint used another seed or data split; pass the original options")

    def _restore(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        if self.context.device.type == "cuda" and state.get("cuda_rng") is not None:
            torch.cuda.set_rng_state(state["cuda_rng"], self.context.device)
        self.epoch, self.step = state["epoch"], state["step"]
        self.epoch_loss_sum, self.epoch_samples = state["epoch_loss_sum"], state["epoch_samples"]
        self.history = list(state["history"])
        self.stopping.best_metric, self.stopping.best_round = state["best_metric"], state["best_epoch"]
        self.stopping.best_state = state["best_model"]
        self.stopping.stale = state["stale_epochs"]

    def _state(self) -> dict[str, Any]:
        return {
            "model_name": self.config.model,
            "recipe": self.recipe.to_dict(),
            "seed": self.config.seed,
            "split": self.splits.describe(),
            "data": str(self.config.data),
            "mean": self.mean,
            "std": self.std,
            "epoch": self.epoch,
            "step": self.step,
            "epoch_loss_sum": self.epoch_loss_sum,
            "epoch_samples": self.epoch_samples,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.context.device) if self.context.device.type == "cuda" else None,
            "history": self.history,
            "best_metric": self.stopping.best_metric,
            "best_epoch": self.stopping.best_round,
            "best_model": self.stopping.best_state,
            "stale_epochs": self.stopping.stale,
        }

    # -- the loop -------------------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        epochs = tqdm(
            range(self.epoch, self.recipe.epochs),
            desc=f"train {self.config.model}",
            unit="epoch",
            initial=self.epoch,
            total=self.recipe.epochs,
            disable=not (self.config.progress and self.context.is_main),
        )
        try:
            for _ in epochs:
                self._train_epoch()
                stop = self._end_epoch()
                if self.history:  # rank 0 evaluates and keeps the history
                    epochs.set_postfix(val_f1=f"{self.history[-1]['val_f1']:.3f}")
                if stop:
                    break
        except KeyboardInterrupt:
            epochs.close()
            if self.context.is_main:
                save_checkpoint(self._state(), self.checkpoint_path)
            raise TrainingInterrupted(self.checkpoint_path) from None
        epochs.close()
        if not self.context.is_main:
            return TrainResult(self.out, self.checkpoint_path)
        return self._finish()

    def _epoch_batches(self) -> list[list[int]]:
        """This rank's batches of the current epoch, in a seeded order that does not depend on resuming."""
        sampler = DistributedSampler(
            self.train_set,
            num_replicas=self.context.world_size,
            rank=self.context.rank,
            shuffle=True,
            seed=self.config.seed,
        )
        sampler.set_epoch(self.epoch)
        indices = list(sampler)
        per_process = max(1, self.recipe.batch_size // self.context.world_size)
        batches = [indices[i : i + per_process] for i in range(0, len(indices), per_process)]
        if len(batches) > 1 and len(batches[-1]) < per_process:
            batches.pop()  # a 1-sample batch would break batch-norm; the patches return next epoch
        if self.config.max_steps_per_epoch is not None:
            batches = batches[: self.config.max_steps_per_epoch]
        return batches

    def _train_epoch(self) -> None:
        self.train_set.set_epoch(self.epoch)
        batches = self._epoch_batches()
        device = self.context.device
        loader = DataLoader(
            self.train_set,
            batch_sampler=batches[self.step :],
            num_workers=self.config.workers,
            pin_memory=device.type == "cuda",
        )
        bar = tqdm(
            loader,
            desc=f"epoch {self.epoch + 1}/{self.recipe.epochs}",
            unit="batch",
            initial=self.step,
            total=len(batches),
            leave=False,
            disable=not (self.config.progress and self.context.is_main),
        )
        self.network.train()
        for images, targets in bar:
            images = images.to(device, non_blocking=True)
            targets = targets.to(device, non_blocking=True)
            batch_loss = float(self.loop.step(images, targets).detach())
            self.epoch_loss_sum += batch_loss * len(images)
            self.epoch_samples += len(images)
            self.step += 1
            bar.set_postfix(loss=f"{self.epoch_loss_sum / self.epoch_samples:.4f}")
            if self.on_step is not None:
                self.on_step(self.epoch, self.step - 1, batch_loss)
        bar.close()

    def _mean_train_loss(self) -> float:
        totals = torch.tensor([self.epoch_loss_sum, float(self.epoch_samples)], dtype=torch.float64)
        if self.context.is_distributed:
            totals = totals.to(self.context.device)
            dist.all_reduce(totals)
        return float(totals[0] / totals[1]) if totals[1] > 0 else float("nan")

    def _end_epoch(self) -> bool:
        """Evaluate, keep the best weights, step the schedule, checkpoint; True when early stopping fires."""
        train_loss = self._mean_train_loss()
        stop = False
        if self.context.is_main:
            stop = self._evaluate_epoch(train_loss)
        stop = broadcast_from_main(self.context, stop)
        self.scheduler.step()
        self.epoch += 1
        self.step = 0
        self.epoch_loss_sum, self.epoch_samples = 0.0, 0
        if self.context.is_main:
            save_checkpoint(self._state(), self.checkpoint_path)
        return stop

    def _evaluate_epoch(self, train_loss: float) -> bool:
        started = time.perf_counter()
        probabilities, masks, val_loss = predict_dataset(
            self.model, self.val_set, self.context.device, mixed_precision=self.mixed_precision, loss_fn=self.loss_fn
        )
        validation = validate(probabilities, masks, self.recipe.threshold, self.recipe.tune_threshold)
        scores, best_f1 = validation.scores, validation.best_f1
        self.history.append(
            {
                "epoch": self.epoch + 1,
                "learning_rate": self.optimizer.param_groups[0]["lr"],
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_precision": scores["precision"],
                "val_recall": scores["recall"],
                "val_f1": scores["f1"],
                "val_iou": scores["iou"],
                "val_best_f1": best_f1,
                "eval_seconds": time.perf_counter() - started,
            }
        )
        if self.recipe.early_stopping_patience is None:
            return False
        return self.stopping.update(validation, self.epoch + 1, self.model)

    # -- outputs --------------------------------------------------------------------------------------------------

    def _finish(self) -> TrainResult:
        """Pick the final weights, tune the threshold on validation, score, and write packages and reports."""
        final = copy.deepcopy(self.model).cpu()
        if self.stopping.best_state is not None:
            final.load_state_dict(self.stopping.best_state)
        state = self._state()
        outputs = write_run_outputs(
            model=final,
            model_name=self.config.model,
            recipe=self.recipe,
            splits=self.splits,
            mean=self.mean,
            std=self.std,
            history=self.history,
            best_epoch=self.stopping.best_round if self.stopping.best_state is not None else len(self.history),
            out=self.out,
            device=self.context.device,
            write_onnx=self.config.export_onnx,
            progress=self.config.progress,
            training_data={
                "root": str(self.config.data),
                "seed": self.config.seed,
                "world_size": self.context.world_size,
                **self.splits.describe(),
            },
        )
        state["metadata"] = outputs.metadata.to_dict()
        save_checkpoint(state, self.checkpoint_path)
        return TrainResult(self.out, self.checkpoint_path, outputs.packages, outputs.metrics, self.history)
