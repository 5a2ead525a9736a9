"""Which of the engine's third-party packages QGIS's Python can import, and how to get the rest.

QGIS ships its own Python. numpy and GDAL come with it, but rasterio, h5py and the
inference runtimes (onnxruntime, torch) often do not. The plugin must still load without
them, keep the algorithms that do not need them (slope) working, and tell the analyst the
exact command that installs what is missing into *this* Python, instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Requirement:
    module: str
    pip_name: str
    needed_for: str


RASTER_IO = Requirement("rasterio", "rasterio", "reading and writing rasters (every algorithm)")
H5 = Requirement("h5py", "h5py", "Landslide4Sense .h5 patches (Predict .h5 patches)")
ONNXRUNTIME = Requirement("onnxruntime", "onnxruntime", "running .onnx models (detection)")
TORCH = Requirement("torch", "torch", "running .pt models and the PyTorch backend (.onnx models need only onnxruntime)")


def importable(req: Requirement) -> bool:
    """True when ``req.module`` imports; a broken install (ImportError/OSError from a DLL) counts as missing."""
    if sys.modules.get(req.module) is not None:
        return True
    try:
        importlib.import_module(req.module)
    except Exception:  # a half-installed wheel raises OSError or AttributeError as well as ImportError
        return False
    return True


def missing_for_inference() -> list[Requirement]:
    """What detection lacks: rasterio, plus at least one of onnxruntime or torch.

    onnxruntime alone runs ``.onnx`` packages (the engine reads their metadata without torch or onnx); torch alone
    runs ``.pt`` packages. When neither imports, onnxruntime is asked for: it is the smaller install and runs the
    built-in model. A ``.pt`` package chosen without torch is refused by the engine with its own one-line message.
    """
    missing = [] if importable(RASTER_IO) else [RASTER_IO]
    if not importable(ONNXRUNTIME) and not importable(TORCH):
        missing.append(ONNXRUNTIME)
    return missing


def missing_for_import_error(exc: ImportError) -> list[Requirement]:
    """What to install after ``exc``: the usual inference packages, else the module that failed to import."""
    name = exc.name or str(exc)
    return missing_for_inference() or [Requirement(name, name, "this run")]


def install_command(reqs: list[Requirement]) -> str:
    """The command that installs ``reqs`` into the Python that runs QGIS.

    Inside QGIS ``sys.executable`` is the QGIS binary, not Python, so the interpreter is
    named per platform: OSGeo4W's shell on Windows, the bundled python3 on macOS, and the
    system python3 on Linux, where rasterio/h5py must come from the OS packages so that
    they use the same GDAL/HDF5 as QGIS.
    """
    names = " ".join(r.pip_name for r in reqs)
    if sys.platform.startswith("win"):
        return f"in the OSGeo4W Shell: python -m pip install {names}"
    if sys.platform == "darwin":
        return f"{sys.prefix}/bin/python3 -m pip install --user {names}"
    os_packages = [r.pip_name for r in reqs if r.module in (RASTER_IO.module, H5.module)]
    pip_packages = [r.pip_name for r in reqs if r.module not in (RASTER_IO.module, H5.module)]
    steps = []
    if os_packages:
        steps.append("sudo apt install " + " ".join(f"python3-{name}" for name in os_packages))
    if pip_packages:
        steps.append("python3 -m pip install --user " + " ".join(pip_packages))
    return " && ".join(steps)


def missing_message(reqs: list[Requirement]) -> str:
    """One line naming what is missing, what it is for, and how to install it."""
    what = "; ".join(f"{r.pip_name} ({r.needed_for})" for r in reqs)
    return (
        f"Landslide Mapper needs Python packages QGIS cannot import: {what}. "
        f"Install with: {install_command(reqs)}, then restart QGIS."
    )
