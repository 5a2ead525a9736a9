"""The benchmark's own tools: scene generator, accuracy comparison, report targets."""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import rasterio

from tests.paths import ROOT

sys.path.insert(0, str(ROOT / "bench"))

from quantize import accuracy_cost, comparison_threshold
from scenes import BAND_PIXEL_M, write_geographic_dem, write_granule, write_scene

from landslide_engine.bands import L1C_ESA_ORDER
from landslide_engine.pipeline import PredictRequest, predict_scene
from tests.qgis_helpers import tiny_model_package


def test_accuracy_cost_counts_by_hand():
    reference = np.array([0.9, 0.8, 0.2, 0.1], dtype=np.float32)
    reduced = np.array([0.85, 0.4, 0.6, 0.1], dtype=np.float32)
    cost = accuracy_cost(reference, reduced, 0.5)
    # masks: reference 1 1 0 0, reduced 1 0 1 0 -> tp 1, fp 1, fn 1
    assert cost["mask_agreement"] == pytest.approx(0.5)
    assert cost["mask_f1_vs_fp32"] == pytest.approx(0.5)
    assert cost["max_abs_diff"] == pytest.approx(0.4, abs=1e-6)
    assert cost["mean_abs_diff"] == pytest.approx((0.05 + 0.4 + 0.4 + 0.0) / 4, abs=1e-6)
    assert accuracy_cost(reference, reference, 0.5)["mask_f1_vs_fp32"] == 1.0


def test_comparison_threshold_moves_only_when_the_mask_would_be_empty():
    probs = np.linspace(0.40, 0.45, 1000)
    assert comparison_threshold(probs, 0.5) == pytest.approx(np.quantile(probs, 0.9))
    spread = np.linspace(0.0, 1.0, 1000)
    assert comparison_threshold(spread, 0.5) == 0.5


def test_generated_scene_is_an_l1c_product_the_engine_runs(tmp_path):
    scene = write_scene(tmp_path, 300)
    with rasterio.open(scene.s2) as src:
        assert src.count == len(L1C_ESA_ORDER) and src.dtypes[0] == "uint16" and src.shape == (300, 300)
        assert tuple(src.descriptions) == L1C_ESA_ORDER
        assert src.read(4).min() >= 1 and src.read(4).max() <= 10000
    with rasterio.open(scene.dem) as dem:
        assert dem.res == (30.0, 30.0) and dem.crs == rasterio.crs.CRS.from_epsg(32633)
    assert write_scene(tmp_path, 300) == scene  # reused, not rewritten
    model = tiny_model_package(tmp_path / "tiny.onnx")
    out = tmp_path / "out"
    result = predict_scene(PredictRequest(s2=[str(scene.s2)], dem=str(scene.dem), out_dir=str(out), model=str(model)))
    with rasterio.open(result.probability) as prob:
        assert prob.shape == (300, 300) and np.isfinite(prob.read(1)).all()


def test_bench_terrain_is_an_elevation_the_engine_accepts_at_every_size():
    """The 10000 px scene's DEM once reached -1864 m and the engine refused it: the terrain stays in range."""
    from scenes import _dem_block

    from landslide_engine.plausibility import ELEVATION_RANGE_M

    cells = np.arange(0, 11000 // 3 + 3, 7)  # a 10980 px tile in 30 m cells, every 7th
    dem = _dem_block(cells, cells)
    assert ELEVATION_RANGE_M[0] < dem.min() < 1000 < 2500 < dem.max() < ELEVATION_RANGE_M[1]


def test_geographic_dem_is_srtm_like_covers_the_scene_and_is_warped_for_it(tmp_path):
    scene = write_scene(tmp_path, 300)
    path = write_geographic_dem(tmp_path, 300)
    with rasterio.open(path) as dem, rasterio.open(scene.s2) as s2:
        assert dem.crs == rasterio.crs.CRS.from_epsg(4326) and dem.dtypes[0] == "int16" and dem.nodata == -32767
        assert dem.res[0] == pytest.approx(1 / 3600)
        west, south, east, north = rasterio.warp.transform_bounds(s2.crs, dem.crs, *s2.bounds)
        assert dem.bounds.left < west and dem.bounds.right > east
        assert dem.bounds.bottom < south and dem.bounds.top > north
        assert 500 < dem.read(1).min() < dem.read(1).max() < 3000
    assert write_geographic_dem(tmp_path, 300) == path  # reused, not rewritten
    model = tiny_model_package(tmp_path / "tiny.onnx")
    req = PredictRequest(s2=[str(scene.s2)], dem=str(path), out_dir=str(tmp_path / "out"), model=str(model))
    result = predict_scene(req)
    with rasterio.open(result.probability) as prob:
        assert prob.crs == rasterio.crs.CRS.from_epsg(32633) and np.isfinite(prob.read(1)).all()


def test_generated_granule_has_each_band_at_its_resolution_and_a_no_data_wedge(tmp_path):
    granule = write_granule(tmp_path, 600, no_data_share=0.4)
    assert [p.stem.rsplit("_", 1)[1] for p in granule.bands][:3] == ["B01", "B02", "B03"]
    for band, path in zip(L1C_ESA_ORDER, granule.bands, strict=True):
        with rasterio.open(path) as src:
            assert src.res == (BAND_PIXEL_M[band], BAND_PIXEL_M[band]) and src.count == 1 and src.nodata is None
            assert src.bounds.right >= 500000.0 + 6000 and src.bounds.bottom <= 5200000.0 - 6000
            if band == "B4":
                share = float((src.read(1) == 0).mean())
    assert share == pytest.approx(0.4, abs=0.01)
    assert write_granule(tmp_path, 600, no_data_share=0.4) == granule  # reused, not rewritten
    model = tiny_model_package(tmp_path / "tiny.onnx")
    s2 = [str(p) for p in granule.bands]
    result = predict_scene(PredictRequest(s2=s2, dem=str(granule.dem), out_dir=str(tmp_path / "out"), model=str(model)))
    assert result.n_patches == 49 and 0 < result.n_patches_without_data < result.n_patches
    with rasterio.open(result.mask) as mask:
        assert mask.shape == (600, 600)
        assert float((mask.read(1) == mask.nodata).mean()) == pytest.approx(0.4, abs=0.02)


def test_granule_row_is_compared_with_the_stacked_scene_over_the_patches_it_ran():
    import run

    common = {"pipeline": "engine", "model": "m", "variant": "fp32", "size": 4000, "overlap": 32}
    common |= {"threads": 2, "workers": 2, "model_only_patches_per_s": 100.0, "peak_rss_mb": 500.0}
    rows = [{**common, "patches": 1000, "wall_s": 12.5, "scene": run.STACK}]
    rows.append({**common, "patches": 1000, "patches_without_data": 400, "wall_s": 10.0, "scene": run.GRANULE})
    lines = run.targets(SimpleNamespace(scene_rows=rows, models={}))
    assert sum("end-to-end / model-only, m fp32" in line for line in lines) == 1  # the granule is not a size target
    granule = [line for line in lines if line.startswith("- granule")]
    assert len(granule) == 1 and "10.0 s against 12.5 s" in granule[0] and "600 of 1000 patches" in granule[0]
    assert "**0.600**" in granule[0] and "missed" in granule[0]


def test_ratio_targets_name_the_overlap_and_do_not_round_a_miss_up_to_the_target():
    import run

    common = {"pipeline": "engine", "model": "m", "variant": "fp32", "size": 4000, "patches": 1000}
    common |= {"threads": 2, "workers": 2, "model_only_patches_per_s": 100.0, "peak_rss_mb": 500.0}
    rows = [{**common, "overlap": 32, "wall_s": 12.52}, {**common, "overlap": 0, "wall_s": 12.5}]
    lines = [line for line in run.targets(SimpleNamespace(scene_rows=rows, models={})) if "model-only, m" in line]
    assert len(lines) == 2
    assert "4000², overlap 32: **0.799** (target ≥ 0.8: missed)" in lines[0]
    assert "4000², overlap 0: **0.800** (target ≥ 0.8: met)" in lines[1]


def test_report_says_the_machine_was_shared_only_when_the_load_shows_it(monkeypatch):
    import run

    monkeypatch.setattr(run, "usable_cpu_count", lambda: 2)
    busy = {"load average at start": "1.20, 1.00, 0.90", "load average after scenes": "4.60, 3.00, 2.00"}
    quiet = {"CPU": "x", "load average at start": "1.20, 1.00, 0.90", "load average after scenes": "2.10, 2.0, 2.0"}
    assert "**shared**" in run._sharing_note(busy) and "4.6 on 2 cores" in run._sharing_note(busy)
    assert "**shared**" not in run._sharing_note(quiet) and "2.1 on 2 cores" in run._sharing_note(quiet)


def test_naive_rows_are_compared_with_every_engine_variant_of_the_same_scene():
    import run

    def row(pipeline, variant, wall, threads, workers, overlap=0, size=4000):
        return {
            "pipeline": pipeline,
            "model": "m",
            "variant": variant,
            "size": size,
            "overlap": overlap,
            "patches": 1024,
            "wall_s": wall,
            "threads": threads,
            "workers": workers,
            "model_only_patches_per_s": 100.0,
            "peak_rss_mb": 500.0,
        }

    rows = [row("naive", "PyTorch fp32", 21.0, 2, 1), row("engine", "fp32", 10.5, 2, 2)]
    rows += [row("engine", "int8", 6.0, 2, 2), row("engine", "fp32", 5.0, 2, 2, overlap=32)]
    rows += [row("engine", "fp32", 1.0, 2, 2, size=1000)]
    lines = [line for line in run.targets(SimpleNamespace(scene_rows=rows, models={})) if "naive" in line]
    assert len(lines) == 2  # not the overlapping scene, not the other size
    assert "m fp32 4000² overlap 0 (engine 2 threads in 2 workers" in lines[0] and "**2.0x**" in lines[0]
    assert "missed" in lines[0]
    assert "m int8 4000²" in lines[1] and "**3.5x**" in lines[1] and "met" in lines[1]


def _pretend_gpu(monkeypatch, providers: list[str]) -> None:
    """torch sees a CUDA GPU and ONNX Runtime offers ``providers``: what ``make bench`` finds on a lent GPU."""
    import onnxruntime
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: providers)


def test_gpu_variants_follow_the_software_present(monkeypatch):
    pytest.importorskip("torch", reason="the GPU variants are found through torch")
    import run

    labels = {v.label for v in run.gpu_variants()}
    assert labels == set() or all("(cuda)" in label for label in labels)  # this machine: its own truth
    _pretend_gpu(monkeypatch, ["CUDAExecutionProvider", "CPUExecutionProvider"])
    kinds = {(v.kind, v.precision, v.device) for v in run.gpu_variants()}
    assert {("torch", "fp16", "cuda"), ("torch", "bf16", "cuda"), ("torch-compile", "bf16", "cuda")} <= kinds
    assert ("onnx", "fp32", "cuda") in kinds and not any(k[0] == "onnx-tensorrt" for k in kinds)
    _pretend_gpu(monkeypatch, ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"])
    assert ("onnx-tensorrt", "fp16", "cuda") in {(v.kind, v.precision, v.device) for v in run.gpu_variants()}


def test_a_gpu_runs_every_scene_size_with_one_worker_and_a_larger_batch(monkeypatch):
    pytest.importorskip("torch", reason="the GPU variants are found through torch")
    import run

    _pretend_gpu(monkeypatch, ["CPUExecutionProvider"])
    bench = run.Bench.__new__(run.Bench)
    bench.threads = 16
    bench.models = {run.COMPACT_MODEL: None, run.PAPER_MODEL: None}
    bench.args = SimpleNamespace(sizes=[1000, 4000, 10000], max_size_large_model=4000, geographic_size=3072)
    calls = []
    monkeypatch.setattr(bench, "_scene", lambda *a, **k: calls.append((a, k)), raising=False)
    bench.scenes()
    on_gpu = [a for a, _ in calls if a[3].device == "cuda"]
    assert {(a[1], a[2], a[3].precision) for a in on_gpu} == {
        (model, size, precision)
        for model in (run.COMPACT_MODEL, run.PAPER_MODEL)
        for size in (1000, 4000, 10000)
        for precision in ("fp32", "fp16")
    }
    assert all(a[4] == run.GPU_SCENE_BATCH and a[5] == run.OVERLAP and a[6] == (16, 1) for a in on_gpu)
    on_cpu = [a for a, _ in calls if a[3].device == "cpu"]
    assert on_cpu and all(a[4] in (1, run.ENGINE_BATCH) for a in on_cpu)  # the CPU rows are unchanged
    geographic = [(a, k) for a, k in calls if k.get("scene") == run.GEOGRAPHIC]
    assert [(a[1], a[2], a[5]) for a, _ in geographic] == [(run.COMPACT_MODEL, 3072, 0)]


def test_geographic_row_reports_cpu_per_patch_outside_the_model_and_the_marginal_ratio():
    import run

    row = {"pipeline": "engine", "model": "m", "variant": "fp32", "size": 3072, "overlap": 0, "scene": run.GEOGRAPHIC}
    row |= {"patches": 576, "patches_without_data": 0, "wall_s": 8.0, "model_only_patches_per_s": 100.0}
    row |= {"seconds": {"prepare": 1.0, "predict": 6.4, "polygons": 0.6}, "peak_rss_mb": 900.0}
    # 0.576 s of CPU outside the model over 576 patches: 1.0 ms per patch
    cpu = {"read_warp": 0.288, "scale": 0.144, "cut": 0.0576, "blend": 0.0288, "write": 0.0576, "infer": 9.0}
    row |= {"stage_cpu_seconds": cpu | {"wait_for_input": 0.01}}
    lines = [line for line in run.targets(SimpleNamespace(scene_rows=[row], models={})) if "geographic" in line]
    assert len(lines) == 1
    assert "marginal end-to-end / model-only **0.900** (target ≥ 0.8: met" in lines[0]  # 576 / 6.4 / 100
    assert "whole run with opening and polygons 0.720" in lines[0]
    assert "**1.00 ms** per patch (target ≤ 1.5: met)" in lines[0]
    table = run.per_patch_cpu(SimpleNamespace(scene_rows=[row]))
    assert (
        "| m | fp32 | geographic DEM | 3072² | 0 | 0.50 | 0.25 | 0.10 | 0.05 | 0.10 | **1.00** | 15.62 | 0.900 |"
        in table
    )


def test_the_whole_scene_target_is_judged_on_gpu_rows_of_10000_px_only():
    import run

    def row(variant, size, wall):
        return {
            "pipeline": "engine",
            "model": "m",
            "variant": variant,
            "size": size,
            "overlap": 32,
            "batch": 64,
            "patches": 11025,
            "wall_s": wall,
            "threads": 16,
            "workers": 1,
            "model_only_patches_per_s": 2000.0,
            "peak_rss_mb": 500.0,
        }

    rows = [row("PyTorch eager fp16 (cuda)", 10000, 24.5), row("PyTorch eager fp32 (cuda)", 10000, 31.0)]
    rows += [row("PyTorch eager fp16 (cuda)", 4000, 5.0), row("ONNX Runtime fp32 (cpu)", 10000, 20.0)]
    lines = [line for line in run.targets(SimpleNamespace(scene_rows=rows, models={})) if "whole scene" in line]
    assert len(lines) == 2
    assert "fp16 (cuda) 10000², overlap 32, batch 64: **24.5 s**, 450 patches/s (target < 30 s: met)" in lines[0]
    assert "fp32 (cuda) 10000²" in lines[1] and "**31.0 s**" in lines[1] and "missed" in lines[1]


def test_h200_share_of_peak_uses_the_data_sheet_for_its_precision():
    from model_speed import gpu_peak_flops

    assert (
        gpu_peak_flops("NVIDIA H200", "bf16")
        == gpu_peak_flops("NVIDIA H200", "fp16")
        > 10 * gpu_peak_flops("NVIDIA H200", "fp32")
    )
    assert gpu_peak_flops("NVIDIA GeForce GTX 1080", "fp32") is None


def test_batch_rows_are_read_from_batch_json_and_rendered():
    from batch_speed import render, summarise

    def scene(started: float, seconds: float, status: str = "done") -> dict:
        stamp = lambda t: f"2026-11-30T10:00:{t:06.3f}+00:00"  # noqa: E731
        return {"status": status, "started": stamp(started), "finished": stamp(started + seconds),
                "seconds": seconds, "patches": 121}  # fmt: skip

    local = {"started": "2026-11-30T10:00:00.000+00:00", "counts": {"failed": 1},
             "scenes": [scene(1.0, 2.0), scene(3.0, 2.0), scene(5.0, 2.0), scene(7.0, 0.1, "failed")]}  # fmt: skip
    row = summarise(local, wall_s=9.0, actors=1)
    assert row["one_time_s"] == pytest.approx(1.0) and row["steady_s_per_scene"] == pytest.approx(2.0)
    assert row["scenes"] == 3 and row["failed"] == 1 and row["scenes_per_hour"] == pytest.approx(1200)
    two = {"started": "2026-11-30T10:00:00.000+00:00", "counts": {"failed": 0},
           "scenes": [scene(3.0, 2.5), scene(3.0, 2.5), scene(5.5, 2.5)]}  # fmt: skip
    ray = summarise(two, wall_s=9.0, actors=2) | {"label": "Ray, 1 node x 1 CPU (1 actor)", "nodes": 1, "cpus": 1,
                                                   "cluster_start_s": 8.0}  # fmt: skip
    assert ray["steady_s_per_scene"] == pytest.approx(5.0 / 3 * 2)
    lines = render({"rows": [row | {"label": "local", "nodes": None, "cpus": None}, ray], "count": 3, "size": 1000,
                    "ray_skipped": None, "load": (1.0, 1.0, 1.0)})  # fmt: skip
    added = [line for line in lines if line.startswith("- fixed cost Ray adds per scene")]
    assert (
        len(added) == 1
        and f"{ray['steady_s_per_scene'] - 2.0:+.2f} s" in added[0]
        and "8.0 s for `ray start`" in added[0]
    )


def test_engine_model_only_speed_brackets_the_scene_and_the_naive_row_is_not_measured_twice(monkeypatch, tmp_path):
    import run

    bench = run.Bench.__new__(run.Bench)
    bench.threads, bench.work, bench.failures, bench.scene_rows = 2, tmp_path, [], []
    bench.models = {"m": SimpleNamespace(torch_path=tmp_path / "m.pt")}
    bench.args = SimpleNamespace(l4s_root=None, min_seconds=2.0)
    monkeypatch.setattr(
        run, "write_scene", lambda folder, size: SimpleNamespace(s2=folder / "s2.tif", dem=folder / "d.tif")
    )
    jobs = []

    def worker(job, label):
        jobs.append(job)
        if job.get("model_only"):
            return {"model_only_patches_per_s": 100.0}
        return {"model_only_patches_per_s": 140.0, "patches": 16, "wall_s": 1.0, "peak_rss_mb": 1.0}

    monkeypatch.setattr(bench, "_worker", worker)
    bench._scene("engine", "m", 300, run.Variant("onnx"), 16, 0)
    assert [bool(j.get("model_only")) for j in jobs] == [True, False]  # before the scene, in its own process
    assert bench.scene_rows[0]["model_only_patches_per_s"] == 120.0
    assert bench.scene_rows[0]["model_only_patches_per_s_before_after"] == [100.0, 140.0]
    jobs.clear()
    bench._scene("naive", "m", 300, run.Variant("torch"), 1, 0, (2, 1))
    assert [bool(j.get("model_only")) for j in jobs] == [False]
    assert bench.scene_rows[1]["model_only_patches_per_s"] == 140.0
