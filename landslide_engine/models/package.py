"""The model package format shared by training and inference: weights plus versioned, validated metadata.

A package is one file in either of two forms:

* ``.onnx``: a self-contained ONNX graph (input ``input``: normalised bands, N×C×T×T with a dynamic batch axis;
  output ``logits``: N×1×T×T) with the metadata as JSON under the ``landslide_mapper`` key of ``metadata_props``;
* ``.pt``: a PyTorch checkpoint ``{"format": "landslide-mapper", "state_dict": ..., "metadata": {...}}``, read only
  with ``torch.load(weights_only=True)`` so that a model file downloaded from the internet can never run code.

The metadata says everything the engine needs to feed the network: which Landslide4Sense bands in which order,
their scaling ("l4s": raw value / fixed divisor), the normalisation mean/std applied on top, the tile size, the
default threshold, and which missing bands the engine may fill (and with what value). It is validated whenever it is
built or loaded, and a package that does not fit is refused with one line saying what differs.
"""

from __future__ import annotations

import copy
import io
import json
import math
import pickle
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.registry import ARCHITECTURES, MODEL_SPECS, build_architecture
from landslide_engine.rasterio_io import atomic_output

SCHEMA_VERSION = 1
"""Version of the metadata schema this engine writes and reads; bump it on any incompatible change."""

ONNX_METADATA_KEY = "landslide_mapper"
ONNX_INPUT_NAME = "input"
ONNX_OUTPUT_NAME = "logits"
CHECKPOINT_FORMAT = "landslide-mapper"
INPUT_SCALINGS = ("l4s",)
TORCH_SUFFIXES = (".pt", ".pth")
ONNX_PARITY_TOLERANCE = 1e-3
"""Largest probability difference allowed between an exported ONNX graph and its PyTorch model."""

PackageFormat = Literal["onnx", "torch"]
_REQUIRED_FIELDS = ("name", "architecture", "encoder", "bands", "mean", "std")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(kw_only=True)
class ModelMetadata:
    """What a model package declares about its network and the input it expects.

    ``bands`` may be any subset of the 14 Landslide4Sense bands, in the order the network takes them; ``mean`` and
    ``std`` normalise each of them (in l4s units). ``fillable_bands`` maps a declared band to the l4s value the engine
    may put in when the input lacks it (e.g. B10 for L2A products); a missing band not listed there is an error.
    """

    name: str
    architecture: str
    encoder: str | None
    bands: list[str]
    mean: list[float]
    std: list[float]
    input_scaling: str = "l4s"
    tile_size: int = 128
    threshold: float = 0.5
    fillable_bands: dict[str, float] = field(default_factory=dict)
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    architecture_options: dict[str, int] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise InputError("invalid model metadata: " + "; ".join(problems))

    @property
    def in_channels(self) -> int:
        """Number of input channels of the network: one per declared band."""
        return len(self.bands)

    @classmethod
    def from_spec(cls, spec_name: str, **values: Any) -> ModelMetadata:
        """Metadata for zoo model ``spec_name`` (architecture, encoder and options filled in from the registry)."""
        spec = MODEL_SPECS.get(spec_name)
        if spec is None:
            raise InputError(f"unknown model architecture {spec_name!r}; known: {', '.join(MODEL_SPECS)}")
        values.setdefault("name", spec.name)
        return cls(
            architecture=spec.architecture, encoder=spec.encoder, architecture_options=dict(spec.options), **values
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict; :meth:`from_dict` reads it back."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "model metadata") -> ModelMetadata:
        """Validate ``data`` (as read from a package) and build the metadata; InputError naming ``source`` if not."""
        if not isinstance(data, Mapping):
            raise InputError(f"{source}: metadata is not a JSON object")
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            found = "no schema_version" if version is None else f"schema version {version!r}"
            raise InputError(f"{source}: metadata has {found}; this engine reads schema version {SCHEMA_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(f"{source}: unknown metadata key(s) {unknown} for schema version {SCHEMA_VERSION}")
        missing = sorted(f.name for f in fields(cls) if f.name in _REQUIRED_FIELDS and f.name not in data)
        if missing:
            raise InputError(f"{source}: metadata lacks required key(s) {missing}")
        try:
            return cls(**copy.deepcopy(dict(data)))
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None

    def _problems(self) -> list[str]:
        problems: list[str] = []
        if self.schema_version != SCHEMA_VERSION:
            problems.append(f"schema version {self.schema_version!r}, expected {SCHEMA_VERSION}")
        if not isinstance(self.name, str) or not self.name.strip():
            problems.append("name must be a non-empty string")
        problems += self._architecture_problems()
        problems += self._band_problems()
        if self.input_scaling not in INPUT_SCALINGS:
            problems.append(f"input_scaling {self.input_scaling!r} is not supported (expected one of {INPUT_SCALINGS})")
        if not isinstance(self.tile_size, int) or isinstance(self.tile_size, bool) or self.tile_size <= 0:
            problems.append(f"tile_size must be a positive integer, got {self.tile_size!r}")
        elif self.tile_size % 32:
            problems.append(f"tile_size {self.tile_size} is not a multiple of 32")
        if not _is_number(self.threshold) or not 0 < self.threshold < 1:
            problems.append(f"threshold must be a number between 0 and 1, got {self.threshold!r}")
        for key in ("training_data", "metrics"):
            value = getattr(self, key)
            if not isinstance(value, dict):
                problems.append(f"{key} must be a JSON object")
                continue
            try:
                json.dumps(value, allow_nan=False)
            except (TypeError, ValueError) as exc:
                problems.append(f"{key} is not plain JSON ({exc})")
        return problems

    def _architecture_problems(self) -> list[str]:
        if self.architecture not in ARCHITECTURES:
            return [f"unknown architecture {self.architecture!r} (expected one of {', '.join(ARCHITECTURES)})"]
        problems = []
        if self.architecture == "plain_unet" and self.encoder is not None:
            problems.append(f"architecture plain_unet has no encoder, got {self.encoder!r}")
        if self.architecture != "plain_unet" and (not isinstance(self.encoder, str) or not self.encoder):
            problems.append(f"architecture {self.architecture} needs an encoder name")
        options = self.architecture_options
        if not isinstance(options, dict) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in options.items()
        ):
            problems.append("architecture_options must map names to integers")
        return problems

    def _band_problems(self) -> list[str]:
        bands = self.bands
        if not isinstance(bands, list) or not bands or not all(isinstance(b, str) for b in bands):
            return ["bands must be a non-empty list of band names"]
        problems = []
        unknown = [b for b in bands if b not in L4S_BANDS]
        if unknown:
            problems.append(f"unknown band name(s) {unknown} (expected Landslide4Sense names B1..B14)")
        duplicated = sorted({b for b in bands if bands.count(b) > 1})
        if duplicated:
            problems.append(f"band(s) {duplicated} listed more than once")
        for key in ("mean", "std"):
            values = getattr(self, key)
            if not isinstance(values, list) or not all(_is_number(v) for v in values):
                problems.append(f"{key} must be a list of finite numbers")
            elif len(values) != len(bands):
                problems.append(f"{key} has {len(values)} values but bands has {len(bands)}")
        if isinstance(self.std, list) and any(_is_number(v) and v <= 0 for v in self.std):
            problems.append("std values must be positive")
        fillable = self.fillable_bands
        if not isinstance(fillable, dict) or not all(_is_number(v) for v in fillable.values()):
            problems.append("fillable_bands must map band names to finite l4s values")
        else:
            strangers = sorted(set(fillable) - set(bands))
            if strangers:
                problems.append(f"fillable band(s) {strangers} are not among the model's bands")
        return problems


@dataclass(frozen=True)
class ModelPackage:
    """A model file on disk, its form and its validated metadata."""

    path: Path
    format: PackageFormat
    metadata: ModelMetadata


def build_model(metadata: ModelMetadata) -> nn.Module:
    """The untrained network that ``metadata`` describes, with ``metadata.in_channels`` inputs."""
    return build_architecture(
        metadata.architecture, metadata.encoder, metadata.in_channels, metadata.architecture_options
    )


def load_package(path: str | Path) -> ModelPackage:
    """Read and validate a ``.onnx`` or ``.pt`` model package; InputError naming the file if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        return ModelPackage(path, "onnx", _read_onnx_metadata(path))
    if suffix in TORCH_SUFFIXES:
        checkpoint = _read_checkpoint(path)
        return ModelPackage(path, "torch", ModelMetadata.from_dict(checkpoint["metadata"], source=str(path)))
    raise InputError(f"model file {path}: expected a .onnx or .pt model package")


def load_torch_model(package: ModelPackage) -> nn.Module:
    """Build the network of a ``.pt`` package and load its weights; returned in eval mode on the CPU."""
    if package.format != "torch":
        raise InputError(f"model file {package.path}: an ONNX package cannot be loaded into PyTorch")
    checkpoint = _read_checkpoint(package.path)
    model = build_model(package.metadata)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise InputError(
            f"model file {package.path}: weights do not fit {_describe(package.metadata)}: {first}"
        ) from None
    return model.eval()


def save_torch_package(model: nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``model``'s weights and ``metadata`` as a ``.pt`` package, atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in TORCH_SUFFIXES:
        raise ValueError(f"a PyTorch model package must end in .pt or .pth, got {path}")
    _check_model_fits(model, metadata)
    checkpoint = {
        "format": CHECKPOINT_FORMAT,
        "state_dict": {key: value.detach().cpu().clone() for key, value in model.state_dict().items()},
        "metadata": metadata.to_dict(),
    }
    with atomic_output(path) as tmp:
        torch.save(checkpoint, tmp)
    return path


def export_onnx(
    model: nn.Module, metadata: ModelMetadata, path: str | Path, opset: int = 17, check: bool = True
) -> Path:
    """Export ``model`` to a self-contained ``.onnx`` package with ``metadata`` embedded; returns the path.

    See :func:`onnx_package_bytes` for what is exported and checked. The file is written atomically.
    """
    path = Path(path)
    if path.suffix.lower() != ".onnx":
        raise ValueError(f"an ONNX model package must end in .onnx, got {path}")
    serialized = onnx_package_bytes(model, metadata, opset=opset, check=check)
    with atomic_output(path) as tmp:
        Path(tmp).write_bytes(serialized)
    return path


def onnx_package_bytes(model: nn.Module, metadata: ModelMetadata, opset: int = 17, check: bool = True) -> bytes:
    """Serialise ``model`` as an ONNX package in memory (what :func:`export_onnx` writes).

    Uses the legacy TorchScript exporter (``dynamo=False``), which handles every zoo architecture without
    onnxscript, with a dynamic batch axis and fixed ``tile_size`` height and width. With ``check`` the graph is
    validated by ``onnx.checker`` and run in ONNX Runtime against PyTorch on random input; a probability difference
    above 1e-3 raises RuntimeError.
    """
    import onnx

    _check_model_fits(model, metadata)
    model = copy.deepcopy(model).cpu().float().eval()
    example = torch.randn(2, metadata.in_channels, metadata.tile_size, metadata.tile_size, generator=_seeded(0))
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter is a deliberate choice (see above); its deprecation notice is not news to the user.
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (example,),
            buffer,
            dynamo=False,
            opset_version=opset,
            input_names=[ONNX_INPUT_NAME],
            output_names=[ONNX_OUTPUT_NAME],
            dynamic_axes={ONNX_INPUT_NAME: {0: "batch"}, ONNX_OUTPUT_NAME: {0: "batch"}},
        )
    proto = onnx.load_from_string(buffer.getvalue())
    entry = proto.metadata_props.add()
    entry.key = ONNX_METADATA_KEY
    entry.value = json.dumps(metadata.to_dict())
    proto.doc_string = f"Landslide Mapper model {metadata.name}: {_describe(metadata)}"
    serialized = proto.SerializeToString()
    if check:
        onnx.checker.check_model(proto)
        _check_onnx_parity(model, serialized, metadata)
    return serialized


def _describe(metadata: ModelMetadata) -> str:
    encoder = f"/{metadata.encoder}" if metadata.encoder else ""
    return f"{metadata.architecture}{encoder} with {metadata.in_channels} bands"


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _check_model_fits(model: nn.Module, metadata: ModelMetadata) -> None:
    """Refuse to package weights under metadata that would rebuild a different network."""
    expected = {key: tuple(value.shape) for key, value in build_model(metadata).state_dict().items()}
    actual = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    if expected != actual:
        differing = sorted(set(expected) ^ set(actual)) or sorted(k for k in expected if expected[k] != actual[k])
        raise ValueError(
            f"the model does not match its metadata ({_describe(metadata)}); first difference: {differing[0]}"
        )


def _check_onnx_parity(model: nn.Module, serialized: bytes, metadata: ModelMetadata) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
    sample = torch.randn(3, metadata.in_channels, metadata.tile_size, metadata.tile_size, generator=_seeded(1))
    with torch.no_grad():
        expected = torch.sigmoid(model(sample)).numpy()
    logits = session.run([ONNX_OUTPUT_NAME], {ONNX_INPUT_NAME: sample.numpy()})[0]
    actual = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))
    difference = float(np.max(np.abs(actual - expected)))
    if difference > ONNX_PARITY_TOLERANCE:
        raise RuntimeError(
            f"ONNX export of {metadata.name} disagrees with PyTorch: max probability difference {difference:.2e}"
        )


def _read_onnx_metadata(path: Path) -> ModelMetadata:
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises several unrelated types for a corrupt file
        raise InputError(f"cannot read ONNX model {path}: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    props = {entry.key: entry.value for entry in proto.metadata_props}
    if ONNX_METADATA_KEY not in props:
        raise InputError(
            f"ONNX model {path} has no Landslide Mapper metadata ('{ONNX_METADATA_KEY}' in metadata_props)"
        )
    try:
        data = json.loads(props[ONNX_METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise InputError(f"ONNX model {path}: its metadata is not valid JSON ({exc})") from None
    return ModelMetadata.from_dict(data, source=str(path))


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary pickled objects."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise InputError(
            f"refused to load {path}: it holds Python objects besides tensors, and a model file must never run code"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for damaged files
        raise InputError(
            f"cannot read PyTorch checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not a Landslide Mapper model package (no format '{CHECKPOINT_FORMAT}')")
    if not isinstance(checkpoint.get("state_dict"), dict) or "metadata" not in checkpoint:
        raise InputError(f"{path}: the checkpoint lacks its state_dict or metadata")
    return checkpoint
