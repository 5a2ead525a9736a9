"""int8 versions of a model package, for CPUs where int8 convolutions (VNNI, AMX) beat float32.

Two ONNX Runtime quantizations of the graph: *dynamic* (weights int8 ahead of time, activations quantized per
batch at run time; no calibration data) and *static* QDQ (activation ranges calibrated once on sample patches;
the CPU then runs int8 convolutions). :func:`quantize_static` writes the static form as an ordinary ``.onnx``
model package, with the fp32 package's metadata, so the engine loads and runs it like any other.

Static QDQ is the one offered to analysts, and the built-in model ships its int8 version
(``builtin/default.int8.onnx``, the engine's default on the CPU): in grouped cross-validation each fold's int8
network kept the pooled F1 of fp32 (0.7072 both, ``training crossval --int8``), the shipped one keeps the fp32
mask at F1 0.993 on patches it was not calibrated on and runs 1.9-2.1x the fp32 speed
(``bench/PRECISION_BUILTIN.md``). Calibration ranges matter: calibrate on patches like the ones the model will
see (real Landslide4Sense patches), not on noise.

Needs the ``onnx`` package besides onnxruntime; an analyst's QGIS Python that only runs models need not have it.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from landslide_engine.bands import L4S_BANDS
from landslide_engine.errors import InputError
from landslide_engine.models.normalization import Normalization
from landslide_engine.models.package import ONNX_METADATA_KEY, ModelMetadata, ModelPackage, load_package
from landslide_engine.targets import atomic_output

CALIBRATION_PATCHES = 32
"""Default number of calibration patches: min/max ranges settle well before that, and 32 read in a second."""
_CALIBRATION_BATCH = 4


def normalised(patches: np.ndarray, metadata: ModelMetadata) -> np.ndarray:
    """What the runner feeds the graph: ``(x - mean) / std`` per band, in float32 like the runner computes it."""
    return np.ascontiguousarray(Normalization(metadata.mean, metadata.std)(np.asarray(patches, dtype=np.float32)))


def read_calibration_patches(
    folder: str | Path, metadata: ModelMetadata, limit: int = CALIBRATION_PATCHES
) -> tuple[np.ndarray, Path]:
    """Up to ``limit`` Landslide4Sense patches from ``folder`` as (n, C, 128, 128) l4s units, and where they were.

    ``folder`` is a Landslide4Sense root (patches in ``TrainData/img``), an ``img`` folder's parent, or any folder
    of ``.h5`` patches. The channels are ``metadata.bands`` in that order, what :meth:`Runner.predict` takes.
    Files are taken at an even stride across the sorted folder, so the ranges are not those of its first region.
    """
    if not isinstance(limit, int) or limit < 1:
        raise InputError(f"the number of calibration patches (--patches) must be a positive integer, got {limit!r}")
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"calibration folder not found: {folder}")
    tile = int(metadata.tile_size)
    from landslide_engine.h5io import L4S_PATCH_SIZE, read_l4s_image

    if tile != L4S_PATCH_SIZE:
        raise InputError(
            f"model {metadata.name} takes {tile} px tiles; Landslide4Sense patches are {L4S_PATCH_SIZE} px"
        )
    for candidate in (folder / "TrainData" / "img", folder / "img", folder):
        files = sorted(candidate.glob("*.h5"))
        if files:
            break
    else:
        raise InputError(f"calibration folder {folder}: no .h5 patches in it, in img/ or in TrainData/img/")
    band_index = [L4S_BANDS.index(band) for band in metadata.bands]
    return np.stack([read_l4s_image(files[i])[band_index] for i in calibration_choice(len(files), limit)]), candidate


def calibration_choice(count: int, limit: int = CALIBRATION_PATCHES) -> list[int]:
    """Which of ``count`` sorted candidate patches calibrate: at most ``limit``, at an even stride across them.

    One rule for the ``quantize`` command and for the cross-validation that scores its int8 models
    (``training crossval --int8``), so the folds are calibrated as a shipped model is.
    """
    return list(range(count))[:: max(1, count // limit)][:limit]


def quantize_static_graph(graph: bytes, calibration: np.ndarray) -> bytes:
    """QDQ int8 with activation ranges calibrated (min/max) on ``calibration`` (already normalised input)."""
    onnx, quantization = _onnx_modules()
    from onnxruntime.quantization import CalibrationDataReader
    from onnxruntime.quantization.shape_inference import quant_pre_process

    name = onnx.load_from_string(graph).graph.input[0].name
    batches = [{name: calibration[i : i + _CALIBRATION_BATCH]} for i in range(0, len(calibration), _CALIBRATION_BATCH)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, prep, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "prep.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(graph)
        quant_pre_process(str(src), str(prep), skip_symbolic_shape=True)
        quantization.quantize_static(
            prep,
            dst,
            Reader(),
            quant_format=quantization.QuantFormat.QDQ,
            activation_type=quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            per_channel=True,
        )
        return dst.read_bytes()


def quantize_static(
    package_or_path: str | Path | ModelPackage, calibration_patches: np.ndarray, out_path: str | Path
) -> Path:
    """Write an int8 static (QDQ) ``.onnx`` package of a model, calibrated on ``calibration_patches``.

    ``package_or_path`` is a package, a package file or a catalog name; ``calibration_patches`` are
    (n, C, T, T) in l4s units with the package's bands, as :func:`read_calibration_patches` returns them.
    The package's metadata is embedded unchanged, so :func:`load_package` and ``create_runner`` take the
    result like any ``.onnx`` package. Written atomically; returns ``out_path``.
    """
    package = _as_package(package_or_path)
    out_path = Path(out_path)
    if out_path.suffix.lower() != ".onnx":
        raise InputError(f"{out_path}: an int8 model package is an ONNX model; its file name must end in .onnx")
    if out_path.resolve() == package.path.resolve():
        raise InputError(f"{out_path} is the model being quantized; write the int8 package to another file")
    meta = package.metadata
    x = np.asarray(calibration_patches, dtype=np.float32)
    expected = (meta.in_channels, meta.tile_size, meta.tile_size)
    if x.ndim != 4 or x.shape[1:] != expected or len(x) == 0:
        raise ValueError(f"calibration patches must be (n >= 1, {', '.join(map(str, expected))}), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("calibration patches hold NaN or infinite values")
    onnx, _ = _onnx_modules()
    int8 = onnx.load_from_string(quantize_static_graph(_fp32_graph(package), normalised(x, meta)))
    del int8.metadata_props[:]  # the metadata is the package's, whatever the quantizer kept of it
    entry = int8.metadata_props.add()
    entry.key, entry.value = ONNX_METADATA_KEY, json.dumps(meta.to_dict())
    int8.doc_string = f"Landslide Mapper model {meta.name}, int8 static (QDQ) from {package.path.name}"
    with atomic_output(out_path) as tmp:
        Path(tmp).write_bytes(int8.SerializeToString())
    load_package(out_path)  # refuses a package the engine could not read back
    return out_path


def _as_package(model: str | Path | ModelPackage) -> ModelPackage:
    if isinstance(model, ModelPackage):
        return model
    from landslide_engine.models.catalog import resolve_model

    return load_package(resolve_model(model))


def _fp32_graph(package: ModelPackage) -> bytes:
    """The package's float32 ONNX graph: the file itself, or a ``.pt`` package exported in memory."""
    if package.format == "onnx":
        return package.path.read_bytes()
    from landslide_engine.models.package import load_torch_model, onnx_package_bytes

    return onnx_package_bytes(load_torch_model(package), package.metadata)


def _onnx_modules() -> tuple[Any, Any]:
    """``onnx`` and ``onnxruntime.quantization`` (untyped), or an InputError saying what to install."""
    try:
        import onnx
        from onnxruntime import quantization
    except ImportError as exc:
        raise InputError(
            f"quantizing a model needs onnx and onnxruntime (pip install onnx onnxruntime): {exc}"
        ) from None
    return onnx, quantization
