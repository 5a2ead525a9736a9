"""libtiff's own messages kept off stderr and recorded, so a failed GeoTIFF write says why in the engine's one line.

GDAL's GeoTIFF driver writes through libtiff, and libtiff reports a failure of GDAL's I/O callbacks (a full disk:
``_tiffWriteProc: File too large``) to its process-wide error handler. With GDAL 3.6 (Debian 12) that handler is
GDAL's, and the message becomes a GDAL error. With GDAL 3.13 (QGIS 3.44's Debian) GDAL gives libtiff handlers
per open file only, so these messages reach libtiff's default handler, which prints them to stderr itself: raw
lines beside the command line's one ``error:`` line, while GDAL's own error says only "Write failed", or
nothing. Either way GDAL's last error is a consequence ("Write error at scanline 0"), not the cause.

:func:`record` (command-line programs only: it changes the whole process, as
:func:`~landslide_engine.command_line.quiet_gdal` does) turns off libtiff's default error and warning printers,
and only them, and records libtiff's errors; :func:`first_error` is the first one in this thread since :func:`forget`:
the root cause ("File too large"), which :func:`landslide_engine.errors.writing` and
:func:`landslide_engine.targets.gdal_checked` put in their one line. Where nothing was recorded (the QGIS
plugin, a platform without ``dladdr``) they report GDAL's error as before.
"""

from __future__ import annotations

import atexit
import ctypes
import ctypes.util
import threading
from collections.abc import Callable, Iterator

# void (*TIFFErrorHandlerExt)(thandle_t, const char *module, const char *fmt, va_list ap); a va_list arrives as
# a pointer on every ABI that matters here (x86-64 and AArch64 pass the structure by reference, others are char*)
_HANDLER_EXT = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)
_MESSAGE_BYTES = 512

_seen = threading.local()
_done: set[str] = set()  # libraries already handled, by path
_handlers: list[object] = []
_lock = threading.Lock()


class _DlInfo(ctypes.Structure):
    _fields_ = [
        ("dli_fname", ctypes.c_char_p),
        ("dli_fbase", ctypes.c_void_p),
        ("dli_sname", ctypes.c_char_p),
        ("dli_saddr", ctypes.c_void_p),
    ]


def forget() -> None:
    """Start afresh in this thread: :func:`first_error` is None until libtiff reports the next error."""
    _seen.first = None


def first_error() -> str | None:
    """The first libtiff error recorded in this thread since :func:`forget` (e.g. "File too large"), if any."""
    return getattr(_seen, "first", None)


def record() -> None:
    """Silence libtiff's default stderr printers and record its errors, in every libtiff loaded in this process.

    A handler that is not libtiff's default (one GDAL before 3.9 installed to turn the messages into GDAL
    errors) is kept. Idempotent; call it after GDAL is loaded (the libtiff it uses is found among the loaded
    libraries).
    """
    try:
        libc = ctypes.CDLL(None)
        dladdr, vsnprintf = libc.dladdr, libc.vsnprintf
    except (OSError, AttributeError):
        return  # Windows: nothing recorded, GDAL's errors are reported as they are
    dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
    vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    with _lock:
        for path in _loaded_libtiffs():
            if path not in _done:
                _done.add(path)
                _take_over(ctypes.CDLL(path), dladdr, vsnprintf)


def _loaded_libtiffs() -> Iterator[str]:
    """Paths of the libtiff libraries mapped into this process (Linux), else the one the system would load.

    GDAL may bring its own (rasterio's wheels) beside the system's (QGIS, the osgeo bindings): each is handled.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            paths = {parts[5].strip() for parts in (line.split(None, 5) for line in maps) if len(parts) == 6}
    except OSError:
        found = ctypes.util.find_library("tiff")
        paths = {found} if found else set()
    for path in sorted(paths):
        name = path.rsplit("/", 1)[-1]
        if name.startswith("libtiff") and (".so" in name or name.endswith(".dylib")):
            yield path


def _take_over(lib: ctypes.CDLL, dladdr: Callable, vsnprintf: Callable) -> None:
    """In ``lib``: libtiff's default error and warning printers off; errors recorded unless someone records them."""

    def library_of(address: int | None) -> int | None:
        info = _DlInfo()
        return info.dli_fbase if address and dladdr(address, ctypes.byref(info)) else None

    own = library_of(ctypes.cast(lib.TIFFSetErrorHandler, ctypes.c_void_p).value)
    for setter in (lib.TIFFSetErrorHandler, lib.TIFFSetWarningHandler):
        setter.restype, setter.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
        previous = setter(None)
        if previous and (own is None or library_of(previous) != own):
            setter(previous)  # not libtiff's own printer: someone routes the messages (GDAL < 3.9); kept

    def keep_first(_handle: int | None, _module: bytes | None, fmt: bytes | None, args: int | None) -> None:
        if fmt is not None and first_error() is None:
            text = ctypes.create_string_buffer(_MESSAGE_BYTES)
            vsnprintf(text, _MESSAGE_BYTES, fmt, args)
            _seen.first = text.value.decode("utf-8", "replace").strip().rstrip(".") or None

    set_ext = lib.TIFFSetErrorHandlerExt
    set_ext.restype, set_ext.argtypes = ctypes.c_void_p, [ctypes.c_void_p]
    handler = _HANDLER_EXT(keep_first)
    previous_ext = set_ext(ctypes.cast(handler, ctypes.c_void_p))
    if previous_ext:
        set_ext(previous_ext)  # someone else's extended handler: theirs is kept, nothing recorded
        return
    _handlers.append(handler)  # the callback must outlive every call libtiff makes to it
    # at exit, while Python still runs: a file that GDAL's own clean-up closes later must not call into Python
    atexit.register(set_ext, None)
