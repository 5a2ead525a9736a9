"""The synthetic demo scene: georeferenced, labelled synthetic, spectra drawn from the real statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS

from landslide_engine.bands import L1C_ESA_ORDER, L4S_BANDS, L4S_DIVISORS
from landslide_engine.demo import (
    DEMO_CRS,
    SYNTHETIC_TAG,
    build_demo_scene,
)
from landslide_engine.slope import horn_slope


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return build_demo_scene(tmp_path_factory.mktemp("demo"), size=256, n_scars=12, seed=3)


def test_scene_is_georeferenced_and_labelled_synthetic(scene):
    for path in (scene.s2, scene.dem, scene.truth):
        with rasterio.open(path) as src:
            assert src.crs == CRS.from_string(DEMO_CRS)
            assert src.res == (10.0, 10.0) and src.shape == (256, 256)
            assert "SYNTHETIC" in src.tags()["DESCRIPTION"]
    with rasterio.open(scene.s2) as src:
        assert src.count == 13 and list(src.descriptions) == list(L1C_ESA_ORDER)
    assert SYNTHETIC_TAG.startswith("SYNTHETIC")


def test_scars_sit_on_steep_slopes(scene):
    with rasterio.open(scene.dem) as src:
        dem = src.read(1).astype(float)
    with rasterio.open(scene.truth) as src:
        truth = src.read(1) == 1
    slope = horn_slope(dem, 10.0, 10.0)
    assert 1 <= scene.n_scars <= 12 and truth.any()
    assert np.median(slope[truth]) > np.median(slope[~truth])
    assert np.median(slope[truth]) > 20


def test_spectra_follow_the_real_class_statistics(scene):
    stats = json.loads((__import__("landslide_engine").demo._SPECTRA).read_text())["classes"]
    with rasterio.open(scene.s2) as src:
        b4 = src.read(L1C_ESA_ORDER.index("B4") + 1).astype(float) / L4S_DIVISORS[L4S_BANDS.index("B4")]
    with rasterio.open(scene.truth) as src:
        truth = src.read(1) == 1
    # Illumination scales values around 1 on average; class means must stay near the real ones
    # and, as in the real data, scars must be brighter in red than the background.
    for name, sel in (("background", ~truth), ("landslide", truth)):
        assert b4[sel].mean() == pytest.approx(stats[name]["mean"][3], rel=0.25)
    assert b4[truth].mean() > 1.5 * b4[~truth].mean()


def test_pixel_scores_from_counts():
    from landslide_engine.scores import Confusion

    pred = np.array([[1, 1, 0, 0]], bool)
    truth = np.array([[1, 0, 1, 0]], bool)
    s = Confusion.from_masks(pred, truth).scores()
    assert s == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "iou": pytest.approx(1 / 3)}


def test_demo_command_writes_every_output(tmp_path, capsys):
    pytest.importorskip("torch", reason="the demo model here is a .pt package")
    from landslide_engine.cli import main
    from landslide_engine.models.package import ModelMetadata, save_torch_package
    from landslide_engine.models.registry import create_model

    model = tmp_path / "tiny.pt"
    metadata = ModelMetadata.from_spec(
        "unet_plain_w16", name="tiny", bands=list(L4S_BANDS), mean=[1.0] * 14, std=[1.0] * 14
    )
    save_torch_package(create_model("unet_plain_w16"), metadata, model)
    assert main(["demo", "--out", str(tmp_path / "out"), "--model", str(model), "--device", "cpu"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    summary = json.loads((tmp_path / "out" / "demo_summary.json").read_text())
    assert summary["synthetic"] is True
    for path in summary["outputs"].values():
        assert (tmp_path / "out").joinpath(path).exists()
    with rasterio.open(summary["outputs"]["probability"]) as src:
        assert src.crs == CRS.from_string(DEMO_CRS)
    assert 0.0 <= summary["scores_vs_truth"]["f1"] <= 1.0
