"""Pure per-block kernels of chunked connected-component labeling.

Provisional ids are ``block_index << 32 | local_id`` (uint64), so every block labels alone.
Final ids follow the raster order of each component's first voxel, exactly like
``scipy.ndimage.label``. A block's labels stay on its backend (NumPy or CuPy); only the small
per-block outputs (first voxels, faces) come back to the host.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from .._backend import backend_of, get_array_module, group_min_max, label_kernel, to_numpy

BLOCK_SHIFT = np.uint64(32)
LOCAL_MASK = np.uint64(0xFFFFFFFF)


def label_block(mask, connectivity: int):
    """Label one block with the kernel of its backend -> (uint32 labels, n).

    Examples
    --------
    >>> labels, n = label_block(np.array([[[1, 1, 0, 1]]], bool), 6)
    >>> labels.tolist(), n
    ([[[1, 1, 0, 2]]], 2)
    """
    return label_kernel(backend_of(mask))(mask, connectivity)


def first_voxels(labels, n: int, origin: Sequence[int], shape: Sequence[int]) -> np.ndarray:
    """Global raster (C-order) index of each local label's first voxel, shape (n,), int64.

    The global raster order restricted to a block is its local raster order, so the first
    voxel in the block is the global minimum. ``labels`` (ids ``1..n``) may live on either
    backend; the result is on the host.

    Examples
    --------
    >>> first_voxels(np.array([[[0, 2, 1, 2]]]), 2, (1, 0, 0), (2, 1, 4)).tolist()
    [6, 5]
    """
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if backend_of(labels) == "numpy":
        # one compiled scan that stops once every label has been seen
        first = _first_indices(np.ascontiguousarray(labels).reshape(-1), n)
    else:
        xp = get_array_module(labels)
        flat = labels.ravel()
        idx = xp.flatnonzero(flat)
        lo, _ = group_min_max(flat[idx].astype(xp.int64) - 1, idx, n, flat.size)
        first = to_numpy(lo)
    local = np.unravel_index(first, labels.shape)
    glob = tuple(np.asarray(c, dtype=np.int64) + o for c, o in zip(local, origin))
    return np.ravel_multi_index(glob, tuple(shape)).astype(np.int64)


def encode(labels: np.ndarray, block_index: int) -> np.ndarray:
    """Provisional uint64 ids of a label array (0 stays 0).

    Examples
    --------
    >>> encode(np.array([0, 1, 2], np.uint32), 3).tolist() == [0, 3 << 32 | 1, 3 << 32 | 2]
    True
    """
    out = labels.astype(np.uint64)
    out[out > 0] |= np.uint64(block_index) << BLOCK_SHIFT
    return out


def faces(labels, block_index: int) -> list[np.ndarray]:
    """The six one-voxel faces (low, high per axis) of a block, as provisional ids on the host.

    Examples
    --------
    >>> [f.shape for f in faces(np.zeros((2, 3, 4), np.uint32), 0)]
    [(3, 4), (3, 4), (2, 4), (2, 4), (2, 3), (2, 3)]
    """
    out = []
    for axis in range(3):
        for end in (0, -1):
            plane = labels[(slice(None),) * axis + (end,)]
            out.append(encode(to_numpy(plane), block_index))
    return out


def plane_offsets(connectivity: int) -> list[tuple[int, int]]:
    """In-plane offsets (du, dv) that connect a voxel to the next plane along an axis.

    Examples
    --------
    >>> plane_offsets(6), len(plane_offsets(18)), len(plane_offsets(26))
    ([(0, 0)], 5, 9)
    """
    steps = [(du, dv) for du in (-1, 0, 1) for dv in (-1, 0, 1)]
    limit = {6: 0, 18: 1, 26: 2}[connectivity]
    return [s for s in steps if abs(s[0]) + abs(s[1]) <= limit]


def touching_pairs(lower: np.ndarray, upper: np.ndarray, connectivity: int) -> np.ndarray:
    """Pairs (k, 2) of provisional ids that touch across two adjacent planes.

    Examples
    --------
    Two ids that meet only diagonally across the plane touch at 26- but not 6-connectivity:

    >>> lower = np.array([[1, 0], [0, 0]], np.uint64)
    >>> upper = np.array([[0, 0], [0, 5]], np.uint64)
    >>> touching_pairs(lower, upper, 26).tolist(), touching_pairs(lower, upper, 6).tolist()
    ([[1, 5]], [])
    """
    lower = np.ascontiguousarray(lower, dtype=np.uint64)
    upper = np.ascontiguousarray(upper, dtype=np.uint64)
    offsets = np.array(plane_offsets(connectivity), dtype=np.int64)
    out = np.empty((np.count_nonzero(lower) * len(offsets), 2), dtype=np.uint64)
    k = _touching(lower, upper, offsets, out)
    if k == 0:
        return np.zeros((0, 2), dtype=np.uint64)
    return np.unique(out[:k], axis=0)


@numba.njit(cache=True, nogil=True)
def _touching(lower, upper, offsets, out):  # pragma: no cover - compiled
    """Write the pairs (lower[u, v], upper[u + du, v + dv]) of non-zero ids into ``out``;
    a pair equal to the previous one is skipped (runs along a row repeat it) -> count."""
    U, V = lower.shape
    k = 0
    last_a = np.uint64(0)
    last_b = np.uint64(0)
    for u in range(U):
        for v in range(V):
            a = lower[u, v]
            if a == 0:
                continue
            for j in range(offsets.shape[0]):
                uu = u + offsets[j, 0]
                vv = v + offsets[j, 1]
                if uu < 0 or uu >= U or vv < 0 or vv >= V:
                    continue
                b = upper[uu, vv]
                if b == 0 or (a == last_a and b == last_b):
                    continue
                out[k, 0] = a
                out[k, 1] = b
                k += 1
                last_a = a
                last_b = b
    return k


def resolve(counts: Sequence[int], firsts: Sequence[np.ndarray],
            pairs: np.ndarray) -> tuple[list[np.ndarray], int]:
    """Union-find over block-local ids -> per-block lookup tables to final ids, and the count.

    Parameters
    ----------
    counts : sequence of int
        Number of local labels of each block (block index order).
    firsts : sequence of int64 arrays
        First-voxel global raster index of each local label, per block.
    pairs : (k, 2) uint64
        Provisional ids that belong to the same component.

    Returns
    -------
    luts : list of arrays
        ``luts[b][local] = final id`` (index 0 maps to 0).
    n : int
        Number of components.

    Examples
    --------
    Block 0 has labels 1, 2; block 1 has label 1, joined to block 0's label 2 and first in
    raster order:

    >>> pairs = np.array([[0 << 32 | 2, 1 << 32 | 1]], np.uint64)
    >>> luts, n = resolve([2, 1], [np.array([50, 90]), np.array([10])], pairs)
    >>> [lut.tolist() for lut in luts], n
    ([[0, 2, 1], [0, 1]], 2)
    """
    counts = np.asarray(counts, dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    total = int(offsets[-1])
    if total == 0:
        return [np.zeros(1, dtype=np.uint32) for _ in counts], 0
    dense = np.zeros((len(pairs), 2), dtype=np.int64)
    if len(pairs):
        block = (pairs >> BLOCK_SHIFT).astype(np.int64)
        local = (pairs & LOCAL_MASK).astype(np.int64)
        dense = offsets[block] + local - 1
    graph = sparse.coo_matrix((np.ones(len(dense), dtype=np.int8), (dense[:, 0], dense[:, 1])),
                              shape=(total, total))
    ncomp, comp = csgraph.connected_components(graph, directed=False)
    first_all = np.concatenate([np.asarray(f, dtype=np.int64) for f in firsts])
    comp_first = np.full(ncomp, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(comp_first, comp, first_all)
    rank = np.empty(ncomp, dtype=np.int64)
    rank[np.argsort(comp_first, kind="stable")] = np.arange(1, ncomp + 1)
    final = rank[comp]
    dtype = label_dtype(ncomp)
    luts = [np.concatenate([[0], final[offsets[b]:offsets[b + 1]]]).astype(dtype)
            for b in range(len(counts))]
    return luts, int(ncomp)


def label_dtype(n: int) -> np.dtype:
    """uint32 when the count fits, else uint64.

    Examples
    --------
    >>> label_dtype(10), label_dtype(2**32)
    (dtype('uint32'), dtype('uint64'))
    """
    return np.dtype(np.uint32) if n < 2**32 - 1 else np.dtype(np.uint64)


def relabel(labels, lut: np.ndarray, out=None, *, check: bool = True):
    """Apply a lookup table (host array) to a label block, on the block's backend.

    On the host the table is applied by one compiled pass, into ``out`` when given (``out``
    may be ``labels`` itself when the dtypes agree: relabelling in place). Every label must
    index the table: ``check`` verifies it first (one more pass; skip it only for labels
    known to be in range, such as a kernel's ``1..n`` with a table of ``n + 1`` entries).

    Examples
    --------
    >>> relabel(np.array([[[0, 1, 2]]], np.uint32), np.array([0, 7, 3], np.uint32)).tolist()
    [[[0, 7, 3]]]
    >>> a = np.array([2, 0, 1], np.uint32)
    >>> relabel(a, np.array([0, 5, 9], np.uint32), out=a) is a, a.tolist()
    (True, [9, 0, 5])
    >>> relabel(np.array([3], np.uint32), np.array([0, 5], np.uint32))
    Traceback (most recent call last):
    ...
    ValueError: label 3 is outside the lookup table of 2 entries
    """
    if backend_of(labels) != "numpy":
        xp = get_array_module(labels)
        return xp.take(xp.asarray(lut), labels)
    lut = np.ascontiguousarray(lut)
    if check and labels.size:
        for bad in (int(labels.max()), int(labels.min()) if labels.dtype.kind == "i" else 0):
            if not 0 <= bad < len(lut):
                raise ValueError(f"label {bad} is outside the lookup table of {len(lut)} "
                                 "entries")
    if out is None:
        out = np.empty(labels.shape, dtype=lut.dtype)
    if out.shape != labels.shape or out.dtype != lut.dtype:
        raise ValueError(f"out must have shape {labels.shape} and dtype {lut.dtype}")
    direct = out.flags.c_contiguous
    dst = out.reshape(-1) if direct else np.empty(out.size, dtype=lut.dtype)
    _remap(np.ascontiguousarray(labels).reshape(-1), lut, dst)
    if not direct:
        out[...] = dst.reshape(out.shape)
    return out


@numba.njit(cache=True, nogil=True)
def _remap(src, lut, dst):  # pragma: no cover - compiled
    """``dst[i] = lut[src[i]]`` (``src`` may be ``dst``; labels already checked in range)."""
    for i in range(src.shape[0]):
        dst[i] = lut[src[i]]


@numba.njit(cache=True, nogil=True)
def _first_indices(flat, n):  # pragma: no cover - compiled
    """Smallest flat index of each label ``1..n`` (-1 if absent; other values are ignored).

    Runs of 64 voxels are OR-ed first (a loop the compiler vectorises) and scanned one by
    one only when they hold a label; the scan stops once all ``n`` labels are found.
    """
    first = np.full(n, -1, np.int64)
    found = 0
    size = flat.shape[0]
    whole = size - size % 64
    count = np.uint64(n)
    one = np.uint64(1)
    for start in range(0, size, 64):
        stop = start + 64 if start < whole else size
        if stop - start == 64:  # a fixed trip count: vectorised
            any_ = flat[start]
            for i in range(start, start + 64):
                any_ |= flat[i]
            if any_ == 0:
                continue
        for i in range(start, stop):
            k = np.uint64(flat[i]) - one  # 0 (and anything negative) wraps: 1 <= v <= n in one test
            if k < count and first[k] < 0:
                first[k] = i
                found += 1
                if found == n:
                    return first
    return first
