"""What hardware inference will use, in words the analyst understands.

Shown in the dock before a run ("CUDA GPU: cuda:0 (NVIDIA H200)" or "CPU"); after a run the dock
shows the engine's own ``result.device`` instead, which is what actually ran. The engine decides
both with the same rules (``planned_device``), for the chosen model's runtime: an .onnx model runs
on ONNX Runtime's devices, a .pt model on PyTorch's. A choice this machine cannot run (cuda
without a CUDA GPU) is said to be unusable, with the engine's own reason, because the engine
refuses it rather than quietly running on the CPU.
"""

from __future__ import annotations

from pathlib import Path

from landslide_engine.errors import InputError


def describe_device(choice: str = "auto", model_path: str | Path | None = None) -> tuple[str, bool]:
    """What ``choice`` (one of the engine's DEVICES) runs the model on here, and whether the engine can run it."""
    try:
        from landslide_engine.models.backends import planned_device

        device = planned_device(model_path, choice)
    except InputError as exc:
        return f"Not on this machine: {exc}", False
    except ImportError:  # no inference runtime: the dock says what to install when Run is pressed
        return "", True
    if device.startswith("cuda"):
        return f"CUDA GPU: {device}", True
    if device == "mps":
        return "Apple GPU", True
    return ("CPU (no usable GPU found)" if choice == "auto" else "CPU"), True
