"""Splits keep neighbouring patch IDs together, are seeded, and k-fold covers every patch once."""

from __future__ import annotations

from pathlib import Path

import pytest

from landslide_engine.errors import InputError
from training.data.patches import Patch, discover_patches
from training.data.splits import grouped_holdout, grouped_kfold, resolve_splits

WIDTH = 64


def _patches(ids: list[int]) -> list[Patch]:
    return [Patch(i, Path(f"image_{i}.h5"), Path(f"mask_{i}.h5")) for i in ids]


IDS = [i for i in range(1, 3800) if i % 7 != 0]  # a gappy stand-in for the 3799 training IDs


def _groups(patches: list[Patch]) -> set[int]:
    return {p.patch_id // WIDTH for p in patches}


def test_holdout_keeps_neighbours_together_and_is_seeded() -> None:
    patches = _patches(IDS)
    train, val = grouped_holdout(patches, 0.2, seed=1, group_width=WIDTH)
    assert not _groups(train) & _groups(val)
    assert len(train) + len(val) == len(patches)
    assert 0.15 < len(val) / len(patches) <= 0.2
    assert grouped_holdout(patches, 0.2, seed=1, group_width=WIDTH) == (train, val)
    assert grouped_holdout(patches, 0.2, seed=2, group_width=WIDTH)[1] != val


def test_kfold_assigns_each_group_to_exactly_one_balanced_fold() -> None:
    patches = _patches(IDS)
    folds = grouped_kfold(patches, 5, seed=0, group_width=WIDTH)
    assert len(folds) == 5
    val_ids = [p.patch_id for _, val in folds for p in val]
    assert sorted(val_ids) == sorted(IDS)
    for train, val in folds:
        assert not _groups(train) & _groups(val)
        assert len(train) + len(val) == len(patches)
    sizes = [len(val) for _, val in folds]
    assert max(sizes) - min(sizes) <= WIDTH
    assert grouped_kfold(patches, 5, seed=0, group_width=WIDTH) == folds


def test_too_few_groups_is_an_input_error() -> None:
    with pytest.raises(InputError, match="group"):
        grouped_holdout(_patches([1, 2, 3]), 0.2, seed=0, group_width=WIDTH)
    with pytest.raises(InputError, match="--folds 4"):
        grouped_kfold(_patches([1, 100, 200]), 4, seed=0, group_width=WIDTH)


def test_real_layout_without_validation_masks_uses_grouped_holdout(l4s_root: Path) -> None:
    splits = resolve_splits(l4s_root, seed=0)
    assert splits.source.startswith("grouped hold-out")
    assert splits.test == []  # TestData has no masks in this copy
    assert len(splits.train) + len(splits.val) == 15 and splits.val
    assert not _groups(splits.train) & _groups(splits.val)
    fold = resolve_splits(l4s_root, seed=0, folds=3, fold=1)
    assert "3-fold" in fold.source and not _groups(fold.train) & _groups(fold.val)
    unlabelled = discover_patches(l4s_root, "test", require_masks=False)
    assert len(unlabelled) == 14 and all(p.mask is None for p in unlabelled)


def test_official_validation_and_test_masks_are_used_when_present(tmp_path: Path) -> None:
    for folder, ids in (("TrainData", [1, 2]), ("ValidData", [5]), ("TestData", [9])):
        for sub, stem in (("img", "image"), ("mask", "mask")):
            (tmp_path / folder / sub).mkdir(parents=True)
            for i in ids:
                (tmp_path / folder / sub / f"{stem}_{i}.h5").touch()
    splits = resolve_splits(tmp_path)
    assert splits.source == "official"
    assert [p.patch_id for p in splits.val] == [5] and [p.patch_id for p in splits.test] == [9]
    (tmp_path / "TrainData" / "mask" / "mask_2.h5").unlink()
    with pytest.raises(InputError, match=r"mask_2\.h5"):
        resolve_splits(tmp_path)
