"""predict_scene on synthetic rasters: exact grids, blending, nodata, cancel, bounded memory, real packages."""

from __future__ import annotations

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_engine.bands import L4S_BANDS, L4S_S2_BANDS, divisor
from landslide_engine.errors import Cancelled, InputError
from landslide_engine.pipeline import PredictRequest, predict_scene, stack_to_file
from landslide_engine.tiling import blend_weights
from tests.rasters import write_raster
from tests.scenes import NO_ATMOSPHERIC, FakeRunner, l4s_s2_stack, make_scene, run


@pytest.mark.parametrize(
    ("crs", "res", "origin"),
    [("EPSG:32633", 10.0, (500000.0, 5200000.0)), ("EPSG:3035", 20.0, (4321000.0, 3210000.0))],
)
def test_outputs_are_on_the_s2_grid_exactly(tmp_path, crs, res, origin):
    s2, dem = make_scene(tmp_path, 150, 170, crs=crs, res=res, origin=origin)
    result = run(tmp_path, [s2], dem, FakeRunner(), resolution=res)
    with rasterio.open(s2) as src, rasterio.open(result.probability) as prob, rasterio.open(result.mask) as mask:
        for out in (prob, mask):
            assert out.crs == CRS.from_user_input(crs)
            assert out.transform == src.transform
            assert (out.width, out.height) == (src.width, src.height)
        assert prob.dtypes[0] == "float32" and prob.nodata is not None
        assert mask.dtypes[0] == "uint8" and mask.nodata == 255
        p = prob.read(1)
        assert p.min() >= 0 and p.max() <= 1
        assert set(np.unique(mask.read(1))) <= {0, 1}


def test_patch_inside_scene_matches_patch_alone(tmp_path):
    rng = np.random.default_rng(1)
    patch = rng.uniform(0.5, 1.5, size=(12, 128, 128))
    scene = rng.uniform(0.5, 1.5, size=(12, 300, 340))
    scene[:, 90:218, 101:229] = patch
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    s2, dem = make_scene(tmp_path / "a", 300, 340, l4s=scene)
    whole = run(tmp_path / "a", [s2], dem, FakeRunner(), overlap=40)
    s2_alone, dem_alone = make_scene(tmp_path / "b", 128, 128, l4s=patch, origin=(500000.0 + 1010, 5200000.0 - 900))
    alone = run(tmp_path / "b", [s2_alone], dem_alone, FakeRunner(), overlap=40)
    with rasterio.open(whole.probability) as a, rasterio.open(alone.probability) as b:
        in_scene = a.read(1)[90:218, 101:229]
        by_itself = b.read(1)
    core = (slice(2, -2), slice(2, -2))
    # Patch borders (where the model itself pads) carry small blend weights, so they shift values only slightly.
    np.testing.assert_allclose(in_scene[core], by_itself[core], atol=1e-2)
    assert np.median(np.abs(in_scene[core] - by_itself[core])) < 1e-5
    assert in_scene[core].std() > 0.01  # the comparison is about real spatial structure


def test_constant_model_gives_a_seamless_constant_mosaic(tmp_path):
    s2, dem = make_scene(tmp_path, 333, 290)
    result = run(tmp_path, [s2], dem, FakeRunner("constant"), overlap=48)
    with rasterio.open(result.probability) as prob:
        p = prob.read(1)
    np.testing.assert_allclose(p, 0.3, atol=1e-6)
    assert blend_weights(128, 48).min() < 0.1  # the weights do fall off, so this is a real blending check


def test_nodata_stays_nodata_and_is_never_a_landslide(tmp_path):
    l4s = np.full((12, 160, 180), 3.0)  # bright B4: the fake model says landslide everywhere
    s2, dem = make_scene(tmp_path, 160, 180, l4s=l4s)
    with rasterio.open(s2, "r+") as s:
        data = s.read()
        data[:, 40:60, :] = 0  # DN 0 is Sentinel-2 nodata even where the file declares none
        s.write(data)
    with rasterio.open(dem, "r+") as d:
        block = d.read(1)
        block[10 + 100 : 10 + 110, 10 + 50 : 10 + 70] = -9999.0  # DEM nodata inside the scene
        d.write(block, 1)
    result = run(tmp_path, [s2], dem, FakeRunner())
    with rasterio.open(result.probability) as prob, rasterio.open(result.mask) as mask:
        p, m = prob.read(1), mask.read(1)
    assert (p[40:60] == prob.nodata).all() and (m[40:60] == 255).all()
    assert (m[100:110, 50:70] == 255).all()
    assert (m[:40] == 1).all() and (m[60:100] == 1).all()


class CountingRunner(FakeRunner):
    """FakeRunner that counts the patches it is given, run from two workers at once."""

    workers = 2

    def __init__(self) -> None:
        super().__init__()
        self.patches = 0

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.patches += len(x)
        return super().predict(x)


def test_patches_without_data_are_not_run_and_the_outputs_do_not_change(tmp_path, monkeypatch):
    from landslide_engine import pipeline
    from landslide_engine.tiling import tile_starts

    monkeypatch.setattr(pipeline, "_BAND_PX", 400)  # several column bands
    height, width = 330, 900
    s2, dem = make_scene(tmp_path, height, width)
    rows, cols = np.mgrid[0:height, 0:width]
    outside = cols < 620 - rows  # a granule's no-data wedge, as at the edge of a Sentinel-2 swath
    with rasterio.open(s2, "r+") as s:
        data = s.read()
        data[:, outside] = 0
        s.write(data)
    windows = [(r, c) for r in tile_starts(height, 128, 32) for c in tile_starts(width, 128, 32)]
    empty = sum(outside[max(r, 0) : r + 128, max(c, 0) : c + 128].all() for r, c in windows)
    assert 0 < empty < len(windows)

    skipping = CountingRunner()
    result = run(tmp_path / "skipping", [s2], dem, skipping, batch_size=3)
    monkeypatch.setattr(pipeline._ChunkPatches, "with_data", lambda chunk: list(range(len(chunk.band.cols))))
    everything = CountingRunner()
    reference = run(tmp_path / "everything", [s2], dem, everything, batch_size=3)

    assert (result.n_patches, result.n_patches_without_data) == (len(windows), empty)
    assert json.loads(result.report.read_text())["patches_without_data"] == empty
    assert (skipping.patches, everything.patches) == (len(windows) - empty, len(windows))
    for name in ("probability", "mask"):
        with rasterio.open(getattr(result, name)) as a, rasterio.open(getattr(reference, name)) as b:
            np.testing.assert_array_equal(a.read(1), b.read(1))
    with rasterio.open(result.mask) as mask:
        m = mask.read(1)
    assert (m[outside] == 255).all() and (m[~outside] != 255).all()


def test_polygons_and_report(tmp_path):
    from osgeo import ogr

    l4s = np.full((12, 140, 150), 0.5)
    l4s[3, 20:40, 30:60] = 3.0  # one 20 x 30 px bright block in B4
    l4s[3, 100:103, 100:103] = 3.0  # a 3 x 3 px one (about 21 px after the 3x3 box), below the area filter
    s2, dem = make_scene(tmp_path, 140, 150, l4s=l4s)
    result = run(tmp_path, [s2], dem, FakeRunner(), min_area_m2=3000)
    assert result.n_landslides == 1
    ds = ogr.Open(str(result.polygons))
    layer = ds.GetLayerByName("landslides")
    feature = layer.GetNextFeature()
    assert layer.GetFeatureCount() == 1
    assert feature.GetField("area_m2") == pytest.approx(result.landslide_area_m2)
    assert 0.5 <= feature.GetField("mean_prob") <= feature.GetField("max_prob") <= 1
    assert feature.GetGeometryRef().GetArea() == pytest.approx(feature.GetField("area_m2"))
    report = json.loads(result.report.read_text())
    assert report["patches"] == result.n_patches > 0
    assert report["device"] == "cpu" and report["backend"] == "fake"
    assert set(report["seconds"]) >= {"prepare", "predict", "polygons", "total"}
    assert 0 < report["peak_memory_mb_before_polygons"] <= report["peak_memory_mb"]
    assert (report["precision"], report["workers"]) == ("fp32", 1)  # what ran: a stand-in runner, one call at a time
    assert report["inputs"]["bands"]["B8"]["identified_by"] == "band description"


def test_cancel_leaves_no_output(tmp_path):
    s2, dem = make_scene(tmp_path, 300, 300)
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        predict_scene(
            PredictRequest(s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / "out")),
            cancelled=lambda: next(calls) >= 3,
            runner=FakeRunner(),
        )
    assert list((tmp_path / "out").iterdir()) == []


def test_missing_band_is_named_unless_the_model_allows_filling_it(tmp_path):
    rng = np.random.default_rng(0)
    data = l4s_s2_stack(rng.uniform(0.5, 1.5, size=(12, 130, 130)))
    keep = [i for i, b in enumerate(L4S_S2_BANDS) if b != "B10"]
    names = [L4S_S2_BANDS[i] for i in keep]
    s2 = write_raster(tmp_path / "s2_l2a.tif", data[keep], "EPSG:32633", from_origin(500000, 5200000, 10, 10), names)
    _, dem = make_scene(tmp_path, 130, 130)
    with pytest.raises(InputError, match="B10"):
        run(tmp_path, [s2], dem, FakeRunner())
    result = run(tmp_path, [s2], dem, FakeRunner(fillable={"B10": 1.2}))
    assert any("B10" in w for w in result.warnings)
    assert not any(p.name.startswith(".") for p in (tmp_path / "out").iterdir())


def test_model_using_a_band_subset_runs_on_a_10_band_product(tmp_path):
    rng = np.random.default_rng(0)
    data = l4s_s2_stack(rng.uniform(0.5, 1.5, size=(12, 100, 100)))
    keep = [i for i, b in enumerate(L4S_S2_BANDS) if b in NO_ATMOSPHERIC]
    names = [L4S_S2_BANDS[i] for i in keep]
    s2 = write_raster(tmp_path / "s2_10band.tif", data[keep], "EPSG:32633", from_origin(500000, 5200000, 10, 10), names)
    _, dem = make_scene(tmp_path, 100, 100)
    with pytest.raises(InputError, match="B1, B9, B10"):
        run(tmp_path, [s2], dem, FakeRunner())
    result = run(tmp_path, [s2], dem, FakeRunner(bands=NO_ATMOSPHERIC))
    assert json.loads(result.report.read_text())["model"]["bands"] == NO_ATMOSPHERIC


def test_stack_to_file_writes_l4s_units(tmp_path):
    rng = np.random.default_rng(3)
    l4s = rng.uniform(0.5, 1.5, size=(12, 64, 70))
    s2, dem = make_scene(tmp_path, 64, 70, l4s=l4s)
    out = stack_to_file([str(s2)], str(dem), str(tmp_path / "stack.tif"))
    with rasterio.open(out) as src:
        stack = src.read()
        assert src.descriptions == L4S_BANDS
    expected = np.round(l4s * np.array([divisor(b) for b in L4S_S2_BANDS])[:, None, None])
    np.testing.assert_allclose(
        stack[:12] * np.array([divisor(b) for b in L4S_S2_BANDS])[:, None, None], expected, atol=0.02
    )
    # DEM rises 2 m per 10 m east and 1 m per 10 m south: slope atan(sqrt(0.2^2 + 0.1^2)) = 12.6 -> 13 degrees
    np.testing.assert_allclose(stack[12] * divisor("B13"), 13.0, atol=1e-3)
    assert stack[13, 0, 0] * divisor("B14") == pytest.approx(300 + 2 * 10 + 10, abs=0.01)


def _peak_bytes(folder: Path, height: int) -> int:
    folder.mkdir()
    s2, dem = make_scene(folder, height, 256)
    tracemalloc.start()
    try:
        run(folder, [s2], dem, FakeRunner("constant"), overlap=32)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_scene_height(tmp_path):
    # Both scenes are tall enough for the reader to run its full two chunks ahead of the model.
    small = _peak_bytes(tmp_path / "small", 640)
    large = _peak_bytes(tmp_path / "large", 1920)  # 3x the pixels, same width
    assert large < 1.3 * small, (small, large)


@pytest.fixture(scope="module")
def tiny_packages(tmp_path_factory):
    """A tiny plain U-Net saved as a .pt and as an .onnx package."""
    package = pytest.importorskip("landslide_engine.models.package")
    torch = pytest.importorskip("torch", reason="a .pt package needs torch")

    from landslide_engine.models.registry import create_model

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models")
    bands = NO_ATMOSPHERIC
    model = create_model("unet_plain_w16", in_channels=len(bands)).eval()
    metadata = package.ModelMetadata.from_spec(
        "unet_plain_w16", name="tiny-test", bands=bands, mean=[1.0] * len(bands), std=[0.5] * len(bands)
    )
    pt = package.save_torch_package(model, metadata, folder / "tiny.pt")
    onnx = package.export_onnx(model, metadata, folder / "tiny.onnx")
    return pt, onnx


def test_real_packages_run_end_to_end_and_backends_agree(tmp_path, tiny_packages):
    pytest.importorskip("landslide_engine.models.backends")
    pt, onnx = tiny_packages
    s2, dem = make_scene(tmp_path, 140, 150)
    probs = []
    for name, model, backend in (("t", pt, "torch"), ("o", onnx, "onnx")):
        request = PredictRequest(
            s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / name), model=str(model), backend=backend, device="cpu"
        )
        result = predict_scene(request)
        assert result.backend == backend and result.device.startswith("cpu")
        with rasterio.open(result.probability) as src:
            probs.append(src.read(1))
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-3)
