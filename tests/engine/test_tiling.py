"""Patch layout, blend weights, strip accumulation and test-time augmentation."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from landslide_engine.errors import InputError
from landslide_engine.tiling import (
    RowBlender,
    blend_weights,
    predict_tta,
    reflect_fill,
    reflect_pad,
    tile_starts,
)


@pytest.mark.parametrize("length", [1, 24, 96, 127, 128, 129, 300, 1000])
@pytest.mark.parametrize("overlap", [0, 32, 64])
def test_patches_cover_the_axis_with_at_most_the_stride_between_them(length, overlap):
    starts = tile_starts(length, 128, overlap)
    assert starts[0] <= 0 and starts[-1] + 128 >= length
    assert all(0 < b - a <= 128 - overlap for a, b in itertools.pairwise(starts))
    if len(starts) > 1:
        assert starts[0] == -(overlap // 2)  # scene edges sit inside the first patch, on reflected context


def test_scene_smaller_than_a_patch_gets_one_centred_patch():
    assert tile_starts(24, 128, 32) == [-52]
    assert [(r, c) for r in tile_starts(24, 128, 32) for c in tile_starts(42, 128, 32)] == [(-52, -43)]


def test_bad_overlap_is_an_input_error():
    with pytest.raises(InputError, match="overlap"):
        tile_starts(500, 128, 128)


def test_weights_fall_off_towards_edges_and_are_never_zero():
    w = blend_weights(128, 32)
    assert w[64, 64] == 1.0 and w[0, 0] < w[0, 64] < w[64, 64]
    assert w.min() > 0
    np.testing.assert_array_equal(blend_weights(128, 0), 1.0)


def test_reflect_pad_handles_pads_larger_than_the_data():
    data = np.arange(2 * 24 * 42, dtype=np.float32).reshape(2, 24, 42)
    padded = reflect_pad(data, 52, 52, 43, 43)
    assert padded.shape == (2, 128, 128)
    np.testing.assert_array_equal(padded[:, 52:76, 43:85], data)
    np.testing.assert_array_equal(padded[:, 51, 43:85], data[:, 1])  # reflection, not edge repetition


@pytest.mark.parametrize("inside", [(1, 1), (1, 5), (2, 2), (24, 42), (96, 300)])
@pytest.mark.parametrize("pads", [(0, 0, 0, 0), (16, 0, 16, 0), (0, 16, 0, 16), (1, 2, 3, 4), (52, 16, 43, 2)])
def test_reflect_fill_in_place_equals_reflect_pad(inside, pads):
    height, width = inside
    top, _, left, _ = pads
    data = np.random.default_rng(height * width).random((2, height, width)).astype(np.float32)
    want = reflect_pad(data, *pads)
    got = np.full(want.shape, np.nan, dtype=np.float32)
    got[:, top : top + height, left : left + width] = data
    reflect_fill(got, *pads)
    np.testing.assert_array_equal(got, want)


def test_row_blender_mosaic_of_a_constant_is_constant_and_rows_come_out_in_order():
    height, width, tile, overlap = 300, 250, 128, 40
    blender = RowBlender(width, tile, overlap)
    rows, cols = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
    out = []
    for k, top in enumerate(rows):
        for c in cols:
            blender.add(np.full((tile, tile), 0.7, np.float32), top, c)
        until = rows[k + 1] if k + 1 < len(rows) else height
        out.append(blender.take_rows(until)[0])
    mosaic = np.concatenate(out)
    assert mosaic.shape == (height, width)
    np.testing.assert_allclose(mosaic, 0.7, atol=1e-6)


def test_row_blender_refuses_a_patch_below_its_strip():
    blender = RowBlender(200, 128, 32)
    with pytest.raises(ValueError, match="below the strip"):
        blender.add(np.zeros((128, 128), np.float32), 10, 0)


def test_tta_averages_the_8_dihedral_views_and_undoes_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 16, 16)).astype(np.float32)
    calls = []

    def pixelwise(batch):
        calls.append(batch.copy())
        return 1 / (1 + np.exp(-batch[:, 0]))

    np.testing.assert_allclose(predict_tta(pixelwise, x), pixelwise(x), atol=1e-6)
    assert len(calls) == 9 and len({c.tobytes() for c in calls}) == 8

    def top_rows_only(batch):  # not rotation-equivariant: TTA must differ from a single view
        out = np.zeros(batch.shape[:1] + batch.shape[2:], np.float32)
        out[:, :4] = 1
        return out

    assert predict_tta(top_rows_only, x)[0, 8, 0] == pytest.approx(0.25)
