"""Exact convex hulls of integer points (Quickhull with integer predicates, numba).

The marching-cubes vertices of a binary mask at iso-level 0.5 (or 0) lie on a lattice: in
units of half a voxel (or a voxel) they are integers. Their convex hull is computed here with
exact ``int64`` orientation tests, so coplanar lattice points need no tolerances, and
``6 * volume`` is an exact integer. Many small hulls are computed in one compiled call,
without a Python-level call (or Qhull set-up) per object.
"""

from __future__ import annotations

import numba
import numpy as np

#: Largest coordinate span (in lattice units) for which every orientation determinant fits
#: in int64 (plane offsets n . p are at most 6 span**3).
MAX_SPAN = 2**18


@numba.njit(cache=True, nogil=True, inline="always")
def _orient(p, a, b, c, d):  # pragma: no cover - compiled
    """6 x signed volume of the tetrahedron (a, b, c, d): > 0 when d is above (a, b, c)."""
    ax = p[b, 0] - p[a, 0]
    ay = p[b, 1] - p[a, 1]
    az = p[b, 2] - p[a, 2]
    bx = p[c, 0] - p[a, 0]
    by = p[c, 1] - p[a, 1]
    bz = p[c, 2] - p[a, 2]
    cx = p[d, 0] - p[a, 0]
    cy = p[d, 1] - p[a, 1]
    cz = p[d, 2] - p[a, 2]
    return ax * (by * cz - bz * cy) - ay * (bx * cz - bz * cx) + az * (bx * cy - by * cx)


@numba.njit(cache=True, nogil=True, inline="always")
def _above(pl, f, p, q):  # pragma: no cover - compiled
    """Height of point q over facet f's plane (scaled by its normal's length)."""
    return pl[f, 0] * p[q, 0] + pl[f, 1] * p[q, 1] + pl[f, 2] * p[q, 2] - pl[f, 3]


@numba.njit(cache=True, nogil=True, inline="always")
def _set_plane(pl, f, p, a, b, c):  # pragma: no cover - compiled
    ax = p[b, 0] - p[a, 0]
    ay = p[b, 1] - p[a, 1]
    az = p[b, 2] - p[a, 2]
    bx = p[c, 0] - p[a, 0]
    by = p[c, 1] - p[a, 1]
    bz = p[c, 2] - p[a, 2]
    nx = ay * bz - az * by
    ny = az * bx - ax * bz
    nz = ax * by - ay * bx
    pl[f, 0] = nx
    pl[f, 1] = ny
    pl[f, 2] = nz
    pl[f, 3] = nx * p[a, 0] + ny * p[a, 1] + nz * p[a, 2]


@numba.njit(cache=True, nogil=True)
def _simplex(p):  # pragma: no cover - compiled
    """Four points spanning a tetrahedron (lexicographic minimum, farthest point, widest
    triangle, tallest tetrahedron), or -1s when all points are coplanar."""
    n = p.shape[0]
    none = (-1, -1, -1, -1)
    i0 = 0
    for k in range(1, n):
        if (p[k, 0] < p[i0, 0] or (p[k, 0] == p[i0, 0] and (
                p[k, 1] < p[i0, 1] or (p[k, 1] == p[i0, 1] and p[k, 2] < p[i0, 2])))):
            i0 = k
    i1 = -1
    best = 0.0
    for k in range(n):
        dx = float(p[k, 0] - p[i0, 0])
        dy = float(p[k, 1] - p[i0, 1])
        dz = float(p[k, 2] - p[i0, 2])
        d = dx * dx + dy * dy + dz * dz
        if d > best:
            best = d
            i1 = k
    if i1 < 0:
        return none
    i2 = -1
    best = 0.0
    ux = p[i1, 0] - p[i0, 0]
    uy = p[i1, 1] - p[i0, 1]
    uz = p[i1, 2] - p[i0, 2]
    for k in range(n):
        vx = p[k, 0] - p[i0, 0]
        vy = p[k, 1] - p[i0, 1]
        vz = p[k, 2] - p[i0, 2]
        cx = uy * vz - uz * vy
        cy = uz * vx - ux * vz
        cz = ux * vy - uy * vx
        if cx != 0 or cy != 0 or cz != 0:
            d = float(cx) * float(cx) + float(cy) * float(cy) + float(cz) * float(cz)
            if d > best:
                best = d
                i2 = k
    if i2 < 0:
        return none
    i3 = -1
    bestv = np.int64(0)
    for k in range(n):
        o = _orient(p, i0, i1, i2, k)
        if o < 0:
            o = -o
        if o > bestv:
            bestv = o
            i3 = k
    if i3 < 0:
        return none
    return (i0, i1, i2, i3)


@numba.njit(cache=True, nogil=True)
def _hull_loop(p, simplex, fv, fn, pl, alive, head, mark, nxt, start_of, end_of, visible,
               stack, hor):  # pragma: no cover - compiled
    """Quickhull from the simplex; returns the number of facets made, -1 if out of room."""
    n = p.shape[0]
    cap = fv.shape[0]
    tri = ((0, 1, 2, 3), (0, 3, 1, 2), (1, 3, 2, 0), (2, 3, 0, 1))
    for f in range(4):
        a = simplex[tri[f][0]]
        b = simplex[tri[f][1]]
        c = simplex[tri[f][2]]
        d = simplex[tri[f][3]]
        if _orient(p, a, b, c, d) > 0:  # the fourth vertex must lie below
            b, c = c, b
        fv[f, 0] = a
        fv[f, 1] = b
        fv[f, 2] = c
        _set_plane(pl, f, p, a, b, c)
        alive[f] = True
        head[f] = -1
        mark[f] = 0
    for f in range(4):  # neighbour across edge (v[k], v[k+1]) holds the edge (v[k+1], v[k])
        for k in range(3):
            u = fv[f, k]
            v = fv[f, (k + 1) % 3]
            for g in range(4):
                if g == f:
                    continue
                for m in range(3):
                    if fv[g, m] == v and fv[g, (m + 1) % 3] == u:
                        fn[f, k] = g
    nf = 4
    for k in range(n):
        if k == simplex[0] or k == simplex[1] or k == simplex[2] or k == simplex[3]:
            continue
        for f in range(4):
            if _above(pl, f, p, k) > 0:
                nxt[k] = head[f]
                head[f] = k
                break
    stamp = 0
    f = 0
    while f < nf:
        if not alive[f] or head[f] < 0:
            f += 1
            continue
        q = head[f]  # the farthest outside point of facet f
        apex = q
        far = _above(pl, f, p, q)
        q = nxt[q]
        while q >= 0:
            o = _above(pl, f, p, q)
            if o > far:
                far = o
                apex = q
            q = nxt[q]
        stamp += 1  # facets visible from the apex (a connected cap) and its horizon
        nvis = 0
        nh = 0
        mark[f] = stamp
        stack[0] = f
        top = 1
        while top > 0:
            top -= 1
            g = stack[top]
            visible[nvis] = g
            nvis += 1
            for k in range(3):
                h = fn[g, k]
                if mark[h] == stamp:
                    continue
                if mark[h] != -stamp and _above(pl, h, p, apex) > 0:
                    mark[h] = stamp
                    stack[top] = h
                    top += 1
                else:
                    mark[h] = -stamp
                    hor[nh, 0] = fv[g, k]
                    hor[nh, 1] = fv[g, (k + 1) % 3]
                    hor[nh, 2] = g
                    hor[nh, 3] = h
                    nh += 1
        if nf + nh > cap:
            return -1
        first = nf
        for e in range(nh):  # the cone of new facets (u, v, apex)
            u = hor[e, 0]
            v = hor[e, 1]
            g = hor[e, 2]
            h = hor[e, 3]
            nfc = nf
            nf += 1
            fv[nfc, 0] = u
            fv[nfc, 1] = v
            fv[nfc, 2] = apex
            _set_plane(pl, nfc, p, u, v, apex)
            alive[nfc] = True
            head[nfc] = -1
            mark[nfc] = 0
            fn[nfc, 0] = h
            for m in range(3):
                if fn[h, m] == g and fv[h, m] == v:
                    fn[h, m] = nfc
            start_of[u] = nfc
            end_of[v] = nfc
        for nfc in range(first, nf):
            fn[nfc, 1] = start_of[fv[nfc, 1]]
            fn[nfc, 2] = end_of[fv[nfc, 0]]
        for i in range(nvis):  # the visible facets' outside points go to the new facets
            g = visible[i]
            alive[g] = False
            q = head[g]
            head[g] = -1
            while q >= 0:
                nq = nxt[q]
                if q != apex:
                    for nfc in range(first, nf):
                        if _above(pl, nfc, p, q) > 0:
                            nxt[q] = head[nfc]
                            head[nfc] = q
                            break
                q = nq
        f += 1
    return nf


@numba.njit(cache=True, nogil=True)
def _workspace(n):  # pragma: no cover - compiled
    cap = 8 * n + 64
    return (np.empty((cap, 3), np.int64), np.empty((cap, 3), np.int64),
            np.empty((cap, 4), np.int64), np.zeros(cap, np.bool_), np.empty(cap, np.int64),
            np.empty(cap, np.int64), np.empty(n, np.int64), np.empty(n, np.int64),
            np.empty(n, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64),
            np.empty((cap, 4), np.int64))


@numba.njit(cache=True, nogil=True)
def _quickhull(p, ws):  # pragma: no cover - compiled
    """:func:`quickhull` in a workspace made by ``_workspace(m)`` for some m >= len(p)."""
    n = p.shape[0]
    if n < 4:
        return np.int64(-1), 0, ws
    simplex = _simplex(p)
    if simplex[0] < 0:
        return np.int64(-1), 0, ws
    while True:
        fv, fn, pl, alive, head, mark, nxt, start_of, end_of, visible, stack, hor = ws
        nxt[:n] = -1
        nf = _hull_loop(p, simplex, fv, fn, pl, alive, head, mark, nxt, start_of, end_of,
                        visible, stack, hor)
        if nf >= 0:
            break
        ws = _workspace(4 * max(n, nxt.shape[0]))  # rare: start again with more room
    vol6 = np.int64(0)
    i0 = simplex[0]
    for g in range(nf):
        if alive[g]:
            vol6 -= _orient(p, fv[g, 0], fv[g, 1], fv[g, 2], i0)
    return vol6, nf, ws


@numba.njit(cache=True, nogil=True)
def quickhull(p):  # pragma: no cover - compiled
    """Convex hull of integer points ``p`` (n, 3) int64.

    Returns ``(vol6, fv, alive)``: six times the hull volume (exact, int64; -1 when the
    points are coplanar or fewer than 4), the facets' vertex indices and which facets are on
    the hull. Facets are oriented outwards.

    Examples
    --------
    >>> corner = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2], [1, 1, 0]])
    >>> vol6, fv, alive = quickhull(corner)
    >>> int(vol6), int(alive.sum())
    (8, 4)
    """
    vol6, nf, ws = _quickhull(p, _workspace(p.shape[0]))
    return vol6, ws[0][:nf].copy(), ws[3][:nf].copy()


@numba.njit(cache=True, nogil=True)
def hull_vertices(p):  # pragma: no cover - compiled
    """The points of ``p`` that are hull vertices (all of ``p`` when the hull is flat).

    Points inside the hull are dropped; a point on a face may stay (the hull is the same).

    Examples
    --------
    >>> cube = np.array([[i, j, k] for i in (0, 2) for j in (0, 2) for k in (0, 2)])
    >>> len(hull_vertices(np.concatenate([cube, [[1, 1, 1]]])))
    8
    """
    vol6, fv, alive = quickhull(p)
    if vol6 < 0:
        return p.copy()
    keep = np.zeros(p.shape[0], np.bool_)
    for g in range(fv.shape[0]):
        if alive[g]:
            keep[fv[g, 0]] = True
            keep[fv[g, 1]] = True
            keep[fv[g, 2]] = True
    return p[keep]


@numba.njit(cache=True, nogil=True)
def hull_volumes6(points, offsets):  # pragma: no cover - compiled
    """Six times the hull volume of each group ``points[offsets[i]:offsets[i + 1]]``.

    -1 where a group is flat (coplanar) or has fewer than 4 points, -2 where its span reaches
    ``MAX_SPAN`` (not computed: the caller measures it in floating point). Points are
    translated to their group's first point.

    Examples
    --------
    >>> corner = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]])
    >>> hull_volumes6(np.concatenate([corner, corner + 5, corner[:3]]),
    ...               np.array([0, 4, 8, 11])).tolist()
    [8, 8, -1]
    """
    k = offsets.shape[0] - 1
    out = np.full(k, -1, np.int64)
    largest = 4
    for i in range(k):
        largest = max(largest, offsets[i + 1] - offsets[i])
    ws = _workspace(largest)  # one workspace for all groups: no allocation per hull
    grp = np.empty((largest, 3), np.int64)
    for i in range(k):
        a = offsets[i]
        b = offsets[i + 1]
        if b - a < 4:
            continue
        span = 0
        for axis in range(3):
            lo = points[a, axis]
            hi = points[a, axis]
            for j in range(a, b):
                grp[j - a, axis] = points[j, axis] - points[a, axis]
                lo = min(lo, points[j, axis])
                hi = max(hi, points[j, axis])
            span = max(span, hi - lo)
        if span >= MAX_SPAN:
            out[i] = -2
            continue
        out[i], _, ws = _quickhull(grp[:b - a], ws)
    return out


def hull_volume6(points: np.ndarray) -> int:
    """Six times the convex-hull volume of integer points, exactly (-1 if flat).

    Parameters
    ----------
    points : int ndarray, shape (n, 3)
        Lattice points whose span is below ``MAX_SPAN`` (else ValueError).

    Returns
    -------
    int
        ``6 * volume`` (an integer for lattice points), or -1 when the points are coplanar.

    Examples
    --------
    >>> cube = np.array([[i, j, k] for i in (0, 2) for j in (0, 2) for k in (0, 2)])
    >>> corner = np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2]])
    >>> hull_volume6(cube), hull_volume6(corner)
    (48, 8)
    >>> hull_volume6(np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]))
    -1
    """
    pts = np.ascontiguousarray(points, dtype=np.int64)
    offsets = np.array([0, len(pts)], np.int64)
    vol6 = int(hull_volumes6(pts, offsets)[0])
    if vol6 == -2:
        raise ValueError(f"points span {MAX_SPAN} or more lattice units")
    return vol6
