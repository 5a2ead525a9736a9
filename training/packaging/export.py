"""Model packages from training checkpoints (``python -m training export``).

A finished run's checkpoint carries the final metadata (tuned threshold, metrics). An interrupted
run's checkpoint does not; its package gets the recipe's threshold and the metadata that is known
(bands, normalization, training data), so a half-trained model can still be tried out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.package import (
    TORCH_SUFFIXES,
    ModelMetadata,
    build_model,
    export_onnx,
    save_torch_package,
)
from training.fitting.checkpoint import load_checkpoint


def checkpoint_metadata(state: dict[str, Any], source: Path) -> ModelMetadata:
    """The model metadata of a checkpoint: the final one if the run finished, else rebuilt from its fields."""
    if "metadata" in state:
        return ModelMetadata.from_dict(state["metadata"], source=str(source))
    return ModelMetadata.from_spec(
        state["model_name"],
        bands=list(L4S_BANDS),
        mean=[float(v) for v in state["mean"]],
        std=[float(v) for v in state["std"]],
        threshold=float(state["recipe"]["threshold"]),
        training_data={"root": state["data"], "seed": state["seed"], **state["split"], "recipe": state["recipe"]},
        metrics={"note": f"unfinished run: {state['epoch']} epochs and {state['step']} steps done"},
    )


def checkpoint_model(state: dict[str, Any], metadata: ModelMetadata) -> nn.Module:
    """The network with the checkpoint's final weights: the best epoch's when kept, else the latest."""
    model = build_model(metadata)
    model.load_state_dict(state["best_model"] if state.get("best_model") is not None else state["model"])
    return model.eval()


def _newest_export_opset() -> int:
    """The newest opset PyTorch's TorchScript exporter (the one the engine uses) can write."""
    import torch.onnx

    constants = getattr(torch.onnx, "_constants", None)
    return int(getattr(constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 20))


def export_checkpoint(checkpoint: Path, out: Path, opset: int = 17) -> Path:
    """Write the checkpoint's model as a package: ``.onnx`` (parity-checked against PyTorch) or ``.pt``."""
    checkpoint, out = Path(checkpoint), Path(out)
    newest = _newest_export_opset()
    if not 17 <= opset <= newest:
        raise InputError(f"--opset {opset}: the engine needs opset 17 or newer, and PyTorch exports up to {newest}")
    suffix = out.suffix.lower()
    if suffix != ".onnx" and suffix not in TORCH_SUFFIXES:
        raise InputError(f"--out {out}: expected a .onnx or .pt file name")
    state = load_checkpoint(checkpoint)
    metadata = checkpoint_metadata(state, checkpoint)
    model = checkpoint_model(state, metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".onnx":
        return export_onnx(model, metadata, out, opset=opset, check=True)
    return save_torch_package(model, metadata, out)
