"""Fault suite: a .h5 patch can make HDF5 read other files (links, virtual datasets, external storage); the
engine reads only data stored in the patch itself, and refuses the rest with one line naming the file."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.faults import assert_refused, cli, files_under

SHAPE = (128, 128, 14)


@pytest.fixture
def secret(tmp_path) -> Path:
    """A local file that a hostile patch would like to read as pixels."""
    path = tmp_path / "secret.bin"
    path.write_bytes(np.full(SHAPE, 7.0).tobytes())
    return path


def _external_storage(path: Path, secret: Path) -> None:
    with h5py.File(path, "w") as handle:
        handle.create_dataset("img", SHAPE, dtype="<f8", external=[(str(secret), 0, secret.stat().st_size)])


def _external_link(path: Path, secret: Path) -> None:
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as handle:
        handle["img"] = np.full(SHAPE, 7.0)
    with h5py.File(path, "w") as handle:
        handle["img"] = h5py.ExternalLink(str(other), "img")


def _virtual(path: Path, secret: Path) -> None:
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as handle:
        handle["img"] = np.full(SHAPE, 7.0)
    layout = h5py.VirtualLayout(shape=SHAPE, dtype="<f8")
    layout[:] = h5py.VirtualSource(str(other), "img", shape=SHAPE)
    with h5py.File(path, "w") as handle:
        handle.create_virtual_dataset("img", layout)


def _soft_link(path: Path, secret: Path) -> None:
    with h5py.File(path, "w") as handle:
        handle["real"] = np.full(SHAPE, 7.0)
        handle["img"] = h5py.SoftLink("/real")


@pytest.mark.parametrize("build", [_external_storage, _external_link, _virtual, _soft_link])
def test_patches_that_point_at_other_data_are_refused(tmp_path, secret, build):
    patch = tmp_path / "image_1.h5"
    build(patch, secret)
    before = files_under(tmp_path)
    proc = cli("predict-h5", patch, "--out", tmp_path / "out")
    assert_refused(proc, "image_1.h5", "img")
    assert files_under(tmp_path) == before  # nothing written


def test_a_truncated_patch_is_one_line(tmp_path):
    patch = tmp_path / "image_1.h5"
    with h5py.File(patch, "w") as handle:
        handle["img"] = np.random.default_rng(0).uniform(0, 1, SHAPE)
    data = patch.read_bytes()
    patch.write_bytes(data[: len(data) // 2])
    proc = cli("predict-h5", patch, "--out", tmp_path / "out")
    assert_refused(proc, "image_1.h5")
    assert not (tmp_path / "out").exists()


def test_a_fifo_as_a_patch_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "image_1.h5"
    os.mkfifo(fifo)
    proc = cli("predict-h5", fifo, "--out", tmp_path / "out", timeout=60)
    assert_refused(proc, "image_1.h5", "not a regular file")
