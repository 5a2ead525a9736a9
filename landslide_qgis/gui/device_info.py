"""What hardware inference will use, in words the analyst understands.

Shown in the dock before a run ("CUDA GPU: NVIDIA H200" or "CPU"); after a run the
dock shows the engine's own ``result.device`` instead, which is what actually ran.
"""

from __future__ import annotations


def describe_device(choice: str = "auto") -> str:
    """A short description of the device that ``choice`` (auto/cpu/cuda) resolves to on this machine."""
    if choice == "cpu":
        return "CPU"
    gpu = _cuda_gpu_name()
    if gpu:
        return f"CUDA GPU: {gpu}"
    return "CPU (no usable CUDA GPU found)" if choice == "auto" else "CUDA requested but not available: CPU"


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
