"""Inference speed at scene scale: model-only and end-to-end throughput, memory, and the naive baseline.

``python bench/run.py --out bench/RESULTS.md`` (what ``make bench`` runs) measures, on this machine:

1. model-only patches/s per variant (PyTorch eager fp32/bf16, ONNX Runtime fp32, int8 dynamic and static;
   on a GPU also fp16/bf16, torch.compile and the CUDA/TensorRT providers) across batch sizes and threads;
2. what reduced precision costs in accuracy against fp32;
3. end-to-end scene runs on generated scenes, each in a fresh process (time per stage, peak RSS), with the
   model-only speed of the same runner measured in the same process right after;
4. the naive baseline (whole scene in memory, one patch at a time through PyTorch fp32);
5. the middle-size scene as a granule is delivered (one file per band at 10/20/60 m, a no-data wedge);
6. a 3072² scene with an SRTM-like geographic DEM (EPSG:4326, one arc-second), as analysts have it, at overlap
   0: the per-patch CPU of every stage outside the model and the end-to-end / model-only ratio;
7. batch rows: scenes per hour with the local executor and with Ray on one and two nodes of this machine
   (``batch_speed.py``, which also runs alone: ``make bench-batch``);

and writes a Markdown report. ``--quick`` shrinks everything to a couple of minutes; ``--sizes`` picks the
scene sizes. Networks have random weights: speed does not depend on them (accuracy costs are therefore
differences between number formats, not scores against ground truth).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from batch_speed import measure as measure_batch
from batch_speed import render as render_batch
from machine import machine_details
from model_speed import (
    Variant,
    cpu_has_bf16,
    gpu_peak_flops,
    make_runner,
    model_flops,
    patches_per_second,
    test_patches,
)
from packages import BenchModel, bench_model
from quantize import accuracy_cost, comparison_threshold, quantize_dynamic_graph, sample_patches
from scenes import write_geographic_dem, write_granule, write_scene

from landslide_engine.cpus import usable_cpu_count
from landslide_engine.memory import GDAL_CACHE_MB
from landslide_engine.models.package import load_package, load_torch_model, onnx_package_bytes
from landslide_engine.models.quantize import normalised, quantize_static_graph

REPO = Path(__file__).resolve().parents[1]
COMPACT_MODEL = "unet_plain_w16"
PAPER_MODEL = "unet_resnet34"
STAGES = ("read_warp", "scale", "wait_for_input", "infer", "blend", "write", "polygonize")
ENGINE_BATCH = 16
OVERLAP = 32
GPU_SCENE_BATCH = 64  # a GPU needs larger batches than the CPU's 16 to be kept busy
GPU_SCENE_SECONDS = 30.0  # the target for a whole 10000² scene on a lent H200
GRANULE_NO_DATA = 0.4  # share of the granule scene without data, as at the edge of a Sentinel-2 swath
STACK, GRANULE, GEOGRAPHIC = "stack", "granule", "geographic DEM"
GEOGRAPHIC_SIZE = 3072  # the realistic scene: 3072² px L1C, SRTM-like DEM in EPSG:4326, overlap 0
PER_PATCH_CPU_MS = 1.5  # the target for the CPU per patch outside the model
OUTSIDE_MODEL = ("read_warp", "scale", "cut", "blend", "write")


def cpu_variants() -> list[Variant]:
    variants = [Variant("torch"), Variant("onnx"), Variant("onnx-int8-dynamic"), Variant("onnx-int8-static")]
    if cpu_has_bf16():
        variants.insert(1, Variant("torch", "bf16"))
    return variants


def gpu_variants() -> list[Variant]:
    """Variants for a CUDA GPU, only those whose software is present."""
    import onnxruntime as ort
    import torch

    if not torch.cuda.is_available():
        return []
    variants = [Variant("torch", p, "cuda") for p in ("fp32", "fp16", "bf16")]
    variants.append(Variant("torch-compile", "bf16", "cuda"))
    providers = ort.get_available_providers()
    if "CUDAExecutionProvider" in providers:
        variants.append(Variant("onnx", "fp32", "cuda"))
    if "TensorrtExecutionProvider" in providers:
        variants.append(Variant("onnx-tensorrt", "fp16", "cuda"))
    return variants


def gpu_scene_variants() -> list[Variant]:
    """What scenes run with on a CUDA GPU: the engine's PyTorch backend in fp32 and in fp16, as an analyst gets
    them with ``--device cuda [--precision fp16]``."""
    return [v for v in gpu_variants() if v.kind == "torch" and v.precision in ("fp32", "fp16")]


class Bench:
    """Runs the measurements and keeps the rows for the report."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = args.work_dir
        self.threads = usable_cpu_count()
        self.models: dict[str, BenchModel] = {}
        self.flops: dict[str, float] = {}
        self.graphs: dict[str, dict[str, bytes]] = {}
        self.model_rows: list[dict] = []
        self.accuracy_rows: list[dict] = []
        self.scene_rows: list[dict] = []
        self.failures: list[str] = []
        self.sample_source = ""
        self.batch_result: dict | None = None

    def prepare_models(self) -> None:
        calibration, evaluation, self.sample_source = sample_patches(self.args.l4s_root)
        self.evaluation = evaluation
        for name in self.args.models:
            model = bench_model(name, self.work / "models")
            self.models[name] = model
            self.flops[name] = model_flops(model.torch_path)
            package = load_package(model.torch_path)
            graph = onnx_package_bytes(load_torch_model(package), package.metadata)
            self.graphs[name] = {
                "onnx-int8-dynamic": quantize_dynamic_graph(graph),
                "onnx-int8-static": quantize_static_graph(graph, normalised(calibration, package.metadata)),
            }

    def model_only(self) -> None:
        """Patches/s grid: all variants on the compact model; fewer batch sizes and thread layouts on the others.

        On the CPU the engine's layout (one single-thread worker per core) is measured at every batch size;
        at the engine's batch size also one worker using every core, and one core alone.
        """
        batch_sizes = self.args.batch_sizes
        for name, model in self.models.items():
            for variant in cpu_variants() + gpu_variants():
                on_gpu = variant.device == "cuda"
                sizes = self.args.gpu_batch_sizes if on_gpu else batch_sizes
                if name != COMPACT_MODEL and not on_gpu:
                    sizes = [b for b in sizes if b in (1, ENGINE_BATCH)] or [ENGINE_BATCH]
                for batch in sizes:
                    layouts = [(self.threads, self.threads)]
                    if not on_gpu and batch == ENGINE_BATCH:
                        layouts = sorted({(1, 1), (self.threads, 1), (self.threads, self.threads)})
                    for threads, workers in layouts:
                        self._measure(name, model, variant, batch, threads, workers)

    def _measure(self, name: str, model: BenchModel, variant: Variant, batch: int, threads: int, workers: int) -> None:
        label = f"{name} {variant.label} batch {batch} threads {threads} workers {workers}"
        try:
            runner = make_runner(variant, model.torch_path, batch, threads, self.graphs[name], workers)
            rate = patches_per_second(runner.predict, test_patches(runner, batch), self.args.min_seconds)
        except Exception as exc:  # a variant this machine cannot run is reported, not fatal
            self.failures.append(f"{label}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
            return
        row = {
            "model": name,
            "variant": variant.label,
            "batch": batch,
            "threads": threads,
            "workers": runner.workers,
            "patches_per_s": rate,
        }
        if variant.device == "cuda":
            import torch

            peak = gpu_peak_flops(torch.cuda.get_device_name(0), variant.precision)
            row["peak_share"] = rate * self.flops[name] / peak if peak else None
        self.model_rows.append(row)
        print(f"  {label}: {rate:.1f} patches/s", flush=True)

    def accuracy(self) -> None:
        """Reduced precision against the fp32 ONNX graph on the evaluation patches."""
        for name, model in self.models.items():
            reference_runner = make_runner(Variant("onnx"), model.torch_path, ENGINE_BATCH, self.threads, {})
            reference = reference_runner.predict(self.evaluation)
            threshold = comparison_threshold(reference, reference_runner.metadata.threshold)
            reduced = [v for v in cpu_variants() + gpu_variants() if v.precision != "fp32" or "int8" in v.kind]
            reduced.append(Variant("torch"))
            for variant in reduced:
                try:
                    runner = make_runner(variant, model.torch_path, ENGINE_BATCH, self.threads, self.graphs[name])
                    probs = runner.predict(self.evaluation)
                except Exception as exc:
                    self.failures.append(f"accuracy {name} {variant.label}: {type(exc).__name__}: {exc}"[:200])
                    continue
                row = {"model": name, "variant": variant.label, **accuracy_cost(reference, probs, threshold)}
                self.accuracy_rows.append(row)

    def scenes(self) -> None:
        """End-to-end runs, each in a fresh process; the naive baseline against each engine variant on the
        middle size, with the same non-overlapping patches."""
        jobs: list[tuple[str, str, int, Variant, int, int]] = []
        for size in self.args.sizes:
            jobs.append(("engine", COMPACT_MODEL, size, Variant("onnx"), ENGINE_BATCH, OVERLAP))
        for name in self.models:
            if name == COMPACT_MODEL:
                continue
            for size in self.args.sizes:
                if size <= self.args.max_size_large_model:
                    jobs.append(("engine", name, size, Variant("onnx"), ENGINE_BATCH, OVERLAP))
        middle = self.args.sizes[len(self.args.sizes) // 2]
        reduced = [Variant("onnx-int8-static"), *([Variant("torch", "bf16")] if cpu_has_bf16() else [])]
        for variant in reduced:
            jobs.append(("engine", COMPACT_MODEL, middle, variant, ENGINE_BATCH, OVERLAP))
        for pipeline, name, size, variant, batch, overlap in jobs:
            if name in self.models:
                self._scene(pipeline, name, size, variant, batch, overlap)
        if COMPACT_MODEL in self.models:
            self._scene("engine", COMPACT_MODEL, middle, Variant("onnx"), ENGINE_BATCH, OVERLAP, scene=GRANULE)
            self._scene(
                "engine", COMPACT_MODEL, self.args.geographic_size, Variant("onnx"), ENGINE_BATCH, 0, scene=GEOGRAPHIC
            )
        for name in self.models:
            # Like for like with the naive baseline: the same non-overlapping patches, batched and streamed.
            # The naive loop runs PyTorch as the Seed's app did: every core on one patch at a time.
            self._scene("naive", name, middle, Variant("torch"), 1, 0, (self.threads, 1))
            for variant in (Variant("onnx"), *reduced):
                self._scene("engine", name, middle, variant, ENGINE_BATCH, 0)
        for variant in gpu_scene_variants():  # every size, the 10000² one for the whole-scene target
            for name in self.models:
                for size in self.args.sizes:
                    self._scene("engine", name, size, variant, GPU_SCENE_BATCH, OVERLAP, (self.threads, 1))

    def batch(self) -> None:
        """Scenes per hour with the local executor and with Ray on one and two nodes (``batch_speed.py``)."""
        try:
            self.batch_result = measure_batch(self.work, size=min(self.args.sizes))
        except RuntimeError as exc:
            self.failures.append(f"batch rows: {exc}")

    def _scene(
        self,
        pipeline: str,
        name: str,
        size: int,
        variant: Variant,
        batch: int,
        overlap: int,
        layout: tuple[int, int] | None = None,
        scene: str = STACK,
    ) -> None:
        """One scene in a fresh process; ``layout`` (threads, workers) defaults to the engine's: one worker per core.

        ``scene`` is ``stack`` (one 13-band 10 m file), ``granule`` (one file per band at its own resolution,
        with a no-data wedge) or ``geographic DEM`` (the stack with an SRTM-like DEM in EPSG:4326).
        """
        if scene == GRANULE:
            granule = write_granule(self.work / "scenes", size, GRANULE_NO_DATA)
            s2, dem = [str(path) for path in granule.bands], str(granule.dem)
        elif scene == GEOGRAPHIC:
            s2, dem = (
                str(write_scene(self.work / "scenes", size).s2),
                str(write_geographic_dem(self.work / "scenes", size)),
            )
        else:
            stack = write_scene(self.work / "scenes", size)
            s2, dem = str(stack.s2), str(stack.dem)
        threads, workers = layout or (self.threads, self.threads)
        job = {
            "pipeline": pipeline,
            "s2": s2,
            "dem": dem,
            "model_pt": str(self.models[name].torch_path),
            "kind": variant.kind,
            "precision": variant.precision,
            "device": variant.device,
            "batch_size": batch,
            "overlap": overlap,
            "threads": threads,
            "workers": workers,
            "work_dir": str(self.work),
            "l4s_root": str(self.args.l4s_root) if self.args.l4s_root else None,
            "model_only_seconds": self.args.min_seconds,
        }
        label = f"{pipeline} {name} {variant.label} {size}px {scene} overlap {overlap}"
        print(f"  scene {label} ...", flush=True)
        # The engine's model-only speed brackets the scene: measured in a fresh process just before it and in the
        # scene's process just after it (one 2 s sample moved by up to 20 % from minute to minute here); the
        # scene itself starts cold, as a user's run does.
        before = self._worker({**job, "model_only": True}, label) if pipeline == "engine" else {}
        result = self._worker(job, label) if before is not None else None
        if result is None or before is None:
            return
        if before:
            rates = [before["model_only_patches_per_s"], result["model_only_patches_per_s"]]
            result["model_only_patches_per_s_before_after"] = rates
            result["model_only_patches_per_s"] = sum(rates) / 2
        result.update(
            pipeline=pipeline,
            model=name,
            size=size,
            variant=variant.label,
            batch=batch,
            threads=threads,
            workers=workers,
            overlap=overlap,
            scene=scene,
        )
        self.scene_rows.append(result)
        rate = result["patches"] / result["wall_s"]
        print(f"    {result['wall_s']:.1f} s, {rate:.1f} patches/s, peak {result['peak_rss_mb']:.0f} MiB", flush=True)

    def _worker(self, job: dict, label: str) -> dict | None:
        """``scene_worker.py`` on ``job`` in a fresh process: its JSON line, or None (the failure noted)."""
        worker = Path(__file__).resolve().with_name("scene_worker.py")
        # GDAL's block cache as the CLI sets it (landslide_engine.memory): by default it is 5 % of RAM.
        env = {**os.environ, "GDAL_CACHEMAX": os.environ.get("GDAL_CACHEMAX", GDAL_CACHE_MB)}
        proc = subprocess.run(
            [sys.executable, str(worker), json.dumps(job)],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=env,
            check=False,
        )
        if proc.returncode != 0:
            self.failures.append(f"scene {label}: exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
            return None
        return json.loads(proc.stdout.strip().splitlines()[-1])


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def render(bench: Bench, details: dict[str, str], elapsed: float, args: argparse.Namespace) -> str:
    lines = [
        "# Inference speed at scene scale",
        "",
        f"Produced by `{' '.join(['python', 'bench/run.py', *args.argv])}` in {elapsed / 60:.1f} min. "
        "Every number below was measured in that one run; compare ratios within it.",
        "",
        "## Machine",
        "",
        *_table(["", ""], [[k, v] for k, v in details.items()]),
        "",
        _sharing_note(details),
        "",
        f"Models: `{COMPACT_MODEL}` (compact: the plain U-Net at base width 16, the candidate for the built-in "
        f"model) and `{PAPER_MODEL}` (the paper's best row), both with random weights and all 14 bands. "
        f"Patches are 128x128; scenes use a 32 px overlap and batch {ENGINE_BATCH}.",
        "",
        "GPU rows: "
        + (
            f"measured below; scenes on the GPU run the engine's PyTorch backend with batch {GPU_SCENE_BATCH}."
            if any("cuda" in r["variant"] for r in bench.model_rows)
            else "**not measured** (no GPU in this run). The GPU code paths (fp16/bf16 autocast, torch.compile, "
            "ONNX Runtime CUDA and TensorRT providers, share of peak FLOP/s) run when a CUDA GPU is visible."
        ),
        "",
    ]
    lines += ["## Model-only throughput", ""]
    lines += [
        "Runner `predict` on patches in memory (normalisation and sigmoid included), after one warm-up call, "
        "one batch per worker per call. *threads* cores are shared among *workers*, each running whole batches "
        "(the engine's default on the CPU: one single-thread worker per core).",
        "",
    ]
    flops = ", ".join(f"`{n}` {f / 1e9:.2f} GFLOP" for n, f in bench.flops.items())
    lines += [f"Work per 128x128 patch (multiply-add = 2 FLOP): {flops}.", ""]
    header = ["model", "variant", "batch", "threads", "workers", "patches/s"]
    has_gpu = any("peak_share" in r for r in bench.model_rows)
    if has_gpu:
        header.append("share of peak FLOP/s")
    rows = []
    for r in bench.model_rows:
        row = [r["model"], r["variant"], str(r["batch"]), str(r["threads"]), str(r["workers"])]
        row.append(f"{r['patches_per_s']:.1f}")
        if has_gpu:
            share = r.get("peak_share")
            row.append(f"{100 * share:.1f}%" if share is not None else "")
        rows.append(row)
    lines += [*_table(header, rows), ""]

    lines += ["## Accuracy cost of reduced precision", ""]
    lines += [
        f"Against the fp32 ONNX graph on {bench.sample_source}. With untrained weights the probabilities sit "
        "in a narrow band, so masks are compared at the fp32 probabilities' 90th percentile (column threshold) "
        "when 0.5 would mask almost nothing. Re-run with a trained package for real F1 costs.",
        "",
    ]
    rows = [
        [
            r["model"],
            r["variant"],
            f"{r['max_abs_diff']:.2e}",
            f"{r['mean_abs_diff']:.2e}",
            f"{100 * r['mask_agreement']:.3f}%",
            f"{r['mask_f1_vs_fp32']:.4f}",
            f"{r['threshold']:.4f}",
        ]
        for r in bench.accuracy_rows
    ]
    header = ["model", "variant", "max abs prob diff", "mean abs prob diff", "mask agreement", "mask F1", "threshold"]
    lines += [*_table(header, rows), ""]

    lines += ["## End-to-end scenes", ""]
    lines += [
        "Generated scenes: one 13-band L1C-like GeoTIFF (uint16, 10 m, deflate) and a 30 m DEM on a shifted "
        "grid, so every run warps the DEM and computes slope. Each row is a fresh process: peak RSS is that "
        "scene's alone (it includes the Python, torch and ONNX Runtime libraries; GDAL's block cache is capped at "
        f"{GDAL_CACHE_MB} MB as the CLI does). *model-only* is the same "
        "runner in the same process right after the scene. Stage seconds come from `run.json`; `read_warp` "
        "and `scale` run in the reader thread and `write` in a writer thread, overlapping `infer`; "
        "`wait_for_input` and `wait_for_writer` are inference waiting for them. The naive rows read the whole "
        "scene at once (one read_warp_scale stage) and run PyTorch as the Seed's app did, every core on one "
        "patch at a time. Engine scenes run as an analyst's would: every core, one single-thread worker per core. "
        "`infer` and `cut` (cutting a batch of patches from the strip) are summed over the workers, so with two "
        "workers they add up to about twice the time they took. Random weights put nearly every pixel above the "
        "threshold, so the mask is a few scene-sized polygons with countless holes: the peak *before polygons* is "
        "the pipeline's own, the other includes tracing that mask.",
        "",
        f"The *granule* row is the {GRANULE_NO_DATA:.0%}-empty middle-size scene as a granule is delivered: one "
        "GeoTIFF per band at its own resolution (B2, B3, B4, B8 at 10 m; B5, B6, B7, B8A, B11, B12 at 20 m; B1, "
        "B9, B10 at 60 m), so nine bands are warped as well as the DEM, and a no-data wedge as at the edge of the "
        "swath. Patches without any data are not run (the count is in brackets); its *patches/s* and ratio count "
        "the patches run.",
        "",
    ]
    header = ["pipeline", "model", "variant", "threads", "workers", "scene", "scene px", "overlap", "patches"]
    header.append("wall s")
    header.append("patches/s")
    header.append("Mpx/s")
    header += ["model-only patches/s", "end-to-end / model-only", "peak RSS MiB (before polygons)", "stage seconds"]
    rows = []
    for r in bench.scene_rows:
        run = _patches_run(r)
        rate = run / r["wall_s"]
        mpx = r["size"] ** 2 / r["wall_s"] / 1e6
        ratio = rate / r["model_only_patches_per_s"] if r["pipeline"] == "engine" else None
        without = r.get("patches_without_data", 0)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["stage_seconds"].items())
        rows.append(
            [
                r["pipeline"],
                r["model"],
                r["variant"],
                str(r["threads"]),
                str(r["workers"]),
                r.get("scene", STACK),
                f"{r['size']}²",
                str(r["overlap"]),
                f"{r['patches']}" + (f" ({without} without data)" if without else ""),
                f"{r['wall_s']:.1f}",
                f"{rate:.1f}",
                f"{mpx:.3f}",
                f"{r['model_only_patches_per_s']:.1f}",
                f"{ratio:.2f}" if ratio is not None else "",
                _peaks(r),
                stages,
            ]
        )
    lines += [*_table(header, rows), ""]
    lines += per_patch_cpu(bench)
    lines += ["## Targets", "", *targets(bench), ""]
    if not any(r["size"] >= 10000 for r in bench.scene_rows):
        lines += [
            "The 10k² scene was not part of this run (pass `--sizes 1000,4000,10000` or drop `--quick`).",
            "",
        ]
    if bench.batch_result is not None:
        lines += [*render_batch(bench.batch_result), ""]
    if bench.failures:
        lines += ["## Variants that did not run", "", *[f"- {f}" for f in bench.failures], ""]
    log = Path(__file__).with_name("optimization_log.md")
    if log.exists():
        lines += ["## Optimization log (before / after each change)", "", log.read_text().strip(), ""]
    return "\n".join(lines) + "\n"


def per_patch_cpu(bench: Bench) -> list[str]:
    """The section on the CPU each patch costs outside the model, stage by stage, for every engine scene."""
    engine = [r for r in bench.scene_rows if r["pipeline"] == "engine" and "stage_cpu_seconds" in r]
    if not engine:
        return []
    lines = [
        "## CPU per patch outside the model",
        "",
        "CPU time of the thread that ran each stage (`stage_cpu_seconds` in `run.json`), in ms per patch run: "
        "what the pipeline costs a core whatever else shares it. `read_warp` (decoding the inputs, warping the "
        "DEM), `scale` (DN to l4s units, slope, no-data fill) run in the reader thread, `cut` (patches from the "
        "strip) in the model workers, `blend` in the main thread, `write` (compressing the probability and mask) "
        "in the writer thread; *outside the model* is their sum, `infer` the model's own. *marginal* counts the "
        "streaming part of the run only (`seconds.predict` in `run.json`: from the first chunk read to the last "
        "row written), leaving out the fixed costs of opening and checking the inputs and tracing polygons; "
        "*end-to-end / model-only* is then patches run / predict seconds / model-only patches/s, model-only being "
        "the mean of one measurement in a fresh process just before the scene and one in the scene's process just "
        "after it (`model_only_patches_per_s_before_after`).",
        "",
    ]
    header = ["model", "variant", "scene", "scene px", "overlap", *OUTSIDE_MODEL, "outside the model", "infer"]
    header += ["marginal end-to-end / model-only"]
    rows = []
    for r in engine:
        run = _patches_run(r)
        cpu = r["stage_cpu_seconds"]
        ms = {k: 1000 * cpu.get(k, 0.0) / run for k in (*OUTSIDE_MODEL, "infer")}
        rows.append(
            [
                r["model"],
                r["variant"],
                r.get("scene", STACK),
                f"{r['size']}²",
                str(r["overlap"]),
                *(f"{ms[k]:.2f}" for k in OUTSIDE_MODEL),
                f"**{sum(ms[k] for k in OUTSIDE_MODEL):.2f}**",
                f"{ms['infer']:.2f}",
                f"{_marginal_ratio(r):.3f}",
            ]
        )
    return [*lines, *_table(header, rows), ""]


def _outside_model_ms(row: dict) -> float:
    """CPU ms per patch run of the stages outside the model."""
    cpu = row["stage_cpu_seconds"]
    return 1000 * sum(cpu.get(k, 0.0) for k in OUTSIDE_MODEL) / _patches_run(row)


def _marginal_ratio(row: dict) -> float:
    """Patches run per second of the streaming stage (``seconds.predict``), over model-only patches/s."""
    return _patches_run(row) / row["seconds"]["predict"] / row["model_only_patches_per_s"]


def _patches_run(row: dict) -> int:
    """Patches the model ran: all of them, less those without any data."""
    return row["patches"] - row.get("patches_without_data", 0)


def _peaks(row: dict) -> str:
    """Peak RSS of the whole run, and before the polygons were traced when the pipeline reports it."""
    before = row.get("peak_rss_before_polygons_mb")
    return f"{row['peak_rss_mb']:.0f}" + (f" ({before:.0f})" if before is not None else "")


def _sharing_note(details: dict[str, str]) -> str:
    """Whether other jobs shared the cores, judged from the 1-minute load averages recorded during the run."""
    loads = [float(v.split(",")[0]) for k, v in details.items() if k.startswith("load average")]
    cores = usable_cpu_count()
    if loads and max(loads) > cores + 0.5:
        return (
            f"The machine was **shared**: the 1-minute load average reached {max(loads):.1f} on {cores} cores "
            "(see above), so other jobs used the same cores during the run and absolute numbers are noisy; ratios "
            "measured close together in this run are the meaningful part."
        )
    return (
        f"The 1-minute load average stayed at or below {max(loads, default=0.0):.1f} on {cores} cores when it was "
        "sampled (see above): the benchmark had the machine mostly to itself."
    )


def targets(bench: Bench) -> list[str]:
    """The issue's three ratios, from this run's rows."""
    out = []
    engine = [r for r in bench.scene_rows if r["pipeline"] == "engine" and r.get("scene", STACK) == STACK]
    for r in engine:
        ratio = r["patches"] / r["wall_s"] / r["model_only_patches_per_s"]
        verdict = "met" if ratio >= 0.8 else "missed"
        out.append(
            f"- end-to-end / model-only, {r['model']} {r['variant']} {r['size']}², overlap {r['overlap']}: "
            f"**{ratio:.3f}** (target ≥ 0.8: {verdict})"
        )
    for name in bench.models:
        same = [r for r in engine if r["model"] == name and r["variant"] == Variant("onnx").label]
        same = [r for r in same if r["overlap"] == OVERLAP]
        if len(same) > 1:
            for key, what in (("peak_rss_mb", "peak RSS"), ("peak_rss_before_polygons_mb", "before the polygons")):
                peaks = {r["size"]: r[key] for r in same if r.get(key) is not None}
                if len(peaks) < 2:
                    continue
                sizes = sorted(peaks)
                listing = ", ".join(f"{s}² {peaks[s]:.0f} MiB" for s in sizes)
                growth = peaks[sizes[-1]] / peaks[sizes[-2]]
                out.append(
                    f"- {what} across sizes, {name}: {listing}; largest / next size **{growth:.2f}** for "
                    f"{(sizes[-1] / sizes[-2]) ** 2:.2g}x the pixels (flat ≈ 1)"
                )
    for granule in (r for r in bench.scene_rows if r.get("scene") == GRANULE):
        for r in engine:
            if (r["model"], r["variant"], r["size"], r["overlap"]) != (
                granule["model"],
                granule["variant"],
                granule["size"],
                granule["overlap"],
            ):
                continue
            ratio = _patches_run(granule) / granule["wall_s"] / granule["model_only_patches_per_s"]
            out.append(
                f"- granule (per-band files, {GRANULE_NO_DATA:.0%} without data), {r['model']} {r['variant']} "
                f"{r['size']}²: {granule['wall_s']:.1f} s against {r['wall_s']:.1f} s for the stacked scene; "
                f"{_patches_run(granule)} of {granule['patches']} patches run; end-to-end / model-only over the "
                f"patches run **{ratio:.3f}** (target ≥ 0.8: {'met' if ratio >= 0.8 else 'missed'})"
            )
    for r in (r for r in bench.scene_rows if r.get("scene") == GEOGRAPHIC and "stage_cpu_seconds" in r):
        whole = _patches_run(r) / r["wall_s"] / r["model_only_patches_per_s"]
        marginal, outside = _marginal_ratio(r), _outside_model_ms(r)
        out.append(
            f"- geographic DEM scene, {r['model']} {r['variant']} {r['size']}², overlap {r['overlap']}: marginal "
            f"end-to-end / model-only **{marginal:.3f}** (target ≥ 0.8: {'met' if marginal >= 0.8 else 'missed'}; "
            f"whole run with opening and polygons {whole:.3f}); CPU outside the model **{outside:.2f} ms** per patch "
            f"(target ≤ {PER_PATCH_CPU_MS}: {'met' if outside <= PER_PATCH_CPU_MS else 'missed'})"
        )
    for r in engine:
        if "(cuda)" in r["variant"] and r["size"] >= 10000:
            verdict = "met" if r["wall_s"] < GPU_SCENE_SECONDS else "missed"
            out.append(
                f"- whole scene on the GPU, {r['model']} {r['variant']} {r['size']}², overlap {r['overlap']}, batch "
                f"{r['batch']}: **{r['wall_s']:.1f} s**, {r['patches'] / r['wall_s']:.0f} patches/s "
                f"(target < {GPU_SCENE_SECONDS:.0f} s: {verdict})"
            )
    for naive in (r for r in bench.scene_rows if r["pipeline"] == "naive"):
        for r in engine:
            if (r["model"], r["size"], r["overlap"]) != (naive["model"], naive["size"], naive["overlap"]):
                continue
            speedup = naive["wall_s"] / r["wall_s"]
            verdict = "met" if speedup >= 3 else "missed"
            out.append(
                f"- speed-up vs naive, {r['model']} {r['variant']} {r['size']}² overlap {r['overlap']} "
                f"(engine {r['threads']} threads in {r['workers']} workers; naive {naive['threads']} threads, "
                f"one patch at a time): **{speedup:.1f}x** in wall time for the same {r['patches']} patches "
                f"(target ≥ 3x: {verdict})"
            )
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"), help="Markdown report")
    parser.add_argument("--quick", action="store_true", help="small scenes, short timings: a couple of minutes")
    parser.add_argument("--sizes", help="comma-separated scene sizes in px (default 1000,4000,10000)")
    parser.add_argument("--models", default=f"{COMPACT_MODEL},{PAPER_MODEL}", help="registry names, comma-separated")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "landslide_bench")
    default_l4s = REPO.parent / "shared" / "data" / "landslide4sense"
    parser.add_argument("--l4s-root", type=Path, default=default_l4s if default_l4s.is_dir() else None)
    parser.add_argument(
        "--max-size-large-model",
        type=int,
        default=4000,
        help="largest scene run with models other than the compact one (they are slow on a CPU)",
    )
    raw = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(raw)
    args.argv = raw
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.quick:
        args.sizes = args.sizes or "500,1000"
        args.batch_sizes, args.min_seconds, args.max_size_large_model = [1, ENGINE_BATCH], 1.0, 1000
    else:
        args.sizes = args.sizes or "1000,4000,10000"
        args.batch_sizes, args.min_seconds = [1, ENGINE_BATCH, 64], 2.0
    args.gpu_batch_sizes = [16, 64, 256]
    args.geographic_size = 1024 if args.quick else GEOGRAPHIC_SIZE
    args.sizes = sorted(int(s) for s in args.sizes.split(","))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    details = machine_details()
    bench = Bench(args)
    print("preparing models", flush=True)
    bench.prepare_models()
    steps = (
        ("model-only", bench.model_only),
        ("accuracy", bench.accuracy),
        ("scenes", bench.scenes),
        ("batch", bench.batch),
    )
    for title, step in steps:
        print(title, flush=True)
        step()
        details[f"load average after {title}"] = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        args.out.write_text(render(bench, details, time.perf_counter() - started, args), encoding="utf-8")
    print(f"wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
