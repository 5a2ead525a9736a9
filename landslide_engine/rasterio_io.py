"""Opening and writing rasters safely.

``open_raster`` turns rasterio's errors for missing or corrupt files into one-line
:class:`InputError` messages that name the file. ``atomic_output`` makes every
write go to a temporary file in the destination folder that is renamed into
place only on success, so a cancelled or failed run never leaves a half-written
GeoTIFF or GeoPackage behind for QGIS to load.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from landslide_engine.errors import InputError


def open_raster(path: str | Path, what: str = "raster"):
    """Open ``path`` with rasterio, or raise InputError naming it."""
    import rasterio
    from rasterio.errors import RasterioIOError

    p = str(path)
    if not os.path.exists(p) and "://" not in p and not p.startswith("/vsi"):
        raise InputError(f"{what} file not found: {p}")
    try:
        return rasterio.open(p)
    except RasterioIOError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "unreadable"
        raise InputError(f"cannot read {what} {p}: {first}") from None


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception (including cancellation) the temporary file is removed and
    an existing file at ``path`` is left untouched.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.stem}.", suffix=".part" + dest.suffix, dir=dest.parent)
    os.close(fd)
    os.unlink(tmp)  # drivers like GPKG refuse to overwrite an existing empty file
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, tmp + ".aux.xml"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)
        raise
