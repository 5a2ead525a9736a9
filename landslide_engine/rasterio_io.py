"""Opening rasters safely.

``open_raster`` turns rasterio's errors for missing or corrupt files into one-line
:class:`InputError` messages that name the file, and refuses inputs that are not
regular files (a FIFO or a device would block the run forever or never end).
Writing is :mod:`landslide_engine.targets`' job.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from landslide_engine.errors import InputError


def check_input_file(path: str | Path, what: str = "input") -> None:
    """InputError unless ``path`` is a regular file, a folder (some formats are folders) or a GDAL virtual path.

    A FIFO, socket or device given as an input would block the read forever or never reach its end.
    """
    p = str(path)
    if "://" in p or p.startswith("/vsi"):
        return
    try:
        mode = os.stat(p).st_mode
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {p}") from None
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise InputError(f"{what} {p} is not a regular file (a pipe or device); give a file")


def open_raster(path: str | Path, what: str = "raster"):
    """Open ``path`` with rasterio, or raise InputError naming it."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = str(path)
    check_input_file(p, what)
    try:
        return rasterio.open(p)
    except RasterioIOError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InputError(f"cannot read {what} {p}: {first}") from None
