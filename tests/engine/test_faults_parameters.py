"""Fault suite: nonsense parameters are refused with one line naming them, before any work; property-based
tests (hypothesis) state the parsers' rules for every input, not just the examples."""

from __future__ import annotations

import math
import string
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landslide_engine.bands import L4S_BANDS
from landslide_engine.cli import _band_map, _fill_values, main
from landslide_engine.errors import InputError, ModelError, ParameterError, one_line
from landslide_engine.models.metadata import ModelMetadata
from landslide_engine.parameters import (
    MAX_OVERLAP_SHARE,
    check_baseline_offset,
    check_extent,
    check_fill_values,
    check_overlap,
    check_threshold,
    finite,
)
from landslide_engine.sources import _parse_band_map
from landslide_engine.tiling import tile_starts
from tests.faults import files_under, metadata_dict, problem_lines
from tests.scenes import make_scene, write_raster

numbers = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**6), 10**6))


@given(numbers)
def test_finite_accepts_exactly_the_finite_numbers(value):
    if math.isfinite(value):
        assert finite(value, "x") == float(value)
    else:
        with pytest.raises(ParameterError, match="x"):
            finite(value, "x")


@given(st.one_of(numbers, st.text(max_size=8)))
def test_threshold_is_a_finite_number_from_0_to_1(value):
    try:
        accepted = check_threshold(value)
    except ParameterError:
        return
    assert math.isfinite(accepted) and 0.0 <= accepted <= 1.0


@given(st.lists(numbers, min_size=4, max_size=4))
def test_an_extent_is_four_finite_numbers_with_min_below_max(values):
    try:
        xmin, ymin, xmax, ymax = check_extent(values)
    except ParameterError:
        assert not all(math.isfinite(v) for v in values) or not (values[0] < values[2] and values[1] < values[3])
        return
    assert all(math.isfinite(v) for v in (xmin, ymin, xmax, ymax)) and xmin < xmax and ymin < ymax


@given(st.one_of(numbers, st.sampled_from(["auto", " AUTO ", "Auto", "nan", "-inf", "1e400", ""])))
def test_a_baseline_offset_is_auto_or_finite(value):
    try:
        accepted = check_baseline_offset(value)
    except ParameterError:
        return
    assert accepted == "auto" or math.isfinite(accepted)


@given(st.sampled_from([32, 64, 128, 256]), st.integers(-10, 300), st.integers(1, 2000))
def test_overlap_keeps_patches_per_pixel_bounded(tile, overlap, length):
    try:
        check_overlap(overlap, tile)
    except ParameterError:
        assert not 0 <= overlap <= tile * MAX_OVERLAP_SHARE
        with pytest.raises(InputError):
            tile_starts(length, tile, overlap)
        return
    starts = tile_starts(length, tile, overlap)
    # the point of the bound: at most one patch per quarter tile along each axis (16 per pixel in 2-D)
    assert len(starts) <= math.ceil((length + overlap) / (tile / 4)) + 1


band_keys = st.sampled_from(["B2", "B02", "b2", "B4", "B04", "B8A", "b8a", "B11", "B99", "", "x"])


@given(st.lists(st.tuples(band_keys, st.sampled_from(["1", "2", "3", "f.tif:2", "=", ""])), max_size=6))
def test_band_map_options_name_each_band_once(pairs):
    texts = [f"{band}={source}" for band, source in pairs]
    try:
        parsed = _band_map(texts)
        result = _parse_band_map(parsed or {}, ["scene.tif"])
    except InputError as exc:
        assert "\n" not in str(exc)
        return
    canonical = list(result)
    assert len(canonical) == len(set(canonical))
    sources = [(s.path, s.index) for s in result.values()]
    assert len(sources) == len(set(sources))


@pytest.mark.parametrize("pairs", [["B2=1", "B2=2"], ["B2=1", "B02=2"], ["b8a=1", "B8A=2"], ["B2=1", "B3=1"]])
def test_repeated_or_aliased_band_map_keys_are_refused(pairs):
    with pytest.raises(InputError):
        _parse_band_map(_band_map(pairs) or {}, ["scene.tif"])


@given(st.lists(st.tuples(st.sampled_from([*L4S_BANDS, "B02", "B99", "x"]), numbers), max_size=4))
def test_fills_are_finite_constants_for_known_bands(pairs):
    texts = [f"{band}={value}" for band, value in pairs]
    try:
        fills = check_fill_values(_fill_values(texts))
    except InputError:
        return
    assert set(fills) <= set(L4S_BANDS)
    assert all(math.isfinite(v) for v in fills.values())


@settings(max_examples=300)
@given(st.text(alphabet=string.printable + "\x00\x1b\x7f\u2028é/\\.", max_size=70))
def test_an_accepted_model_name_stays_inside_its_folder(name):
    try:
        ModelMetadata.from_dict(metadata_dict(name=name))
    except ModelError:
        return
    root = Path("/out")
    assert (root / name).resolve().parent == root
    assert one_line(name) == name  # nothing to escape: plain terminal text


@given(st.text(max_size=50))
def test_one_line_is_one_printable_line(text):
    line = one_line(text)
    assert line.isprintable() and "\n" not in line and "\r" not in line


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    return make_scene(tmp_path_factory.mktemp("scene"), 100, 100)


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        (["--extent", "nan", "0", "1", "1"], "extent"),
        (["--baseline-offset", "nan"], "baseline_offset"),
        (["--baseline-offset", "inf"], "baseline_offset"),
        (["--min-area", "nan"], "min_area"),
        (["--min-area", "-5"], "min_area"),
        (["--threshold", "nan"], "threshold"),
        (["--overlap", "127"], "overlap 127"),
        (["--resolution", "0.001"], "the grid is"),
        (["--resolution", "inf"], "resolution"),
        (["--batch-size", "1000000"], "batch size"),
        (["--band-map", "B2=1", "B02=2"], "twice"),
    ],
)
def test_predict_refuses_nonsense_before_any_work(capsys, tmp_path, scene, options, needle):
    s2, dem = scene
    code = main(["predict", "--s2", str(s2), "--dem", str(dem), "--out", str(tmp_path / "out"), *options])
    err = problem_lines(capsys.readouterr().err)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert files_under(tmp_path) == set()


@pytest.mark.parametrize(("fill", "needle"), [("B10=nan", "fill B10"), ("B99=1", "B99"), ("B10=inf", "fill B10")])
def test_stack_refuses_nonsense_fills(capsys, tmp_path, scene, fill, needle):
    s2, dem = scene
    code = main(["stack", "--s2", str(s2), "--dem", str(dem), "--out", str(tmp_path / "s.tif"), "--fill", fill])
    err = problem_lines(capsys.readouterr().err)
    assert code == 2 and len(err) == 1 and needle in err[0], err
    assert files_under(tmp_path) == set()


def test_training_refuses_a_nan_learning_rate_and_an_impossible_opset(capsys, tmp_path):
    pytest.importorskip("torch", reason="training needs torch")
    from training.cli import main as training_main

    code = training_main(
        ["train", "--data", str(tmp_path), "--model", "unet_plain_w16", "--lr", "nan", "--out", str(tmp_path / "r")]
    )
    err = problem_lines(capsys.readouterr().err)
    assert code == 2 and len(err) == 1 and "--lr" in err[0], err
    code = training_main(
        ["export", "--checkpoint", str(tmp_path / "c.pt"), "--out", str(tmp_path / "m.onnx"), "--opset", "999"]
    )
    err = problem_lines(capsys.readouterr().err)
    assert code == 2 and len(err) == 1 and "--opset 999" in err[0], err
    assert files_under(tmp_path) == set()


def test_an_all_nodata_scene_warns_that_the_result_is_empty(capsys, tmp_path):
    from rasterio.transform import from_origin

    from landslide_engine.bands import L4S_S2_BANDS

    transform = from_origin(500000.0, 5200000.0, 10.0, 10.0)
    s2 = write_raster(tmp_path / "s2.tif", np.zeros((12, 80, 80), np.uint16), "EPSG:32633", transform, L4S_S2_BANDS)
    dem = write_raster(tmp_path / "dem.tif", np.full((80, 80), 500.0, np.float32), "EPSG:32633", transform)
    # with the scale and offset stated: left to auto, both are refused, having no pixel to measure them on
    stated = ["--reflectance-scale", "l1c", "--baseline-offset", "0"]
    code = main(["predict", "--s2", str(s2), "--dem", str(dem), "--out", str(tmp_path / "out"), *stated])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert any(line.startswith("warning: ") and "no pixel with data" in line for line in captured.err.splitlines())
