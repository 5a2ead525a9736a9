"""Identifying Sentinel-2 bands in files, the product metadata, and reflectance scaling."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from landslide_engine.bands import L1C_ESA_ORDER, L2A_ESA_ORDER, L4S_S2_BANDS
from landslide_engine.errors import InputError
from landslide_engine.scaling import resolve_scaling
from landslide_engine.sources import identify_s2

T = from_origin(500000, 5200000, 10, 10)


def raster(path, count=1, descriptions=(), tags=None, band_tags=None, value=1000):
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=count, dtype="uint16", crs="EPSG:32633", transform=T
    ) as dst:
        dst.write(np.full((count, 8, 8), value, dtype=np.uint16))
        for i, d in enumerate(descriptions, start=1):
            dst.set_band_description(i, d)
        if tags:
            dst.update_tags(**tags)
        for i, t in (band_tags or {}).items():
            dst.update_tags(i, **t)
    return str(path)


def order(inputs):
    return [b for b, _ in sorted(inputs.bands.items(), key=lambda kv: kv[1].index)]


def test_13_band_l1c_stack_in_esa_order_by_count(tmp_path):
    found = identify_s2([raster(tmp_path / "scene.tif", 13)])
    assert order(found) == list(L1C_ESA_ORDER)
    assert found.bands["B9"].index == 10 and found.bands["B8A"].index == 9


def test_12_bands_are_l4s_order_unless_the_product_is_l2a(tmp_path):
    assert order(identify_s2([raster(tmp_path / "scene.tif", 12)])) == list(L4S_S2_BANDS)
    l2a = identify_s2([raster(tmp_path / "S2B_MSIL2A_20230101_stack.tif", 12)])
    assert l2a.level == "L2A" and order(l2a) == list(L2A_ESA_ORDER)


def test_descriptions_beat_band_count_and_generic_names_do_not_count(tmp_path):
    names = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    assert order(identify_s2([raster(tmp_path / "a.tif", 10, names)])) == [n.replace("0", "") for n in names]
    generic = identify_s2([raster(tmp_path / "b.tif", 10, [f"Band {i}" for i in range(1, 11)])])
    assert generic.bands == {}
    message = generic.describe_missing(["B2"])
    assert "B2" in message and "b.tif has 10 bands" in message and "band_map" in message


def test_band_metadata_names_bands(tmp_path):
    found = identify_s2([raster(tmp_path / "x.tif", 2, band_tags={1: {"BANDNAME": "B4"}, 2: {"BANDNAME": "B8"}})])
    assert order(found) == ["B4", "B8"]


def test_separate_files_by_name(tmp_path):
    paths = [
        raster(tmp_path / "T33UUU_20170216T102101_B04.tif"),
        raster(tmp_path / "B03.tif"),
        raster(tmp_path / "T33UUU_B8A_20m.tif"),
        raster(tmp_path / "unknown.tif"),
    ]
    found = identify_s2(paths)
    assert set(found.bands) == {"B4", "B3", "B8A"}
    assert found.bands["B4"].identified_by == "file name"
    assert found.missing(["B3", "B4", "B8"]) == ["B8"]
    assert "unknown.tif" in found.describe_missing(["B8"])


def test_duplicate_band_needs_band_map(tmp_path):
    a, b = raster(tmp_path / "a_B04.tif"), raster(tmp_path / "b_B04.tif")
    with pytest.raises(InputError, match="B4 found in both"):
        identify_s2([a, b])
    assert identify_s2([a, b], band_map={"B04": b}).bands["B4"].path == b


def test_band_map_forms_and_errors(tmp_path):
    stack = raster(tmp_path / "s.tif", 3, [f"Band {i}" for i in range(1, 4)])
    found = identify_s2([stack], band_map={"B4": "3", "B3": f"{stack}:2"})
    assert (found.bands["B4"].index, found.bands["B3"].index) == (3, 2)
    assert found.bands["B4"].identified_by == "band_map"
    with pytest.raises(InputError, match="not band 7"):
        identify_s2([stack], band_map={"B4": "7"})
    with pytest.raises(InputError, match="'Red'"):
        identify_s2([stack], band_map={"Red": "1"})


def test_unreadable_file_names_it(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00not really a tiff")
    with pytest.raises(InputError, match=r"broken\.tif"):
        identify_s2([str(bad)])


@pytest.mark.parametrize(
    ("name", "tags", "offset"),
    [
        ("S2A_MSIL1C_20230105T101401_stack.tif", None, 1000.0),
        ("S2A_MSIL1C_20210105T101401_stack.tif", None, 0.0),
        ("scene.tif", {"PROCESSING_BASELINE": "04.00"}, 1000.0),
        ("S2A_MSIL1C_20230105_stack.tif", {"RADIO_ADD_OFFSET": "-1000"}, 1000.0),
        ("S2A_MSIL1C_20230105_stack.tif", {"PROCESSING_BASELINE": "03.01"}, 0.0),
        ("scene.tif", None, None),
    ],
)
def test_baseline_offset_from_metadata_or_date(tmp_path, name, tags, offset):
    found = identify_s2([raster(tmp_path / name, 13, tags=tags)])
    if offset is None:  # neither metadata, date nor values (no sample here) tell: refused, naming the option
        with pytest.raises(InputError, match="--baseline-offset"):
            resolve_scaling(found, "l1c", "auto")
        return
    scaling, warnings = resolve_scaling(found, "l1c", "auto")
    assert scaling.offset == offset
    assert [w for w in warnings if "offset" in w] == []


def test_explicit_offset_and_scales(tmp_path):
    found = identify_s2([raster(tmp_path / "S2A_MSIL1C_20230105_stack.tif", 13)])
    assert resolve_scaling(found, "l1c", 0)[0].offset == 0.0
    scaling, warnings = resolve_scaling(found, "x1000", "auto")
    assert scaling.offset == 0.0 and any("not removing" in w for w in warnings)
    assert scaling.to_l4s(np.array([100.0]), "B4")[0] == pytest.approx(1000 / 445.17289745, rel=1e-6)
    with pytest.raises(InputError, match="reflectance_scale"):
        resolve_scaling(found, "percent")
