"""Inference backends: run a model package on batches of patches with ONNX Runtime or PyTorch.

Both backends share :class:`Runner`: it checks the input against the model's bands, applies the model's own
normalisation ``(x - mean) / std`` to l4s-unit input, feeds the network in batches, and turns logits into
probabilities. On GPU out-of-memory it halves the batch and carries on, so a batch size that suits an H200 does
not fail on a laptop GPU. ``device`` reports what actually ran, e.g. ``cpu`` or ``cuda:0 (NVIDIA H200)``:
ONNX Runtime silently falls back to the CPU when its CUDA libraries are missing, and the analyst should know.

On the CPU a runner has one *worker* per core, each running whole batches on one thread, instead of one batch
at a time spread over all cores: a batch of 128 px patches is too small to split well, and threads that meet
inside every convolution all wait whenever one of them loses its core to the scene pipeline's reader. Two
single-thread workers ran the compact U-Net 10 % faster than one two-thread session on 2 cores
(``bench/RESULTS.md``). :meth:`Runner.predict` uses all workers; the scene pipeline instead calls
:meth:`Runner.predict_serial` from ``workers`` threads of its own, one chunk of patches each.
"""

from __future__ import annotations

import logging
import sys
import threading
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from landslide_engine.cpus import usable_cpu_count
from landslide_engine.errors import InputError, ModelError, first_line
from landslide_engine.models.normalization import Normalization
from landslide_engine.models.package import TORCH_SUFFIXES, ModelMetadata, ModelPackage, load_package
from landslide_engine.options import BACKENDS, DEVICES, PRECISIONS

TORCH_PRECISIONS = ("fp32", "bf16", "fp16")  # what TorchRunner computes in (int8 versions run on ONNX Runtime)

log = logging.getLogger(__name__)

ONNX_SPINNING = "0"  # ONNX Runtime's session.intra_op.allow_spinning
_OOM_MESSAGES = ("out of memory", "failed to allocate memory")


class Runner(ABC):
    """Normalises, batches and runs patches through one model; subclasses run one batch of normalised input.

    ``workers`` is how many :meth:`predict_serial` calls may run at once, and how many it takes to use the
    device fully (one per core on the CPU, one on a GPU).
    """

    backend: str
    device: str

    def __init__(self, metadata: ModelMetadata, batch_size: int, workers: int = 1) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch size must be a positive integer, got {batch_size!r}")
        if not isinstance(workers, int) or workers < 1:
            raise InputError(f"workers must be a positive integer, got {workers!r}")
        self.metadata = metadata
        self.batch_size = batch_size
        self.workers = workers
        self.source = metadata.name  # the package file, once create_runner knows it: named in errors
        self._normalize = Normalization(metadata.mean, metadata.std)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Landslide probabilities (N, H, W) float32 for patches ``x`` (N, C, H, W) in l4s units.

        The channels must be ``metadata.bands`` in that order and finite, and H = W = ``metadata.tile_size``.
        With several workers the patches are shared out among them and run at once.
        """
        x = np.asarray(x, dtype=np.float32)
        parts = min(self.workers, len(x)) if x.ndim == 4 else 1
        if parts <= 1:
            return self.predict_serial(x)
        pool = self._worker_pool()
        futures = [pool.submit(self.predict_serial, part) for part in np.array_split(x, parts)]
        return np.concatenate([future.result() for future in futures])

    def _worker_pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="landslide-model")
            return self._pool

    def predict_serial(self, x: np.ndarray) -> np.ndarray:
        """:meth:`predict` on one worker. Up to ``workers`` threads may call it at once (the scene pipeline
        does, each with its own chunk of patches)."""
        x = np.asarray(x, dtype=np.float32)
        tile = self.metadata.tile_size
        if x.ndim != 4 or x.shape[1] != self.metadata.in_channels or x.shape[2:] != (tile, tile):
            raise ValueError(
                f"model {self.metadata.name} takes patches (N, {self.metadata.in_channels}, {tile}, {tile}), "
                f"got {x.shape}"
            )
        probabilities = np.empty((x.shape[0], tile, tile), dtype=np.float32)
        start = 0
        while start < x.shape[0]:
            stop = min(start + self.batch_size, x.shape[0])
            batch = self._normalize(x[start:stop])  # contiguous: one copy, normalised in place
            try:
                logits = self._run_batch(batch)
            except Exception as exc:
                if stop - start == 1 or not is_out_of_memory(exc):
                    raise
                self.batch_size = max(1, (stop - start) // 2)
                self._release_memory()
                log.warning("%s ran out of memory; batch size halved to %d", self.device, self.batch_size)
                continue
            logits = np.asarray(logits, dtype=np.float32)
            if logits.size != (stop - start) * tile * tile or logits.shape[-2:] != (tile, tile):
                raise ModelError(
                    f"model {self.source} returned {logits.shape} for {stop - start} patch(es) of {tile}×{tile}, "
                    f"expected one logit per pixel ({stop - start}×1×{tile}×{tile})"
                )
            probabilities[start:stop] = _sigmoid(logits.reshape(stop - start, tile, tile))
            start = stop
        return probabilities

    @abstractmethod
    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        """Logits (n, 1, H, W) for one batch of normalised input (n, C, H, W)."""

    def _release_memory(self) -> None:
        """Give cached accelerator memory back after an out-of-memory error; nothing to do by default."""
        return None


class TorchRunner(Runner):
    """Runs a ``.pt`` package with PyTorch on cuda, mps or the CPU.

    ``precision`` "bf16" or "fp16" runs the network under autocast: convolutions in reduced precision,
    reductions and the output in float32. bf16 is fast on CPUs with AMX or AVX-512 BF16 and on recent GPUs;
    fp16 only pays off on a GPU. On the benchmark models bf16 probabilities differed from float32 by under 1e-3 on
    average (bench/RESULTS.md).

    On the CPU, ``threads`` cores (default: all usable) are shared among ``workers`` (default: one per core).
    PyTorch's thread count is process-wide, so the runner sets it to ``threads // workers``.
    """

    backend = "torch"

    def __init__(
        self,
        package: ModelPackage,
        device: str = "auto",
        batch_size: int = 16,
        precision: str = "fp32",
        threads: int | None = None,
        workers: int | None = None,
    ) -> None:
        import torch

        from landslide_engine.models.package import load_torch_model

        if precision not in TORCH_PRECISIONS:
            raise InputError(
                f"precision {precision!r} does not run on PyTorch; use one of {', '.join(TORCH_PRECISIONS)}"
            )
        torch_device = _torch_device(device)
        on_cpu = torch_device.type == "cpu"
        if precision == "fp16" and on_cpu:
            raise InputError("precision fp16 needs a GPU; use bf16 or fp32 on the CPU")
        cpu_threads, workers = cpu_workers(threads, workers) if on_cpu else (0, 1)
        super().__init__(package.metadata, batch_size, workers)
        if on_cpu:
            torch.set_num_threads(cpu_threads // workers)
        self._torch = torch
        self._device = torch_device
        self.precision = precision
        self._model = load_torch_model(package).to(self._device)
        self.device = _describe_torch_device(self._device)

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(self._device)
            if self.precision == "fp32":
                logits = self._model(x)
            else:
                dtype = torch.bfloat16 if self.precision == "bf16" else torch.float16
                with torch.autocast(device_type=self._device.type, dtype=dtype):
                    logits = self._model(x)
        return logits.float().cpu().numpy()

    def _release_memory(self) -> None:
        if self._device.type == "cuda":
            self._torch.cuda.empty_cache()
        elif self._device.type == "mps":
            self._torch.mps.empty_cache()


class OnnxRunner(Runner):
    """Runs an ONNX graph with ONNX Runtime: the CUDA provider when present and asked for, else the CPU."""

    backend = "onnx"

    def __init__(
        self,
        model: bytes | Path,
        metadata: ModelMetadata,
        device: str = "auto",
        batch_size: int = 16,
        threads: int | None = None,
        workers: int | None = None,
    ):
        import onnxruntime as ort

        providers = _onnx_providers(device, ort.get_available_providers())
        on_cpu = providers == ["CPUExecutionProvider"]
        threads, workers = cpu_workers(threads, workers) if on_cpu else (threads or usable_cpu_count(), 1)
        super().__init__(metadata, batch_size, workers)
        options = ort.SessionOptions()
        # One operator at a time, each on the calling worker's share of the cores: a U-Net is a chain, so
        # parallel operators gain nothing. One session serves all workers (ONNX Runtime's run is thread-safe).
        options.intra_op_num_threads = threads // workers
        # Idle worker threads sleep instead of spinning: a spinning thread takes the core that the scene
        # pipeline's reader and writer threads need between batches.
        options.add_session_config_entry("session.intra_op.allow_spinning", ONNX_SPINNING)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = model.read_bytes() if isinstance(model, Path) else model  # read once: for the session and the check
        self.precision = "int8" if _is_quantized(graph) else "fp32"
        try:
            self._session = ort.InferenceSession(graph, sess_options=options, providers=providers)
        except Exception as exc:  # ONNX Runtime raises its own types for graphs it cannot load
            where = model if isinstance(model, Path) else metadata.name
            raise ModelError(f"ONNX Runtime cannot load model {where}: {first_line(exc)}") from None
        self._input_name = self._session.get_inputs()[0].name
        active = self._session.get_providers()
        if "CUDAExecutionProvider" in active:
            self.device = _describe_cuda(0)
        elif device == "cuda":
            raise InputError(
                "device cuda: ONNX Runtime could not start its CUDA provider (CUDA/cuDNN libraries missing?); "
                "choose device cpu, or the torch backend"
            )
        else:
            self.device = "cpu"

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        return self._session.run(None, {self._input_name: batch})[0]


def create_runner(
    model: str | Path | ModelPackage,
    backend: str = "auto",
    device: str = "auto",
    batch_size: int = 16,
    precision: str = "fp32",
    threads: int | None = None,
    workers: int | None = None,
) -> Runner:
    """A runner for ``model`` (a package, a file path, or a name that the catalog resolves).

    ``backend="auto"`` runs ``.onnx`` packages with ONNX Runtime and ``.pt`` packages with PyTorch. A ``.pt``
    package also runs on ONNX Runtime (exported in memory); an ``.onnx`` package cannot run on PyTorch.
    ``precision`` "bf16" and "fp16" (see :class:`TorchRunner`) need the torch backend; "int8" and "auto" are
    resolved by :func:`number_format` (the model's int8 version on the CPU). The default here is "fp32", the
    package as it is; a scene's default is the engine's ``DEFAULT_PRECISION``. On the CPU, ``threads`` cores
    (default all usable) are shared among ``workers`` (default one per core).
    """
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}; expected one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise InputError(f"unknown precision {precision!r}; expected one of {', '.join(PRECISIONS)}")
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    package, precision = number_format(_as_package(model), backend, device, precision)
    runner = _runner_for(package, backend, device, batch_size, precision, threads, workers)
    runner.source = str(package.path)
    _probe(runner)
    return runner


def number_format(package: ModelPackage, backend: str, device: str, precision: str) -> tuple[ModelPackage, str]:
    """The package to run and the precision to run it in, for the ``precision`` asked.

    "auto" runs the model's int8 version (:func:`~landslide_engine.models.catalog.int8_version`) when ONNX Runtime
    runs it on the CPU, else the package in fp32: the built-in model's int8 version kept the cross-validated F1
    of fp32 at 1.9x its speed on the CPU (MODEL_CARD.md); on a GPU, int8 is not what is fast. "int8" insists on the int8
    version (or a package that is int8 itself) and refuses, in one line, where there is none or it cannot run.
    An int8 package is ONNX and computes in int8 by its graph, so it runs with precision "fp32".
    """
    if precision not in ("auto", "int8"):
        return package, precision
    from landslide_engine.models.catalog import int8_version

    int8 = int8_version(package.path)
    if int8 is None and precision == "int8" and package.format == "onnx" and _is_quantized(package.path.read_bytes()):
        int8 = package.path
    if precision == "auto":
        return (load_package(int8) if int8 and backend != "torch" and _onnx_on_cpu(device) else package), "fp32"
    if int8 is None:
        raise InputError(
            f"precision int8: model {package.path} has no int8 version ({package.path.stem}.int8.onnx beside it); "
            f"write one with `python -m landslide_engine quantize --model {package.path} --calibration L4S_ROOT "
            f"--out {package.path.with_name(package.path.stem + '.int8.onnx')}`, or use precision fp32"
        )
    if backend == "torch" or not _onnx_on_cpu(device):
        raise InputError(
            f"precision int8 runs on the CPU with ONNX Runtime, not with backend {backend} on device {device}; "
            "use device cpu and backend onnx or auto, or precision fp32"
        )
    return load_package(int8), "fp32"


def _onnx_on_cpu(device: str) -> bool:
    """Whether ONNX Runtime would run on the CPU for ``device`` (auto: when it has no CUDA provider)."""
    if device != "auto":
        return device == "cpu"
    import onnxruntime as ort

    return "CUDAExecutionProvider" not in ort.get_available_providers()


def _probe(runner: Runner) -> None:
    """Run one empty patch, so a graph whose output does not fit its metadata is refused before any work."""
    meta = runner.metadata
    try:
        runner.predict_serial(np.zeros((1, meta.in_channels, meta.tile_size, meta.tile_size), dtype=np.float32))
    except InputError:
        raise
    except Exception as exc:
        if is_out_of_memory(exc):
            raise
        tile = meta.tile_size
        raise ModelError(f"model {runner.source} fails on a {tile}×{tile} patch: {first_line(exc)}") from None


def _runner_for(
    package: ModelPackage,
    backend: str,
    device: str,
    batch_size: int,
    precision: str,
    threads: int | None,
    workers: int | None,
) -> Runner:
    if backend == "auto":
        backend = "onnx" if package.format == "onnx" else "torch"
    if backend == "torch":
        if package.format == "onnx":
            raise InputError(f"backend torch cannot run the ONNX model {package.path}; use --backend onnx or auto")
        return TorchRunner(package, device, batch_size, precision, threads, workers)
    if precision != "fp32":
        raise InputError(f"precision {precision} is available with the torch backend only")
    if device == "mps":
        raise InputError(_MPS_NEEDS_TORCH)
    if package.format == "onnx":
        return OnnxRunner(package.path, package.metadata, device, batch_size, threads, workers)
    import onnxruntime as ort

    from landslide_engine.models.package import load_torch_model, onnx_package_bytes

    _onnx_providers(device, ort.get_available_providers())  # refuse an impossible device before exporting

    graph = onnx_package_bytes(load_torch_model(package), package.metadata)
    return OnnxRunner(graph, package.metadata, device, batch_size, threads, workers)


_QUANTIZED_OPS = (b"QuantizeLinear", b"ConvInteger", b"QLinearConv", b"MatMulInteger")


def _is_quantized(graph: bytes) -> bool:
    """Whether a serialized ONNX graph computes in int8 (written by ``landslide_engine quantize`` or another
    quantizer).

    Operator types are plain strings in the serialized graph, so this needs neither the ``onnx`` package (the
    engine runs ONNX packages with onnxruntime alone) nor a parse of the whole model.
    """
    return any(op in graph for op in _QUANTIZED_OPS)


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an accelerator running out of memory (PyTorch CUDA/MPS or ONNX Runtime CUDA)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    message = str(exc).lower()
    return any(text in message for text in _OOM_MESSAGES)


def cpu_workers(threads: int | None, workers: int | None) -> tuple[int, int]:
    """(cores, workers) for a CPU runner: by default every usable core, each its own worker."""
    threads = threads or usable_cpu_count()
    workers = workers or threads
    if not 1 <= workers <= threads:
        raise InputError(f"workers must be between 1 and the {threads} thread(s), got {workers}")
    return threads, workers


def _as_package(model: str | Path | ModelPackage) -> ModelPackage:
    if isinstance(model, ModelPackage):
        return model
    if isinstance(model, Path):
        return load_package(model)
    from landslide_engine.models.catalog import resolve_model

    return load_package(resolve_model(model))


_MPS_NEEDS_TORCH = "device mps is available with the torch backend only"


def planned_device(model_path: str | Path | None, device: str) -> str:
    """The device a run of the model at ``model_path`` (None: the built-in, an .onnx) would use for ``device``.

    Spelled as runners report it (``cpu``, ``cuda:0 (NVIDIA H200)``, ``mps``), decided by the same rules as
    the runner (default backend), without loading the model, so a front end can say before a run what the
    run will do. InputError, with the runner's own message, when this machine cannot run ``device``.
    """
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")
    if model_path is not None and Path(model_path).suffix.lower() in TORCH_SUFFIXES:
        return _describe_torch_device(_torch_device(device))
    if device == "mps":
        raise InputError(_MPS_NEEDS_TORCH)
    import onnxruntime as ort

    providers = _onnx_providers(device, ort.get_available_providers())
    return _describe_cuda(0) if providers[0] == "CUDAExecutionProvider" else "cpu"


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    """Logistic function without overflow for large negative logits."""
    return (0.5 * (1.0 + np.tanh(0.5 * logits))).astype(np.float32)


def _onnx_providers(device: str, available: list[str]) -> list[str]:
    has_cuda = "CUDAExecutionProvider" in available
    if device == "cuda" and not has_cuda:
        raise InputError(
            "device cuda: this ONNX Runtime has no CUDA provider (install onnxruntime-gpu); choose device cpu or auto"
        )
    if device in ("cuda", "auto") and has_cuda:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _torch_device(device: str):
    import torch

    cuda, mps = torch.cuda.is_available(), torch.backends.mps.is_available()
    if device == "auto":
        return torch.device("cuda:0" if cuda else "mps" if mps else "cpu")
    if device == "cuda" and not cuda:
        raise InputError(
            "device cuda: PyTorch sees no CUDA GPU (CPU-only torch build or no driver); choose device cpu or auto"
        )
    if device == "mps" and not mps:
        raise InputError("device mps: PyTorch sees no Apple GPU; choose device cpu or auto")
    return torch.device("cuda:0" if device == "cuda" else device)


def _describe_torch_device(device) -> str:
    return _describe_cuda(device.index or 0) if device.type == "cuda" else device.type


def _describe_cuda(index: int) -> str:
    """``cuda:N (GPU name)``; the name comes from PyTorch when it can see the GPU."""
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    except ImportError:
        pass
    return f"cuda:{index}"
