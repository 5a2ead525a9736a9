"""Train/validation/test splits that do not leak neighbouring patches across splits.

Landslide4Sense patch IDs run over the study regions in order, so patches with nearby IDs
overlap the same hillsides and often the same landslides. A random patch split puts those
neighbours on both sides and overstates the score. Without the official validation masks we
therefore split *groups* of contiguous ID ranges (``group_width`` IDs per group), seeded, and
k-fold cross-validation assigns whole groups to folds the same way.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

from landslide_engine.errors import InputError
from training.data.patches import Patch, discover_patches, has_split

DEFAULT_GROUP_WIDTH = 64
DEFAULT_VAL_FRACTION = 0.2


@dataclass(frozen=True)
class DataSplits:
    """The patches for each role, and a short description of how they were chosen."""

    train: list[Patch]
    val: list[Patch]
    test: list[Patch]
    source: str

    def describe(self) -> dict[str, object]:
        """A JSON-able summary for model metadata: how the split was made and which IDs it holds."""
        return {
            "split": self.source,
            "n_train": len(self.train),
            "n_val": len(self.val),
            "n_test": len(self.test),
            "val_ids": [p.patch_id for p in self.val],
        }


def group_patches(patches: list[Patch], group_width: int = DEFAULT_GROUP_WIDTH) -> list[list[Patch]]:
    """Patches grouped by contiguous ID range ``[k*width, (k+1)*width)``, in ID order."""
    if group_width < 1:
        raise InputError(f"--group-width {group_width}: must be at least 1")
    groups: dict[int, list[Patch]] = {}
    for patch in sorted(patches, key=lambda p: p.patch_id):
        groups.setdefault(patch.patch_id // group_width, []).append(patch)
    return [groups[key] for key in sorted(groups)]


def grouped_holdout(
    patches: list[Patch], val_fraction: float, seed: int, group_width: int = DEFAULT_GROUP_WIDTH
) -> tuple[list[Patch], list[Patch]]:
    """Seeded (train, val) split of whole ID groups, with about ``val_fraction`` of the patches in val.

    Groups are visited in seeded random order and go to val while that keeps val at or under its
    target size; a group too big for the target is skipped, so one large region cannot swallow the
    validation set. At least one group always goes to val and at least one stays in train.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"--val-fraction {val_fraction}: must be between 0 and 1")
    groups = group_patches(patches, group_width)
    if len(groups) < 2:
        raise InputError(
            f"only {len(groups)} group of neighbouring patch IDs (group width {group_width}); "
            "cannot hold out a validation set, lower --group-width"
        )
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    target = max(1, round(val_fraction * len(patches)))
    val_groups: set[int] = set()
    n_val = 0
    for index in order:
        if n_val + len(groups[index]) <= target:
            val_groups.add(index)
            n_val += len(groups[index])
    if not val_groups:
        val_groups.add(min(order, key=lambda i: len(groups[i])))
    train = [p for i, group in enumerate(groups) if i not in val_groups for p in group]
    val = [p for i, group in enumerate(groups) if i in val_groups for p in group]
    return train, val


def grouped_kfold(
    patches: list[Patch], folds: int, seed: int, group_width: int = DEFAULT_GROUP_WIDTH
) -> list[tuple[list[Patch], list[Patch]]]:
    """``folds`` (train, val) pairs; each ID group is in exactly one val fold, folds balanced by size.

    Groups are shuffled with the seed, then placed largest first into the fold that currently
    holds the fewest patches (a stable greedy balance).
    """
    groups = group_patches(patches, group_width)
    if folds < 2:
        raise InputError(f"--folds {folds}: need at least 2 folds")
    if len(groups) < folds:
        raise InputError(
            f"--folds {folds}: only {len(groups)} groups of neighbouring patch IDs (group width {group_width})"
        )
    order = list(range(len(groups)))
    random.Random(seed).shuffle(order)
    order.sort(key=lambda i: -len(groups[i]))
    members: list[list[int]] = [[] for _ in range(folds)]
    sizes = [0] * folds
    for index in order:
        target = min(range(folds), key=lambda f: (sizes[f], f))
        members[target].append(index)
        sizes[target] += len(groups[index])
    result = []
    for fold_groups in members:
        chosen = set(fold_groups)
        train = [p for i, group in enumerate(groups) if i not in chosen for p in group]
        val = [p for i, group in enumerate(groups) if i in chosen for p in group]
        result.append((train, val))
    return result


def resolve_splits(
    root: Path,
    seed: int = 0,
    val_fraction: float = DEFAULT_VAL_FRACTION,
    group_width: int = DEFAULT_GROUP_WIDTH,
    folds: int | None = None,
    fold: int | None = None,
) -> DataSplits:
    """The splits to train on under ``root``.

    - ``folds``/``fold``: fold ``fold`` (0-based) of a grouped k-fold over TrainData;
    - otherwise the official ValidData when its masks exist;
    - otherwise a seeded grouped hold-out of TrainData.

    The test split is the official TestData when it is labelled (the later release), else empty.
    """
    root = Path(root)
    train_all = discover_patches(root, "train")
    test = discover_patches(root, "test") if has_split(root, "test") else []
    if folds is not None or fold is not None:
        if folds is None or fold is None:
            raise InputError("--folds and --fold go together (e.g. --folds 5 --fold 0)")
        if not 0 <= fold < folds:
            raise InputError(f"--fold {fold}: must be in 0..{folds - 1}")
        train, val = grouped_kfold(train_all, folds, seed, group_width)[fold]
        source = f"grouped {folds}-fold, fold {fold}, seed {seed}, group width {group_width}"
        return DataSplits(train, val, test, source)
    if has_split(root, "val"):
        return DataSplits(train_all, discover_patches(root, "val"), test, "official")
    train, val = grouped_holdout(train_all, val_fraction, seed, group_width)
    source = f"grouped hold-out {val_fraction:g}, seed {seed}, group width {group_width}"
    return DataSplits(train, val, test, source)


def patches_for_split(root: Path, split: str, seed: int = 0, group_width: int = DEFAULT_GROUP_WIDTH) -> list[Patch]:
    """The labelled patches of ``split`` for evaluation; "val" without ValidData is the seeded hold-out."""
    if split == "val" and not has_split(root, "val"):
        return resolve_splits(root, seed=seed, group_width=group_width).val
    return discover_patches(root, split)
