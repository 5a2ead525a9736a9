"""Engine speed features: reduced-precision and threaded runners, the reader thread, stage timing, peak memory."""

from __future__ import annotations

import itertools
import json
import threading
import time

import numpy as np
import pytest
import rasterio
import torch
from osgeo import gdal
from rasterio.crs import CRS
from rasterio.transform import from_origin

from landslide_engine import outputs
from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.grid import Grid
from landslide_engine.models.backends import create_runner
from landslide_engine.models.package import ModelMetadata, export_onnx, save_torch_package
from landslide_engine.models.registry import create_model
from landslide_engine.outputs import FLOAT_NODATA, MASK_NODATA, ResultRasters, peak_memory_mb
from landslide_engine.pipeline import PredictRequest, predict_scene
from landslide_engine.streaming import BackgroundWriter, StageClock, prefetched, run_in_order
from landslide_engine.tiling import column_bands, tile_starts
from tests.qgis_helpers import synthetic_scene, tiny_model_package

BANDS = list(L4S_BANDS)


@pytest.fixture(scope="module")
def packages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speed")
    torch.manual_seed(0)
    model = create_model("unet_plain_w16", in_channels=len(BANDS)).eval()
    metadata = ModelMetadata.from_spec("unet_plain_w16", bands=BANDS, mean=[1.0] * 14, std=[0.5] * 14)
    return save_torch_package(model, metadata, folder / "m.pt"), export_onnx(model, metadata, folder / "m.onnx")


def _patches(n: int) -> np.ndarray:
    return np.random.default_rng(n).uniform(0.0, 2.0, size=(n, len(BANDS), 128, 128)).astype(np.float32)


def test_bf16_runner_stays_close_to_fp32(packages):
    x = _patches(3)
    fp32 = create_runner(packages[0], "torch", "cpu", 2).predict(x)
    bf16_runner = create_runner(packages[0], "torch", "cpu", 2, precision="bf16")
    bf16 = bf16_runner.predict(x)
    assert bf16_runner.precision == "bf16" and bf16.dtype == np.float32
    assert np.abs(bf16 - fp32).max() < 0.05
    assert not np.array_equal(bf16, fp32)  # it really ran in another number format


@pytest.mark.parametrize(
    ("backend", "precision", "needle"),
    [("torch", "fp16", "needs a GPU"), ("onnx", "bf16", "torch backend only"), ("torch", "int4", "unknown precision")],
)
def test_impossible_precisions_are_refused_with_one_line(packages, backend, precision, needle):
    with pytest.raises(InputError, match=needle) as info:
        create_runner(packages[0], backend, "cpu", precision=precision)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("form", [0, 1], ids=["torch", "onnx"])
def test_runner_workers_share_out_patches_without_changing_the_result(packages, form):
    x = _patches(5)
    one = create_runner(packages[form], device="cpu", batch_size=2, threads=2, workers=1)
    expected = one.predict(x)
    two = create_runner(packages[form], device="cpu", batch_size=2, threads=2, workers=2)
    assert (one.workers, two.workers) == (1, 2)
    np.testing.assert_allclose(two.predict(x), expected, atol=1e-6)
    np.testing.assert_allclose(two.predict_serial(x[:3]), expected[:3], atol=1e-6)
    with pytest.raises(InputError, match="workers must be between 1 and the 2"):
        create_runner(packages[form], device="cpu", threads=2, workers=3)


def test_onnx_runner_threads_do_not_change_the_result(packages):
    from landslide_engine.models.backends import OnnxRunner
    from landslide_engine.models.package import load_package

    package = load_package(packages[1])
    x = _patches(2)
    one = OnnxRunner(package.path, package.metadata, "cpu", 2, threads=1)
    default = OnnxRunner(package.path, package.metadata, "cpu", 2)
    assert one._session.get_session_options().intra_op_num_threads == 1
    # idle ONNX Runtime workers must not spin on the cores the scene reader and writer need
    assert default._session.get_session_options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    np.testing.assert_allclose(one.predict(x), default.predict(x), atol=1e-6)


@pytest.mark.parametrize(
    ("width", "overlap", "patches"), [(10000, 32, 32), (4000, 0, 16), (1300, 96, 1), (300, 32, 32)]
)
def test_column_bands_cover_every_column_once_on_block_boundaries(width, overlap, patches):
    bands = column_bands(width, 128, overlap, patches, 256)
    assert [c for band in bands for c in band.cols] == tile_starts(width, 128, overlap)
    assert bands[0].own_start == 0 and bands[-1].own_stop == width
    for before, after in itertools.pairwise(bands):
        assert before.own_stop == after.own_start and after.own_start % 256 == 0
        assert before.own_start < before.own_stop <= after.cols[0]  # a band writes no column the next one adds to
        assert before.reach <= after.own_stop  # ... and adds only to the next band's columns
    assert all(len(band.cols) >= patches for band in bands[:-1])


def test_run_in_order_keeps_the_order_with_calls_running_at_once():
    running, most = 0, 0
    lock = threading.Lock()

    def work(item: int) -> int:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02 if item % 3 == 0 else 0.001)  # some calls finish out of order
        with lock:
            running -= 1
        return item * item

    assert list(run_in_order(range(12), work, workers=3)) == [(i, i * i) for i in range(12)]
    assert most >= 2
    assert list(run_in_order(range(4), work, workers=1)) == [(i, i * i) for i in range(4)]


def test_run_in_order_starts_the_next_item_while_the_oldest_still_runs():
    """Pieces of 16 and 8 patches in turn: the worker that finished the short one must not wait for the long one
    to be handed back (that left one of two workers idle a third of the time)."""
    started: dict[int, float] = {}
    finished: dict[int, float] = {}

    def work(item: int) -> int:
        started[item] = time.perf_counter()
        time.sleep(0.3 if item == 0 else 0.01)
        finished[item] = time.perf_counter()
        return item

    assert [i for i, _ in run_in_order(range(4), work, workers=2)] == [0, 1, 2, 3]
    assert started[2] < finished[0] and started[3] < finished[0]


def test_prefetch_keeps_order_runs_one_ahead_and_stops_early():
    produced: list[int] = []
    lock = threading.Lock()

    def produce(job: int) -> int:
        time.sleep(0.01)
        with lock:
            produced.append(job)
        return job * 10

    assert list(prefetched(list(range(6)), produce)) == [0, 10, 20, 30, 40, 50]
    produced.clear()
    chunks = prefetched(list(range(100)), produce)
    assert next(chunks) == 0
    chunks.close()
    assert len(produced) <= 3  # a cancelled run does not keep reading the scene
    assert list(prefetched([], produce)) == []


def test_prefetch_passes_reader_errors_to_the_caller():
    def produce(job: int) -> int:
        if job == 2:
            raise InputError("band B4 unreadable")
        return job

    chunks = prefetched([0, 1, 2, 3], produce)
    assert next(chunks) == 0 and next(chunks) == 1
    with pytest.raises(InputError, match="B4"):
        next(chunks)


def test_stage_clock_sums_per_stage():
    clock = StageClock()
    for _ in range(3):
        with clock.measure("infer"):
            time.sleep(0.005)
    with pytest.raises(ValueError), clock.measure("write"):
        raise ValueError("still timed")
    assert clock.seconds["infer"] >= 0.015 and set(clock.seconds) == {"infer", "write"}
    # CPU time counts the stage's own work, not its waits: sleeping costs next to none, a busy loop its time.
    assert clock.cpu_seconds["infer"] < clock.seconds["infer"] / 2
    with clock.measure("scale"):
        started = time.thread_time()
        while time.thread_time() - started < 0.02:
            pass
    assert clock.cpu_seconds["scale"] >= 0.02 and set(clock.cpu_seconds) == set(clock.seconds)


def test_run_report_has_seconds_per_stage_and_a_plausible_peak(tmp_path):
    s2, dem = synthetic_scene(tmp_path, width=300, height=260)
    model = tiny_model_package(tmp_path / "tiny.onnx")
    result = predict_scene(PredictRequest(s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / "out"), model=str(model)))
    report = json.loads(result.report.read_text())
    stages = report["stage_seconds"]
    assert {"read_warp", "scale", "wait_for_input", "infer", "blend", "write", "polygonize"} <= set(stages)
    assert set(report["stage_cpu_seconds"]) == set(stages)
    assert all(v >= 0 for v in stages.values()) and stages["infer"] > 0
    assert 10 < report["peak_memory_mb"] == pytest.approx(report["peak_memory_mb"])
    assert 10 < peak_memory_mb() < 64 * 1024


@pytest.mark.parametrize(("width", "height"), [(600, 700), (300, 90)], ids=["tiled", "strips"])
def test_result_rasters_written_in_uneven_strips_hold_every_row(tmp_path, width, height):
    grid = Grid(CRS.from_epsg(32633), from_origin(500000, 5200000, 10, 10), width, height)
    probability = np.random.default_rng(1).random((height, width), dtype=np.float32)
    valid = np.ones((height, width), dtype=bool)
    valid[40:45, 100:130] = False
    rasters = ResultRasters(str(tmp_path / "p.tif"), str(tmp_path / "m.tif"), grid, 0.5)
    for row in range(0, height, 96):  # strips that do not line up with the 256-row blocks
        rasters.write_rows(row, probability[row : row + 96], valid[row : row + 96])
    with pytest.raises(ValueError, match="in order"):
        rasters.write_rows(0, probability[:10], valid[:10])
    rasters.close()
    expected_mask = np.where(valid, probability >= 0.5, MASK_NODATA)
    # ZSTD (faster to write, the same size) where this GDAL has it, as every QGIS 3 build does
    float_codec = (
        "zstd" if "ZSTD" in gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") else "deflate"
    )
    with rasterio.open(tmp_path / "p.tif") as p, rasterio.open(tmp_path / "m.tif") as m:
        assert p.crs == grid.crs and p.transform == grid.transform and (p.width, p.height) == (width, height)
        assert p.nodata == FLOAT_NODATA and m.nodata == MASK_NODATA and p.compression.name == float_codec
        assert m.compression.name == "deflate"
        assert p.descriptions == ("landslide probability",) and m.descriptions[0].startswith("landslide")
        assert (p.block_shapes[0] == (256, 256)) == (height >= 256)
        np.testing.assert_array_equal(p.read(1), np.where(valid, probability, FLOAT_NODATA))
        np.testing.assert_array_equal(m.read(1), expected_mask)
    assert rasters.landslide_pixels == int(np.count_nonzero(expected_mask == 1))


class _RecordingRasters:
    def __init__(self, fail_at: int | None = None) -> None:
        self.rows: list[int] = []
        self.fail_at = fail_at

    def write_rows(self, row: int, probability: np.ndarray, valid: np.ndarray | None = None, col: int = 0) -> None:
        time.sleep(0.01)
        if row == self.fail_at:
            raise OSError("disk full")
        assert valid is None  # NaN marks no data
        self.rows.append((row, col))


def test_background_writer_writes_in_order_and_passes_errors_on():
    rasters = _RecordingRasters()
    writer = BackgroundWriter(rasters, StageClock())
    for row in (0, 96, 192):
        writer.write_rows(row, np.zeros((96, 8), dtype=np.float32), col=256)
    writer.finish()
    writer.close()
    assert rasters.rows == [(0, 256), (96, 256), (192, 256)]

    failing = BackgroundWriter(_RecordingRasters(fail_at=96), StageClock())
    failing.write_rows(0, np.zeros((4, 4), dtype=np.float32))
    failing.write_rows(96, np.zeros((4, 4), dtype=np.float32))
    with pytest.raises(OSError, match="disk full"):
        failing.finish()
    failing.close()


@pytest.mark.parametrize(
    ("crs", "transform"),
    [
        (CRS.from_epsg(32633), from_origin(500000, 5200000, 10, 10)),
        (CRS.from_epsg(4326), from_origin(14, 47, 1e-4, 1e-4)),
    ],
    ids=["projected", "geographic"],
)
def test_polygon_statistics_read_in_row_blocks_match_the_whole_window(tmp_path, monkeypatch, crs, transform):
    from rasterio.features import geometry_mask, shapes

    grid = Grid(crs, transform, 80, 90)
    probability = np.random.default_rng(2).random((90, 80), dtype=np.float32)
    yy, xx = np.mgrid[0:90, 0:80]
    blob = ((yy - 45) ** 2 / 40**2 + (xx - 35) ** 2 / 30**2 < 1) & ~((yy - 45) ** 2 + (xx - 35) ** 2 < 36)
    with rasterio.open(
        tmp_path / "p.tif",
        "w",
        driver="GTiff",
        width=80,
        height=90,
        count=1,
        dtype="float32",
        crs=crs,
        transform=transform,
    ) as dst:
        dst.write(probability, 1)
    geometry = next(g for g, v in shapes(blob.astype(np.uint8), mask=blob, transform=transform) if v == 1)
    monkeypatch.setattr(outputs, "_STATS_BLOCK_ROWS", 7)
    with rasterio.open(tmp_path / "p.tif") as prob_ds:
        area, mean, peak = outputs._polygon_stats(geometry, prob_ds, grid)
    inside = geometry_mask([geometry], out_shape=(90, 80), transform=transform, invert=True)
    np.testing.assert_array_equal(inside, blob)  # the polygon has a hole, which the statistics leave out
    row_area = np.array([grid.pixel_area_m2(r) for r in range(90)])
    assert area == pytest.approx(float((inside.sum(axis=1) * row_area).sum()), rel=1e-9)
    assert mean == pytest.approx(float(probability[inside].astype(np.float64).mean()), rel=1e-9)
    assert peak == float(probability[inside].max())


class _RecordingRunner:
    """Keeps every patch it is given and answers a constant."""

    backend = "none"
    device = "cpu"

    def __init__(self) -> None:
        self.metadata = ModelMetadata.from_spec(
            "unet_plain_w16", name="rec", bands=BANDS, mean=[1.0] * 14, std=[1.0] * 14
        )
        self.patches: list[np.ndarray] = []

    def predict(self, x: np.ndarray) -> np.ndarray:
        self.patches.extend(x.copy())
        return np.full((x.shape[0], x.shape[2], x.shape[3]), 0.3, dtype=np.float32)


def test_rows_shared_by_patch_rows_are_read_once_and_patches_equal_the_whole_scene_cut(tmp_path, monkeypatch):
    from rasterio.windows import Window

    from landslide_engine import pipeline
    from landslide_engine.stack import SceneStack
    from landslide_engine.tiling import reflect_pad

    monkeypatch.setattr(pipeline, "_BAND_PX", 400)  # several column bands
    s2, dem = synthetic_scene(tmp_path, width=1100, height=400)
    runner = _RecordingRunner()
    windows: list[Window] = []
    read_native = SceneStack.read_native

    def recording_read_native(self, window, bands, **kwargs):
        windows.append(window)
        return read_native(self, window, bands, **kwargs)

    monkeypatch.setattr(SceneStack, "read_native", recording_read_native)
    req = PredictRequest(s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / "out"), overlap=32, batch_size=2)
    predict_scene(req, runner=runner)
    monkeypatch.setattr(SceneStack, "read_native", read_native)
    assert len({w.col_off for w in windows}) == 3
    for left in {w.col_off for w in windows}:  # every band reads each scene row exactly once
        spans = sorted((w.row_off, w.row_off + w.height) for w in windows if w.col_off == left)
        assert spans[0][0] == 0 and spans[-1][1] == 400
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans)), spans

    scene = pipeline.open_scene(pipeline.SceneInputs([str(s2)], str(dem)), BANDS, {})
    with scene.stack:
        whole = scene.stack.stack_bands(Window(0, 0, 1100, 400), BANDS)
    whole = np.where(np.isfinite(whole), whole, 1.0).astype(np.float32)
    padded = reflect_pad(whole, 16, 16, 16, 16)
    rows = tile_starts(400, 128, 32)
    assert rows == [-16, 80, 176, 272, 288]  # the last patch row shares more rows than the others
    bands = column_bands(1100, 128, 32, 5, 256)
    expected = [padded[:, r + 16 : r + 144, c + 16 : c + 144] for band in bands for r in rows for c in band.cols]
    assert len(runner.patches) == len(expected)
    for got, want in zip(runner.patches, expected, strict=True):
        np.testing.assert_array_equal(got, want)


class _InputRunner(_RecordingRunner):
    """Answers a probability that follows the input, from two workers at once."""

    workers = 2

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.clip(0.2 + 0.3 * x[:, 3] - 0.1 * x[:, 7], 0.0, 1.0).astype(np.float32)


def test_column_bands_workers_and_part_readers_give_the_mosaic_of_one_band(tmp_path, monkeypatch):
    from landslide_engine import pipeline

    s2, dem = synthetic_scene(tmp_path, width=1100, height=300)
    results = {}
    for name, band_px, readers in (("one", 100_000, 1), ("several", 400, 1), ("readers", 400, 3)):
        monkeypatch.setattr(pipeline, "_BAND_PX", band_px)
        req = PredictRequest(
            s2=[str(s2)], dem=str(dem), out_dir=str(tmp_path / name), overlap=40, batch_size=2, readers=readers
        )
        result = predict_scene(req, runner=_InputRunner())
        with rasterio.open(result.probability) as src:
            results[name] = src.read(1)
    one, several = results["one"], results["several"]
    assert np.ptp(one) > 0.05  # the mosaic really varies
    np.testing.assert_allclose(several, one, atol=1e-6)  # only the float32 summation order differs
    np.testing.assert_array_equal(results["readers"], several)  # chunks read in 3 column parts at once


def test_part_readers_read_every_column_once_and_pass_errors_on(tmp_path):
    from rasterio.windows import Window

    from landslide_engine import pipeline

    s2, dem = synthetic_scene(tmp_path, width=500, height=200)
    scene = pipeline.open_scene(pipeline.SceneInputs([str(s2)], str(dem)), BANDS, {})
    with scene.stack:
        readers = pipeline._ColumnPartReaders(scene.stack, 3, min_width=128)
        seen: list[tuple] = []

        def record(stack, part, cols):
            seen.append((int(part.col_off), cols.start, cols.stop, id(stack), threading.current_thread().name))

        readers.read(Window(10, 0, 400, 50), record)
        assert sorted((s[1], s[2]) for s in seen) == [(0, 133), (133, 267), (267, 400)]
        assert all(col == 10 + start for col, start, *_ in seen)
        assert len({s[3] for s in seen}) == 3  # each part through dataset handles of its own
        seen.clear()
        readers.read(Window(0, 0, 200, 50), record)  # too narrow for three parts of 128 px
        assert [(s[1], s[2]) for s in seen] == [(0, 200)]

        def failing(stack, part, cols):
            if cols.start > 0:
                raise InputError("band B4 unreadable")

        with pytest.raises(InputError, match="B4"):
            readers.read(Window(0, 0, 400, 50), failing)
        readers.close()
