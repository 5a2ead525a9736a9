"""predict_h5 on real Landslide4Sense patches with tiny, randomly initialised model packages made here."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from matplotlib.image import imread

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import Cancelled, InputError
from landslide_engine.figures import true_colour
from landslide_engine.h5io import read_l4s_image
from landslide_engine.h5predict import patch_figure, predict_h5
from landslide_engine.models.backends import create_runner
from landslide_engine.models.package import ModelMetadata, export_onnx, save_torch_package
from landslide_engine.models.registry import create_model

PATCH_IDS = (1, 3, 16)
NO_ATMOSPHERE = [b for b in L4S_BANDS if b not in ("B1", "B9", "B10")]


def _package(path, name: str, bands: list[str]):
    torch.manual_seed(len(bands))
    model = create_model("unet_plain_w16", in_channels=len(bands)).eval()
    metadata = ModelMetadata.from_spec(
        "unet_plain_w16", name=name, bands=bands, mean=[1.0] * len(bands), std=[0.5] * len(bands), threshold=0.45
    )
    if path.suffix == ".onnx":
        return export_onnx(model, metadata, path)
    return save_torch_package(model, metadata, path)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return [
        _package(folder / "all-bands.pt", "all-bands", list(L4S_BANDS)),
        _package(folder / "no-atmosphere.onnx", "no-atmosphere", NO_ATMOSPHERE),
    ]


@pytest.fixture
def patches(l4s_root):
    return [l4s_root / "TrainData" / "img" / f"image_{i}.h5" for i in PATCH_IDS]


def test_writes_npy_and_three_panel_png_per_patch_per_model(patches, models, tmp_path):
    messages = []
    written = predict_h5(
        patches, [str(m) for m in models], tmp_path / "out", device="cpu", progress=lambda p, m: messages.append(p)
    )
    assert len(written) == 2 * len(patches) * len(models)
    assert all(path.is_file() for path in written)
    assert messages[-1] == pytest.approx(100.0) and messages == sorted(messages)

    for model_path, name in zip(models, ("all-bands", "no-atmosphere"), strict=True):
        runner = create_runner(model_path, device="cpu")
        images = np.stack([read_l4s_image(p) for p in patches])
        expected = runner.predict(images[:, [L4S_BANDS.index(b) for b in runner.metadata.bands]])
        for patch, probability in zip(patches, expected, strict=True):
            stored = np.load(tmp_path / "out" / name / f"{patch.stem}.npy")
            assert stored.shape == (128, 128) and stored.dtype == np.float32
            np.testing.assert_allclose(stored, probability, atol=1e-6)
            png = imread(tmp_path / "out" / name / f"{patch.stem}.png")
            assert png.ndim == 3 and png.shape[1] > 2.5 * png.shape[0], "three panels side by side"


def test_true_colour_is_b4_b3_b2_with_a_percentile_stretch():
    image = np.zeros((14, 32, 32), np.float32)
    image[L4S_BANDS.index("B4"), :16] = 5.0  # red only in the top half
    image[L4S_BANDS.index("B1")] = np.linspace(0, 9, 32)  # B1 must not show
    rgb = true_colour(image)
    assert rgb.shape == (32, 32, 3)
    assert rgb[:16, :, 0].min() == 1.0 and rgb[16:, :, 0].max() == 0.0
    assert rgb[..., 1:].max() == 0.0

    ramp = np.zeros((14, 10, 10), np.float32)
    ramp[L4S_BANDS.index("B2")] = np.arange(100, dtype=np.float32).reshape(10, 10)
    blue = true_colour(ramp)[..., 2]
    assert blue.min() == 0.0 and blue.max() == 1.0
    assert np.count_nonzero(blue == 1.0) == 2, "the top 2 % saturate"


def test_figure_has_true_colour_probability_and_overlay_panels(patches):
    image = read_l4s_image(patches[0])
    figure = patch_figure(image, np.full((128, 128), 0.7, np.float32), 0.5, "t")
    titles = [axes.get_title() for axes in figure.axes if axes.get_title()]
    assert titles == ["True colour (B4, B3, B2)", "Landslide probability", "p ≥ 0.5: 100.0 % of pixels"]


def test_a_malformed_patch_stops_the_run_before_anything_is_written(patches, models, tmp_path):
    bad = tmp_path / "image_bad.h5"
    with h5py.File(bad, "w") as handle:
        handle["img"] = np.zeros((64, 64, 14))
    with pytest.raises(InputError, match=r"image_bad\.h5"):
        predict_h5([*patches, bad], [str(models[0])], tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_patches_with_the_same_name_would_collide_and_are_refused(models, tmp_path):
    same_name = []
    for folder in ("train", "test"):
        (tmp_path / folder).mkdir()
        with h5py.File(tmp_path / folder / "image_1.h5", "w") as handle:
            handle["img"] = np.ones((128, 128, 14))
        same_name.append(tmp_path / folder / "image_1.h5")
    with pytest.raises(InputError, match="share the name image_1"):
        predict_h5(same_name, [str(models[0])], tmp_path / "out", device="cpu")


def test_cancelling_removes_the_files_of_this_run(patches, models, tmp_path):
    calls = []

    def cancelled() -> bool:
        calls.append(1)
        return len(calls) > 3

    with pytest.raises(Cancelled):
        predict_h5(patches, [str(m) for m in models], tmp_path / "out", device="cpu", cancelled=cancelled)
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
