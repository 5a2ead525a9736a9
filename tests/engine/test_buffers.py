"""The reader's reused arrays: handed out again only once nothing refers to them."""

from __future__ import annotations

import threading

import numpy as np

from landslide_engine.buffers import BufferPool


def test_an_array_is_not_handed_out_while_any_view_of_it_lives():
    pool = BufferPool()
    first = pool.take((3, 4, 10), np.float32)
    first[...] = 1.0
    row = first[1, 2:]  # a slice
    batch = np.lib.stride_tricks.as_strided(first, shape=(2, 3, 4, 4), strides=(16, *first.strides), writeable=False)
    del first
    second = pool.take((3, 4, 10), np.float32)
    assert not np.shares_memory(second, row) and not np.shares_memory(second, batch)
    second[...] = 2.0
    assert (row == 1.0).all() and (batch == 1.0).all()  # the views still read what was written through them
    del row
    third = pool.take((3, 4, 10), np.float32)  # the strided batch still holds the first array
    assert not np.shares_memory(third, batch) and len(pool) == 3
    del second, third
    fourth = pool.take((3, 4, 10), np.float32)
    assert not np.shares_memory(fourth, batch) and len(pool) == 3  # a free one is reused, none made
    del fourth, batch
    reused = [pool.take((3, 4, 10), np.float32) for _ in range(3)]
    assert len(pool) == 3 and len({r.__array_interface__["data"][0] for r in reused}) == 3


def test_an_array_a_thread_still_holds_is_not_reused():
    """The model workers hold views in other threads: the pool counts their references too."""
    pool = BufferPool()
    taken = pool.take((8, 8), np.float64)
    taken[...] = 5.0
    release, seen = threading.Event(), []

    def worker(view: np.ndarray) -> None:
        release.wait()
        seen.append(float(view.sum()))

    thread = threading.Thread(target=worker, args=(taken[2:6],))
    thread.start()
    del taken
    other = pool.take((8, 8), np.float64)
    other[...] = -1.0
    release.set()
    thread.join()
    assert seen == [5.0 * 4 * 8]
    del other
    assert len(pool) == 2 and pool.take((8, 8), np.float64) is not None and len(pool) == 2


def test_another_shape_or_type_starts_afresh_without_touching_arrays_in_use():
    pool = BufferPool()
    held = pool.take((4, 5), np.uint16)
    held[...] = 7
    wider = pool.take((4, 6), np.uint16)
    assert wider.shape == (4, 6) and wider.dtype == np.uint16 and len(pool) == 1
    assert pool.take((4, 6), np.float32).dtype == np.float32
    back = pool.take((4, 5), np.uint16)
    assert not np.shares_memory(back, held) and (held == 7).all()
