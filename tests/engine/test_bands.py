"""Band names and L4S constants."""

from __future__ import annotations

import pytest

from landslide_engine.bands import L4S_BANDS, L4S_DIVISORS, RGB_BANDS, canonical_band, divisor, find_band_token


def test_l4s_constants_follow_the_contract():
    assert L4S_BANDS[0] == "B1" and L4S_BANDS[7] == "B8" and L4S_BANDS[-2:] == ("B13", "B14")
    assert len(L4S_BANDS) == L4S_DIVISORS.shape[0] == 14
    assert divisor("B10") == pytest.approx(9.04787384)
    assert RGB_BANDS == ("B4", "B3", "B2")


@pytest.mark.parametrize(
    ("text", "band"), [("B04", "B4"), ("b4", "B4"), ("B8a", "B8A"), ("B12", "B12"), ("Band 1", None), ("B13", None)]
)
def test_canonical_band(text, band):
    assert canonical_band(text) == band


@pytest.mark.parametrize(
    ("stem", "band"),
    [
        ("T33UUU_20170216T102101_B04", "B4"),
        ("B04", "B4"),
        ("T33UUU_20220301_B8A_20m", "B8A"),
        ("S2_B11-20m", "B11"),
        ("dem_30m", None),
        ("B04_B08_ratio", None),
    ],
)
def test_band_token_in_file_names(stem, band):
    assert find_band_token(stem) == band
