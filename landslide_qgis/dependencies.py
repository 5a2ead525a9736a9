"""Which of the engine's third-party packages QGIS's Python can import, and how to get the rest.

QGIS ships its own Python. numpy and GDAL come with it, but rasterio, h5py and the
inference runtimes (onnxruntime, torch) often do not. The plugin must still load without
them, keep the algorithms that do not need them (slope) working, and tell the analyst how to
install what is missing for *this* Python (the plugin's installer), instead of a traceback.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Requirement:
    module: str
    pip_name: str
    needed_for: str


RASTER_IO = Requirement("rasterio", "rasterio", "reading and writing rasters (every algorithm)")
H5 = Requirement("h5py", "h5py", "Landslide4Sense .h5 patches (Predict .h5 patches)")
ONNXRUNTIME = Requirement("onnxruntime", "onnxruntime", "running .onnx models (detection)")
MISSING_PREFIX = "Landslide Mapper needs Python packages QGIS cannot import:"
INSTALL_ACTION = "Raster ▸ Landslide Mapper ▸ Install Python packages…"
"""Where the plugin's installer dialog is in the QGIS menus (named in every missing-package message)."""
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
    """How to install ``reqs`` for the Python that runs QGIS: the plugin's dialog, or its installer in a terminal.

    Both put the packages into the plugin's own folder with QGIS's own interpreter (never ``--user``, which PEP 668
    refuses on current Linux distributions, never the system). On Linux rasterio and h5py come from the OS
    packages instead, so that they use the same GDAL and HDF5 as QGIS.
    """
    from landslide_qgis import install_dependencies as installer

    os_packages = [r.pip_name for r in reqs if r.module in (RASTER_IO.module, H5.module)]
    pip_packages = [r for r in reqs if r.module not in (RASTER_IO.module, H5.module)]
    steps = []
    if os_packages and sys.platform.startswith("linux"):
        steps.append("sudo apt install " + " ".join(f"python3-{name}" for name in os_packages))
        os_packages = []
    if pip_packages or os_packages:
        try:
            python = str(installer.qgis_python())
        except installer.InstallError:
            python = "python" if sys.platform.startswith("win") else "python3"
        script = Path(installer.__file__).resolve()
        torch = " --torch" if any(r.module == TORCH.module for r in pip_packages) else ""
        steps.append(f"{INSTALL_ACTION}, or in a terminal: {python} {script}{torch}")
    return " then ".join(steps)


def missing_message(reqs: list[Requirement]) -> str:
    """One line naming what is missing, what it is for, and how to install it."""
    what = "; ".join(f"{r.pip_name} ({r.needed_for})" for r in reqs)
    return f"{MISSING_PREFIX} {what}. Install with: {install_command(reqs)}, then restart QGIS."
