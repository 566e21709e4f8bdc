"""Marching-cubes surface area, mesh volume and hull points of every label, without meshes.

Marching cubes (Lewiner, as in :func:`skimage.measure.marching_cubes`) is cube-local: the
triangles in a 2x2x2 cell depend only on its 8 corner values. For the binary mask of one label
a cell's corners give one of 256 configurations, so the surface area of the label's
iso-surface is a sum over cells of a per-configuration table. The enclosed (signed) volume is
one too: with ``v = p + u`` (``p`` the cell's corner, ``u`` a vertex in the cell), the
divergence-theorem sum over a cell's triangles is ``L[cfg] + p . N[cfg] / 3``, ``L`` the
triangles' signed tetrahedra from the cell's corner and ``N`` their summed area vectors.

Each label of a cell gets its own configuration (``corner == label``), so one pass over the
cells of a block measures every label in it. A cell belongs to the block holding its low
corner (blocks read one plane of their high neighbours), so the per-block sums add up exactly
to the per-label crop meshes of :func:`redoxflow.measure.surface.mesh_measures`: the crop is
the bounding box grown by one voxel, padded with background where the volume's edge clips it
(``pad``), or stopping at the volume's edge (no ``pad``, the reference's choice).

The marching-cubes vertices lie on the grid edges between a label voxel and a voxel of
another value (at ``1 - level`` of the way), so their convex hull comes from integer lattice
points (in half voxels at level 0.5, voxels at level 0) and :mod:`.hull` computes it exactly.
Each block hulls its labels and keeps the hulls' vertices; a label seen by several blocks
gets the hull of those vertices (the hull of a union is the hull of the parts' hulls).

Two iso-levels are supported: 0.5 (the default; every vertex is exact in float32, so the
tables reproduce skimage's crop meshes to rounding) and 0 (the reference's). Lewiner's
cell-centre vertex (24 configurations at 0.5, 4 at 0) is the cell's centre at level 0.5,
exact, and one more hull point. At level 0 it is the mean of the cell's 3 background corners
(a third of the way between grid points), which skimage stores in float32 at its position
*in the crop*: those cells are returned as records and measured on the host at their crop
coordinates, as skimage does. It needs no hull point: in these 5-in, 3-out cells every
background corner neighbours an object corner, so the 3 are mesh vertices and their mean
lies in their triangle.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from scipy.spatial import ConvexHull, QhullError

from .hull import MAX_SPAN, _quickhull, _workspace, hull_volumes6

#: Iso-levels measured from cell tables (others fall back to per-crop meshes).
LEVELS = (0.5, 0.0)
#: Corner ``i`` of a cell is at offset ``(i >> 2 & 1, i >> 1 & 1, i & 1)`` in (z, y, x).
CORNERS = np.array([(i >> 2 & 1, i >> 1 & 1, i & 1) for i in range(8)])
#: skimage's (Lewiner's) corner order v0..v7 as (z, y, x) offsets.
LEWINER = np.array([(0, 0, 0), (0, 0, 1), (0, 1, 1), (0, 1, 0),
                    (1, 0, 0), (1, 0, 1), (1, 1, 1), (1, 1, 0)])
CENTRE, RECORD = 1, 2  # flags of a configuration


@dataclass(frozen=True)
class CellTables:
    """Per-configuration measures of one iso-level and voxel size.

    Attributes
    ----------
    level : float
    spacing : (3,) float
    area, volume : (256,) float64
        Triangle area and signed tetrahedra (from the cell's low corner) of each
        configuration, physical units.
    normal : (256, 3) float64
        Sum of the triangles' area vectors (z, y, x).
    flag : (256,) uint8
        ``CENTRE``: the triangulation uses the cell-centre vertex (a hull point at level 0.5);
        ``RECORD``: measured on the host (the level-0 configurations with a centre vertex).
    K, Kc : int
        Hull lattice: vertex = (K p + Kc e) / K for label voxel p and step e to a voxel of
        another value.
    record_tris : dict
        cfg -> (t, 3, 3) float64 vertex offsets in voxels, NaN rows for the centre vertex;
        and ``cfg, "centre"`` -> (3,) float64 fraction of the centre vertex as skimage
        computes it (double), before it is rounded to float32 at the crop position.

    Examples
    --------
    Level 0 puts the vertices on the background voxels next to the object (the reference's
    convention), so one voxel is an octahedron of 8 faces through its 6 neighbours:

    >>> t = cell_tables(0.0, (1.0, 1.0, 1.0))
    >>> float(8 * t.area[1]), (t.K, t.Kc), sorted(k for k in t.record_tris if type(k) is int)
    (6.928203230275509, (1, 1), [107, 109, 182, 214])
    """

    level: float
    spacing: tuple
    area: np.ndarray
    volume: np.ndarray
    normal: np.ndarray
    flag: np.ndarray
    K: int
    Kc: int
    record_tris: dict


def _centre_fraction(cfg: int, level: float) -> np.ndarray:
    """skimage's cell-centre vertex (z, y, x fraction), replaying its double arithmetic."""
    eps = np.spacing(1.0)
    value = {tuple(CORNERS[i]): float(cfg >> i & 1) for i in range(8)}
    f = np.zeros(3)
    ff = 0.0
    for off in LEWINER:
        w = 1.0 / (eps + abs(value[tuple(off)] - level))
        f += off * w  # sequential sums, as calculate_center_vertex
        ff += w
    return f / ff


@functools.lru_cache(maxsize=32)
def cell_tables(level: float, spacing: tuple[float, float, float]) -> CellTables:
    """Tables of every 2x2x2 configuration from skimage's own marching cubes.

    Parameters
    ----------
    level : float
        Iso-level on the 0/1 mask, one of ``LEVELS``.
    spacing : (z, y, x) float
        Voxel size.

    Returns
    -------
    CellTables

    Examples
    --------
    >>> t = cell_tables(0.5, (1.0, 1.0, 1.0))
    >>> round(float(t.area[1]), 4), float(t.area[0]), float(t.area[255]), (t.K, t.Kc)
    (0.2165, 0.0, 0.0, (2, 1))
    """
    from skimage.measure import marching_cubes

    level = float(level)
    if level not in LEVELS:
        raise ValueError(f"cell tables exist for levels {LEVELS}, not {level}")
    sp = np.asarray(spacing, np.float64)
    area, vol = np.zeros(256), np.zeros(256)
    normal = np.zeros((256, 3))
    flag = np.zeros(256, np.uint8)
    records: dict = {}
    for cfg in range(1, 255):
        cube = np.zeros((2, 2, 2), np.float32)
        for i in range(8):
            if cfg >> i & 1:
                cube[tuple(CORNERS[i])] = 1.0
        verts, faces, _, _ = marching_cubes(cube, level=level)
        verts = verts.astype(np.float64)
        on_grid = (np.isclose(verts, 0.0, atol=1e-6) | np.isclose(verts, 1.0, atol=1e-6))
        centre = on_grid.sum(axis=1) < 2
        if centre.any():
            flag[cfg] |= CENTRE
            if level == 0.0:
                flag[cfg] |= RECORD
                local = np.round(verts)
                local[centre] = np.nan
                records[cfg] = local[faces]
                records[cfg, "centre"] = _centre_fraction(cfg, level)
                continue
        tri = verts[faces] * sp
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        area[cfg] = np.sqrt((cross ** 2).sum(axis=1)).sum() / 2.0
        vol[cfg] = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
        normal[cfg] = cross.sum(axis=0) / 2.0
    K, Kc = (2, 1) if level == 0.5 else (1, 1)
    return CellTables(level, tuple(float(s) for s in sp), area, vol, normal, flag, K, Kc,
                      records)


# ---------------------------------------------------------------------------------------
# the per-block pass (compiled)


@numba.njit(cache=True, nogil=True)
def _fill_plane(P, z, core, hz, hy, hx, hzy, hzx, hyx, hzyx, has):  # pragma: no cover
    """Plane z of the block, extended by one row/column on each side (-1 and n)."""
    nz, ny, nx = core.shape
    P[0, :] = 0
    P[ny + 1, :] = 0
    for y in range(ny):
        P[y + 1, 0] = 0
        P[y + 1, nx + 1] = 0
    if 0 <= z < nz:
        P[1:ny + 1, 1:nx + 1] = core[z]
        if has[1]:
            P[ny + 1, 1:nx + 1] = hy[z, 0]
        if has[2]:
            P[1:ny + 1, nx + 1] = hx[z, :, 0]
        if has[1] and has[2]:
            P[ny + 1, nx + 1] = hyx[z, 0, 0]
    elif z == nz and has[0]:
        P[1:ny + 1, 1:nx + 1] = hz[0]
        if has[1]:
            P[ny + 1, 1:nx + 1] = hzy[0, 0]
        if has[2]:
            P[1:ny + 1, nx + 1] = hzx[0, :, 0]
        if has[1] and has[2]:
            P[ny + 1, nx + 1] = hzyx[0, 0, 0]
    else:
        P[1:ny + 1, 1:nx + 1] = 0


@numba.njit(cache=True, nogil=True)
def _row_flags(r00, r01, r10, r11, flag, nx):  # pragma: no cover - compiled
    """flag[i]: the cell with low corner at row index i has two different corner values."""
    for i in range(nx + 2):
        a = r00[i]
        flag[i] = (a != r01[i]) | (a != r10[i]) | (a != r11[i])
    any_ = 0
    for i in range(nx + 1):
        f = flag[i] | flag[i + 1] | (r00[i] != r00[i + 1])
        any_ |= f
        flag[i] = f
    return any_


@numba.njit(cache=True, nogil=True)
def _owners(P0, P1, y, xlo, flag, own, cor):  # pragma: no cover - compiled
    """Owner points (y, x) of plane pair (P0, P1), from row y on, whose 8 corners differ,
    and their corners, while whole rows fit in ``own``; returns their number and the next
    row."""
    ny = P0.shape[0] - 2
    nx = P0.shape[1] - 2
    m = 0
    while y < ny and m + nx + 1 <= own.shape[0]:
        r00 = P0[y + 1]
        r01 = P0[y + 2]
        r10 = P1[y + 1]
        r11 = P1[y + 2]
        if _row_flags(r00, r01, r10, r11, flag, nx) != 0:
            for i in range(xlo + 1, nx + 1):
                if flag[i]:
                    own[m, 0] = y
                    own[m, 1] = i - 1
                    cor[m, 0] = r00[i]
                    cor[m, 1] = r00[i + 1]
                    cor[m, 2] = r01[i]
                    cor[m, 3] = r01[i + 1]
                    cor[m, 4] = r10[i]
                    cor[m, 5] = r10[i + 1]
                    cor[m, 6] = r11[i]
                    cor[m, 7] = r11[i + 1]
                    m += 1
        y += 1
    return m, y


@numba.njit(cache=True, nogil=True, inline="always")
def _slot(keys, lab):  # pragma: no cover - compiled
    """Open-addressing slot of ``lab`` (keys == 0 is empty; 0 is never a key)."""
    mask = keys.shape[0] - 1
    h = (np.uint64(lab) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)
    j = np.int64(h) & mask
    while keys[j] != 0 and keys[j] != lab:
        j = (j + 1) & mask
    return j


@numba.njit(cache=True, nogil=True, inline="always")
def _index(keys, vals, ids, nlab, lab):  # pragma: no cover - compiled
    """Dense index of label ``lab`` (a new one is appended to ``ids``) -> (index, nlab)."""
    j = _slot(keys, lab)
    if keys[j] == 0:
        keys[j] = lab
        vals[j] = nlab
        ids[nlab] = lab
        nlab += 1
    return vals[j], nlab


@numba.njit(cache=True, nogil=True)
def _rehash(keys, vals, cap):  # pragma: no cover - compiled
    k2 = np.zeros(cap, np.int64)
    v2 = np.zeros(cap, np.int64)
    for j in range(keys.shape[0]):
        if keys[j] != 0:
            t = _slot(k2, keys[j])
            k2[t] = keys[j]
            v2[t] = vals[j]
    return k2, v2


@numba.njit(cache=True, nogil=True)
def _process(own, cor, start, m, z, gz, oy, ox, cell_z, edge_z, ecell, top, sp, t_area,
             t_vol, t_nrm, t_flag, K, Kc, want_points, keys, vals, ids, acc, cnt, nlab, pts,
             plab, npts, rec, nrec):  # pragma: no cover - compiled
    """Edges (hull points) and cells (sums) of owners ``start..m-1`` of one plane.

    Returns the counters and the owner it stopped at: before an owner that might not fit
    (8 new labels, 14 points, 8 records), so the caller can grow the arrays and go on.
    """
    last_l = np.int64(0)
    last_i = np.int64(-1)
    for e in range(start, m):
        if (2 * (nlab + 8) > keys.shape[0] or nlab + 8 > ids.shape[0]
                or nrec + 8 > rec.shape[0] or (want_points and npts + 14 > pts.shape[0])):
            return nlab, npts, nrec, e
        y = np.int64(own[e, 0])
        x = np.int64(own[e, 1])
        c0 = np.int64(cor[e, 0])
        gy = oy + y
        gx = ox + x
        if want_points:
            for axis in range(3):
                if axis == 0:
                    other = np.int64(cor[e, 4])
                    ok = edge_z
                elif axis == 1:
                    other = np.int64(cor[e, 2])
                    ok = y + 1 <= top[1]
                else:
                    other = np.int64(cor[e, 1])
                    ok = x + 1 <= top[2]
                if not ok or other == c0:
                    continue
                for side in range(2):
                    lab = c0 if side == 0 else other
                    if lab == 0:
                        continue
                    if lab == last_l:
                        li = last_i
                    else:
                        li, nlab = _index(keys, vals, ids, nlab, lab)
                        last_l = lab
                        last_i = li
                    pts[npts, 0] = K * gz
                    pts[npts, 1] = K * gy
                    pts[npts, 2] = K * gx
                    pts[npts, axis] += Kc if side == 0 else K - Kc
                    plab[npts] = li
                    npts += 1
        if not (cell_z and y <= ecell[1] and x <= ecell[2]):
            continue
        done = 0  # corners whose label was measured
        for jc in range(8):
            if (done >> jc) & 1:
                continue
            lab = np.int64(cor[e, jc])
            if lab == 0:
                continue
            cfg = 0
            for q in range(jc, 8):
                if cor[e, q] == cor[e, jc]:
                    cfg |= 1 << q
            done |= cfg
            if lab == last_l:
                li = last_i
            else:
                li, nlab = _index(keys, vals, ids, nlab, lab)
                last_l = lab
                last_i = li
            cnt[li] += 1
            fl = t_flag[cfg]
            if fl & 2:
                rec[nrec, 0] = li
                rec[nrec, 1] = gz
                rec[nrec, 2] = gy
                rec[nrec, 3] = gx
                rec[nrec, 4] = cfg
                nrec += 1
                continue
            n0 = t_nrm[cfg, 0]
            n1 = t_nrm[cfg, 1]
            n2 = t_nrm[cfg, 2]
            acc[li, 0] += t_area[cfg]
            acc[li, 1] += t_vol[cfg]
            acc[li, 2] += n0
            acc[li, 3] += n1
            acc[li, 4] += n2
            acc[li, 5] += z * sp[0] * n0 + y * sp[1] * n1 + x * sp[2] * n2
            if want_points and fl & 1:
                pts[npts, 0] = K * gz + K // 2
                pts[npts, 1] = K * gy + K // 2
                pts[npts, 2] = K * gx + K // 2
                plab[npts] = li
                npts += 1
    return nlab, npts, nrec, m


@numba.njit(cache=True, nogil=True)
def _fit2(a, n, need):  # pragma: no cover - compiled
    if n + need <= a.shape[0]:
        return a
    out = np.zeros((max(2 * a.shape[0], n + need), a.shape[1]), a.dtype)
    out[:n] = a[:n]
    return out


@numba.njit(cache=True, nogil=True)
def _fit1(a, n, need):  # pragma: no cover - compiled
    if n + need <= a.shape[0]:
        return a
    out = np.zeros(max(2 * a.shape[0], n + need), a.dtype)
    out[:n] = a[:n]
    return out


@numba.njit(cache=True, nogil=True)
def _scan(core, hz, hy, hx, hzy, hzx, hyx, hzyx, has, lo, ecell, top, origin, sp,
          t_area, t_vol, t_nrm, t_flag, K, Kc, want_points):  # pragma: no cover - compiled
    """One pass over the cells (and grid edges) owned by a block, a plane at a time.

    Owner points p run over ``lo[a] .. n[a] - 1`` (``lo = -1`` adds the padded plane before
    the volume). The cell at p exists if ``p <= ecell``; the edge from p along axis a if
    ``p[a] + 1 <= top[a]``. Returns ids, sums (area, L, N, p.N with p from the block's
    origin), cell counts, hull points with their label index, and the cells to measure on
    the host.
    """
    nz, ny, nx = core.shape
    P = np.zeros((2, ny + 2, nx + 2), core.dtype)
    flag = np.zeros(nx + 2, np.uint8)
    room = max(8192, 2 * (nx + 1))  # owners handled at a time (whole rows)
    own = np.zeros((room, 2), np.int32)
    cor = np.zeros((room, 8), core.dtype)
    keys = np.zeros(1024, np.int64)
    vals = np.zeros(1024, np.int64)
    ids = np.zeros(256, np.int64)
    acc = np.zeros((256, 6), np.float64)
    cnt = np.zeros(256, np.int64)
    pts = np.zeros((1024 if want_points else 0, 3), np.int64)
    plab = np.zeros(1024 if want_points else 0, np.int64)
    rec = np.zeros((64, 5), np.int64)
    nlab = 0
    npts = 0
    nrec = 0
    cur = 1
    _fill_plane(P[1], lo[0], core, hz, hy, hx, hzy, hzx, hyx, hzyx, has)
    for z in range(lo[0], nz):
        P0 = P[cur]
        cur = 1 - cur
        P1 = P[cur]
        _fill_plane(P1, z + 1, core, hz, hy, hx, hzy, hzx, hyx, hzyx, has)
        cell_z = z <= ecell[0]
        edge_z = z + 1 <= top[0]
        gz = origin[0] + z
        y = lo[1]
        while y < ny:
            m, y = _owners(P0, P1, y, lo[2], flag, own, cor)
            e = 0
            while e < m:
                nlab, npts, nrec, e = _process(
                    own, cor, e, m, z, gz, origin[1], origin[2], cell_z, edge_z, ecell, top,
                    sp, t_area, t_vol, t_nrm, t_flag, K, Kc, want_points, keys, vals, ids,
                    acc, cnt, nlab, pts, plab, npts, rec, nrec)
                if e < m:  # out of room: double what is full
                    if 2 * (nlab + 8) > keys.shape[0]:
                        keys, vals = _rehash(keys, vals, 2 * keys.shape[0])
                    ids = _fit1(ids, nlab, 8)
                    acc = _fit2(acc, nlab, 8)
                    cnt = _fit1(cnt, nlab, 8)
                    rec = _fit2(rec, nrec, 8)
                    if want_points:
                        pts = _fit2(pts, npts, 14)
                        plab = _fit1(plab, npts, 14)
    return ids[:nlab], acc[:nlab], cnt[:nlab], pts[:npts], plab[:npts], rec[:nrec]


@numba.njit(cache=True, nogil=True)
def _group_hulls(pts, plab, k):  # pragma: no cover - compiled
    """Points grouped by label index (CSR), each group's exact hull and its vertices.

    Returns offsets, the groups' hull vertices (all points of a group whose hull is flat)
    and 6 x hull volume per group (-1: flat, -2: wider than ``MAX_SPAN``).
    """
    counts = np.zeros(k + 1, np.int64)
    for i in range(plab.shape[0]):
        counts[plab[i] + 1] += 1
    offsets = np.cumsum(counts)
    pos = offsets[:-1].copy()
    grouped = np.empty_like(pts)
    for i in range(plab.shape[0]):
        g = plab[i]
        grouped[pos[g]] = pts[i]
        pos[g] += 1
    largest = 4
    for g in range(k):
        largest = max(largest, offsets[g + 1] - offsets[g])
    ws = _workspace(largest)
    local = np.empty((largest, 3), np.int64)
    keep = np.zeros(plab.shape[0], np.bool_)
    vol6 = np.full(k, -1, np.int64)
    for g in range(k):
        a = offsets[g]
        b = offsets[g + 1]
        span = 0
        for axis in range(3):
            lo = grouped[a, axis] if b > a else 0
            hi = lo
            for j in range(a, b):
                local[j - a, axis] = grouped[j, axis] - grouped[a, axis]
                lo = min(lo, grouped[j, axis])
                hi = max(hi, grouped[j, axis])
            span = max(span, hi - lo)
        if span >= MAX_SPAN:
            vol6[g] = -2
        elif b - a >= 4:
            v, nf, ws = _quickhull(local[:b - a], ws)
            vol6[g] = v
        if vol6[g] < 0:
            keep[a:b] = True
            continue
        fv = ws[0]
        alive = ws[3]
        for f in range(nf):
            if alive[f]:
                keep[a + fv[f, 0]] = True
                keep[a + fv[f, 1]] = True
                keep[a + fv[f, 2]] = True
    sizes = np.zeros(k + 1, np.int64)
    for g in range(k):
        for j in range(offsets[g], offsets[g + 1]):
            if keep[j]:
                sizes[g + 1] += 1
    return np.cumsum(sizes), grouped[keep], vol6


def _dummy(dtype) -> np.ndarray:
    return np.zeros((1, 1, 1), dtype)


def block_surface(core: np.ndarray, neighbours: Sequence[np.ndarray | None],
                  origin: Sequence[int], shape: Sequence[int], tables: CellTables,
                  pad: bool, points: bool) -> dict[str, np.ndarray]:
    """Surface partial sums of one label block (host arrays).

    Parameters
    ----------
    core : integer ndarray (z, y, x)
        The block.
    neighbours : 7 arrays or None
        The first plane(s) of the blocks after it along z, y, x, zy, zx, yx and zyx (shapes
        (1, y, x), (z, 1, x), (z, y, 1), (1, 1, x), (1, y, 1), (z, 1, 1), (1, 1, 1)); None
        where the volume ends.
    origin, shape : (3,) int
        The block's first voxel and the whole volume's shape.
    tables : CellTables
    pad : bool
        Count the cells that straddle the volume's faces (background outside).
    points : bool
        Also compute each label's convex hull in the block (of its marching-cubes vertices,
        lattice units) and keep the hull's vertices.

    Returns
    -------
    dict
        ``ids`` (uint64), ``sums`` (k, 6: area, L, N_z, N_y, N_x, p.N with p from the block's
        origin), ``cells`` (k), ``offsets`` (k + 1) and ``points`` (m, 3) int64 (hull
        vertices per label), ``hull6`` (k: 6 x hull volume in lattice units, -1 if flat),
        ``records`` (r, 5: label index, global cell z, y, x, configuration) and ``origin``.

    Examples
    --------
    One voxel in a 3^3 block: 8 cells hold the level-0.5 octahedron (area sqrt(3)), whose
    vertices are the 6 face midpoints:

    >>> labels = np.zeros((3, 3, 3), np.uint32); labels[1, 1, 1] = 7
    >>> part = block_surface(labels, [None] * 7, (0, 0, 0), (3, 3, 3),
    ...                      cell_tables(0.5, (1.0, 1.0, 1.0)), pad=True, points=True)
    >>> part["ids"].tolist(), part["cells"].tolist(), round(float(part["sums"][0, 0]), 4)
    ([7], [8], 1.7321)
    >>> (part["points"] - 2).tolist()  # half voxels from the voxel's centre
    [[-1, 0, 0], [0, -1, 0], [0, 0, -1], [1, 0, 0], [0, 1, 0], [0, 0, 1]]
    >>> part["hull6"].tolist()  # 6 x (4/3 half-voxels^3): 1/6 voxel^3
    [8]
    """
    core = np.ascontiguousarray(core)
    if core.dtype.kind not in "iu":
        raise TypeError(f"labels must be integers, not {core.dtype}")
    if core.dtype == np.uint64:
        core = core.view(np.int64)
    n = core.shape
    dummy = _dummy(core.dtype)
    pieces = [dummy if p is None else np.ascontiguousarray(p).astype(core.dtype, copy=False)
              for p in neighbours]
    has = np.array([neighbours[a] is not None for a in range(3)])
    at_start = [int(origin[a]) == 0 for a in range(3)]
    lo = np.array([-1 if (pad and at_start[a]) else 0 for a in range(3)], np.int64)
    top = np.array([n[a] if (has[a] or pad) else n[a] - 1 for a in range(3)], np.int64)
    ecell = top - 1
    ids, acc, cnt, pts, plab, rec = _scan(
        core, *pieces, has, lo, ecell, top, np.asarray(origin, np.int64),
        np.asarray(tables.spacing, np.float64), tables.area, tables.volume, tables.normal,
        tables.flag, tables.K, tables.Kc, points)
    if points:
        offsets, grouped, vol6 = _group_hulls(pts, plab, len(ids))
    else:
        offsets, grouped = np.zeros(len(ids) + 1, np.int64), np.zeros((0, 3), np.int64)
        vol6 = np.full(len(ids), -1, np.int64)
    return {"ids": ids.view(np.uint64), "sums": acc, "cells": cnt, "offsets": offsets,
            "points": grouped, "hull6": vol6, "records": rec,
            "origin": np.asarray(origin, np.int64)}


# ---------------------------------------------------------------------------------------
# the host reduction


def _record_measures(rec: np.ndarray, crop_origin: np.ndarray, tables: CellTables,
                     sp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Area and signed volume (from the crop origin) of recorded cells, as skimage has them.

    skimage computes a vertex in double and stores it in float32 at its crop position
    (``x + fraction``); the cell-centre vertex of the level-0 records is the only one whose
    fraction is not exact, so it is rounded here at the same position.
    """
    area = np.zeros(len(rec))
    vol = np.zeros(len(rec))
    for cfg in np.unique(rec[:, 4]):
        sel = np.flatnonzero(rec[:, 4] == cfg)
        local = rec[sel, 1:4] - crop_origin[sel]  # cell corner in crop voxels
        tri = tables.record_tris[int(cfg)]  # (t, 3, 3) offsets, NaN = centre
        frac = tables.record_tris[int(cfg), "centre"]
        centre = (local.astype(np.float64) + frac).astype(np.float32).astype(np.float64)
        v = local[:, None, None, :] + np.nan_to_num(tri)[None]
        v = np.where(np.isnan(tri)[None], centre[:, None, None, :], v) * sp
        cross = np.cross(v[:, :, 1] - v[:, :, 0], v[:, :, 2] - v[:, :, 0])
        area[sel] = np.sqrt((cross ** 2).sum(-1)).sum(-1) / 2.0
        det = np.einsum("ktj,ktj->kt", v[:, :, 0], np.cross(v[:, :, 1], v[:, :, 2]))
        vol[sel] = det.sum(-1) / 6.0
    return area, vol


def reduce_surface(parts: Sequence[dict], ids: np.ndarray, crop_origin: np.ndarray,
                   tables: CellTables, hulls: bool, hull_tasks: int = 4):
    """Per-label (area, enclosed volume, hull volume) from the blocks' partial sums.

    Parameters
    ----------
    parts : list of dict
        :func:`block_surface` results.
    ids : (k,) uint64
        All labels, sorted (the moments' ids).
    crop_origin : (k, 3) int
        Global voxel index of each label's crop origin (where skimage's coordinates start).
    tables : CellTables
    hulls : bool
        Compute the convex-hull volumes (else NaN).
    hull_tasks : int
        Number of dask tasks the hulls are split into.

    Returns
    -------
    (k, 3) float64
        Area, enclosed volume and hull volume; NaN rows for labels without surface, NaN hull
        volumes for flat objects.

    Examples
    --------
    A 2-voxel cube, as :func:`redoxflow.measure.surface.mesh_measures` meshes its crop:

    >>> labels = np.zeros((4, 4, 4), np.uint32); labels[1:3, 1:3, 1:3] = 5
    >>> t = cell_tables(0.5, (1.0, 1.0, 1.0))
    >>> part = block_surface(labels, [None] * 7, (0, 0, 0), labels.shape, t, True, True)
    >>> reduce_surface([part], np.array([5], np.uint64), np.zeros((1, 3), int), t, True).round(4)
    array([[16.2173,  5.6667,  5.6667]])
    """
    import dask

    k = len(ids)
    sp = np.asarray(tables.spacing, np.float64)
    out = np.full((k, 3), np.nan)
    if k == 0:
        return out
    idx, area, signed, cells = [], [], [], []
    groups, group_idx = [], []
    for part in parts:
        if not len(part["ids"]):
            continue
        gi = np.searchsorted(ids, part["ids"])
        s = part["sums"]
        rel = (part["origin"][None, :] - crop_origin[gi]) * sp  # block origin in the crop
        idx.append(gi)
        area.append(s[:, 0])
        signed.append(s[:, 1] + (s[:, 5] + (rel * s[:, 2:5]).sum(axis=1)) / 3.0)
        cells.append(part["cells"])
        if len(part["records"]):
            rec = part["records"]
            a, v = _record_measures(rec, crop_origin[gi[rec[:, 0]]], tables, sp)
            idx.append(gi[rec[:, 0]])
            area.append(a)
            signed.append(v)
            cells.append(np.zeros(len(rec), np.int64))
        if hulls:
            groups.append(part)
            group_idx.append(gi)
    if not idx:
        return out
    idx = np.concatenate(idx)
    area = np.bincount(idx, np.concatenate(area), minlength=k)
    signed = np.bincount(idx, np.concatenate(signed), minlength=k)
    cells = np.bincount(idx, np.concatenate(cells), minlength=k)
    has_surface = cells > 0
    out[has_surface, 0] = area[has_surface]
    out[has_surface, 1] = np.abs(signed[has_surface])
    if hulls:
        # a label seen by one block has its hull from there; others: hull of their blocks'
        # hull vertices (the hull of a union is the hull of the parts' hulls)
        blocks = np.bincount(np.concatenate(group_idx), minlength=k)
        vol6 = np.full(k, -1.0)
        redo = blocks > 1
        for gi, part in zip(group_idx, groups):
            one = blocks[gi] == 1
            vol6[gi[one]] = part["hull6"][one]
        redo |= vol6 == -2
        if redo.any():
            points, offsets, which = _gather(groups, group_idx, redo)
            cuts = np.searchsorted(offsets, np.linspace(0, offsets[-1],
                                                        hull_tasks + 1)[1:-1])
            bounds = np.unique(np.concatenate([[0], np.clip(cuts, 0, len(which)),
                                               [len(which)]]))
            tasks = [dask.delayed(_hull_batch, pure=False)(
                points[offsets[a]:offsets[b]], offsets[a:b + 1] - offsets[a])
                for a, b in zip(bounds[:-1], bounds[1:])]
            vol6[which] = np.concatenate(dask.compute(tasks)[0])
        hull = np.where(vol6 >= 0, vol6 / 6.0 / tables.K ** 3 * float(np.prod(sp)), np.nan)
        out[has_surface, 2] = hull[has_surface]
    return out


def _gather(groups, group_idx, select):
    """The selected labels' point groups from all blocks, as one CSR in label order.

    Returns points, offsets and the selected label indices (the CSR's groups).
    """
    which = np.flatnonzero(select)
    label, starts, sizes, allpts = [], [], [], []
    total = 0
    for gi, part in zip(group_idx, groups):
        mine = np.flatnonzero(select[gi])
        if len(mine):
            label.append(gi[mine])
            starts.append(part["offsets"][mine] + total)
            sizes.append(np.diff(part["offsets"])[mine])
            allpts.append(part["points"])
            total += len(part["points"])
    label = np.concatenate(label)
    starts = np.concatenate(starts)
    sizes = np.concatenate(sizes)
    allpts = np.concatenate(allpts)
    order = np.argsort(label, kind="stable")
    counts = np.bincount(np.searchsorted(which, label), weights=sizes,
                         minlength=len(which)).astype(np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    points = _copy_groups(allpts, starts[order], sizes[order], offsets[-1])
    return points, offsets, which


@numba.njit(cache=True, nogil=True)
def _copy_groups(allpts, src, sizes, total):  # pragma: no cover - compiled
    out = np.empty((total, 3), np.int64)
    pos = 0
    for g in range(src.shape[0]):
        out[pos:pos + sizes[g]] = allpts[src[g]:src[g] + sizes[g]]
        pos += sizes[g]
    return out


def _hull_batch(points: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """6 x hull volume (lattice units) of each group; Qhull where a span reaches MAX_SPAN.

    Examples
    --------
    >>> cube = np.array([[i, j, k] for i in (0, 2) for j in (0, 2) for k in (0, 2)])
    >>> _hull_batch(np.concatenate([cube, cube[:3]]), np.array([0, 8, 11])).tolist()
    [48.0, -1.0]
    """
    out = hull_volumes6(np.ascontiguousarray(points, np.int64),
                        np.ascontiguousarray(offsets, np.int64)).astype(np.float64)
    for g in np.flatnonzero(out == -2):  # wider than any real label: floats are exact enough
        grp = points[offsets[g]:offsets[g + 1]].astype(np.float64)
        try:
            out[g] = ConvexHull(grp - grp[0]).volume * 6.0
        except (QhullError, ValueError):
            out[g] = -1.0
    return out
