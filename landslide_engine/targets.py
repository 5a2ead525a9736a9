"""Where outputs go: complete or absent, never over an input, and no temporaries left by a dead run.

* :func:`check_output_file` refuses an output path before any work: one that is an existing folder, lies
  under a file, is one of the inputs, or is in a folder that cannot be written.
* :func:`atomic_output` writes one file through a temporary sibling that is renamed into place only on
  success; :func:`gdal_checked` turns every GDAL failure of a write (a full disk surfaces only when GDAL
  flushes its blocks, long after the call that wrote them) into an :class:`~landslide_engine.errors.OutputError`.
* :class:`OutputSet` publishes several files as a set (the scene run's four outputs): all are written into a
  temporary folder, then swapped in while the folder is locked; the report (``run.json``) is removed first
  and published last, so a folder that holds a report holds that run's whole set, and a failed swap puts the
  previous set back.
* :func:`place_file` moves a finished file to where a host application asked for it, atomically even across
  file systems (a plain move there is a copy that a failure leaves half-written under the final name).
* Temporary names carry the writing process's id, so :func:`sweep_stale_temporaries` can remove those of a run
  that was killed (SIGKILL, power cut) on the next run into the same folder.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from landslide_engine import libtiff_messages
from landslide_engine.errors import InputError, OutputError, first_line, writing

TEMP_TAG = ".landslide-tmp"
"""Every temporary file or folder of this tool has this in its name, followed by the writer's process id."""
_TEMP_NAME = re.compile(re.escape(TEMP_TAG) + r"\.(\d+)\.")
STALE_AFTER_S = 60.0
"""A temporary of a dead process is removed only when untouched this long (another host may share the folder)."""


def _temp_prefix(stem: str) -> str:
    return f".{stem}{TEMP_TAG}.{os.getpid()}."


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _nearest_existing(path: Path) -> Path:
    for parent in [path, *path.parents]:
        if parent.exists():
            return parent
    return Path(".")


def check_output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """``folder`` as a Path if it is (or can become) a writable folder; OutputError naming it otherwise."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{what} {folder} is a file, not a folder")
    existing = _nearest_existing(folder)
    if not existing.is_dir():
        raise OutputError(f"{what} {folder} lies under {existing}, which is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{what} {folder}: {existing} is not writable")
    return folder


def probe_output_folder(folder: str | Path, what: str = "output folder") -> Path:
    """Prove that files can be created in ``folder`` now, by creating and removing one; OutputError otherwise.

    For work that writes only at its end (training): the permission bits do not tell about ``/proc``, a
    read-only mount or a full disk. Folders made for the probe are removed again.
    """
    folder = check_output_folder(folder, what)
    made = [parent for parent in [folder, *folder.parents] if not parent.exists()]
    with writing(folder, what):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=_temp_prefix("probe"), dir=folder)
            os.close(fd)
            os.unlink(probe)
        finally:
            for parent in made:
                with contextlib.suppress(OSError):
                    parent.rmdir()
    return folder


def check_output_file(path: str | Path, inputs: Iterable[str | Path] = (), what: str = "output") -> Path:
    """``path`` as a Path if a file can be written there without touching an input; OutputError otherwise."""
    path = Path(path)
    if str(path).strip() == "" or path.name in ("", ".", ".."):
        raise OutputError(f"{what} {str(path)!r} is not a file name")
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder; give a file name")
    if path.exists() and not path.is_file():
        raise OutputError(f"{what} {path} is not a regular file (a device or pipe)")
    for given in inputs:
        if given and _same_file(path, Path(given)):
            raise OutputError(f"{what} {path} is also an input; write it elsewhere")
    check_output_folder(path.parent, what=f"folder of {what} {path.name}")
    return path


def check_distinct(paths: Sequence[str | Path], what: str = "outputs") -> None:
    """Refuse two outputs that are the same file: the second would silently replace the first."""
    seen: list[Path] = []
    for path in map(Path, paths):
        for earlier in seen:
            if _same_file(path, earlier):
                raise OutputError(f"two {what} are the same file {path}; give each its own")
        seen.append(path)


def _remove(path: str | Path) -> None:
    path = Path(path)
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()


@contextlib.contextmanager
def atomic_output(path: str | Path, what: str = "output") -> Iterator[str]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception (including cancellation and termination signals) the temporary file is removed and an
    existing file at ``path`` is left untouched. ``OSError``s of the writes become OutputErrors naming ``path``.
    """
    dest = Path(path)
    with writing(dest, what):
        dest.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(dest.parent)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(dest.stem), suffix=".part" + dest.suffix, dir=dest.parent)
        os.close(fd)
        os.unlink(tmp)  # drivers like GPKG refuse to overwrite an existing empty file
    try:
        with writing(dest, what):
            yield tmp
            os.replace(tmp, dest)
    except BaseException:
        for leftover in (tmp, tmp + ".aux.xml"):
            _remove(leftover)
        raise


@contextlib.contextmanager
def gdal_checked(path: str | Path, what: str = "output") -> Iterator[None]:
    """Raise OutputError if GDAL failed while writing ``path`` inside the block, in this thread.

    GDAL reports write failures (``File too large``, ``No space left on device``) as errors, not exceptions,
    and often only when its cached blocks are flushed at close; rasterio and the osgeo bindings then carry
    on. GDAL's last error is per thread, so the block must contain the writes and the close of the dataset
    in the thread that does them.
    """
    from osgeo import gdal

    gdal.ErrorReset()
    libtiff_messages.forget()
    yield
    if gdal.GetLastErrorType() >= gdal.CE_Failure:
        raise gdal_write_error(path, what)


def gdal_write_error(path: str | Path, what: str = "output") -> OutputError:
    """The error for a failed GDAL write of ``path`` in this thread, by its root cause: libtiff's first error
    since :func:`gdal_checked` began (a full disk says "File too large"), else GDAL's last error."""
    from osgeo import gdal

    message = libtiff_messages.first_error() or gdal.GetLastErrorMsg().strip() or "GDAL write failed"
    gdal.ErrorReset()
    return OutputError(f"cannot write {what} {path}: {message.splitlines()[0]}")


def place_file(src: str | Path, dest: str | Path, what: str = "output") -> Path:
    """Move the finished file ``src`` to ``dest``: a rename on one file system, else a copy into a temporary
    sibling of ``dest`` that is renamed into place; ``dest`` is never left half-written. ``src`` is removed."""
    src, dest = Path(src), Path(dest)
    with writing(dest, what):
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(src, dest)
            return dest
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
    with atomic_output(dest, what) as tmp:
        shutil.copyfile(src, tmp)
    _remove(src)
    return dest


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def sweep_stale_temporaries(folder: str | Path, now: float | None = None) -> list[Path]:
    """Remove this tool's temporaries in ``folder`` left by processes that no longer run; returns them.

    A temporary is stale when the process id in its name is not running and it has not been touched for
    :data:`STALE_AFTER_S` (a process on another host sharing the folder has an id that means nothing here).
    """
    removed: list[Path] = []
    now = time.time() if now is None else now
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = _TEMP_NAME.search(entry.name)
        if not match or not entry.name.startswith("."):
            continue
        pid = int(match.group(1))
        try:
            age = now - entry.stat(follow_symlinks=False).st_mtime
        except OSError:
            continue
        if pid != os.getpid() and not _pid_alive(pid) and age >= STALE_AFTER_S:
            _remove(entry.path)
            removed.append(Path(entry.path))
    return removed


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """An exclusive lock on ``folder`` for the swap of a set, so two runs into one folder publish one at a time.

    Locks the folder itself (no lock file left behind); where ``fcntl`` does not exist the swap is unlocked.
    """
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        with contextlib.suppress(OSError):  # a file system without locks (some network mounts): swap unlocked
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class OutputSet:
    """Files written together into ``folder`` and published as a set.

    Use as a context manager: :meth:`path` gives where to write each named file (inside a temporary folder
    in ``folder``); on success every file is moved into ``folder`` with ``report`` last, on failure the
    temporary folder is removed and ``folder`` keeps its previous set untouched.
    """

    def __init__(
        self, folder: str | Path, names: Sequence[str], report: str, inputs: Iterable[str | Path] = ()
    ) -> None:
        if report not in names:
            raise ValueError(f"the report {report} must be one of the set's files")
        self.folder = check_output_folder(folder)
        self.names = [name for name in names if name != report] + [report]
        self.report = report
        inputs = list(inputs)
        for name in self.names:
            check_output_file(self.final(name), inputs)
        self._staging: Path | None = None

    def __enter__(self) -> OutputSet:
        with writing(self.folder, "output folder"):
            self.folder.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(self.folder)
            self._staging = Path(tempfile.mkdtemp(prefix=_temp_prefix("run"), suffix=".part", dir=self.folder))
        return self

    def path(self, name: str) -> str:
        """Where to write ``name`` during the run."""
        if self._staging is None:
            raise RuntimeError("OutputSet used outside its with block")
        return str(self._staging / name)

    def final(self, name: str) -> Path:
        """Where ``name`` will be once published."""
        return self.folder / name

    def __exit__(self, exc_type, exc, tb) -> None:
        staging, self._staging = self._staging, None
        if staging is None:
            return
        try:
            if exc_type is None:
                self._publish(staging)
        finally:
            _remove(staging)
        if isinstance(exc, InputError) and str(staging) in str(exc):
            # Name the output as the analyst knows it, not the temporary folder that is gone now.
            raise type(exc)(str(exc).replace(str(staging), str(self.folder))) from None

    def _publish(self, staging: Path) -> None:
        """Swap the staged files in: the old report goes first, the new one comes last; roll back on failure."""
        backup = staging / ".previous"
        backup.mkdir()
        moved_away: list[str] = []
        moved_in: list[str] = []
        with _folder_lock(self.folder):
            try:
                for name in [self.report, *self.names[:-1]]:  # the old report first: no report, no claim
                    if os.path.lexists(self.final(name)):
                        if self.final(name).is_dir():
                            raise OutputError(f"output {self.final(name)} is a folder; remove it or write elsewhere")
                        os.replace(self.final(name), backup / name)
                        moved_away.append(name)
                for name in self.names:  # the new report last
                    os.replace(staging / name, self.final(name))
                    moved_in.append(name)
            except BaseException as exc:
                for name in moved_in:
                    _remove(self.final(name))
                for name in reversed(moved_away):
                    with contextlib.suppress(OSError):
                        os.replace(backup / name, self.final(name))
                if isinstance(exc, OSError):
                    raise OutputError(f"cannot publish the outputs in {self.folder}: {first_line(exc)}") from None
                raise
