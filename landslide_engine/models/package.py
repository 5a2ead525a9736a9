"""The model package format shared by training and inference: weights plus versioned, validated metadata.

A package is one file in either of two forms:

* ``.onnx``: a self-contained ONNX graph (input ``input``: normalised bands, N×C×T×T with a dynamic batch axis;
  output ``logits``: N×1×T×T) with the metadata as JSON under the ``landslide_mapper`` key of ``metadata_props``;
* ``.pt``: a PyTorch checkpoint ``{"format": "landslide-mapper", "state_dict": ..., "metadata": {...}}``, read only
  with ``torch.load(weights_only=True)`` so that a model file downloaded from the internet can never run code.

The metadata (:mod:`landslide_engine.models.metadata`) says everything the engine needs to feed the network; it is
validated whenever it is built or loaded, and a package that does not fit is refused with one line saying what differs.

Only PyTorch-side work imports torch, inside the functions that do it: writing, reading or exporting ``.pt``
weights. An analyst's QGIS Python often has onnxruntime and nothing else, and there listing, validating and running
``.onnx`` packages must work; the ONNX metadata is therefore read straight from the protobuf wire format, without
the ``onnx`` package either. Asking for a ``.pt`` package there is an InputError saying torch is what is missing.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

import numpy as np

from landslide_engine.errors import ModelError
from landslide_engine.models.metadata import INPUT_SCALINGS, SCHEMA_VERSION, ModelMetadata
from landslide_engine.models.onnx_graph import check_onnx_graph
from landslide_engine.models.registry import build_architecture
from landslide_engine.targets import atomic_output

if TYPE_CHECKING:
    import torch
    from torch import nn

__all__ = [
    "CHECKPOINT_FORMAT",
    "INPUT_SCALINGS",
    "ONNX_INPUT_NAME",
    "ONNX_METADATA_KEY",
    "ONNX_OUTPUT_NAME",
    "SCHEMA_VERSION",
    "TORCH_SUFFIXES",
    "ModelMetadata",
    "ModelPackage",
    "build_model",
    "export_onnx",
    "load_package",
    "load_torch_model",
    "onnx_package_bytes",
    "save_torch_package",
]

ONNX_METADATA_KEY = "landslide_mapper"
ONNX_INPUT_NAME = "input"
ONNX_OUTPUT_NAME = "logits"
CHECKPOINT_FORMAT = "landslide-mapper"
TORCH_SUFFIXES = (".pt", ".pth")
ONNX_PARITY_TOLERANCE = 1e-3
"""Largest probability difference allowed between an exported ONNX graph and its PyTorch model."""

PackageFormat = Literal["onnx", "torch"]


@dataclass(frozen=True)
class ModelPackage:
    """A model file on disk, its form and its validated metadata."""

    path: Path
    format: PackageFormat
    metadata: ModelMetadata


def build_model(metadata: ModelMetadata) -> nn.Module:
    """The untrained network that ``metadata`` describes, with ``metadata.in_channels`` inputs.

    Two options wrap the network, and need the package's bands and normalization, so they are
    applied here rather than in the registry: ``spectral_indices: 1``
    (:class:`~landslide_engine.models.spectral_indices.SpectralIndexInput`) and
    ``min_slope_deg: N`` (:class:`~landslide_engine.models.slope_prior.SlopePrior`).
    """
    options = dict(metadata.architecture_options)
    with_indices = options.pop("spectral_indices", 0)
    min_slope_deg = options.pop("min_slope_deg", 0)
    if with_indices:
        from landslide_engine.models.spectral_indices import N_INDICES, SpectralIndexInput

        network = build_architecture(metadata.architecture, metadata.encoder, metadata.in_channels + N_INDICES, options)
        network = SpectralIndexInput(metadata.bands, metadata.mean, metadata.std, network)
    else:
        network = build_architecture(metadata.architecture, metadata.encoder, metadata.in_channels, options)
    if min_slope_deg:
        from landslide_engine.models.slope_prior import SlopePrior

        network = SlopePrior(metadata.bands, metadata.mean, metadata.std, min_slope_deg, network)
    return network


def load_package(path: str | Path) -> ModelPackage:
    """Read and validate a ``.onnx`` or ``.pt`` model package; InputError naming the file if it is not one.

    ``.onnx`` packages need neither torch nor onnx here; ``.pt`` packages need torch.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".onnx":
        metadata = _read_onnx_metadata(path)
        check_onnx_graph(path, metadata)
        return ModelPackage(path, "onnx", metadata)
    if suffix in TORCH_SUFFIXES:
        checkpoint = _read_checkpoint(path)
        metadata = ModelMetadata.from_dict(checkpoint["metadata"], source=str(path))
        _check_weights_fit(path, checkpoint["state_dict"], metadata)
        return ModelPackage(path, "torch", metadata)
    raise ModelError(f"model file {path}: expected a .onnx or .pt model package")


def load_torch_model(package: ModelPackage) -> nn.Module:
    """Build the network of a ``.pt`` package and load its weights; returned in eval mode on the CPU."""
    if package.format != "torch":
        raise ModelError(f"model file {package.path}: an ONNX package cannot be loaded into PyTorch")
    checkpoint = _read_checkpoint(package.path)
    model = build_model(package.metadata)
    try:
        model.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        raise ModelError(
            f"model file {package.path}: weights do not fit {_describe(package.metadata)}: {first}"
        ) from None
    return model.eval()


def save_torch_package(model: nn.Module, metadata: ModelMetadata, path: str | Path) -> Path:
    """Write ``model``'s weights and ``metadata`` as a ``.pt`` package, atomically; returns the path."""
    path = Path(path)
    if path.suffix.lower() not in TORCH_SUFFIXES:
        raise ValueError(f"a PyTorch model package must end in .pt or .pth, got {path}")
    _check_model_fits(model, metadata)
    import torch

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
    import torch

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
            buffer,  # type: ignore[arg-type]  # the legacy exporter writes to any file object; torch's hint says path
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
    import torch

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


def _check_weights_fit(path: Path, state_dict: dict[str, Any], metadata: ModelMetadata) -> None:
    """ModelError naming ``path`` if its weights are not those of the network its metadata describes.

    The network is built on PyTorch's meta device: shapes only, no memory for weights, so this is cheap enough
    to run whenever a package is loaded or listed.
    """
    import torch

    with torch.device("meta"):
        expected = {key: tuple(value.shape) for key, value in build_model(metadata).state_dict().items()}
    actual = {key: tuple(value.shape) if isinstance(value, torch.Tensor) else None for key, value in state_dict.items()}
    if expected != actual:
        differing = sorted(set(expected) ^ set(actual)) or sorted(k for k in expected if expected[k] != actual[k])
        raise ModelError(
            f"model file {path}: weights do not fit {_describe(metadata)} (first difference: {differing[0]})"
        )


def _check_onnx_parity(model: nn.Module, serialized: bytes, metadata: ModelMetadata) -> None:
    import onnxruntime as ort
    import torch

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
    props = _onnx_metadata_props(path)
    if ONNX_METADATA_KEY not in props:
        raise ModelError(
            f"ONNX model {path} has no Landslide Mapper metadata ('{ONNX_METADATA_KEY}' in metadata_props)"
        )
    try:
        data = json.loads(props[ONNX_METADATA_KEY])
    except (json.JSONDecodeError, RecursionError) as exc:  # a hostile file can nest JSON beyond Python's stack
        raise ModelError(f"ONNX model {path}: its metadata is not valid JSON ({type(exc).__name__})") from None
    return ModelMetadata.from_dict(data, source=str(path))


_MODEL_METADATA_PROPS_FIELD = 14
"""Field number of ``ModelProto.metadata_props`` (a repeated ``StringStringEntryProto``) in onnx.proto."""
_ENTRY_KEY_FIELD, _ENTRY_VALUE_FIELD = 1, 2
"""Field numbers of ``StringStringEntryProto.key`` and ``.value``."""


class _MalformedProtobuf(ValueError):
    """The bytes are not a protobuf message."""


def _onnx_metadata_props(path: Path) -> dict[str, str]:
    """``metadata_props`` of the ONNX model at ``path`` as a dict, read from the protobuf wire format.

    Only the top-level fields are walked and every other field (the graph and its weights) is seeked over, so this
    is fast for any model size and needs neither ``onnx`` nor onnxruntime.
    """
    props: dict[str, str] = {}
    try:
        with path.open("rb") as stream:
            size = path.stat().st_size
            for _, entry in _length_delimited_fields(stream, size, {_MODEL_METADATA_PROPS_FIELD}):
                parts = dict(
                    _length_delimited_fields(io.BytesIO(entry), len(entry), {_ENTRY_KEY_FIELD, _ENTRY_VALUE_FIELD})
                )
                key = parts.get(_ENTRY_KEY_FIELD, b"").decode("utf-8")
                props[key] = parts.get(_ENTRY_VALUE_FIELD, b"").decode("utf-8")
    except (_MalformedProtobuf, UnicodeDecodeError) as exc:
        raise ModelError(f"cannot read ONNX model {path}: not an ONNX protobuf ({exc})") from None
    except OSError as exc:
        raise ModelError(f"cannot read ONNX model {path}: {exc.strerror or exc}") from None
    return props


def _length_delimited_fields(stream: BinaryIO, size: int, wanted: set[int]) -> Iterator[tuple[int, bytes]]:
    """``(field number, payload)`` of each length-delimited field in ``wanted`` of the message in ``stream``.

    The message spans ``size`` bytes from the current position; other fields are skipped without reading them.
    """
    end = stream.tell() + size
    while stream.tell() < end:
        tag = _read_varint(stream)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise _MalformedProtobuf("field number 0")
        if wire_type == 0:
            _read_varint(stream)
            continue
        if wire_type == 1:
            length = 8
        elif wire_type == 5:
            length = 4
        elif wire_type == 2:
            length = _read_varint(stream)
        else:
            raise _MalformedProtobuf(f"unexpected wire type {wire_type} in field {number}")
        if stream.tell() + length > end:
            raise _MalformedProtobuf(f"field {number} runs past the end")
        if wire_type == 2 and number in wanted:
            yield number, stream.read(length)
        else:
            stream.seek(length, io.SEEK_CUR)


def _read_varint(stream: BinaryIO) -> int:
    value = 0
    for shift in range(0, 70, 7):
        byte = stream.read(1)
        if not byte:
            raise _MalformedProtobuf("truncated varint")
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
    raise _MalformedProtobuf("varint longer than 10 bytes")


def _import_torch_for(path: Path) -> Any:
    """The torch module, or an InputError saying that ``.pt`` packages need it and ``.onnx`` packages do not."""
    try:
        import torch
    except ImportError:
        raise ModelError(
            f"model file {path} is a PyTorch (.pt) package, which needs torch (pip install torch); "
            ".onnx model packages run without it"
        ) from None
    return torch


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: tensors and plain containers only, never arbitrary pickled objects."""
    torch = _import_torch_for(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except pickle.UnpicklingError:
        raise ModelError(
            f"refused to load {path}: it holds Python objects besides tensors, and a model file must never run code"
        ) from None
    except Exception as exc:  # torch raises RuntimeError, EOFError, zipfile errors... for damaged files
        raise ModelError(
            f"cannot read PyTorch checkpoint {path}: {type(exc).__name__}: {exc}".splitlines()[0]
        ) from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != CHECKPOINT_FORMAT:
        raise ModelError(f"{path} is not a Landslide Mapper model package (no format '{CHECKPOINT_FORMAT}')")
    if not isinstance(checkpoint.get("state_dict"), dict) or "metadata" not in checkpoint:
        raise ModelError(f"{path}: the checkpoint lacks its state_dict or metadata")
    return checkpoint
