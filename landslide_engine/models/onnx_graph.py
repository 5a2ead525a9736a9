"""What an ONNX model package may hold: a self-contained graph whose input and output fit its metadata.

A downloaded ``.onnx`` file is untrusted. ONNX lets a tensor keep its values in another file ("external data",
resolved by ONNX Runtime against the model's folder, or against the working directory when the model is handed
over as bytes), so a package naming ``location=README.md`` would read that file as weights. A Landslide Mapper
package is one file: any tensor stored outside it is refused, wherever it is (initializers, sparse
initializers, constants in node attributes, subgraphs, functions).

The graph must also fit its metadata, checked when the package is loaded so that a bad package is refused
with its file named before any work: one input of N × bands × tile × tile and one output of N × 1 × tile ×
tile (dimensions the graph leaves symbolic are accepted; the runner checks the real output shape too).

The protobuf wire format is walked directly (the engine runs ONNX packages without the ``onnx`` package); the
weights' bytes are skipped, never copied, so this is fast for any model size.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from pathlib import Path

from landslide_engine.errors import ModelError
from landslide_engine.models.metadata import ModelMetadata

# Field numbers from onnx.proto.
_MODEL_GRAPH, _MODEL_FUNCTIONS = 7, 25
_FUNCTION_NODE = 7
_GRAPH_NODE, _GRAPH_INITIALIZER, _GRAPH_INPUT, _GRAPH_OUTPUT, _GRAPH_SPARSE_INITIALIZER = 1, 5, 11, 12, 15
_NODE_ATTRIBUTE = 5
_ATTRIBUTE_TENSOR, _ATTRIBUTE_GRAPH, _ATTRIBUTE_TENSORS, _ATTRIBUTE_GRAPHS = 5, 6, 10, 11
_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS = 22, 23
_SPARSE_VALUES, _SPARSE_INDICES = 1, 2
_TENSOR_NAME, _TENSOR_EXTERNAL_DATA, _TENSOR_DATA_LOCATION = 8, 13, 14
_EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL
_VALUE_INFO_NAME, _VALUE_INFO_TYPE = 1, 2
_TYPE_TENSOR, _TENSOR_TYPE_SHAPE, _SHAPE_DIM, _DIM_VALUE, _DIM_PARAM = 1, 2, 1, 1, 2
_MAX_NESTING = 32  # subgraphs inside subgraphs; a U-Net has none, a hostile file could nest without end

Dim = int | str | None  # a fixed size, a symbolic name, or unknown


class MalformedModel(ValueError):
    """The bytes are not an ONNX protobuf."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = 0
    for shift in range(0, 70, 7):
        if pos >= len(buf):
            raise MalformedModel("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
    raise MalformedModel("varint longer than 10 bytes")


def _fields(buf: memoryview) -> Iterator[tuple[int, int | memoryview]]:
    """``(field number, value)`` of each field of the message in ``buf``: an int (varint) or the bytes."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise MalformedModel("field number 0")
        if wire_type == 0:
            value, pos = _varint(buf, pos)
            yield number, value
            continue
        if wire_type == 2:
            length, pos = _varint(buf, pos)
        elif wire_type in (1, 5):
            length = 8 if wire_type == 1 else 4
        else:
            raise MalformedModel(f"unexpected wire type {wire_type} in field {number}")
        if pos + length > len(buf):
            raise MalformedModel(f"field {number} runs past the end")
        if wire_type == 2:
            yield number, buf[pos : pos + length]
        pos += length


def _messages(buf: memoryview, number: int) -> Iterator[memoryview]:
    for field, value in _fields(buf):
        if field == number and isinstance(value, memoryview):
            yield value


def _tensor_is_external(tensor: memoryview) -> str | None:
    """The tensor's name if it keeps its values in another file, else None."""
    external, name = False, ""
    for field, value in _fields(tensor):
        if (field == _TENSOR_DATA_LOCATION and value == _EXTERNAL) or field == _TENSOR_EXTERNAL_DATA:
            external = True
        elif field == _TENSOR_NAME and isinstance(value, memoryview):
            name = bytes(value).decode("utf-8", "replace")
    return (name or "unnamed") if external else None


def _sparse_external(sparse: memoryview) -> Iterator[str]:
    for number in (_SPARSE_VALUES, _SPARSE_INDICES):
        for tensor in _messages(sparse, number):
            found = _tensor_is_external(tensor)
            if found:
                yield found


def _nodes_external(nodes: Iterator[memoryview], depth: int) -> Iterator[str]:
    for node in nodes:
        for attribute in _messages(node, _NODE_ATTRIBUTE):
            for field, value in _fields(attribute):
                if not isinstance(value, memoryview):
                    continue
                if field in (_ATTRIBUTE_TENSOR, _ATTRIBUTE_TENSORS):
                    found = _tensor_is_external(value)
                    if found:
                        yield found
                elif field in (_ATTRIBUTE_SPARSE_TENSOR, _ATTRIBUTE_SPARSE_TENSORS):
                    yield from _sparse_external(value)
                elif field in (_ATTRIBUTE_GRAPH, _ATTRIBUTE_GRAPHS):
                    yield from _graph_external(value, depth + 1)


def _graph_external(graph: memoryview, depth: int = 0) -> Iterator[str]:
    if depth > _MAX_NESTING:
        raise MalformedModel(f"subgraphs nested deeper than {_MAX_NESTING}")
    for tensor in _messages(graph, _GRAPH_INITIALIZER):
        found = _tensor_is_external(tensor)
        if found:
            yield found
    for sparse in _messages(graph, _GRAPH_SPARSE_INITIALIZER):
        yield from _sparse_external(sparse)
    yield from _nodes_external(_messages(graph, _GRAPH_NODE), depth)


def external_tensors(model: memoryview) -> list[str]:
    """Names of the tensors of the serialized ModelProto ``model`` whose values live in other files."""
    found: list[str] = []
    for graph in _messages(model, _MODEL_GRAPH):
        found += _graph_external(graph)
    for function in _messages(model, _MODEL_FUNCTIONS):
        found += _nodes_external(_messages(function, _FUNCTION_NODE), 0)
    return found


def _value_info(info: memoryview) -> tuple[str, list[Dim] | None]:
    """Name and dimensions (None: no shape declared) of a ValueInfoProto."""
    name, dims = "", None
    for field, value in _fields(info):
        if not isinstance(value, memoryview):
            continue
        if field == _VALUE_INFO_NAME:
            name = bytes(value).decode("utf-8", "replace")
        elif field == _VALUE_INFO_TYPE:
            for tensor_type in _messages(value, _TYPE_TENSOR):
                for shape in _messages(tensor_type, _TENSOR_TYPE_SHAPE):
                    dims = [_dim(dim) for dim in _messages(shape, _SHAPE_DIM)]
    return name, dims


def _dim(dim: memoryview) -> Dim:
    for field, value in _fields(dim):
        if field == _DIM_VALUE and isinstance(value, int):
            return value
        if field == _DIM_PARAM and isinstance(value, memoryview):
            return bytes(value).decode("utf-8", "replace")
    return None


def graph_inputs_outputs(model: memoryview) -> tuple[list[tuple[str, list[Dim] | None]], list]:
    """The graph's real inputs (initializers left out) and its outputs, each as (name, dimensions)."""
    for graph in _messages(model, _MODEL_GRAPH):
        initializers = set()
        for tensor in _messages(graph, _GRAPH_INITIALIZER):
            for field, value in _fields(tensor):
                if field == _TENSOR_NAME and isinstance(value, memoryview):
                    initializers.add(bytes(value).decode("utf-8", "replace"))
        inputs = [_value_info(info) for info in _messages(graph, _GRAPH_INPUT)]
        outputs = [_value_info(info) for info in _messages(graph, _GRAPH_OUTPUT)]
        return [(name, dims) for name, dims in inputs if name not in initializers], outputs
    raise MalformedModel("no graph")


def _fits(dims: list[Dim] | None, expected: list[int | None]) -> bool:
    """Whether declared ``dims`` can be ``expected`` (None in ``expected``: any size; symbolic dims fit all)."""
    if dims is None:
        return True
    if len(dims) != len(expected):
        return False
    return all(not isinstance(d, int) or e is None or d == e for d, e in zip(dims, expected, strict=True))


def _describe(dims: list[Dim] | None) -> str:
    return "×".join("?" if d is None else str(d) for d in dims or [])


def check_onnx_graph(path: Path, metadata: ModelMetadata) -> None:
    """ModelError naming ``path`` if its graph references other files or does not fit ``metadata``."""
    try:
        with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            model = memoryview(mapped)
            try:
                _check(path, model, metadata)
            finally:
                model.release()
    except MalformedModel as exc:
        raise ModelError(f"cannot read ONNX model {path}: not an ONNX protobuf ({exc})") from None
    except (OSError, ValueError) as exc:  # mmap of an empty file is a ValueError
        raise ModelError(f"cannot read ONNX model {path}: {exc}") from None


def _check(path: Path, model: memoryview, metadata: ModelMetadata) -> None:
    external = external_tensors(model)
    if external:
        raise ModelError(
            f"model file {path} keeps tensor {external[0]!r} in another file (ONNX external data); "
            "a model package must be one self-contained file"
        )
    inputs, outputs = graph_inputs_outputs(model)
    tile, bands = metadata.tile_size, metadata.in_channels
    if len(inputs) != 1:
        raise ModelError(f"model file {path}: the graph has {len(inputs)} inputs, expected one (the bands)")
    name, dims = inputs[0]
    if not _fits(dims, [None, bands, tile, tile]):
        raise ModelError(
            f"model file {path}: graph input {name!r} is {_describe(dims)}, but the metadata says "
            f"N×{bands}×{tile}×{tile} ({bands} bands, tile size {tile})"
        )
    if not outputs:
        raise ModelError(f"model file {path}: the graph has no output")
    name, dims = outputs[0]
    if not _fits(dims, [None, 1, tile, tile]) and not _fits(dims, [None, tile, tile]):
        raise ModelError(
            f"model file {path}: graph output {name!r} is {_describe(dims)}, expected N×1×{tile}×{tile} (one logit "
            "per pixel of the tile)"
        )
