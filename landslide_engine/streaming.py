"""The threads of a scene run: a reader ahead of the model, model workers, a writer behind it, and their clock.

The scene pipeline overlaps its stages so the model is never left waiting: a reader thread prepares the next
chunks of patches (GDAL reads and most numpy work release the GIL), ``workers`` model calls run at once (one
per core on the CPU), and a writer thread compresses and writes finished rows. :class:`StageClock` records
where the time went, for ``run.json`` and the benchmarks.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Generator, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import numpy as np


class StageClock:
    """Seconds spent in each stage of a run, summed; the reader, model, writer and main threads all add to it.

    Stages that run in other threads overlap each other, so the stages add up to more than the wall time;
    ``wait_for_input`` is how long the model sat idle waiting for the reader. ``cpu_seconds`` is the CPU time
    the measuring thread spent in each stage: on a machine shared with other work (or with the model's own
    threads) wall time counts the waits for a core too, CPU time only the stage's own work.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def measure(self, stage: str):
        started, cpu_started = time.perf_counter(), time.thread_time()
        try:
            yield
        finally:
            cpu = time.thread_time() - cpu_started
            elapsed = time.perf_counter() - started
            with self._lock:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + elapsed
                self.cpu_seconds[stage] = self.cpu_seconds.get(stage, 0.0) + cpu


def prefetched(jobs: Sequence[Any], produce: Callable[[Any], Any], ahead: int = 1) -> Generator[Any, None, None]:
    """``produce(job)`` for each job in order, in one reader thread that keeps ``ahead`` jobs ahead of the caller.

    Jobs are produced one after another, in order, so ``produce`` may carry state from one job to the next.
    At most ``ahead + 1`` results are in memory. Datasets read by ``produce`` must not be used by the caller
    meanwhile (GDAL dataset handles are not thread-safe). Closing the iterator early cancels the jobs not yet
    started and waits for the running one, so the caller may close the datasets afterwards.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="landslide-reader") as pool:
        pending: collections.deque[Future] = collections.deque()
        upcoming = iter(jobs)
        try:
            for job in upcoming:
                pending.append(pool.submit(produce, job))
                if len(pending) > ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
            for future in pending:
                with contextlib.suppress(BaseException):
                    future.result()  # let a running read finish before the datasets are closed


def run_in_order(
    items: Iterable[Any], work: Callable[[Any], Any], workers: int, name: str = "landslide-model"
) -> Generator[tuple[Any, Any], None, None]:
    """``(item, work(item))`` for each item, in the order of ``items``, with up to ``workers`` calls running at once.

    Each call runs whole in one thread, so one slow call (a worker that lost its core to the reader) delays
    only itself; results are handed back in order because the blending that follows needs them so. Up to
    ``2 * workers`` items are handed out at once, so a worker that finishes a short item (the last, partial batch
    of a chunk) starts the next one at once instead of waiting for the oldest to be handed back: with pieces of
    16 and 8 patches in turn, waiting for the oldest left one of two workers idle a third of the time.
    """
    if workers <= 1:
        for item in items:
            yield item, work(item)
        return
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        running: collections.deque[tuple[Any, Future]] = collections.deque()
        try:
            for item in items:
                running.append((item, pool.submit(work, item)))
                if len(running) >= 2 * workers:
                    done, future = running.popleft()
                    yield done, future.result()
            while running:
                done, future = running.popleft()
                yield done, future.result()
        finally:
            for _, future in running:
                future.cancel()


class RowWriter(Protocol):
    def write_rows(self, row: int, probability: np.ndarray, valid: np.ndarray | None = None, col: int = 0) -> None: ...


class BackgroundWriter:
    """Writes finished rows to the result rasters in a thread of its own, one strip at a time.

    Compressing and writing a strip then overlaps inference instead of holding it up. At most one strip is
    being written while the next is blended, so memory stays at two strips: the two arrays of :meth:`strip`,
    used in turn for the whole run (fresh memory for every strip would cost a page fault per 4 KiB). Only this
    thread touches the result rasters until :meth:`close` returns, and they keep nothing of a strip once their
    ``write_rows`` returns; a write's error is raised by the next call.
    """

    def __init__(self, rasters: RowWriter, clock: StageClock) -> None:
        self._rasters = rasters
        self._clock = clock
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="landslide-writer")
        self._pending: Future | None = None
        self._strips = [np.empty(0, np.float32), np.empty(0, np.float32)]

    def strip(self, rows: int, cols: int) -> np.ndarray:
        """A float32 (rows, cols) array to fill and hand to :meth:`write_rows`: not the one being written, which
        the next call waits for, so it may be filled while that one is compressed."""
        self._strips.reverse()
        if self._strips[0].size < rows * cols:
            self._strips[0] = np.empty(rows * cols, np.float32)
        return self._strips[0][: rows * cols].reshape(rows, cols)

    def _write(self, row: int, col: int, block: np.ndarray) -> None:
        with self._clock.measure("write"):
            self._rasters.write_rows(row, block, None, col)

    def write_rows(self, row: int, block: np.ndarray, col: int = 0) -> None:
        """Queue ``block`` (blended probabilities, NaN = no data) for rows from ``row`` on, columns from ``col``."""
        self.finish()
        self._pending = self._pool.submit(self._write, row, col, block)

    def finish(self) -> None:
        """Wait for the strip being written; raise its error, if any."""
        pending, self._pending = self._pending, None
        if pending is not None:
            with self._clock.measure("wait_for_writer"):
                pending.result()

    def close(self) -> None:
        """Stop the thread after the strip being written (an error then is dropped: another one is on its way)."""
        if self._pending is not None:
            with contextlib.suppress(BaseException):
                self._pending.result()
        self._pool.shutdown(wait=True)
