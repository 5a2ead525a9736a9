"""The one place that classifies failures: what the analyst can act on, and what is a bug.

Every failure caused by what the user gave (a missing band, a corrupt or truncated file, extents that do not
overlap, a model that does not fit the data, an output that cannot be written) is an :class:`InputError` with
a one-line message naming the file, band or parameter. Its subclasses say which side is at fault, so a front
end can say more where it helps: :class:`OutputError` (the output target: a full disk, a read-only folder, an
output that is also an input), :class:`ModelError` (the model package), :class:`ParameterError` (an option
out of its bounds or not finite). :class:`Cancelled` is not an error: the caller asked the engine to stop
(Cancel in QGIS); Ctrl-C and termination signals (:class:`Terminated`) arrive as KeyboardInterrupt.

Failures from libraries (GDAL read errors in the middle of a file, ``OSError`` on a write) are turned into
these classes where they happen, by :func:`reading` and :func:`writing`, which know the file. Whatever still
reaches a front end is classified by :func:`classify`: the CLIs print ``error: <line>`` and exit 2, QGIS
raises a ``QgsProcessingException`` with the line. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import errno
import signal
from collections.abc import Iterator
from pathlib import Path

from landslide_engine import libtiff_messages


class InputError(Exception):
    """Bad input from the user; the message is one actionable line. Base of every user-actionable error."""


class OutputError(InputError):
    """An output cannot be written where it was asked for (full disk, no permission, a folder, an input)."""


class ModelError(InputError):
    """A model package is unusable: unreadable, hostile, or its graph does not fit its metadata."""


class ParameterError(InputError):
    """A parameter is not finite, not unique, or beyond the bound that keeps the work finite."""


class Cancelled(Exception):
    """The caller asked the engine to stop; nothing was written."""


class Terminated(KeyboardInterrupt):
    """A termination signal (SIGTERM, SIGHUP) stopped the run.

    A KeyboardInterrupt, so that every clean-up written for Ctrl-C (temporaries removed, a training
    checkpoint saved) runs for a batch scheduler's signal too.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}; no output written")


# errno values that mean "the output cannot be written there", as opposed to a bug.
_OUTPUT_ERRNOS = {
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EFBIG,
    errno.EROFS,
    errno.EACCES,
    errno.EPERM,
    errno.EISDIR,
    errno.ENOTDIR,
    errno.ENOENT,
    errno.EEXIST,
    errno.EXDEV,
    errno.ENAMETOOLONG,
    errno.EINVAL,
    errno.EIO,
}


def first_line(exc: BaseException) -> str:
    """The first non-empty line of ``exc``'s message, or its type name: one line for the analyst.

    rasterio >= 1.4 raises "Read failed. See previous exception for details." with GDAL's own error as the cause:
    the cause is what says why.
    """
    while "See previous exception" in str(exc):
        cause = exc.__cause__ or exc.__context__
        if cause is None:
            break
        exc = cause
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    for line in text.splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__


def _is_gdal_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from GDAL through rasterio or the osgeo bindings (read/write failures, CPLE_*)."""
    module = type(exc).__module__ or ""
    return module.startswith(("rasterio", "osgeo")) or type(exc).__name__.startswith("CPLE_")


@contextlib.contextmanager
def _named(failure: str, error: type[InputError]) -> Iterator[None]:
    """Re-raise an ``OSError`` or GDAL error as ``error("<failure>: <its first line>")``; the rest passes through.

    A GDAL error is told by its root cause where libtiff recorded one in the block ("File too large": GDAL's own
    error then says only "Write failed" or which write failed).

    Errors that are already classified (an InputError, Cancelled) pass through unchanged.
    """
    libtiff_messages.forget()
    try:
        yield
    except (InputError, Cancelled):
        raise
    except Exception as exc:
        if _is_gdal_error(exc):
            raise error(f"{failure}: {libtiff_messages.first_error() or first_line(exc)}") from None
        if isinstance(exc, OSError):
            raise error(f"{failure}: {first_line(exc)}") from None
        raise


def reading(path: str | Path, what: str = "raster") -> contextlib.AbstractContextManager[None]:
    """Turn a failure while reading ``path`` (a truncated or corrupt block, an I/O error) into one InputError."""
    return _named(f"cannot read {what} {path}", InputError)


def writing(path: str | Path, what: str = "output") -> contextlib.AbstractContextManager[None]:
    """Turn a failure while writing ``path`` (full disk, file size limit, permission, GDAL) into an OutputError."""
    return _named(f"cannot write {what} {path}", OutputError)


def classify(exc: BaseException) -> InputError | Cancelled | None:
    """What a front end should report for ``exc``: an InputError or Cancelled, or None for a bug (traceback).

    Failures that left the engine without a file named by :func:`reading`/:func:`writing` are still
    classified here, from their type: GDAL errors (whose messages name the file), ``OSError`` with an
    errno that means the file system refused (full disk, permission, missing folder), and memory
    exhaustion. Ctrl-C is a cancel.
    """
    if isinstance(exc, (InputError, Cancelled)):
        return exc
    if isinstance(exc, KeyboardInterrupt):
        return Cancelled("interrupted")
    if isinstance(exc, MemoryError):
        return InputError("not enough memory for this run; make the extent or the batch size smaller")
    if isinstance(exc, OSError) and (exc.errno in _OUTPUT_ERRNOS or _is_gdal_error(exc)):
        where = f"{exc.filename}: " if exc.filename else ""
        return InputError(f"{where}{first_line(exc)}")
    if _is_gdal_error(exc):
        return InputError(first_line(exc))
    return None


def one_line(text: str) -> str:
    """``text`` reduced to one printable line: control characters (ANSI escapes, CR, newlines) shown escaped,
    so a file or model name can never forge or hide terminal output."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)
