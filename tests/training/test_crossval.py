"""Small-data cross-validation, the gradient-boosting baseline's features, and the built-in model export."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS
from training.studies.crossval import VARIANTS, cross_validate, fold_indices, write_crossval_table
from training.studies.features import box_mean, pixel_features, spectral_indices


def test_box_mean_matches_a_direct_window_mean():
    rng = np.random.default_rng(0)
    planes = rng.normal(size=(2, 20, 17)).astype(np.float32)
    fast = box_mean(planes, 5)
    padded = np.pad(planes, ((0, 0), (2, 2), (2, 2)), mode="reflect")
    for r, c in [(0, 0), (7, 9), (19, 16), (10, 0)]:
        assert fast[1, r, c] == pytest.approx(padded[1, r : r + 5, c : c + 5].mean(), abs=1e-5)


def test_spectral_indices_use_reflectance_not_l4s_units():
    images = np.ones((1, 14, 2, 2), dtype=np.float32)
    b4, b8 = 500.0, 3000.0  # bright vegetation in DN
    images[0, L4S_BANDS.index("B4")] = b4 / L4S_DIVISORS[L4S_BANDS.index("B4")]
    images[0, L4S_BANDS.index("B8")] = b8 / L4S_DIVISORS[L4S_BANDS.index("B8")]
    ndvi = spectral_indices(images)["ndvi"]
    assert ndvi[0, 0, 0] == pytest.approx((b8 - b4) / (b8 + b4), rel=1e-5)
    features, names = pixel_features(images)
    assert features.shape[1] == len(names) and "ndvi_minus_mean21" in names


def test_grouped_folds_cover_every_patch_once_and_keep_neighbours_together():
    ids = [1, 3, 16, 27, 28, 38, 40, 45, 72, 150, 253, 512, 525, 600, 800]
    folds = fold_indices(ids, 5, seed=0, group_width=16)
    tested = sorted(i for _, test in folds for i in test)
    assert tested == list(range(len(ids)))
    for train, test in folds:
        assert not set(train) & set(test)
        train_groups = {ids[i] // 16 for i in train}
        assert not any(ids[i] // 16 in train_groups for i in test)


def test_best_threshold_finds_the_separating_value():
    from training.fitting.loop import validate

    probabilities = np.array([[0.1, 0.2, 0.62, 0.9]])
    masks = np.array([[0, 0, 1, 1]])
    validation = validate(probabilities, masks, 0.95, tune_threshold=True)
    threshold, f1 = validation.threshold, validation.best_f1
    assert f1 == 1.0 and 0.2 < threshold <= 0.62


@pytest.fixture(scope="module")
def quick_crossval(l4s_root, tmp_path_factory):
    from training.data.smalldata import load_labelled
    from training.studies import gbm

    gbm_iterations, gbm.MAX_ITER = gbm.MAX_ITER, 20  # a few boosting rounds: this tests the protocol, not the score

    quick = dataclasses.replace(VARIANTS["default"], steps=4, batch_size=4, eval_every=2)
    data = load_labelled(l4s_root)
    try:
        rows = cross_validate(data, [quick, VARIANTS["gbm"]], folds=3, group_width=16, log=lambda _: None)
    finally:
        gbm.MAX_ITER = gbm_iterations
    out = tmp_path_factory.mktemp("cv")
    json_path, md_path = write_crossval_table(rows, out, "# quick")
    return rows, json_path, md_path, len(data.ids)


def test_crossval_scores_every_patch_once_per_variant(quick_crossval):
    rows, _, md_path, n_patches = quick_crossval
    assert rows
    for row in rows:
        confusion = row["confusion"]
        assert sum(confusion.values()) == n_patches * 128 * 128  # each pixel scored exactly once
        assert 0.0 <= row["f1"] <= 1.0 and len(row["thresholds"]) == 3
    assert "| gbm |" in md_path.read_text()


def test_builtin_package_carries_crossval_scores(quick_crossval, l4s_root, tmp_path, monkeypatch):
    from landslide_engine.models.package import load_package
    from training.packaging import builtin

    rows, json_path, _, n_patches = quick_crossval
    monkeypatch.setitem(builtin.VARIANTS, "default", dataclasses.replace(VARIANTS["default"], steps=4, batch_size=4))
    out = builtin.train_builtin(l4s_root, json_path, "default", tmp_path / "default.onnx", name="test-builtin")
    package = load_package(out)
    row = next(r for r in rows if r["variant"] == "default")
    assert package.metadata.name == "test-builtin"
    assert package.metadata.metrics["f1"] == pytest.approx(row["f1"], abs=1e-4)
    assert package.metadata.threshold == pytest.approx(float(np.median(row["thresholds"])))
    assert package.metadata.training_data["n_patches"] == n_patches
    assert out.stat().st_size < builtin.MAX_PACKAGE_BYTES


def test_builtin_refuses_the_pixel_baseline(quick_crossval, l4s_root, tmp_path):
    from landslide_engine.errors import InputError
    from training.packaging.builtin import train_builtin

    _, json_path, _, _ = quick_crossval
    with pytest.raises(InputError, match="CNN variants"):
        train_builtin(l4s_root, json_path, "gbm", tmp_path / "x.onnx")
    assert json.loads(json_path.read_text())


def test_int8_scoring_runs_each_fold_as_the_engine_runs_fp32_and_int8(l4s_root, tmp_path):
    """``crossval --int8``: per fold, the exported fp32 package and its int8 copy are scored on the same pixels."""
    from training.data.smalldata import load_labelled

    quick = dataclasses.replace(VARIANTS["default-all-patches"], steps=6, batch_size=4)
    data = load_labelled(l4s_root)
    logged: list[str] = []
    (row,) = cross_validate(
        data, [quick], folds=3, group_width=16, log=logged.append, int8=True, fill_bands=("B1", "B9", "B10")
    )
    q = row["int8"]
    pixels = len(data.ids) * 128 * 128
    assert sum(q["confusion_fp32"].values()) == pixels and sum(q["confusion_int8"].values()) == pixels
    assert len(q["fold_f1_fp32"]) == len(q["fold_f1_int8"]) == 3
    # the engine's fp32 ONNX run reproduces the training-side (PyTorch) masks the main score counts
    torch_positive = row["confusion"]["tp"] + row["confusion"]["fp"]
    onnx_positive = q["confusion_fp32"]["tp"] + q["confusion_fp32"]["fp"]
    assert abs(onnx_positive - torch_positive) <= 0.001 * pixels
    assert 0.0 < q["mean_abs_prob_diff"] < 0.05 and 0.0 <= q["mask_f1_int8_vs_fp32"] <= 1.0
    assert sum("(int8): engine fp32 F1" in line for line in logged) == 3
    # and again on the same folds with the bands filled, as the engine fills them for L2A and 10-band products
    filled = row["int8_with_filled_bands"]
    assert sum(filled["confusion_int8"].values()) == pixels and len(filled["fold_f1_int8"]) == 3
    assert filled["f1_fp32"] == pytest.approx(row["f1_with_filled_bands"], abs=0.02)  # PyTorch's filled-band score
    assert sum("(int8_with_filled_bands): engine fp32 F1" in line for line in logged) == 3
    _, md_path = write_crossval_table([row], tmp_path, "# quick")
    text = md_path.read_text()
    assert f"| {quick.name} | {q['f1_fp32']:.4f} | {q['f1_int8']:.4f} |" in text
    assert f"| {quick.name} (B1,B9,B10 filled) | {filled['f1_fp32']:.4f} | {filled['f1_int8']:.4f} |" in text


def test_crossval_report_shows_the_filled_band_score(tmp_path):
    """``--fill-bands``: the cost quoted in the model card and the L2A warning is in crossval.md, not only the JSON."""
    row = {
        "variant": "v",
        "description": "d",
        "f1": 0.7072,
        "precision": 0.6,
        "recall": 0.8,
        "iou": 0.5,
        "fold_f1_mean": 0.55,
        "fold_f1_std": 0.2,
        "seconds": 1.0,
        "f1_with_filled_bands": 0.5223,
        "filled_bands": ["B1", "B10"],
    }
    _, md_path = write_crossval_table([row], tmp_path, "# quick")
    assert "| v | B1, B10 | 0.707 | 0.522 |" in md_path.read_text()
    del row["f1_with_filled_bands"]
    _, md_path = write_crossval_table([row], tmp_path, "# quick")
    assert "bands filled" not in md_path.read_text()
