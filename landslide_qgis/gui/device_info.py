"""What hardware inference will use, in words the analyst understands.

Shown in the dock before a run ("CUDA GPU: NVIDIA H200" or "CPU"); after a run the
dock shows the engine's own ``result.device`` instead, which is what actually ran. A choice
this machine cannot run (cuda without a CUDA GPU) is said to be unusable, because the engine
refuses it rather than quietly running on the CPU.
"""

from __future__ import annotations


def describe_device(choice: str = "auto") -> tuple[str, bool]:
    """What ``choice`` (one of the engine's DEVICES) runs on here, and whether the engine can run it."""
    if choice == "cpu":
        return "CPU", True
    if choice == "mps":
        if _apple_gpu():
            return "Apple GPU (PyTorch models)", True
        return "No Apple GPU here: choose device auto or cpu.", False
    gpu = _cuda_gpu_name()
    if gpu:
        return f"CUDA GPU: {gpu}", True
    if choice == "auto":
        return "CPU (no usable CUDA GPU found)", True
    return "No usable CUDA GPU on this machine: choose device auto or cpu.", False


def _apple_gpu() -> bool:
    try:
        import torch

        return bool(torch.backends.mps.is_available())
    except Exception:  # torch missing or too old for MPS
        return False


def _cuda_gpu_name() -> str | None:
    """The first CUDA GPU's name via torch, or a generic name when only onnxruntime sees CUDA."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(0)
    except Exception:  # torch missing or a broken CUDA install: the CPU still works
        pass
    try:
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            return "available to ONNX Runtime"
    except Exception:
        pass
    return None
