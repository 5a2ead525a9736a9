"""Model-only throughput: patches per second of a runner on patches already in memory.

A *variant* is one way of running the same network: a backend (PyTorch eager, ONNX Runtime, torch.compile)
and a number format (fp32, bf16, fp16, int8). Each variant is built into something with the engine's runner
interface (``predict(x) -> probabilities``), so what is timed here is exactly what the scene pipeline calls,
normalisation and sigmoid included.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from landslide_engine.models.backends import OnnxRunner, create_runner
from landslide_engine.models.package import load_package

Predict = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Variant:
    """How to run the network: ``kind`` is torch, onnx, onnx-int8-dynamic, onnx-int8-static or torch-compile."""

    kind: str
    precision: str = "fp32"
    device: str = "cpu"

    @property
    def label(self) -> str:
        names = {
            "torch": "PyTorch eager",
            "torch-compile": "torch.compile",
            "onnx": "ONNX Runtime",
            "onnx-int8-dynamic": "ONNX Runtime int8 dynamic",
            "onnx-int8-static": "ONNX Runtime int8 static (QDQ)",
            "onnx-tensorrt": "ONNX Runtime TensorRT EP",
        }
        precision = "" if self.kind.startswith("onnx-int8") else f" {self.precision}"
        return f"{names[self.kind]}{precision} ({self.device})"


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX); elsewhere bf16 is emulated and slow."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return " amx_bf16" in flags or " avx512_bf16" in flags


def make_runner(
    variant: Variant,
    model_pt: Path,
    batch_size: int,
    threads: int,
    int8_graphs: dict[str, bytes],
    workers: int | None = None,
):
    """A runner for ``variant`` of the network in package ``model_pt`` (the .onnx twin is made in memory).

    On the CPU, ``threads`` cores are shared among ``workers`` (default one per core, as the engine does).
    """
    import torch

    package = load_package(model_pt)
    if variant.kind in ("torch", "torch-compile"):
        runner = create_runner(package, "torch", variant.device, batch_size, variant.precision, threads, workers)
        if variant.kind == "torch-compile":
            runner._model = torch.compile(runner._model, mode="max-autotune")
        return runner
    if variant.kind in ("onnx-int8-dynamic", "onnx-int8-static"):
        graph = int8_graphs[variant.kind]
        return OnnxRunner(graph, package.metadata, "cpu", batch_size, threads=threads, workers=workers)
    if variant.kind == "onnx-tensorrt":
        return _tensorrt_runner(package, batch_size)
    from landslide_engine.models.package import load_torch_model, onnx_package_bytes

    graph = onnx_package_bytes(load_torch_model(package), package.metadata)
    return OnnxRunner(graph, package.metadata, variant.device, batch_size, threads=threads, workers=workers)


def _tensorrt_runner(package, batch_size: int):
    """ONNX Runtime with the TensorRT provider first (fp16 allowed); only built when that provider exists."""
    import onnxruntime as ort

    from landslide_engine.models.package import load_torch_model, onnx_package_bytes

    graph = onnx_package_bytes(load_torch_model(package), package.metadata)
    runner = OnnxRunner(graph, package.metadata, "cuda", batch_size)
    providers = [("TensorrtExecutionProvider", {"trt_fp16_enable": True}), "CUDAExecutionProvider"]
    runner._session = ort.InferenceSession(graph, providers=providers)
    return runner


def test_patches(runner, batch_size: int, channels: int = 14) -> np.ndarray:
    """Random l4s-like patches, one batch for each of the runner's workers (as the scene pipeline feeds them)."""
    rng = np.random.default_rng(0)
    n = batch_size * getattr(runner, "workers", 1)
    return (1.0 + 0.4 * rng.standard_normal((n, channels, 128, 128))).astype(np.float32)


def patches_per_second(predict: Predict, patches: np.ndarray, min_seconds: float, min_calls: int = 2) -> float:
    """Patches per second of ``predict`` on ``patches`` after one warm-up call, timed over at least ``min_seconds``."""
    predict(patches)
    done, calls, started = 0, 0, time.perf_counter()
    while calls < min_calls or time.perf_counter() - started < min_seconds:
        predict(patches)
        done += len(patches)
        calls += 1
    return done / (time.perf_counter() - started)


def model_flops(model_pt: Path, tile: int = 128) -> float:
    """Floating-point operations of one forward pass on one patch (multiply-add counted as 2)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from landslide_engine.models.package import load_torch_model

    model = load_torch_model(load_package(model_pt))
    x = torch.zeros(1, model_in_channels(model_pt), tile, tile)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x)
    return float(counter.get_total_flops())


def model_in_channels(model_pt: Path) -> int:
    return load_package(model_pt).metadata.in_channels


# Dense peak FLOP/s by GPU name fragment and precision (vendor data sheets, without sparsity).
GPU_PEAK_FLOPS = {
    "H200": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "H100": {"fp32": 67e12, "tf32": 494.7e12, "bf16": 989.4e12, "fp16": 989.4e12},
    "A100": {"fp32": 19.5e12, "tf32": 156e12, "bf16": 312e12, "fp16": 312e12},
}


def gpu_peak_flops(device_name: str, precision: str) -> float | None:
    """The data-sheet peak for ``device_name`` in ``precision``, or None for a GPU not in the table."""
    for fragment, peaks in GPU_PEAK_FLOPS.items():
        if fragment in device_name:
            return peaks.get(precision)
    return None
