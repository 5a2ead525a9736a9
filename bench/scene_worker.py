"""One end-to-end scene run in a fresh process, so each peak RSS belongs to one scene alone.

``python bench/scene_worker.py JSON`` reads a job (see :func:`run_job`) and prints one JSON line with the
wall time, the pipeline's seconds per stage, the peak resident memory, and, for the same runner in the same
process right after the scene, model-only patches per second: half of the denominator of the end-to-end ratio
(the bench measures the other half in a fresh process just before the scene: a job with ``model_only: true``
only loads the runner and measures it).

Two pipelines can run:

- ``engine``: :func:`landslide_engine.pipeline.predict_scene`, the engine's streaming, batched pipeline;
- ``naive``: what the Seed's app did: the whole scene stacked in memory, cut into non-overlapping
  patches, each patch through PyTorch on its own (batch of one), the probabilities mosaicked in memory
  and written out at the end.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from model_speed import Variant, make_runner, patches_per_second, test_patches
from quantize import quantize_dynamic_graph, sample_patches

from landslide_engine.memory import configure_for_scenes
from landslide_engine.models.package import load_package, load_torch_model, onnx_package_bytes
from landslide_engine.models.quantize import normalised, quantize_static_graph
from landslide_engine.outputs import FLOAT_NODATA, peak_memory_mb
from landslide_engine.pipeline import PredictRequest, predict_scene


def int8_graphs(model_pt: Path, kind: str, l4s_root: Path | None) -> dict[str, bytes]:
    """The int8 graph a variant needs (empty for float variants)."""
    if not kind.startswith("onnx-int8"):
        return {}
    package = load_package(model_pt)
    graph = onnx_package_bytes(load_torch_model(package), package.metadata)
    if kind == "onnx-int8-dynamic":
        return {kind: quantize_dynamic_graph(graph)}
    calibration, _, _ = sample_patches(l4s_root)
    return {kind: quantize_static_graph(graph, normalised(calibration, package.metadata))}


def _paths(s2: str | list[str]) -> list[str]:
    """The job's Sentinel-2 input: one multi-band file, or one file per band."""
    return [s2] if isinstance(s2, str) else list(s2)


def run_engine(job: dict, runner) -> dict:
    """The engine's pipeline on the job's scene; its report's seconds and stage seconds."""
    with tempfile.TemporaryDirectory(dir=job["work_dir"]) as out:
        req = PredictRequest(
            s2=_paths(job["s2"]),
            dem=job["dem"],
            out_dir=out,
            batch_size=job["batch_size"],
            overlap=job["overlap"],
        )
        started = time.perf_counter()
        result = predict_scene(req, runner=runner)
        wall = time.perf_counter() - started
        report = json.loads(result.report.read_text())
    return {
        "wall_s": wall,
        "patches": result.n_patches,
        "patches_without_data": result.n_patches_without_data,
        "peak_rss_before_polygons_mb": report["peak_memory_mb_before_polygons"],
        "seconds": report["seconds"],
        "stage_seconds": report["stage_seconds"],
        "stage_cpu_seconds": report["stage_cpu_seconds"],
    }


def run_naive(job: dict, runner) -> dict:
    """The Seed app's way: whole scene in memory, one patch at a time, no overlap, written at the end."""
    import rasterio

    from landslide_engine.outputs import raster_profile
    from landslide_engine.pipeline import SceneInputs, open_scene

    meta = runner.metadata
    tile = meta.tile_size
    started = time.perf_counter()
    scene = open_scene(SceneInputs(_paths(job["s2"]), job["dem"]), meta.bands, {})
    stages: dict[str, float] = {}
    with scene.stack:
        t0 = time.perf_counter()
        grid = scene.grid
        data = scene.stack.stack_bands(rasterio.windows.Window(0, 0, grid.width, grid.height), meta.bands)
        stages["read_warp_scale"] = time.perf_counter() - t0
    fill = np.asarray(meta.mean, dtype=np.float32)[:, None, None]
    data = np.where(np.isfinite(data), data, fill)
    rows, cols = -(-grid.height // tile), -(-grid.width // tile)
    padded = np.pad(data, ((0, 0), (0, rows * tile - grid.height), (0, cols * tile - grid.width)), mode="reflect")
    probability = np.zeros((rows * tile, cols * tile), dtype=np.float32)
    t0 = time.perf_counter()
    for r in range(rows):
        for c in range(cols):
            patch = padded[None, :, r * tile : (r + 1) * tile, c * tile : (c + 1) * tile]
            probability[r * tile : (r + 1) * tile, c * tile : (c + 1) * tile] = runner.predict(patch)[0]
    stages["infer"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    probability = probability[: grid.height, : grid.width]
    with tempfile.TemporaryDirectory(dir=job["work_dir"]) as out:
        with rasterio.open(Path(out) / "probability.tif", "w", **raster_profile(grid, "float32", FLOAT_NODATA)) as dst:
            dst.write(probability, 1)
        with rasterio.open(Path(out) / "landslides.tif", "w", **raster_profile(grid, "uint8", 255)) as dst:
            dst.write((probability >= meta.threshold).astype(np.uint8), 1)
    stages["write"] = time.perf_counter() - t0
    return {"wall_s": time.perf_counter() - started, "patches": rows * cols, "seconds": {}, "stage_seconds": stages}


def run_job(job: dict) -> dict:
    """Keys of ``job``: pipeline (engine|naive), s2 (a path or a list of paths), dem, model_pt, kind, precision,
    device, batch_size, threads, workers, work_dir, l4s_root (or None)."""
    variant = Variant(job["kind"], job["precision"], job["device"])
    model_pt = Path(job["model_pt"])
    l4s_root = Path(job["l4s_root"]) if job.get("l4s_root") else None
    graphs = int8_graphs(model_pt, job["kind"], l4s_root)
    runner = make_runner(variant, model_pt, job["batch_size"], job["threads"], graphs, job.get("workers"))
    if job.get("model_only"):
        patches = test_patches(runner, job["batch_size"], len(runner.metadata.bands))
        return {"model_only_patches_per_s": patches_per_second(runner.predict, patches, job["model_only_seconds"])}
    run = run_naive if job["pipeline"] == "naive" else run_engine
    result = run(job, runner)
    result["peak_rss_mb"] = peak_memory_mb()
    result["device"] = runner.device
    patches = test_patches(runner, job["batch_size"], len(runner.metadata.bands))
    result["model_only_patches_per_s"] = patches_per_second(runner.predict, patches, job.get("model_only_seconds", 3.0))
    return result


if __name__ == "__main__":
    configure_for_scenes()  # as the CLI does
    print(json.dumps(run_job(json.loads(sys.argv[1]))))
