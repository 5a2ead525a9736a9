"""Opening rasters safely.

``open_raster`` turns rasterio's errors for missing or corrupt files into one-line
:class:`InputError` messages that name the file, and refuses inputs that are not
regular files (a FIFO or a device would block the run forever or never end).
:class:`OpenRasters` keeps each input open once for a scene's set-up and run.
Writing is :mod:`landslide_engine.targets`' job.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


class OpenRasters:
    """Rasters opened once, by path, and closed together: one scene's inputs from set-up to the last read.

    Identifying the bands, building the grid and reading the stack all look at the same files; opening each one
    once spares repeated header reads (a JP2's, or a remote file's over HTTP). Open and close on one thread:
    rasterio >= 1.4 ties a dataset to the GDAL environment of the thread that opened it.
    """

    def __init__(self) -> None:
        self._files = contextlib.ExitStack()
        self._open: dict[str, Any] = {}

    def open(self, path: str | Path, what: str = "raster") -> Any:
        """The dataset at ``path``, opened on first use (InputError naming it, as :func:`open_raster`)."""
        key = str(path)
        if key not in self._open:
            self._open[key] = self._files.enter_context(open_raster(key, what=what))
        return self._open[key]

    def close(self) -> None:
        self._open.clear()
        self._files.close()

    def __enter__(self) -> OpenRasters:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def opened(path: str | Path, what: str, rasters: OpenRasters | None) -> Iterator[Any]:
    """``path`` from ``rasters``, which keep it open, or opened here and closed after the block without them."""
    if rasters is not None:
        yield rasters.open(path, what)
        return
    with open_raster(path, what=what) as src:
        yield src
