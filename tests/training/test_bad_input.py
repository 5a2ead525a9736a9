"""Bad datasets stop ``train`` before the first step: exit code 2 and one line naming the file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest

from training.cli import main

IDS = (1, 2, 100, 101, 200, 201)  # three groups of neighbouring IDs


def _write(path: Path, key: str, data: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as handle:
        handle[key] = data


def _image(path: Path, data: np.ndarray | None = None, key: str = "img") -> None:
    rng = np.random.default_rng(len(path.name))
    _write(path, key, rng.random((128, 128, 14)) if data is None else data)


def _mask(path: Path, data: np.ndarray | None = None) -> None:
    _write(path, "mask", np.zeros((128, 128), dtype=np.uint8) if data is None else data)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for patch_id in IDS:
        _image(tmp_path / "TrainData" / "img" / f"image_{patch_id}.h5")
        _mask(tmp_path / "TrainData" / "mask" / f"mask_{patch_id}.h5")
    return tmp_path


def _nan_image(path: Path) -> None:
    data = np.ones((128, 128, 14))
    data[5, 6, 7] = np.nan
    _image(path, data)


BREAKAGES: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing mask": (lambda root: (root / "TrainData/mask/mask_100.h5").unlink(), "TrainData/mask/mask_100.h5"),
    "corrupt h5": (lambda root: (root / "TrainData/img/image_101.h5").write_bytes(b"not hdf5"), "image_101.h5"),
    "wrong shape": (lambda root: _image(root / "TrainData/img/image_2.h5", np.ones((64, 64, 14))), "image_2.h5"),
    "wrong key": (lambda root: _image(root / "TrainData/img/image_200.h5", key="image"), "image_200.h5"),
    "NaN": (lambda root: _nan_image(root / "TrainData/img/image_201.h5"), "image_201.h5"),
    "mask value 2": (lambda root: _mask(root / "TrainData/mask/mask_1.h5", np.full((128, 128), 2, np.uint8)), "mask_1"),
    "empty dataset": (lambda root: [p.unlink() for p in (root / "TrainData/img").glob("*.h5")], "TrainData/img"),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_bad_dataset_fails_before_training_with_one_line(
    root: Path, breakage: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    damage, named = BREAKAGES[breakage]
    damage(root)
    out = tmp_path / "out"
    args = ["train", "--data", str(root), "--model", "unet_plain_w16", "--device", "cpu", "--workers", "0"]
    assert main([*args, "--epochs", "1", "--quiet", "--out", str(out)]) == 2
    message = capsys.readouterr().err
    assert len(message.strip().splitlines()) == 1
    assert named in message
    assert not (out / "checkpoint.pt").exists()


def test_unknown_model_and_missing_split_are_input_errors(root: Path, capsys: pytest.CaptureFixture) -> None:
    args = ["train", "--data", str(root), "--model", "unet_nothing", "--device", "cpu", "--quiet"]
    assert main([*args, "--out", str(root / "out")]) == 2
    assert "unet_nothing" in capsys.readouterr().err
    assert main(["evaluate", "--model", "x.onnx", "--data", str(root), "--split", "test"]) == 2
    assert "TestData" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(root / "none.pt"), "--out", str(root / "m.onnx")]) == 2
    assert "none.pt" in capsys.readouterr().err
