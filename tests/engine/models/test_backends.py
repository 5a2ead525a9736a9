"""Inference backends: normalisation, batching, ONNX Runtime vs PyTorch parity, device reporting, OOM halving."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.backends import Runner, create_runner, is_out_of_memory
from landslide_engine.models.package import ModelMetadata, export_onnx, load_package, save_torch_package
from landslide_engine.models.registry import create_model

BANDS = [b for b in L4S_BANDS if b not in ("B1", "B9", "B10")]


def _metadata() -> ModelMetadata:
    rng = np.random.default_rng(7)
    return ModelMetadata.from_spec(
        "unet_plain_w16",
        bands=BANDS,
        mean=[float(v) for v in rng.uniform(0.5, 1.5, len(BANDS))],
        std=[float(v) for v in rng.uniform(0.2, 0.6, len(BANDS))],
    )


@pytest.fixture(scope="module")
def tiny_model() -> torch.nn.Module:
    torch.manual_seed(1)
    model = create_model("unet_plain_w16", in_channels=len(BANDS))
    with torch.no_grad():  # non-trivial batch-norm statistics, so eval-mode normalisation matters
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture(scope="module")
def packages(tiny_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("packages")
    metadata = _metadata()
    return {
        "torch": save_torch_package(tiny_model, metadata, folder / "tiny.pt"),
        "onnx": export_onnx(tiny_model, metadata, folder / "tiny.onnx"),
    }


def _patches(n: int) -> np.ndarray:
    return np.random.default_rng(n).uniform(0.0, 2.0, size=(n, len(BANDS), 128, 128)).astype(np.float32)


def test_torch_runner_applies_the_models_normalisation_and_sigmoid(packages, tiny_model):
    runner = create_runner(packages["torch"], device="cpu", batch_size=2)
    x = _patches(3)
    metadata = runner.metadata
    normalised = (x - np.array(metadata.mean, np.float32)[:, None, None]) / np.array(metadata.std, np.float32)[
        :, None, None
    ]
    with torch.no_grad():
        expected = torch.sigmoid(tiny_model(torch.from_numpy(normalised)))[:, 0].numpy()
    probabilities = runner.predict(x)
    assert (runner.backend, runner.device) == ("torch", "cpu")
    assert probabilities.shape == (3, 128, 128) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities, expected, atol=1e-5)


@pytest.mark.parametrize("package_form", ["onnx", "torch"])
def test_onnx_runtime_and_pytorch_agree_within_1e3_on_the_same_package(packages, package_form):
    x = _patches(5)
    reference = create_runner(packages["torch"], backend="torch", device="cpu", batch_size=4).predict(x)
    runner = create_runner(packages[package_form], backend="onnx", device="cpu", batch_size=4)
    assert (runner.backend, runner.device) == ("onnx", "cpu")
    np.testing.assert_allclose(runner.predict(x), reference, atol=1e-3)


def test_auto_backend_follows_the_package_form(packages):
    assert create_runner(packages["onnx"], device="cpu").backend == "onnx"
    assert create_runner(load_package(packages["torch"]), device="cpu").backend == "torch"


def test_an_onnx_package_cannot_run_on_pytorch(packages):
    with pytest.raises(InputError, match="backend torch cannot run the ONNX model"):
        create_runner(packages["onnx"], backend="torch")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_asking_for_cuda_without_a_gpu_is_an_input_error(packages, backend):
    with pytest.raises(InputError, match="device cuda"):
        create_runner(packages["torch"], backend=backend, device="cuda")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"backend": "tensorrt"}, "unknown backend"), ({"device": "tpu"}, "unknown device"), ({"batch_size": 0}, "batch")],
)
def test_bad_options_are_input_errors(packages, kwargs, message):
    with pytest.raises(InputError, match=message):
        create_runner(packages["torch"], **kwargs)


def test_wrong_band_count_is_refused(packages):
    runner = create_runner(packages["onnx"], device="cpu")
    with pytest.raises(ValueError, match=r"\(N, 11, 128, 128\)"):
        runner.predict(np.zeros((1, 14, 128, 128), np.float32))


class _SmallGpu(Runner):
    """A fake runner whose 'GPU' holds at most ``capacity`` patches; logits are the channel mean."""

    backend, device = "fake", "cuda:0 (fake)"

    def __init__(self, metadata: ModelMetadata, batch_size: int, capacity: int) -> None:
        super().__init__(metadata, batch_size)
        self.capacity = capacity
        self.attempts: list[int] = []

    def _run_batch(self, batch: np.ndarray) -> np.ndarray:
        self.attempts.append(len(batch))
        if len(batch) > self.capacity:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return batch.mean(axis=1, keepdims=True)


def test_out_of_memory_halves_the_batch_and_carries_on():
    metadata = _metadata()
    runner = _SmallGpu(metadata, batch_size=16, capacity=3)
    x = _patches(11)
    probabilities = runner.predict(x)
    assert runner.attempts[:3] == [11, 5, 2], "11 > 3 and 5 > 3 fail, 2 fits"
    assert runner.batch_size == 2
    assert sum(n for n in runner.attempts if n <= 3) == 11, "every patch was predicted exactly once"
    normalised = (x - np.array(metadata.mean, np.float32)[:, None, None]) / np.array(metadata.std, np.float32)[
        :, None, None
    ]
    np.testing.assert_allclose(probabilities, 1 / (1 + np.exp(-normalised.mean(axis=1))), atol=1e-5)


def test_out_of_memory_with_a_single_patch_is_raised():
    runner = _SmallGpu(_metadata(), batch_size=4, capacity=0)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        runner.predict(_patches(2))
    assert runner.attempts == [2, 1]


def test_other_errors_are_not_mistaken_for_out_of_memory():
    assert not is_out_of_memory(RuntimeError("Given groups=1, weight of size [16, 14, 3, 3]"))
    assert is_out_of_memory(RuntimeError("[ONNXRuntimeError] : 6 : CUDA failure 2: out of memory"))
    assert is_out_of_memory(RuntimeError("MPS backend out of memory (MPS allocated: 8.00 GB)"))


@pytest.mark.parametrize("kind", ["onnx", "torch"])
@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "mps"])
def test_planned_device_is_what_the_runner_then_uses(packages, kind, device):
    """Front ends say the device before a run; it must be the one the run uses, or the run's own refusal."""
    from landslide_engine.models.backends import planned_device

    try:
        planned = planned_device(packages[kind], device)
    except InputError as refused:
        with pytest.raises(InputError) as raised:
            create_runner(packages[kind], device=device, batch_size=2)
        assert str(raised.value) == str(refused)
        assert "--device" not in str(refused)  # the dock shows it too: no CLI flags
        return
    assert planned == create_runner(packages[kind], device=device, batch_size=2).device
