"""Running the packaged plugin through ``qgis_process.bin`` with a throwaway profile."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.paths import ROOT
from tests.rasters import write_raster

QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"


def build_plugin_zip(out_dir: Path) -> Path:
    """Run ``make package`` into ``out_dir`` and return the zip path."""
    dist = out_dir / "dist"
    subprocess.run(["make", "-s", "package", f"DIST={dist}"], cwd=ROOT, check=True, capture_output=True)
    (zip_path,) = dist.glob("landslide_qgis-*.zip")
    return zip_path


def qgis_process_env(plugin_path: Path, profile: Path) -> dict[str, str]:
    """Environment for qgis_process.bin: headless, throwaway profile, our venv's packages visible.

    QGIS embeds the system Python; the venv's site-packages (onnxruntime, torch) are added
    to PYTHONPATH the way an analyst would add them to QGIS's Python.
    """
    env = dict(os.environ)
    site = sysconfig.get_paths()["purelib"]
    env.update(
        QT_QPA_PLATFORM="offscreen",
        QGIS_PLUGINPATH=str(plugin_path),
        QGIS_CUSTOM_CONFIG_PATH=str(profile),
        PYTHONPATH=os.pathsep.join(p for p in (site, env.get("PYTHONPATH", "")) if p),
        HF_HUB_OFFLINE="1",
    )
    env.pop("PYTHONHOME", None)
    return env


def run_qgis_process(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def run_json(args: list[str], env: dict[str, str], timeout: float = 600) -> dict:
    """Run an algorithm with ``--json`` output and return the parsed result."""
    proc = run_qgis_process(["--json", *args], env, timeout)
    if proc.returncode != 0:
        raise AssertionError(f"qgis_process {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    start = proc.stdout.index("{")
    return json.loads(proc.stdout[start:])


# Sentinel-2 bands of a Landslide4Sense stack, as a 12-band L1C file would describe them
S2_DESCRIPTIONS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12")
# a tiny model without B1/B9/B10 also runs on L2A or ARCSI products that lack them
TINY_MODEL_BANDS = ["B2", "B3", "B4", "B5", "B6", "B7", "B8", "B11", "B12", "B13", "B14"]


def write_l1c_stack(path: Path, values, nodata: float | None = None) -> Path:
    """``values`` (12 bands, B01-B12 without B8A) as an L1C stack on the test scenes' 10 m UTM 33N grid."""
    from rasterio.transform import from_origin

    return write_raster(path, values, "EPSG:32633", from_origin(500000, 5200000, 10, 10), S2_DESCRIPTIONS, nodata)


def write_dem_around(path: Path, values, nodata: float | None = None) -> Path:
    """``values`` as a 30 m DEM in UTM 33N starting 100 m outside :func:`write_l1c_stack`'s scenes, so it is warped."""
    from rasterio.transform import from_origin

    return write_raster(path, values, "EPSG:32633", from_origin(499900, 5200100, 30, 30), nodata=nodata)


def synthetic_scene(folder: Path, width: int = 200, height: int = 160) -> tuple[Path, Path]:
    """A 12-band L1C-like scene (UTM 33N, 10 m) with bright bare-soil scars, and a DEM of a valley side.

    The DEM is on a coarser 30 m grid offset from the image, so every run warps it.
    """
    import numpy as np
    from rasterio.transform import from_origin

    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width]
    scars = np.zeros((height, width))
    for cy, cx, r in ((40, 50, 9), (100, 140, 14), (130, 40, 5)):
        scars += ((yy - cy) ** 2 + (xx - cx) ** 2 < r**2).astype(float)
    base = rng.uniform(800, 1500, size=(12, 1, 1)) + rng.normal(0, 60, size=(12, height, width))
    s2 = (base + 1500 * scars[None]).clip(1, 10000).astype(np.uint16)
    s2_path = write_l1c_stack(folder / "S2A_MSIL1C_20200101_scene.tif", s2)
    dem_rows, dem_cols = height // 3 + 4, width // 3 + 4
    dem = (400 + 12.0 * np.arange(dem_cols)[None, :] + 3 * np.arange(dem_rows)[:, None]).astype(np.float32)
    dem_path = write_raster(
        folder / "srtm_dem.tif", dem[None].repeat(1, 0), "EPSG:32633", from_origin(499950, 5200060, 30, 30)
    )
    return s2_path, dem_path


def tiny_model_package(path: Path, threshold: float = 0.5, seed: int = 0, via_torch: bool = False) -> Path:
    """A small untrained segmentation model as a model package (.onnx or .pt by suffix); fast on CPU.

    ``.onnx`` packages are written with ``onnx.helper``, without torch, so the plugin tests run in a QGIS Python
    that has onnxruntime and onnx but no torch (QGIS 3.44 on Python 3.14, where PyPI's torch is CUDA-only): two
    convolutions (3x3 then 1x1) with seeded random weights, the engine's input/output names and its metadata
    embedded exactly as :func:`landslide_engine.models.package.export_onnx` embeds it. ``.pt`` packages are a
    plain U-Net and need torch (the calling test is skipped without it); so does an ``.onnx`` ``via_torch``, the
    same U-Net exported (for tests that need a network of realistic size, or the same weights in both forms).
    """
    import pytest

    from landslide_engine.models.package import ModelMetadata

    metadata = ModelMetadata.from_spec(
        "unet_plain_w16",
        name=path.stem,
        bands=TINY_MODEL_BANDS,
        mean=[1.0] * len(TINY_MODEL_BANDS),
        std=[0.5] * len(TINY_MODEL_BANDS),
        threshold=threshold,
    )
    if path.suffix == ".onnx" and not via_torch:
        path.write_bytes(tiny_onnx_bytes(metadata, seed))
        return path
    torch = pytest.importorskip("torch", reason="a .pt model package, or an exported U-Net, needs torch")
    from landslide_engine.models.package import export_onnx, save_torch_package
    from landslide_engine.models.registry import create_model

    torch.manual_seed(seed)
    model = create_model("unet_plain_w16", in_channels=len(TINY_MODEL_BANDS)).eval()
    if path.suffix == ".onnx":
        return export_onnx(model, metadata, path)
    return save_torch_package(model, metadata, path)


def tiny_onnx_bytes(metadata, seed: int = 0, hidden: int = 4) -> bytes:
    """An ONNX package for ``metadata`` (its bands and tile size) built from ``onnx.helper`` nodes, without torch."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from landslide_engine.models.package import ONNX_INPUT_NAME, ONNX_METADATA_KEY, ONNX_OUTPUT_NAME

    rng = np.random.default_rng(seed)
    channels, tile = metadata.in_channels, metadata.tile_size
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.3, (hidden, channels, 3, 3)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, hidden).astype(np.float32), "b1"),
        numpy_helper.from_array(rng.normal(0, 0.5, (1, hidden, 1, 1)).astype(np.float32), "w2"),
        numpy_helper.from_array(np.array([-0.2], dtype=np.float32), "b2"),
    ]
    nodes = [
        helper.make_node("Conv", [ONNX_INPUT_NAME, "w1", "b1"], ["h"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Conv", ["r", "w2", "b2"], [ONNX_OUTPUT_NAME]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info(ONNX_INPUT_NAME, TensorProto.FLOAT, ["batch", channels, tile, tile])],
        [helper.make_tensor_value_info(ONNX_OUTPUT_NAME, TensorProto.FLOAT, ["batch", 1, tile, tile])],
        initializer=weights,
    )
    # IR 8 / opset 17: what every onnxruntime of the supported range reads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {ONNX_METADATA_KEY: json.dumps(metadata.to_dict())})
    onnx.checker.check_model(model)
    return model.SerializeToString()


__all__ = [
    "QGIS_PROCESS",
    "S2_DESCRIPTIONS",
    "build_plugin_zip",
    "qgis_process_env",
    "run_json",
    "run_qgis_process",
    "synthetic_scene",
    "sys",
    "tiny_model_package",
    "tiny_onnx_bytes",
    "write_raster",
]


def processing_outputs(folder: Path) -> dict[str, str]:
    """The three outputs of ``landslide:detect`` as Processing parameters, in ``folder``."""
    return {
        "OUTPUT_PROBABILITY": str(folder / "probability.tif"),
        "OUTPUT_MASK": str(folder / "mask.tif"),
        "OUTPUT_POLYGONS": str(folder / "polygons.gpkg"),
    }


class WarningFeedback:
    """A QgsProcessingFeedback that keeps what the algorithm pushed as warnings and as information."""

    @staticmethod
    def make():
        from qgis.core import QgsProcessingFeedback

        class Feedback(QgsProcessingFeedback):
            def __init__(self):
                super().__init__()
                self.warnings: list[str] = []
                self.infos: list[str] = []

            def pushWarning(self, warning):
                self.warnings.append(warning)
                super().pushWarning(warning)

            def pushInfo(self, info):
                self.infos.append(info)
                super().pushInfo(info)

        return Feedback()
