"""Reading Landslide4Sense ``.h5`` patches, refusing malformed ones with a line that names the file.

The official patches store ``img`` as (128, 128, 14) float64, height × width × band, already in l4s units
(raw value / fixed divisor), and ``mask`` as (128, 128) uint8 in {0, 1}. The engine works channel-first in
float32, so :func:`read_l4s_image` returns (14, 128, 128) float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.rasterio_io import check_input_file

L4S_PATCH_SIZE = 128
IMAGE_KEY = "img"
MASK_KEY = "mask"


def read_l4s_image(path: str | Path) -> np.ndarray:
    """The 14-band patch at ``path`` as (14, 128, 128) float32 in l4s units; InputError if malformed."""
    expected = (L4S_PATCH_SIZE, L4S_PATCH_SIZE, len(L4S_BANDS))
    data = _read_dataset(Path(path), IMAGE_KEY, expected)
    if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
        raise InputError(f"{path}: '{IMAGE_KEY}' holds {data.dtype} values, expected real numbers")
    image = np.ascontiguousarray(np.moveaxis(data, -1, 0), dtype=np.float32)
    bad = int(np.count_nonzero(~np.isfinite(image)))
    if bad:
        raise InputError(f"{path}: '{IMAGE_KEY}' holds {bad} NaN or infinite values")
    return image


def read_l4s_mask(path: str | Path) -> np.ndarray:
    """The landslide mask at ``path`` as (128, 128) uint8 with values 0 and 1; InputError if malformed."""
    data = _read_dataset(Path(path), MASK_KEY, (L4S_PATCH_SIZE, L4S_PATCH_SIZE))
    if not np.issubdtype(data.dtype, np.number):
        raise InputError(f"{path}: '{MASK_KEY}' holds {data.dtype} values, expected 0 and 1")
    values = np.unique(data)
    strangers = [v.item() for v in values if v not in (0, 1)]
    if strangers:
        raise InputError(f"{path}: '{MASK_KEY}' holds values {strangers[:5]} besides 0 and 1")
    return data.astype(np.uint8)


# Filters built into HDF5 and h5py. Any other filter id makes HDF5 look for a plugin library to load.
_BUILTIN_FILTERS = {"gzip", "lzf", "shuffle", "fletcher32", "szip", "scaleoffset"}


def _read_dataset(path: Path, key: str, shape: tuple[int, ...]) -> np.ndarray:
    """Dataset ``key`` of the patch at ``path``, if it is plain numbers stored in the file itself.

    A ``.h5`` file can make HDF5 read other files: a link to another file, a virtual dataset mapping other
    files, or "external storage" declaring a raw file as the dataset's bytes. Any of them would read a
    local file as pixels, so only a dataset stored in the file, reached by a plain (hard) link, is read.
    """
    import h5py

    check_input_file(path, "Landslide4Sense")
    try:
        with h5py.File(path, "r") as handle:
            link = handle.get(key, getlink=True)
            if link is None:
                found = ", ".join(sorted(handle.keys())) or "nothing"
                raise InputError(f"{path}: no '{key}' dataset (found: {found})")
            if not isinstance(link, h5py.HardLink):
                raise InputError(f"{path}: '{key}' is a link to other data; a patch must hold its own data")
            dataset = handle[key]
            if not isinstance(dataset, h5py.Dataset):
                raise InputError(f"{path}: '{key}' is not a dataset")
            _check_self_contained(path, key, dataset)
            if dataset.shape != shape:
                raise InputError(f"{path}: '{key}' has shape {dataset.shape}, expected {shape}")
            return dataset[()]
    except OSError as exc:  # not HDF5, truncated, or unreadable
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read {path} as HDF5: {first}") from None


def _check_self_contained(path: Path, key: str, dataset) -> None:
    """InputError unless ``dataset`` keeps its bytes in the file, with filters HDF5 has built in."""
    if dataset.is_virtual or dataset.external:
        raise InputError(f"{path}: '{key}' keeps its data in other files; a patch must hold its own data")
    unknown = sorted(str(name) for name in dataset._filters if name not in _BUILTIN_FILTERS)
    if unknown:
        raise InputError(f"{path}: '{key}' needs HDF5 filter plugin(s) {', '.join(unknown)}; not loaded for safety")
    if dataset.dtype.kind not in "biuf":
        raise InputError(f"{path}: '{key}' holds {dataset.dtype} values, expected numbers")
