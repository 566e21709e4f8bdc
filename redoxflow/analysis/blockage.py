"""The walls' pass on one block: bubble contacts (membrane blockage) and boundary voxels.

A compiled scan of each block (with a 1-voxel halo) visits every wall voxel once: its six
face neighbours give the bubbles it touches (contact areas, blocked voxels per half-cell)
and whether it lies on the wall's boundary (the points of the KD-trees of the centroid
distances: only those can be nearest to a point outside the wall). Hand-written with numba:
the numpy version gathered the neighbours of every wall voxel 12 times over.
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _scan(codes, labels, side_lut, face_area, n_walls, lo, hi, fill, sizes):  # pragma: no cover - compiled
    """Count (``fill`` False) or list (True, into arrays of ``sizes``) the contacts and
    boundary voxels of a block."""
    pz, py, px = codes.shape
    bz, by = pz - lo[0] - hi[0], py - lo[1] - hi[1]
    n_contacts = 0
    n_points = 0
    c_wall = np.zeros(0, np.int32)
    c_ids = np.zeros(0, labels.dtype)
    c_area = np.zeros(0, np.float64)
    p_wall = np.zeros(0, np.int32)
    pts = np.zeros((0, 3), np.int32)
    row_map = np.zeros((n_walls, 4, bz, by), np.int32)
    blocked = np.zeros((n_walls, 4), np.int64)
    blocked_any = np.zeros(n_walls, np.int64)
    if fill:
        c_wall = np.empty(sizes[0], np.int32)
        c_ids = np.empty(sizes[0], labels.dtype)
        c_area = np.empty(sizes[0], np.float64)
        p_wall = np.empty(sizes[1], np.int32)
        pts = np.empty((sizes[1], 3), np.int32)
    steps = ((-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1))
    for k in range(lo[0], pz - hi[0]):
        for j in range(lo[1], py - hi[1]):
            for i in range(lo[2], px - hi[2]):
                c = codes[k, j, i]
                if c == 0:
                    continue
                sides = 0
                boundary = False
                for s in range(6):
                    dk, dj, di = steps[s]
                    nk, nj, ni = k + dk, j + dj, i + di
                    if not (0 <= nk < pz and 0 <= nj < py and 0 <= ni < px):
                        boundary = True  # outside the volume: no wall, no bubble
                        continue
                    if codes[nk, nj, ni] != c:
                        boundary = True
                    lab = labels[nk, nj, ni]
                    if lab > 0:
                        if fill:
                            c_wall[n_contacts] = c - 1
                            c_ids[n_contacts] = lab
                            c_area[n_contacts] = face_area[s // 2]
                        n_contacts += 1
                        sides |= 1 << side_lut[lab]
                if boundary:
                    if fill:
                        p_wall[n_points] = c - 1
                        pts[n_points, 0] = k - lo[0]
                        pts[n_points, 1] = j - lo[1]
                        pts[n_points, 2] = i - lo[2]
                    n_points += 1
                if fill and sides:
                    blocked_any[c - 1] += 1
                    for b in range(4):
                        if (sides >> b) & 1:
                            blocked[c - 1, b] += 1
                            row_map[c - 1, b, k - lo[0], j - lo[1]] += 1
    return n_contacts, n_points, c_wall, c_ids, c_area, p_wall, pts, row_map, blocked, blocked_any


def block_walls(codes: np.ndarray, labels: np.ndarray, origin: Sequence[int],
                side_lut: np.ndarray, spacing: Sequence[float], n_walls: int,
                halo: Sequence[int] = (1, 1, 1, 1, 1, 1)) -> list:
    """Contacts and boundary voxels of each wall (codes 1..n) in a block with a 1-voxel halo.

    Parameters
    ----------
    codes : uint8 ndarray, shape (bz, by, bx) plus the halo
        Wall code of each voxel (0 none), with one voxel of halo on the sides that have a
        neighbouring block; beyond the array is outside the volume (no wall, no bubble: the
        volume's faces count as a wall's boundary).
    labels : integer ndarray, same shape
        Bubble labels with the halo (0 background).
    origin : (z, y, x) int
        Global index of the block's first core voxel.
    side_lut : uint8 ndarray, shape (max label + 1,)
        Half-cell code (0-3) of each label.
    spacing : (z, y, x) float
        Voxel size; a face normal to axis ``a`` has the area of the other two sides.
    n_walls : int
        Number of wall codes.
    halo : 6 ints (0 or 1)
        Halo voxels before and after the core along z, y and x.

    Returns
    -------
    list of (dict, ndarray), one per wall code
        The contacts: ``blocked`` (int64 (4,): wall voxels with a bubble 6-neighbour, per
        half-cell code of the bubble), ``blocked_any`` (those counted once), ``row_map``
        (int32 (4, bz, by): blocked voxels per image row and code), ``ids`` (uint64 (k,)) and
        ``area`` (float (k,): shared voxel faces, spacing units^2) per touching bubble; and
        the global (z, y, x) indices (int32 (m, 3)) of the wall's voxels with a 6-neighbour
        outside the wall.

    Examples
    --------
    >>> codes = np.zeros((3, 3, 4), np.uint8); codes[1, 1, 1] = 1
    >>> labels = np.zeros((3, 3, 4), np.uint32); labels[1, 1, 2] = 7
    >>> side_lut = np.zeros(8, np.uint8); side_lut[7] = 1
    >>> [(r, pts)] = block_walls(codes, labels, (10, 0, 0), side_lut, (2.0, 1.0, 1.0), 1)
    >>> r["blocked"].tolist(), r["ids"].tolist(), r["area"].tolist(), pts.tolist()
    ([0, 1, 0, 0], [7], [2.0], [[10, 0, 0]])
    """
    face_area = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2],
                          spacing[0] * spacing[1]], np.float64)
    args = (np.ascontiguousarray(codes, np.uint8), np.ascontiguousarray(labels),
            np.ascontiguousarray(side_lut, np.uint8), face_area, int(n_walls),
            np.asarray(halo[0::2], np.int64), np.asarray(halo[1::2], np.int64))
    n_contacts, n_points = _scan(*args, False, (0, 0))[:2]
    _, _, c_wall, c_ids, c_area, p_wall, pts, row_map, blocked, blocked_any = _scan(
        *args, True, (n_contacts, n_points))
    pts += np.asarray(origin, np.int32)
    out = []
    for w in range(n_walls):
        mine = c_wall == w
        ids, inv = np.unique(c_ids[mine], return_inverse=True)
        out.append(({"blocked": blocked[w], "blocked_any": blocked_any[w],
                     "row_map": row_map[w], "ids": ids.astype(np.uint64),
                     "area": np.bincount(inv, weights=c_area[mine], minlength=len(ids))},
                    pts[p_wall == w]))
    return out
