"""Reading Landslide4Sense .h5 patches: real files load channel-first; malformed files are refused by name."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from landslide_engine.bands import L4S_DIVISORS
from landslide_engine.errors import InputError
from landslide_engine.h5io import read_l4s_image, read_l4s_mask


def _write(path, **datasets):
    with h5py.File(path, "w") as handle:
        for key, value in datasets.items():
            handle[key] = value
    return path


def test_real_patch_reads_channel_first_float32_in_l4s_units(l4s_root):
    path = l4s_root / "TrainData" / "img" / "image_1.h5"
    image = read_l4s_image(path)
    with h5py.File(path) as handle:
        stored = handle["img"][()]
    assert image.shape == (14, 128, 128) and image.dtype == np.float32
    np.testing.assert_allclose(image[3], stored[:, :, 3], rtol=1e-6)
    raw = image.astype(np.float64) * L4S_DIVISORS[:, None, None]
    assert np.abs(raw - np.round(raw)).max() < 0.05, "l4s units times the divisors give integer raw values"


def test_real_mask_reads_as_uint8_zero_one(l4s_root):
    mask = read_l4s_mask(l4s_root / "TrainData" / "mask" / "mask_1.h5")
    assert mask.shape == (128, 128) and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    assert 0 < mask.mean() < 0.5


@pytest.mark.parametrize(
    ("datasets", "message"),
    [
        ({"image": np.zeros((128, 128, 14))}, r"no 'img' dataset \(found: image\)"),
        ({"img": np.zeros((14, 128, 128))}, r"'img' has shape \(14, 128, 128\), expected \(128, 128, 14\)"),
        ({"img": np.zeros((128, 128, 13))}, "expected"),
        ({"img": np.full((128, 128, 14), np.nan)}, "229376 NaN or infinite values"),
    ],
)
def test_malformed_images_are_refused_naming_the_file(tmp_path, datasets, message):
    path = _write(tmp_path / "bad_image.h5", **datasets)
    with pytest.raises(InputError, match=message) as caught:
        read_l4s_image(path)
    assert "bad_image.h5" in str(caught.value)


def test_malformed_masks_are_refused(tmp_path):
    values = np.zeros((128, 128), np.uint8)
    values[0, 0] = 2
    with pytest.raises(InputError, match=r"values \[2\] besides 0 and 1"):
        read_l4s_mask(_write(tmp_path / "mask_2.h5", mask=values))
    with pytest.raises(InputError, match="no 'mask' dataset"):
        read_l4s_mask(_write(tmp_path / "mask_3.h5", img=values))


def test_files_that_are_not_hdf5_or_absent_are_input_errors(tmp_path):
    fake = tmp_path / "image_9.h5"
    fake.write_bytes(b"this is not HDF5")
    with pytest.raises(InputError, match=r"cannot read .*image_9\.h5 as HDF5"):
        read_l4s_image(fake)
    with pytest.raises(InputError, match="not found"):
        read_l4s_image(tmp_path / "absent.h5")
