"""Metric protocols against confusion counts worked out by hand; losses, augmentation and band statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landslide_engine.errors import InputError
from landslide_engine.scores import Confusion
from training.data.augment import augment_patch
from training.data.normalization import BandStatistics
from training.fitting.losses import CompoundLoss
from training.fitting.recipes import DEFAULT, SEED, get_recipe
from training.scores.metrics import MetricAccumulator


def test_confusion_counts_and_scores_match_hand_count() -> None:
    predicted = np.array([[1, 1, 0, 0], [1, 0, 0, 0]])
    target = np.array([[1, 0, 1, 0], [1, 0, 0, 0]])
    # tp at (0,0) and (1,0); fp at (0,1); fn at (0,2); the other 4 pixels are tn.
    confusion = Confusion.from_masks(predicted, target)
    assert confusion == Confusion(tp=2, fp=1, fn=1, tn=4)
    scores = confusion.scores()
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(2 / 3)
    assert scores["f1"] == pytest.approx(4 / 6)
    assert scores["iou"] == pytest.approx(2 / 4)


def test_global_and_per_batch_protocols_differ_as_worked_out() -> None:
    accumulator = MetricAccumulator(threshold=0.5)
    # batch A: probabilities 0.9 | 0.2 on targets 1 | 1 -> tp 1, fn 1: P 1, R 1/2, F1 2/3, IoU 1/2
    accumulator.update(np.array([[0.9, 0.2]]), np.array([[1, 1]]))
    # batch B: nothing predicted, nothing true -> every score is 0/0, counted as 0
    accumulator.update(np.array([[0.1, 0.4]]), np.array([[0, 0]]))
    result = accumulator.result()
    assert (result["tp"], result["fp"], result["fn"], result["tn"]) == (1, 0, 1, 2)
    assert result["precision"] == pytest.approx(1.0)
    assert result["recall"] == pytest.approx(0.5)
    assert result["f1"] == pytest.approx(2 / 3)
    assert result["iou"] == pytest.approx(0.5)
    assert result["batch_mean_precision"] == pytest.approx(0.5)
    assert result["batch_mean_recall"] == pytest.approx(0.25)
    assert result["batch_mean_f1"] == pytest.approx(1 / 3)
    assert result["batch_mean_iou"] == pytest.approx(0.25)


def test_precision_recall_curve_and_tuned_threshold() -> None:
    accumulator = MetricAccumulator()
    accumulator.update(np.array([0.95, 0.65, 0.35, 0.15]), np.array([1, 0, 1, 0]))
    curve = accumulator.curve()
    at_half = int(0.5 * len(curve.thresholds))
    # threshold 0.5 keeps 0.95 and 0.65: tp 1, fp 1, fn 1
    assert curve.precision[at_half] == pytest.approx(0.5)
    assert curve.recall[at_half] == pytest.approx(0.5)
    # any threshold in (0.15, 0.35] keeps both landslide pixels and one false alarm: F1 = 4/5
    threshold, f1 = curve.best_threshold()
    assert f1 == pytest.approx(0.8)
    assert 0.15 < threshold <= 0.35


def test_losses_reward_correct_logits_and_weigh_positives() -> None:
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, :3] = 1
    right, wrong = (target * 2 - 1) * 8, (1 - 2 * target) * 8
    for kind in ("bce-dice", "focal-dice"):
        loss = CompoundLoss(kind)
        assert float(loss(right, target)) < 0.05 < float(loss(wrong, target))
    missed_positives = torch.full_like(target, -2.0)
    assert float(CompoundLoss("bce-dice", pos_weight=5)(missed_positives, target)) > float(
        CompoundLoss("bce-dice", pos_weight=1)(missed_positives, target)
    )
    with pytest.raises(InputError, match="--loss"):
        CompoundLoss("hinge")


def test_augmentation_keeps_image_and_mask_aligned_and_is_reproducible() -> None:
    rng = np.random.default_rng(3)
    mask = (rng.random((16, 16)) < 0.3).astype(np.uint8)
    image = rng.random((14, 16, 16)).astype(np.float32)
    image[12] = mask  # slope band: geometry, never jittered
    seen = set()
    for draw in range(12):
        augmented, augmented_mask = augment_patch(image, mask, np.random.default_rng(draw))
        np.testing.assert_array_equal(augmented[12], augmented_mask)
        assert augmented.dtype == np.float32 and augmented.shape == image.shape
        seen.add(augmented_mask.tobytes())
        again, _ = augment_patch(image, mask, np.random.default_rng(draw))
        np.testing.assert_array_equal(augmented, again)
    assert len(seen) > 2  # several of the eight orientations were drawn


def test_band_statistics_match_numpy_over_all_pixels() -> None:
    rng = np.random.default_rng(0)
    images = [rng.normal(loc=np.arange(3)[:, None, None], scale=2.0, size=(3, 5, 7)) for _ in range(4)]
    statistics = BandStatistics(3)
    for image in images:
        statistics.add(image)
    mean, std = statistics.mean_std()
    stacked = np.concatenate([image.reshape(3, -1) for image in images], axis=1)
    np.testing.assert_allclose(mean, stacked.mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(std, stacked.std(axis=1), rtol=1e-9)


def test_seed_recipe_is_the_papers_and_default_adds_the_remedies() -> None:
    assert (SEED.learning_rate, SEED.batch_size, SEED.epochs) == (1e-3, 16, 100)
    assert (SEED.step_size, SEED.step_gamma, SEED.pos_weight, SEED.threshold) == (30, 0.1, 5.0, 0.5)
    assert not (SEED.normalize or SEED.augment or SEED.tune_threshold or SEED.mixed_precision)
    assert DEFAULT.normalize and DEFAULT.augment and DEFAULT.tune_threshold and DEFAULT.early_stopping_patience
    assert get_recipe("seed").with_overrides(epochs=3, batch_size=None).epochs == 3
    with pytest.raises(InputError, match="--recipe"):
        get_recipe("fast")
