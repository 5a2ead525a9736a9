"""Import of the weights released with the Seed paper (``python -m training import-deepslide``).

Those files are PyTorch Lightning checkpoints (or bare state_dicts) whose keys carry the
LightningModule's attribute path: ``model.model.<key>`` when the LightningModule wraps a wrapper,
``model.<key>`` when it wraps the network directly. The Seed's own app loads them with
``strict=False``, which silently leaves mismatched layers at random initialisation; here every
key and shape must match the registry's network, otherwise nothing is written and the error
lists what is missing, unexpected or of the wrong shape.
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path

import torch

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.package import TORCH_SUFFIXES, ModelMetadata, export_onnx, save_torch_package
from landslide_engine.models.registry import MODEL_SPECS, create_model
from training.data.normalization import identity_normalization

LIGHTNING_PREFIXES = ("model.model.", "model.")
_LISTED = 4


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.pth``/``.ckpt`` file, unwrapping Lightning's ``state_dict`` entry; never unpickles code."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except pickle.UnpicklingError:
        raise InputError(f"{path}: holds Python objects besides tensors; refusing to unpickle it") from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors for damaged files
        raise InputError(f"{path}: not a readable PyTorch file ({type(exc).__name__})") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, Mapping) else None
    if not isinstance(state, Mapping) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: no state_dict of tensors found")
    return dict(state)


def strip_lightning_prefix(state: Mapping[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """Keys without the LightningModule prefix; every key must carry the same prefix."""
    for prefix in LIGHTNING_PREFIXES:
        if all(key.startswith(prefix) for key in state):
            return {key[len(prefix) :]: value for key, value in state.items()}
    strays = [key for key in state if not key.startswith("model.")][:_LISTED]
    raise InputError(f"{source}: keys are not all under 'model.model.' or 'model.' (e.g. {', '.join(strays)})")


def check_compatible(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], what: str) -> None:
    """InputError listing missing, unexpected and mismatched-shape keys when ``state`` does not fit exactly."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(
        f"{key} {tuple(state[key].shape)}≠{tuple(expected[key].shape)}"
        for key in set(state) & set(expected)
        if state[key].shape != expected[key].shape
    )
    problems = [
        f"{len(items)} {label}: {', '.join(items[:_LISTED])}{', …' if len(items) > _LISTED else ''}"
        for label, items in (("missing", missing), ("unexpected", unexpected), ("mismatched", mismatched))
        if items
    ]
    if problems:
        raise InputError(f"{what}: weights do not fit; " + "; ".join(problems))


def import_deepslide(checkpoint: Path, model_name: str, out: Path) -> Path:
    """Convert a Seed/DeepSlide checkpoint of zoo model ``model_name`` into a package at ``out`` (.onnx or .pt).

    The Seed trained on l4s units without normalization at threshold 0.5, so the package says so.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    if model_name not in MODEL_SPECS:
        raise InputError(f"--model {model_name!r}: unknown; known: {', '.join(MODEL_SPECS)}")
    suffix = out.suffix.lower()
    if suffix != ".onnx" and suffix not in TORCH_SUFFIXES:
        raise InputError(f"--out {out}: expected a .onnx or .pt file name")
    state = strip_lightning_prefix(read_state_dict(checkpoint), checkpoint)
    model = create_model(model_name, in_channels=len(L4S_BANDS))
    check_compatible(state, model.state_dict(), f"{checkpoint} as {model_name}")
    model.load_state_dict(state, strict=True)
    model.eval()
    mean, std = identity_normalization(len(L4S_BANDS))
    metadata = ModelMetadata.from_spec(
        model_name,
        bands=list(L4S_BANDS),
        mean=mean,
        std=std,
        threshold=0.5,
        training_data={"source": f"imported from {checkpoint.name} (Seed paper release)"},
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".onnx":
        return export_onnx(model, metadata, out, opset=17, check=True)
    return save_torch_package(model, metadata, out)
