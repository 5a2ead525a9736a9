"""The minimum mapping unit: by default a polygon of a single 10 m pixel is dropped (the mask keeps it).

The default (``options.DEFAULT_MIN_AREA_M2``) was measured with ``bench/min_area.py``; the README's table says
what it removes on the real Aberystwyth scene and on the labelled Landslide4Sense patches.
"""

from __future__ import annotations

import json

import numpy as np
import rasterio

from landslide_engine.cli import build_parser
from landslide_engine.options import DEFAULT_MIN_AREA_M2
from landslide_engine.pipeline import PredictRequest
from tests.scenes import FakeRunner, make_scene, run


class PixelRunner(FakeRunner):
    """Probability from band B4 pixel by pixel (no neighbourhood), so one bright pixel is one landslide pixel."""

    def predict(self, x: np.ndarray) -> np.ndarray:
        band = x[:, self.metadata.bands.index("B4")]
        return (1 / (1 + np.exp(-8 * (band - 1.0)))).astype(np.float32)


def scene_with_a_pixel_and_a_block(tmp_path):
    l4s = np.full((12, 140, 150), 0.5)
    l4s[3, 30, 40] = 3.0  # one bright 10 m pixel: 100 m2
    l4s[3, 90:92, 100:102] = 3.0  # a 2 x 2 block: 400 m2
    return make_scene(tmp_path, 140, 150, l4s=l4s)


def test_by_default_a_single_pixel_polygon_is_dropped_and_the_mask_keeps_it(tmp_path):
    assert 100.0 < DEFAULT_MIN_AREA_M2 <= 200.0  # more than one 10 m pixel, no more than two
    s2, dem = scene_with_a_pixel_and_a_block(tmp_path)
    default = run(tmp_path / "default", [s2], dem, PixelRunner())
    assert default.n_landslides == 1 and default.landslide_area_m2 == 400.0
    assert json.loads(default.report.read_text())["min_area_m2"] == DEFAULT_MIN_AREA_M2
    with rasterio.open(default.mask) as mask:
        assert int((mask.read(1) == 1).sum()) == 5  # the pixel and the block

    everything = run(tmp_path / "all", [s2], dem, PixelRunner(), min_area_m2=0.0)
    assert everything.n_landslides == 2 and everything.landslide_area_m2 == 500.0


def test_the_cli_and_the_request_share_the_default():
    assert PredictRequest(s2=["s2.tif"], dem="dem.tif", out_dir="out").min_area_m2 == DEFAULT_MIN_AREA_M2
    args = build_parser().parse_args(["predict", "--s2", "s2.tif", "--dem", "dem.tif", "--out", "out"])
    assert args.min_area == DEFAULT_MIN_AREA_M2
