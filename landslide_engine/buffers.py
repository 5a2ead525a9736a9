"""Arrays reused from one chunk to the next, handed out again only once nothing else refers to them.

The scene reader fills a few arrays of the same shapes for every chunk (the strip of 14 bands, its no-data
mask, the Sentinel-2 values GDAL reads). Fresh arrays of that size cost the kernel a page fault and a page
clearing for every 4 KiB written into them: about a fifth of the whole process's CPU on the 3072² scene
before this pool. A reused array's pages are already mapped.

The lifetimes are those of Python references, not of a protocol between threads: the model workers hold views
of a chunk's strip until its rows are blended, and any view (a slice, a strided batch of patches) keeps a
reference to the array it looks into. :meth:`BufferPool.take` hands out an array again only when the pool's
own reference is the only one left, so no array is ever overwritten while something can still read it; when
all are in use it makes a new one.
"""

from __future__ import annotations

import sys

import numpy as np


def _references(arrays: list[np.ndarray], i: int) -> int:
    """References to ``arrays[i]``, counted the same way for the probe below and for every check."""
    return sys.getrefcount(arrays[i])


def _unreferenced_count() -> int:
    """What :func:`_references` says of an array that only its list holds (2 on CPython 3.11; calibrated, because
    the interpreter's own temporary references differ between versions)."""
    probe = [np.empty(1)]
    return _references(probe, 0)


_UNREFERENCED = _unreferenced_count()


class BufferPool:
    """Arrays of one shape and type at a time, reused once no view or other reference to them is left.

    Asking for another shape or type drops the pool's free arrays (and forgets those in use, which are freed
    when their last user lets go), so a pool holds at most the arrays of one shape that were in use at once.
    Contents of a taken array are whatever was there: the caller writes every element it reads.
    """

    def __init__(self) -> None:
        self._key: tuple[tuple[int, ...], np.dtype] | None = None
        self._arrays: list[np.ndarray] = []

    def take(self, shape: tuple[int, ...], dtype: np.dtype | type) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` that nothing else refers to: a reused one, or a new one."""
        key = (tuple(int(n) for n in shape), np.dtype(dtype))
        if key != self._key:
            self._key, self._arrays = key, []
        for i in range(len(self._arrays)):
            if _references(self._arrays, i) == _UNREFERENCED:
                return self._arrays[i]
        array = np.empty(key[0], dtype=key[1])
        self._arrays.append(array)
        return array

    def __len__(self) -> int:
        """Arrays the pool holds (in use or free)."""
        return len(self._arrays)
