"""Resumable training checkpoints.

A checkpoint holds the model, optimiser and scheduler states, the position in the run (epoch and
batches done within it), the RNG state, the history so far and the best weights. It is written
atomically (temporary file, then rename), so Ctrl-C or a crash during the write leaves the
previous checkpoint intact. It loads with ``weights_only=True``: tensors and plain containers
only, no arbitrary unpickling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from landslide_engine.errors import InputError

CHECKPOINT_FORMAT = 1


def save_checkpoint(state: dict[str, Any], path: Path) -> Path:
    """Write ``state`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save({"format": CHECKPOINT_FORMAT, **state}, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`; InputError names the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InputError(f"{path}: not a readable training checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a training checkpoint of format {CHECKPOINT_FORMAT}")
    return state
