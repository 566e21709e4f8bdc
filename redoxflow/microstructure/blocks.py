"""Halo blocks over dask arrays: each block knows its write region and reads a haloed one.

Kernels get one in-memory block (with its halo, clipped at the volume's faces) and the
write region's place inside it; no two tasks write the same output voxels, and reductions
count each voxel, face, edge or cell in exactly one block.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Sequence

import dask
import dask.array as da
import numpy as np

__all__ = ["regions", "halo_tasks", "map_halo", "split_for_workers"]


def regions(chunks: Sequence[Sequence[int]]) -> list[tuple[tuple[int, ...], tuple[slice, ...]]]:
    """(block index, write slices) of every block of a chunking, in raster order.

    Examples
    --------
    >>> [r[1][0] for r in regions(((2, 1), (3,), (3,)))]
    [slice(0, 2, None), slice(2, 3, None)]
    """
    starts = [np.concatenate([[0], np.cumsum(c)]).astype(int) for c in chunks]
    out = []
    for index in itertools.product(*[range(len(c)) for c in chunks]):
        out.append((index, tuple(slice(int(s[i]), int(s[i + 1]))
                                 for s, i in zip(starts, index))))
    return out


def _read(write: tuple[slice, ...], before: Sequence[int], after: Sequence[int],
          shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[int, ...]]:
    read = tuple(slice(max(w.start - b, 0), min(w.stop + a, n))
                 for w, b, a, n in zip(write, before, after, shape))
    return read, tuple(w.start - r.start for w, r in zip(write, read))


def halo_tasks(data, fn: Callable, *, before: Sequence[int] = (0, 0, 0),
               after: Sequence[int] = (0, 0, 0), args: Sequence = ()) -> list:
    """One delayed ``fn(block, origin, write_shape, write_slices, *args)`` per block.

    ``block`` is the write region grown by ``before``/``after`` voxels per axis (clipped to
    the volume); ``origin`` is the write region's corner inside it.

    Examples
    --------
    >>> import dask, dask.array as da
    >>> x = da.arange(10, chunks=4).reshape(1, 1, 10).rechunk((1, 1, 4))
    >>> tasks = halo_tasks(x, lambda b, o, s, w: b.size, after=(0, 0, 1))
    >>> dask.compute(tasks)[0]
    [5, 5, 2]
    """
    out = []
    for _, write in regions(data.chunks):
        read, origin = _read(write, before, after, data.shape)
        shape = tuple(w.stop - w.start for w in write)
        out.append(dask.delayed(fn)(data[read], origin, shape, write, *args))
    return out


def map_halo(data, fn: Callable, *, before: Sequence[int], after: Sequence[int],
             dtype, args: Sequence = ()):
    """A lazy array with ``data``'s chunks whose blocks are ``fn(block, origin, shape,
    write, *args)`` (see :func:`halo_tasks`).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> x = da.from_array(np.arange(6).reshape(1, 1, 6), chunks=(1, 1, 4))
    >>> def grow(b, o, s, w):
    ...     return b[:, :, o[2]:o[2] + s[2]] + (b.size - s[2])
    >>> map_halo(x, grow, before=(0, 0, 1), after=(0, 0, 1), dtype=int).compute().tolist()
    [[[1, 2, 3, 4, 5, 6]]]
    """
    tasks = halo_tasks(data, fn, before=before, after=after, args=args)
    grid = np.empty(data.numblocks, dtype=object)
    for (index, write), task in zip(regions(data.chunks), tasks):
        shape = tuple(w.stop - w.start for w in write)
        grid[index] = da.from_delayed(task, shape, dtype)
    return da.block(grid.tolist())


def split_for_workers(data, workers: int | None = None):
    """Split z further so that there are at least ``workers`` (default: CPUs) blocks.

    Examples
    --------
    >>> import dask.array as da
    >>> split_for_workers(da.zeros((8, 4, 4), chunks=-1), 4).chunks[0]
    (2, 2, 2, 2)
    """
    workers = workers or os.cpu_count() or 1
    if data.npartitions >= workers or data.shape[0] < 2:
        return data
    per_z = int(np.prod(data.numblocks[1:]))
    n = min(data.shape[0], -(-workers // per_z))
    step = -(-data.shape[0] // n)
    return data.rechunk((step,) + data.chunks[1:])
