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

from collections.abc import Sequence

import numba
import numpy as np

NONE_BELOW = np.iinfo(np.int32).min // 2  # "no feature before": far enough to never win
NONE_ABOVE = np.iinfo(np.int32).max // 2


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
    any_ = mask.any(axis=0)
    first = np.where(any_, z0 + mask.argmax(axis=0), NONE_ABOVE).astype(np.int32)
    last = np.where(any_, z0 + mask.shape[0] - 1 - mask[::-1].argmax(axis=0),
                    NONE_BELOW).astype(np.int32)
    return first, last


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
def _slab(mask, z0, below, above, sz, sy, sx, need, out):  # pragma: no cover - compiled
    """The three passes over a slab, one plane at a time (see :func:`slab_sqdist`); rows
    (plane, y) with ``need`` False are left unset."""
    bz, ny, nx = mask.shape
    nxt = np.empty((bz, ny, nx), np.int32)  # global z of the next feature at or after z
    for y in range(ny):
        for x in range(nx):
            nxt[bz - 1, y, x] = z0 + bz - 1 if mask[bz - 1, y, x] else above[y, x]
    for k in range(bz - 2, -1, -1):
        for y in range(ny):
            for x in range(nx):
                nxt[k, y, x] = z0 + k if mask[k, y, x] else nxt[k + 1, y, x]
    prev = below.copy()
    column = np.empty((nx, ny), np.float64)  # the plane, transposed: y lines contiguous
    line = np.empty(max(nx, ny), np.float64)
    v = np.empty(max(nx, ny), np.int64)
    zb = np.empty(max(nx, ny) + 1, np.float64)
    wz, wy, wx = sz * sz, sy * sy, sx * sx
    for k in range(bz):
        z = z0 + k
        for y in range(ny):
            for x in range(nx):
                if mask[k, y, x]:
                    prev[y, x] = z
        if not need[k].any():
            continue
        for y in range(ny):
            for x in range(nx):
                gap = min(z - prev[y, x], nxt[k, y, x] - z)
                column[x, y] = np.inf if gap >= NONE_ABOVE // 2 else wz * gap * gap
        for x in range(nx):
            for y in range(ny):
                line[y] = column[x, y]
            _envelope(line[:ny], wy, column[x], v, zb)
        for y in range(ny):
            if not need[k, y]:
                continue
            for x in range(nx):
                line[x] = column[x, y]
            _envelope(line[:nx], wx, out[k, y], v, zb)


def slab_sqdist(mask: np.ndarray, z0: int, below: np.ndarray, above: np.ndarray,
                spacing: Sequence[float], need: np.ndarray | None = None) -> np.ndarray:
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

    Returns
    -------
    float64 ndarray, shape (bz, y, x)
        ``inf`` everywhere when there is no feature voxel at all.

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
    out = np.empty(mask.shape, np.float64)
    need = np.ones(mask.shape[:2], np.bool_) if need is None else np.asarray(need, np.bool_)
    _slab(np.ascontiguousarray(mask, dtype=np.bool_), int(z0),
          np.ascontiguousarray(below, np.int32), np.ascontiguousarray(above, np.int32),
          float(spacing[0]), float(spacing[1]), float(spacing[2]), need, out)
    return out
