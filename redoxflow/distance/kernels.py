"""Pure per-block kernels of the exact separable Euclidean distance transform.

The squared distance to the nearest feature voxel is separable (Saito-Toriwaki; Felzenszwalb
and Huttenlocher 2012): a binary 1D pass along z gives each voxel its distance to the nearest
feature in its column; passes along y and then x take, per line, the lower envelope of the
parabolas ``s^2 (q - p)^2 + f(p)``, one plane at a time. The z pass needs only two small maps per block from the
blocks above and below (:func:`column_extents`), so the whole transform streams in slabs of
whole (y, x) planes. The envelope is compiled with numba: neither scipy nor ``edt`` exposes
the 1D parabolic pass over arbitrary input values, which the chunked z pass needs.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numba
import numpy as np

NONE_BELOW = np.iinfo(np.int32).min // 2  # "no feature before": far enough to never win
NONE_ABOVE = np.iinfo(np.int32).max // 2
_LOCAL = threading.local()


def work_array(shape: tuple, dtype) -> np.ndarray:
    """A per-thread work array, reused from call to call (uninitialised).

    A fresh slab-sized array costs more in page faults than the pass that fills it (measured:
    4.8 against 0.5 ns per voxel for the z pass), so each thread keeps the largest it needed.

    Examples
    --------
    >>> a = work_array((2, 3), np.int32); b = work_array((3,), np.int32)
    >>> a.shape, b.dtype.name, bool(np.shares_memory(a, b))
    ((2, 3), 'int32', True)
    """
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape)) * dtype.itemsize
    buf = getattr(_LOCAL, "buf", None)
    if buf is None or buf.nbytes < nbytes:
        buf = _LOCAL.buf = np.empty(nbytes, np.uint8)
    return buf[:nbytes].view(dtype).reshape(shape)


def column_extents(mask: np.ndarray, z0: int) -> tuple[np.ndarray, np.ndarray]:
    """Global z of the first and last feature voxel of each (y, x) column of a block.

    Parameters
    ----------
    mask : bool ndarray, shape (bz, y, x)
        Feature voxels of a slab of whole planes.
    z0 : int
        Global z of the slab's first plane.

    Returns
    -------
    first, last : int32 ndarray, shape (y, x)
        ``NONE_ABOVE`` / ``NONE_BELOW`` in columns without a feature voxel.

    Examples
    --------
    >>> m = np.zeros((4, 1, 2), bool); m[1, 0, 0] = m[3, 0, 0] = True
    >>> first, last = column_extents(m, 10)
    >>> int(first[0, 0]), int(last[0, 0]), bool(last[0, 1] == NONE_BELOW)
    (11, 13, True)
    """
    first = np.full(mask.shape[1:], NONE_ABOVE, np.int32)
    last = np.full(mask.shape[1:], NONE_BELOW, np.int32)
    _extents(np.ascontiguousarray(mask, dtype=np.bool_), int(z0), first, last)
    return first, last


@numba.njit(cache=True, nogil=True)
def _extents(mask, z0, first, last):  # pragma: no cover - compiled
    """One pass of :func:`column_extents` (numpy's two argmax passes cost 3x more)."""
    bz, ny, nx = mask.shape
    for k in range(bz):
        for y in range(ny):
            for x in range(nx):
                if mask[k, y, x]:
                    if first[y, x] == NONE_ABOVE:
                        first[y, x] = z0 + k
                    last[y, x] = z0 + k


@numba.njit(cache=True, nogil=True)
def _envelope(f, w, out, v, zb):  # pragma: no cover - compiled
    """Lower envelope of parabolas ``w (q - p)^2 + f[p]`` sampled at every q (1D, in place)."""
    n = f.shape[0]
    k = -1
    for q in range(n):
        fq = f[q]
        if fq == np.inf:
            continue
        if k < 0:
            k = 0
            v[0] = q
            zb[0] = -np.inf
            zb[1] = np.inf
            continue
        while True:
            p = v[k]
            s = ((fq + w * q * q) - (f[p] + w * p * p)) / (2.0 * w * (q - p))
            if s <= zb[k]:
                k -= 1
                if k < 0:
                    break
            else:
                break
        if k < 0:
            k = 0
            v[0] = q
            zb[0] = -np.inf
        else:
            k += 1
            v[k] = q
            zb[k] = s
        zb[k + 1] = np.inf
    if k < 0:
        for q in range(n):
            out[q] = np.inf
        return
    k = 0
    for q in range(n):
        while zb[k + 1] < q:
            k += 1
        d = q - v[k]
        out[q] = w * d * d + f[v[k]]


@numba.njit(cache=True, nogil=True)
def _transpose(a, out):  # pragma: no cover - compiled
    """``out[:] = a.T`` in cache-sized tiles."""
    n0, n1 = a.shape
    for i0 in range(0, n0, 32):
        for j0 in range(0, n1, 32):
            for i in range(i0, min(i0 + 32, n0)):
                for j in range(j0, min(j0 + 32, n1)):
                    out[j, i] = a[i, j]


@numba.njit(cache=True, nogil=True)
def _slab(mask, z0, below, above, sz, sy, sx, need, labels, lo, minima, seen, pts, at,
          out, nxt):  # pragma: no cover - compiled
    """The three passes over a slab, one plane at a time (see :func:`slab_sqdist`).

    Only the image rows flagged in ``need`` get their x pass (the caller flags every row
    holding a label). A row's squared distances go to ``out`` (when it has planes), to
    the per-label minima ``minima[label - lo]`` (when ``labels`` has planes; ``seen``
    marks the labels met) and to ``at`` for the points ``pts`` (local (k, y, x), sorted
    by row) in that row. ``nxt`` (int32, the slab's shape) is work space.
    """
    bz, ny, nx = mask.shape
    write = out.shape[0] > 0
    reduce_ = labels.shape[0] > 0
    # nxt: global z of the next feature at or after each voxel
    for y in range(ny):
        for x in range(nx):
            nxt[bz - 1, y, x] = z0 + bz - 1 if mask[bz - 1, y, x] else above[y, x]
    for k in range(bz - 2, -1, -1):
        for y in range(ny):
            for x in range(nx):
                nxt[k, y, x] = z0 + k if mask[k, y, x] else nxt[k + 1, y, x]
    prev = below.copy()
    plane = np.empty((ny, nx), np.float64)
    column = np.empty((nx, ny), np.float64)  # the plane, transposed: y lines contiguous
    line = np.empty(max(nx, ny), np.float64)
    row = np.empty(nx, np.float64)
    finite = np.empty(nx, np.bool_)  # columns with a finite z distance in the plane
    v = np.empty(max(nx, ny), np.int64)
    zb = np.empty(max(nx, ny) + 1, np.float64)
    wz, wy, wx = sz * sz, sy * sy, sx * sx
    far = NONE_ABOVE // 2
    p = 0
    for k in range(bz):
        z = z0 + k
        if not need[k].any():  # only the columns' last feature moves on
            for y in range(ny):
                for x in range(nx):
                    if mask[k, y, x]:
                        prev[y, x] = z
            continue
        finite[:] = False
        for y in range(ny):  # the z pass, fused with the update of the last feature
            for x in range(nx):
                last = z if mask[k, y, x] else prev[y, x]
                prev[y, x] = last
                gap = min(z - last, nxt[k, y, x] - z)
                near = gap < far
                plane[y, x] = wz * gap * gap if near else np.inf
                finite[x] |= near
        n_finite = finite.sum()
        if 8 * n_finite < nx:  # few columns reach a feature: gather them one by one
            for x in range(nx):
                if finite[x]:
                    line[:ny] = plane[:, x]
                    _envelope(line[:ny], wy, column[x], v, zb)
                    plane[:, x] = column[x]
        else:  # the y pass on contiguous lines of the transposed plane
            _transpose(plane, column)
            for x in range(nx):
                if finite[x]:
                    line[:ny] = column[x]
                    _envelope(line[:ny], wy, column[x], v, zb)
            _transpose(column, plane)
        for y in range(ny):
            if not need[k, y]:
                continue
            _envelope(plane[y], wx, row, v, zb)
            if write:
                out[k, y, :] = row
            if reduce_:
                for x in range(nx):
                    lab = labels[k, y, x]
                    if lab != 0:
                        i = lab - lo
                        seen[i] = True
                        if row[x] < minima[i]:
                            minima[i] = row[x]
            while p < pts.shape[0] and pts[p, 0] == k and pts[p, 1] == y:
                at[p] = row[pts[p, 2]]
                p += 1


_NO_LABELS = np.zeros((0, 0, 0), np.uint32)
_NO_POINTS = np.zeros((0, 3), np.int64)


def slab_sqdist(mask: np.ndarray, z0: int, below: np.ndarray, above: np.ndarray,
                spacing: Sequence[float], need: np.ndarray | None = None,
                dtype=np.float64) -> np.ndarray:
    """Exact squared Euclidean distance to the nearest feature voxel, for a slab of whole
    planes, given the columns' nearest feature before and after the slab.

    Parameters
    ----------
    mask : bool ndarray, shape (bz, y, x)
        Feature voxels of a slab of whole planes starting at global plane ``z0``.
    below, above : int32 ndarray, shape (y, x)
        Global z of the nearest feature voxel before / after the slab, per column
        (``NONE_BELOW`` / ``NONE_ABOVE`` where there is none).
    spacing : (z, y, x) float
        Voxel size.
    need : bool ndarray, shape (bz, y), optional
        The image rows whose distances are wanted (default all); others are left unset.
    dtype : numpy dtype
        Of the result: float64, or an integer type for whole-number squared distances
        (integer ``spacing``), written as such without a float copy.

    Returns
    -------
    ndarray of ``dtype``, shape (bz, y, x)
        ``inf`` (an integer type's maximum) everywhere when there is no feature voxel at all.

    Examples
    --------
    >>> from scipy import ndimage
    >>> rng = np.random.default_rng(0)
    >>> m = rng.random((6, 7, 8)) < 0.05
    >>> none_b = np.full((7, 8), NONE_BELOW, np.int32)
    >>> none_a = np.full((7, 8), NONE_ABOVE, np.int32)
    >>> got = slab_sqdist(m, 0, none_b, none_a, (2.0, 1.0, 0.5))
    >>> ref = ndimage.distance_transform_edt(~m, sampling=(2.0, 1.0, 0.5)) ** 2
    >>> bool(np.allclose(got, ref))
    True
    """
    out = np.empty(mask.shape, dtype)
    if out.dtype.kind in "iu" and not (mask.any() or (below > NONE_BELOW).any()
                                       or (above < NONE_ABOVE).any()):
        out.fill(np.iinfo(out.dtype).max)  # no feature at all: inf has no integer
        return out
    need = np.ones(mask.shape[:2], np.bool_) if need is None else np.asarray(need, np.bool_)
    _run_slab(mask, z0, below, above, spacing, need, _NO_LABELS, 0, np.zeros(0),
              np.zeros(0, np.bool_), _NO_POINTS, np.zeros(0), out)
    return out


def slab_label_minima(labels: np.ndarray, masks: Sequence[np.ndarray], z0: int,
                      belows: Sequence[np.ndarray], aboves: Sequence[np.ndarray],
                      spacing: Sequence[float], points: np.ndarray = _NO_POINTS):
    """Per label of a slab, the minimum squared distance to the nearest voxel of each feature
    mask, and the squared distances at given voxels, without a distance volume.

    Parameters
    ----------
    labels : integer ndarray, shape (bz, y, x)
        0 is background.
    masks : sequence of bool ndarray, shape (bz, y, x)
        One feature mask per wall kind (the labels are scanned once for all of them).
    z0, spacing
        As for :func:`slab_sqdist`.
    belows, aboves : sequences of int32 ndarray, shape (y, x)
        Each mask's ``below`` and ``above`` maps (see :func:`slab_sqdist`).
    points : int ndarray, shape (m, 3)
        Local voxel indices (k, y, x) whose squared distances are wanted.

    Returns
    -------
    ids : ndarray, shape (n,)
        The labels present in the slab, sorted.
    minima : float64 ndarray, shape (n, len(masks))
    at : float64 ndarray, shape (m, len(masks))

    Examples
    --------
    >>> from scipy import ndimage
    >>> m = np.zeros((3, 4, 9), bool); m[:, :, 0] = True
    >>> lab = np.zeros(m.shape, np.uint16); lab[1, 2, 5:7] = 9; lab[0, 0, 8] = 4
    >>> none_b = np.full((4, 9), NONE_BELOW, np.int32)
    >>> none_a = np.full((4, 9), NONE_ABOVE, np.int32)
    >>> ids, mins, at = slab_label_minima(lab, [m], 0, [none_b], [none_a], (1, 1, 2),
    ...                                   np.array([[2, 3, 1]]))
    >>> ids.tolist(), mins.tolist(), at.tolist()
    ([4, 9], [[256.0], [100.0]], [[4.0]])
    """
    labels = np.ascontiguousarray(labels)
    pts = np.asarray(points, np.int64).reshape(-1, 3)
    lo, hi = _label_range(labels) if labels.size else (0, -1)
    if hi < lo:
        return (np.zeros(0, labels.dtype), np.zeros((0, len(masks))),
                np.full((len(pts), len(masks)), np.inf))
    if hi - lo >= 2**24:  # sparse ids: index the labels present instead
        present, inverse = np.unique(labels, return_inverse=True)
        dense = inverse.reshape(labels.shape).astype(np.uint32)
        if present[0] != 0:
            dense += 1
        ids = present[present != 0]
        lo, size = 1, len(ids)
    else:
        dense, size = labels, hi - lo + 1
    order = np.lexsort((pts[:, 1], pts[:, 0]))
    need = _label_rows(dense)
    need[pts[:, 0], pts[:, 1]] = True
    minima = np.full((len(masks), size), np.inf)
    seen = np.zeros(size, np.bool_)
    at = np.full((len(pts), len(masks)), np.inf)
    for j, (mask, below, above) in enumerate(zip(masks, belows, aboves)):
        sorted_at = np.full(len(pts), np.inf)
        _run_slab(mask, z0, below, above, spacing, need, dense, dense.dtype.type(lo),
                  minima[j], seen, np.ascontiguousarray(pts[order]), sorted_at,
                  np.zeros((0, 0, 0)))
        at[order, j] = sorted_at
    if dense is labels:
        ids = (lo + np.flatnonzero(seen)).astype(labels.dtype)
    return ids, minima[:, seen].T, at


@numba.njit(cache=True, nogil=True)
def _label_rows(labels):  # pragma: no cover - compiled
    """The image rows (k, y) holding a non-zero label."""
    bz, ny, nx = labels.shape
    rows = np.zeros((bz, ny), np.bool_)
    for k in range(bz):
        for y in range(ny):
            for x in range(nx):
                if labels[k, y, x] != 0:
                    rows[k, y] = True
                    break
    return rows


@numba.njit(cache=True, nogil=True)
def _label_range(labels):  # pragma: no cover - compiled
    """Smallest non-zero and largest label (hi < lo when all are 0)."""
    flat = labels.ravel()
    lo, hi = flat.dtype.type(0), flat.dtype.type(0)
    found = False
    for v in flat:
        if v != 0:
            if not found or v < lo:
                lo = v
            if v > hi:
                hi = v
            found = True
    if not found:
        return np.int64(1), np.int64(0)
    return np.int64(lo), np.int64(hi)  # (int() of a uint64 gives a float in numba)


def _run_slab(mask, z0, below, above, spacing, need, labels, lo, minima, seen, pts, at, out):
    _slab(np.ascontiguousarray(mask, dtype=np.bool_), int(z0),
          np.ascontiguousarray(below, np.int32), np.ascontiguousarray(above, np.int32),
          float(spacing[0]), float(spacing[1]), float(spacing[2]),
          np.ascontiguousarray(need, np.bool_), labels, lo, minima, seen, pts, at, out,
          work_array(mask.shape, np.int32))
