"""What the two command-line programs share: exit codes, termination signals and the one translation of failures.

``python -m landslide_engine`` and ``python -m training`` both run their subcommand through :func:`run_command`:
a failure that :func:`~landslide_engine.errors.classify` knows becomes ``error: <one line>`` on stderr and exit
code 2, without a traceback; Ctrl-C, SIGTERM and SIGHUP stop the run the same way (temporaries removed, exit
130, 143 or 129 with one line). Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator

from landslide_engine import libtiff_messages
from landslide_engine.errors import Cancelled, Terminated, classify, one_line

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a program killed by it
TERMINATION_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)  # SIGHUP does not exist on Windows


@contextlib.contextmanager
def termination_signals() -> Iterator[None]:
    """SIGTERM and SIGHUP raise :class:`Terminated` in the main thread, as SIGINT raises KeyboardInterrupt.

    After the first of them, further SIGINT/SIGTERM/SIGHUP are ignored until the clean-up is over, so a
    scheduler that signals twice cannot interrupt the removal of temporaries. Outside the main thread
    (where Python cannot install handlers) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    handled = (signal.SIGINT, *TERMINATION_SIGNALS)

    def stop(signum: int, frame) -> None:
        for other in handled:
            signal.signal(other, signal.SIG_IGN)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous = {signum: signal.signal(signum, stop) for signum in handled}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def quiet_gdal() -> None:
    """Keep GDAL's own ``ERROR 1: ...`` lines off stderr: the engine turns each failure into one line itself.

    GDAL still records every error (the engine checks them, see :func:`landslide_engine.targets.gdal_checked`);
    only the printing is off. Process-wide, so only command-line programs call it, never the QGIS plugin.

    The exception mode is chosen explicitly as well, the one the engine's checks of return codes expect: GDAL's
    Python bindings 3.9 and later print a FutureWarning to stderr in every program that leaves it unchosen.

    libtiff's own lines (``_tiffWriteProc: File too large.``, printed by libtiff itself under GDAL 3.9 and later)
    are kept off stderr too, and recorded, so the one line says why: see :mod:`landslide_engine.libtiff_messages`.
    """
    try:
        from osgeo import gdal, ogr, osr
    except ImportError:
        return
    gdal.SetErrorHandler("CPLQuietErrorHandler")
    for module in (gdal, ogr, osr):
        module.DontUseExceptions()
    import rasterio  # noqa: F401  (loaded here, so that the libtiff of its GDAL is among those taken over)

    libtiff_messages.record()


def run_command(run: Callable[[], int], before_message: Callable[[], None] = lambda: None) -> int:
    """``run()``'s exit code, or the exit code and one line on stderr for a classified failure.

    ``before_message`` runs first (e.g. to end a progress line) so the message starts a line of its own.
    """
    try:
        with termination_signals():
            code = run()
            sys.stdout.flush()  # here, not at exit: a reader gone by now is a broken pipe below, not a traceback
            return code
    except BrokenPipeError:
        # The reader of stdout went away (`models | head -1`): nothing to tell it, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except BaseException as exc:
        if isinstance(exc, Terminated):
            before_message()
            print(str(exc), file=sys.stderr)
            return 128 + exc.signum
        problem = classify(exc)
        if problem is None:
            raise
        before_message()
        if isinstance(problem, Cancelled):
            # A KeyboardInterrupt with a message says what was kept (training: the checkpoint to resume from).
            said = isinstance(exc, KeyboardInterrupt) and str(exc)
            print(one_line(str(exc)) if said else "interrupted; no output written", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"error: {one_line(str(problem))}", file=sys.stderr)
        return EXIT_BAD_INPUT
