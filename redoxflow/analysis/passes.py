"""Compiled block kernels of the analysis's two passes over the class volume.

Pass 1 (:func:`block_row_maps`) gathers the class counts, the membrane extent of every image
row and the gasket bounds of every (z, x) line; pass 2 (:func:`block_region_counts`) counts
and projects the bubble and electrode voxels of every region. Each reads a block once and
decides per voxel what the lazy masks of :mod:`.masks` would have built as a dozen
temporary dask arrays (4-5x the time); the dask expressions stay the definition the tests
hold these kernels to. Hand-written with numba because no library fuses such per-voxel
rules into one pass.
"""

from __future__ import annotations

import numba
import numpy as np

OUT_OF_RANGE = 256  # the counts' bucket for class values outside 0..255
# pass 2's quantities: unmasked class 1, then (bubble, electrode) in the cell, low, high side
UNMASKED, CELL, LOW_SIDE, HIGH_SIDE = 0, 1, 3, 5
N_QUANTITIES = 7


@numba.njit(cache=True, nogil=True)
def _row_maps(cls, y0, x0, ny, counts, first, last, count, xsum, g_low, g_high):  # pragma: no cover
    bz, by, bx = cls.shape
    half = ny // 2
    for k in range(bz):
        for j in range(by):
            y = y0 + j
            for i in range(bx):
                c = cls[k, j, i]
                v = np.int64(c)
                counts[v if 0 <= v < OUT_OF_RANGE else OUT_OF_RANGE] += 1
                if c == 2:
                    x = x0 + i
                    first[k, j] = min(first[k, j], x)
                    last[k, j] = max(last[k, j], x)
                    count[k, j] += 1
                    xsum[k, j] += x
                elif c == 3:
                    if y < half:
                        g_low[k, i] = max(g_low[k, i], y)
                    else:
                        g_high[k, i] = min(g_high[k, i], y)


def block_row_maps(cls: np.ndarray, y0: int, x0: int, ny: int, nx: int) -> dict:
    """Pass 1 over one block of class ids.

    Parameters
    ----------
    cls : integer ndarray, shape (bz, by, bx)
        A block whose first voxel is at global (., y0, x0).
    y0, x0 : int
        Global offsets of the block.
    ny, nx : int
        The volume's extent along y and x.

    Returns
    -------
    dict
        ``counts`` (257 voxel counts: values 0..255, then any other value), and per image
        row of the block (bz, by): ``first``/``last`` membrane x (``nx`` / -1 when none),
        ``count``, ``xsum``; per (z, x) line (bz, bx): ``gasket_low`` (largest gasket y below
        ``ny // 2``, else -1), ``gasket_high`` (smallest at or above, else ``ny``).

    Examples
    --------
    >>> c = np.zeros((1, 4, 5), np.uint8); c[0, :, 2] = 2; c[0, 0] = 3
    >>> maps = block_row_maps(c, 0, 0, 4, 5)
    >>> maps["counts"][:4].tolist(), maps["first"].tolist(), maps["gasket_low"].tolist()
    ([12, 0, 3, 5], [[5, 2, 2, 2]], [[0, 0, 0, 0, 0]])
    """
    bz, by, bx = cls.shape
    out = {"counts": np.zeros(OUT_OF_RANGE + 1, np.int64),
           "first": np.full((bz, by), nx, np.int32), "last": np.full((bz, by), -1, np.int32),
           "count": np.zeros((bz, by), np.int32), "xsum": np.zeros((bz, by), np.int64),
           "gasket_low": np.full((bz, bx), -1, np.int32),
           "gasket_high": np.full((bz, bx), ny, np.int32)}
    _row_maps(np.ascontiguousarray(cls), int(y0), int(x0), int(ny), out["counts"],
              out["first"], out["last"], out["count"], out["xsum"], out["gasket_low"],
              out["gasket_high"])
    return out


@numba.njit(cache=True, nogil=True)
def _side(x, lo, hi):  # pragma: no cover - compiled
    return LOW_SIDE if x < lo else (HIGH_SIDE if x > hi else 0)


@numba.njit(cache=True, nogil=True)
def _region_counts(cls, z0, y0, x0, nz, low, high, g_low, g_high, clean, clean_side, pz, py,
                   px):  # pragma: no cover - compiled
    bz = cls.shape[0] - 2
    by, bx = cls.shape[1], cls.shape[2]
    for k in range(bz):
        z = z0 + k
        edge = z == 0 or z == nz - 1
        for j in range(by):
            y = y0 + j
            lo, hi = low[z, y], high[z, y]
            for i in range(bx):
                c = cls[k + 1, j, i]
                if c != 0 and c != 1:
                    continue
                x = x0 + i
                if c == 1:
                    pz[UNMASKED, j, i] += 1
                    py[UNMASKED, k, i] += 1
                    px[UNMASKED, k, j] += 1
                if not (g_low[z, x] < y < g_high[z, x]):
                    continue
                side = _side(x, lo, hi)
                bubble = c == 1
                if bubble and clean_side and side != clean_side:
                    bubble = False  # compat: class 1 outside the half is no bubble
                if bubble and clean and not edge:
                    below = cls[k, j, i] == 1 and (
                        clean_side == 0 or _side(x, low[z - 1, y], high[z - 1, y]) == clean_side)
                    above = cls[k + 2, j, i] == 1 and (
                        clean_side == 0 or _side(x, low[z + 1, y], high[z + 1, y]) == clean_side)
                    bubble = below or above
                for q in (CELL, side):
                    if q == 0:
                        continue
                    pz[q + 1, j, i] += 1
                    py[q + 1, k, i] += 1
                    px[q + 1, k, j] += 1
                    if bubble:
                        pz[q, j, i] += 1
                        py[q, k, i] += 1
                        px[q, k, j] += 1


def block_region_counts(cls: np.ndarray, z0: int, y0: int, x0: int, nz: int, low: np.ndarray,
                        high: np.ndarray, gasket_low: np.ndarray, gasket_high: np.ndarray, *,
                        clean: bool, clean_side: int = 0):
    """Pass 2 over one block: per quantity, voxel projections along z, y and x.

    A voxel of class 0 or 1 strictly between the gasket bounds of its (z, x) line is in the
    cell, and on the low side when x < ``low[z, y]``, on the high side when x > ``high[z, y]``.
    It is electrode; a class-1 voxel is also a bubble unless ``clean`` and neither z
    neighbour is class 1 (the volume's first and last slices are never cleaned). In compat
    mode (``clean_side`` = ``LOW_SIDE`` or ``HIGH_SIDE``) only that side's class-1 voxels are
    bubbles, and a neighbour counts only when on that side too (the reference's cleaning of
    the half's bubble mask).

    Parameters
    ----------
    cls : integer ndarray, shape (bz + 2, by, bx)
        The block with one plane of z halo on each side (any value at the volume's ends).
    z0, y0, x0 : int
        Global index of the block's first non-halo voxel.
    nz : int
        The volume's number of slices.
    low, high : float ndarray, shape (nz, ny)
        Per image row, the low and high side thresholds (NaN: no side).
    gasket_low, gasket_high : int ndarray, shape (nz, nx)
        The cell's bounds along y per (z, x) line.
    clean : bool
        Apply the reference's z-isolated bubble filter.
    clean_side : int
        0, or the side whose bubbles alone count (compat).

    Returns
    -------
    pz, py, px : int32 ndarray, shapes (7, by, bx), (7, bz, bx), (7, bz, by)
        Projections of the quantities: ``UNMASKED`` class 1; then (bubble, electrode) at
        ``CELL``, ``LOW_SIDE`` and ``HIGH_SIDE`` (index and index + 1).

    Examples
    --------
    >>> c = np.zeros((3, 1, 4), np.uint8); c[1, 0, 3] = 1
    >>> low, high = np.full((1, 1), 1.5), np.full((1, 1), 1.5)
    >>> pz, _, _ = block_region_counts(c, 0, 0, 0, 1, low, high, np.full((1, 4), -1),
    ...                                np.full((1, 4), 1), clean=True)
    >>> pz[:, 0].tolist()  # bubble at x = 3: high side; x 0, 1 low electrode
    [[0, 0, 0, 1], [0, 0, 0, 1], [1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 1]]
    """
    bz, by, bx = cls.shape[0] - 2, cls.shape[1], cls.shape[2]
    pz = np.zeros((N_QUANTITIES, by, bx), np.int32)
    py = np.zeros((N_QUANTITIES, bz, bx), np.int32)
    px = np.zeros((N_QUANTITIES, bz, by), np.int32)
    _region_counts(np.ascontiguousarray(cls), int(z0), int(y0), int(x0), int(nz),
                   np.ascontiguousarray(low, np.float64), np.ascontiguousarray(high, np.float64),
                   np.ascontiguousarray(gasket_low, np.int64),
                   np.ascontiguousarray(gasket_high, np.int64), bool(clean), int(clean_side),
                   pz, py, px)
    return pz, py, px
