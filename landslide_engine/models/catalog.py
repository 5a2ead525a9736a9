"""Which trained models are available, and which file a ``--model`` reference means.

Models come from three places, reported as their ``origin``:

* ``builtin``: packages shipped inside the plugin in ``landslide_engine/models/builtin/``; the default model is
  ``default.onnx`` (or ``default.pt``) there;
* ``user``: packages the analyst put in the user models folder (``$LANDSLIDE_MAPPER_MODELS``, else
  ``$XDG_DATA_HOME/landslide-mapper/models``, i.e. ``~/.local/share/landslide-mapper/models``) or in extra folders;
* ``file``: a package given by its path.

A package ``NAME.int8.onnx`` beside ``NAME.onnx`` (or ``NAME.pt``) is that model's int8 version (the built-in
model ships ``default.int8.onnx``): it is not listed as a model of its own, and the runners take it for precision
``int8``, and for ``auto`` on the CPU (:func:`int8_version`, :func:`landslide_engine.models.backends.create_runner`).

Registry names such as ``unet_resnet34`` are architectures, not trained models, and are not resolved here: running
an untrained network would paint noise.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from landslide_engine.errors import InputError
from landslide_engine.models.package import TORCH_SUFFIXES, load_package

log = logging.getLogger(__name__)

USER_MODELS_ENV = "LANDSLIDE_MAPPER_MODELS"
INT8_SUFFIX = ".int8.onnx"  # NAME.int8.onnx next to NAME.onnx (or NAME.pt) is that model's int8 version
BUILTIN_DEFAULT_FILES = ("default.onnx", "default.pt")
MODEL_SUFFIXES = (".onnx", *TORCH_SUFFIXES)
BUILTIN_REFERENCES = ("", "builtin", "default")

Origin = Literal["builtin", "user", "file"]


@dataclass(frozen=True)
class ModelInfo:
    """A model package as listed to the analyst."""

    name: str
    path: Path
    architecture: str
    encoder: str | None
    size_bytes: int
    metrics: dict[str, Any]
    origin: Origin
    bands: tuple[str, ...]
    format: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for ``models --json``)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "architecture": self.architecture,
            "encoder": self.encoder,
            "size_bytes": self.size_bytes,
            "metrics": self.metrics,
            "origin": self.origin,
            "bands": list(self.bands),
            "format": self.format,
        }


def builtin_models_dir() -> Path:
    """The folder of the packages shipped with the plugin."""
    return Path(__file__).resolve().parent / "builtin"


def user_models_dir() -> Path:
    """The analyst's own models folder (it need not exist)."""
    override = os.environ.get(USER_MODELS_ENV)
    if override:
        return Path(override).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.environ.get("APPDATA")
    base = Path(data_home) if data_home else Path.home() / ".local" / "share"
    return base / "landslide-mapper" / "models"


def describe_model(path: str | Path, origin: Origin = "file") -> ModelInfo:
    """Load the package at ``path`` and describe it; InputError if it is not a valid package."""
    package = load_package(path)
    metadata = package.metadata
    return ModelInfo(
        name=metadata.name,
        path=package.path,
        architecture=metadata.architecture,
        encoder=metadata.encoder,
        size_bytes=package.path.stat().st_size,
        metrics=dict(metadata.metrics),
        origin=origin,
        bands=tuple(metadata.bands),
        format=package.format,
    )


def list_models(extra_dirs: Iterable[str | Path] = ()) -> list[ModelInfo]:
    """Every valid package in the built-in, user and extra folders; the default built-in model comes first.

    A file that is not a valid package is skipped with a logged warning, so one bad download does not hide the rest.
    """
    infos: list[ModelInfo] = []
    seen: set[Path] = set()
    for path, origin in _candidate_files(extra_dirs):
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            infos.append(describe_model(path, origin))
        except InputError as exc:
            log.warning("skipping model file: %s", exc)
    return infos


def resolve_model(ref: str | Path | None, extra_dirs: Iterable[str | Path] = ()) -> Path:
    """The package file that ``ref`` means: None/"builtin" (the default built-in model), a listed name, or a path."""
    if ref is None or str(ref).strip().lower() in BUILTIN_REFERENCES:
        return builtin_model_path()
    candidate = Path(str(ref)).expanduser()
    if candidate.is_file():
        return candidate
    if candidate.suffix.lower() in MODEL_SUFFIXES or os.sep in str(ref):
        raise InputError(f"model file not found: {ref}")
    extra_dirs = list(extra_dirs)
    infos = list_models(extra_dirs)
    for info in infos:
        if str(ref) in (info.name, info.path.stem):
            return info.path
    available = ", ".join(info.name for info in infos) or "none installed"
    raise InputError(f"unknown model {ref!r}; available models: {available}")


def int8_version(path: Path) -> Path | None:
    """The int8 version of the package at ``path``: ``NAME.int8.onnx`` beside it (as the built-in model's
    ``default.int8.onnx``, written by ``python -m landslide_engine quantize``), or None."""
    candidate = path.with_name(path.stem + INT8_SUFFIX)
    return candidate if candidate.is_file() and candidate != path else None


def _is_int8_version(path: Path) -> bool:
    """Whether ``path`` is another package's int8 version (listed with it, not as a model of its own)."""
    if not path.name.endswith(INT8_SUFFIX):
        return False
    stem = path.name[: -len(INT8_SUFFIX)]
    return any(path.with_name(stem + suffix).is_file() for suffix in (".onnx", *TORCH_SUFFIXES))


def builtin_model_path() -> Path:
    """The default built-in model package; InputError if the plugin was installed without one."""
    for name in BUILTIN_DEFAULT_FILES:
        path = builtin_models_dir() / name
        if path.is_file():
            return path
    raise InputError(f"no built-in model is installed in {builtin_models_dir()}; pass a model file with --model")


def _candidate_files(extra_dirs: Iterable[str | Path]) -> Iterator[tuple[Path, Origin]]:
    builtin = builtin_models_dir()
    defaults = [builtin / name for name in BUILTIN_DEFAULT_FILES if (builtin / name).is_file()]
    for path in defaults + _packages_in(builtin):
        yield path, "builtin"
    for folder in [user_models_dir(), *(Path(d).expanduser() for d in extra_dirs)]:
        for path in _packages_in(folder):
            yield path, "user"


def _packages_in(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MODEL_SUFFIXES and not _is_int8_version(p)
    )
