"""Model packages with random weights for the benchmark: speed does not depend on the weights.

Every row of a table uses one of these packages, so backends and precisions are compared on the same
network. The packages are cached under the work folder by architecture name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from landslide_engine.bands import L4S_BANDS


@dataclass(frozen=True)
class BenchModel:
    """One architecture as a PyTorch package and as an ONNX package with identical weights."""

    name: str
    torch_path: Path
    onnx_path: Path


def bench_model(name: str, folder: Path, seed: int = 0) -> BenchModel:
    """Build (or reuse) ``name`` from the registry with seeded random weights, saved as ``.pt`` and ``.onnx``."""
    import torch

    from landslide_engine.models.package import ModelMetadata, export_onnx, save_torch_package
    from landslide_engine.models.registry import create_model

    folder.mkdir(parents=True, exist_ok=True)
    torch_path, onnx_path = folder / f"bench_{name}.pt", folder / f"bench_{name}.onnx"
    if not (torch_path.exists() and onnx_path.exists()):
        torch.manual_seed(seed)
        model = create_model(name, in_channels=len(L4S_BANDS)).eval()
        metadata = ModelMetadata.from_spec(
            name, name=f"bench_{name}", bands=list(L4S_BANDS), mean=[1.0] * len(L4S_BANDS), std=[0.5] * len(L4S_BANDS)
        )
        save_torch_package(model, metadata, torch_path)
        export_onnx(model, metadata, onnx_path)
    return BenchModel(name, torch_path, onnx_path)
