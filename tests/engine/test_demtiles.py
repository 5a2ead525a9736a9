"""DEM tiles mosaicked on the fly: several tiles cut from a DEM give the same map as the DEM they were cut from.

The DEMs are real: Copernicus GLO-30 crops (pixel-is-point, half-pixel origin; 2" x 1" spacing above 60 N) and
an Int16 SRTM with nodata.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
import rasterio.windows
from rasterio.transform import from_origin
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from landslide_engine.bands import L1C_ESA_ORDER
from landslide_engine.cli import main
from landslide_engine.demtiles import dem_path, mosaic_vrt
from landslide_engine.errors import InputError
from landslide_engine.pipeline import PredictRequest, predict_scene, stack_to_file
from tests.paths import GEO, SHARED
from tests.rasters import cut_tiles, write_raster
from tests.scenes import FakeRunner

GLO30 = SHARED / "products" / "copernicus_dem_glo30_crops"
SRTM_INT16 = GEO / "rsgislib_aberystwyth_wales" / "SRTM_aber.tif"


class SlopeRunner(FakeRunner):
    """A fake model that reads the terrain: probability from the slope band (B13), so the DEM shapes the map."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x[:, 12] / 2.0, 0.0, 1.0).astype(np.float32)


@pytest.fixture(scope="module")
def glo30():
    if not GLO30.is_dir():
        pytest.skip(f"Copernicus GLO-30 crops not found at {GLO30}")
    return GLO30


def synthetic_s2(path, dem, crs="EPSG:32611", margin=200.0, size=150):
    """A 13-band L1C stack (random DNs) on a 10 m UTM grid inside ``dem``'s footprint."""
    with rasterio.open(dem) as src:
        west, south, east, north = transform_bounds(src.crs, crs, *src.bounds)
    x0, y0 = round((west + margin) / 10) * 10, round((north - margin) / 10) * 10
    width = min(size, int((east - west - 2 * margin) // 10))
    height = min(size, int((north - south - 2 * margin) // 10))
    data = np.random.default_rng(7).integers(500, 4000, size=(13, height, width), dtype=np.uint16)
    return write_raster(path, data, crs, from_origin(x0, y0, 10, 10), descriptions=L1C_ESA_ORDER)


@pytest.mark.parametrize("name", ["los_angeles_tile_0.tif", "fairbanks_tile_0.tif"])
def test_glo30_tiles_give_the_map_of_the_dem_they_were_cut_from(glo30, tmp_path, name):
    dem = glo30 / name
    with rasterio.open(dem) as src:
        assert src.tags()["AREA_OR_POINT"] == "Point"
        height, width, transform, whole = src.height, src.width, src.transform, src.read(1)
    tiles = cut_tiles(dem, tmp_path / "tiles", [0, height // 3, height], [0, width // 2 + 7, width])
    with rasterio.open(tiles[-1]) as last:  # pixel-is-point survives the cut, without a second half-pixel shift
        assert last.tags()["AREA_OR_POINT"] == "Point"
        # rasterio's window arithmetic, not Affine * Affine (deprecated for @ in affine 3, which 2.4 lacks)
        assert last.transform == rasterio.windows.transform(Window(width // 2 + 7, height // 3, 1, 1), transform)
    with rasterio.open(dem_path(tiles)) as mosaic:
        assert mosaic.transform.almost_equals(transform, precision=1e-12) and mosaic.shape == (height, width)
        assert mosaic.res == pytest.approx((abs(transform.a), abs(transform.e)))  # 2" x 1" above 60 N stays so
        np.testing.assert_array_equal(mosaic.read(1), whole)

    utm = "EPSG:32611" if "angeles" in name else "EPSG:32606"
    s2 = synthetic_s2(tmp_path / "s2.tif", dem, utm)
    one = stack_to_file([str(s2)], str(dem), str(tmp_path / "one.tif"))
    several = stack_to_file([str(s2)], tiles, str(tmp_path / "several.tif"))
    with rasterio.open(one) as a, rasterio.open(several) as b:
        np.testing.assert_array_equal(a.read(), b.read())
        assert (a.read(14) != a.nodata).all()  # the whole grid lies on the DEM
    maps = [
        predict_scene(PredictRequest([str(s2)], d, str(tmp_path / out)), runner=SlopeRunner())
        for d, out in ((str(dem), "one_map"), (tiles, "several_map"))
    ]
    with rasterio.open(maps[0].probability) as a, rasterio.open(maps[1].probability) as b:
        np.testing.assert_array_equal(a.read(), b.read())
    assert json.loads(maps[1].report.read_text())["inputs"]["dem"] == tiles


def test_int16_srtm_tiles_with_nodata(tmp_path):
    if not SRTM_INT16.is_file():
        pytest.skip(f"SRTM not found at {SRTM_INT16}")
    with rasterio.open(SRTM_INT16) as src:
        assert src.dtypes[0] == "int16" and src.nodata == 0
        height, width, whole = src.height, src.width, src.read(1)
    tiles = cut_tiles(SRTM_INT16, tmp_path / "tiles", [0, 400, height], [0, 300, 720, width])
    with rasterio.open(dem_path(tiles)) as mosaic:
        data = mosaic.read(1)
    assert np.isnan(data[whole == 0]).all() and (whole == 0).sum() > 1000  # the sea and the void east stay nodata
    np.testing.assert_array_equal(data[whole != 0], whole[whole != 0].astype(np.float32))
    out_one, out_tiles = tmp_path / "one.tif", tmp_path / "tiles.tif"
    assert main(["slope", "--dem", str(SRTM_INT16), "--out", str(out_one)]) == 0
    assert main(["slope", "--dem", *tiles, "--out", str(out_tiles)]) == 0
    with rasterio.open(out_one) as a, rasterio.open(out_tiles) as b:
        np.testing.assert_array_equal(a.read(1), b.read(1))
        assert a.transform == b.transform


def test_tiles_in_different_crs_are_refused(glo30, tmp_path, capsys):
    utm = tmp_path / "utm.tif"
    write_raster(utm, np.ones((10, 10), np.float32), "EPSG:32611", from_origin(400000, 3760000, 30, 30))
    la = str(glo30 / "los_angeles_tile_0.tif")
    with pytest.raises(InputError, match="different CRSs"):
        mosaic_vrt([la, str(utm)])
    assert main(["slope", "--dem", la, str(utm), "--out", str(tmp_path / "s.tif")]) == 2
    assert "different CRSs" in capsys.readouterr().err
