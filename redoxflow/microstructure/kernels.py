"""Pure per-block kernels of the microstructure metrics (numpy in, numpy out).

Ball painting and the access pass are compiled with numba: neither scipy, scikit-image,
``edt`` nor PoreSpy exposes an exact (continuous-radius) maximal-ball painting or a
widest-path (maximin) access radius, and both are single loops that numpy cannot vectorise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np

__all__ = ["face_pair_counts", "ridge", "paint_balls", "access_radius", "tpb_edges",
           "lag_pair_counts", "profile_counts", "spans", "as_integer", "padded_int32",
           "paint_padded"]


def spans(n: int, parts: int) -> list[tuple[int, int]]:
    """``range(n)`` cut into at most ``parts`` near-equal non-empty (start, stop) spans.

    Examples
    --------
    >>> spans(7, 3)
    [(0, 2), (2, 4), (4, 7)]
    """
    parts = max(1, min(int(parts), n))
    edges = [n * k // parts for k in range(parts + 1)]
    return [(a, b) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def _in_threads(fn: Callable, items: list, threads: int) -> list:
    """``[fn(*item) for item in items]``, on ``threads`` threads when there are several
    (the compiled kernels release the GIL; plain threads compose with dask's threads, where
    numba's own parallel layer may not)."""
    if threads <= 1 or len(items) <= 1:
        return [fn(*item) for item in items]
    with ThreadPoolExecutor(min(threads, len(items))) as pool:
        return list(pool.map(lambda item: fn(*item), items))


def face_pair_counts(block: np.ndarray, values: np.ndarray, axis: int,
                     stop: int) -> np.ndarray:
    """Count faces between neighbours along ``axis`` per pair of phase indices.

    Parameters
    ----------
    block : integer ndarray, shape (z, y, x)
        A block with (at most) one extra plane after its write region along ``axis``.
    values : integer ndarray, shape (n,)
        The phase values; other values count as phase index ``n`` ("other").
    axis : int
        The face normal.
    stop : int
        Faces whose lower voxel lies before ``stop`` along ``axis`` are counted.

    Returns
    -------
    int64 ndarray, shape (n + 1, n + 1)
        ``out[i, j]`` (i < j): faces between phase i and phase j.

    Examples
    --------
    >>> b = np.array([[[0, 0, 1, 1, 2]]])
    >>> face_pair_counts(b, np.array([0, 1, 2]), 2, 4)[:3, :3].tolist()
    [[0, 1, 0], [0, 0, 1], [0, 0, 0]]
    """
    n = len(values)
    index = phase_index(block, values)
    lo = np.take(index, np.arange(0, min(stop, block.shape[axis] - 1)), axis=axis)
    hi = np.take(index, np.arange(1, min(stop, block.shape[axis] - 1) + 1), axis=axis)
    differ = lo != hi
    a, b = lo[differ], hi[differ]
    pairs = np.minimum(a, b).astype(np.int64) * (n + 1) + np.maximum(a, b)
    return np.bincount(pairs, minlength=(n + 1) ** 2).reshape(n + 1, n + 1)


def phase_index(block: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each voxel's phase in ``values`` (``len(values)`` for other values), uint8.

    Examples
    --------
    >>> phase_index(np.array([[[0, 85, 170, 3]]]), np.array([0, 85, 170]))[0, 0].tolist()
    [0, 1, 2, 3]
    """
    values = np.asarray(values)
    index = np.full(block.shape, len(values), np.uint8)
    for i, v in enumerate(values):
        index[block == v] = i
    return index


def tpb_edges(block: np.ndarray, values: np.ndarray, stops: Sequence[int]) -> np.ndarray:
    """Voxel edges around which at least three of the phases meet, per edge direction.

    An edge along axis ``a`` is shared by the 2x2 voxels around it in the other two axes;
    it counts when those four voxels hold three or more different phases of ``values``.
    Edges are identified by their lowest voxel; those before ``stops`` (per axis) count.

    Parameters
    ----------
    block : integer ndarray, shape (z, y, x)
        A block with (at most) one extra plane after its write region on each axis.
    values : integer ndarray
        The phase values (other values never count as a phase).
    stops : (int, int, int)
        End of the write region on each axis, in block coordinates.

    Returns
    -------
    int64 ndarray, shape (3,)
        Edge counts along z, y and x.

    Examples
    --------
    >>> b = np.zeros((1, 2, 2), np.uint8); b[0, 0, 1] = 1; b[0, 1, 0] = 2
    >>> tpb_edges(b, np.array([0, 1, 2]), (1, 1, 1)).tolist()
    [1, 0, 0]
    """
    index = phase_index(block, values)
    n = len(values)
    out = np.zeros(3, np.int64)
    for axis in range(3):
        a, b = [d for d in range(3) if d != axis]
        sl = [slice(0, stops[d]) for d in range(3)]
        ends = [min(stops[d], block.shape[d] - 1) for d in (a, b)]
        if min(ends) <= 0:
            continue
        present = np.zeros((n,) + tuple(
            ends[[a, b].index(d)] if d in (a, b) else min(stops[d], block.shape[d])
            for d in range(3)), bool)
        for da_ in (0, 1):
            for db in (0, 1):
                s = list(sl)
                s[axis] = slice(0, min(stops[axis], block.shape[axis]))
                s[a] = slice(da_, ends[0] + da_)
                s[b] = slice(db, ends[1] + db)
                part = index[tuple(s)]
                for p in range(n):
                    present[p] |= part == p
        out[axis] = int((present.sum(axis=0) >= 3).sum())
    return out


def profile_counts(block: np.ndarray, values: np.ndarray, axis: int) -> np.ndarray:
    """Voxels of each phase per plane along ``axis``.

    Examples
    --------
    >>> profile_counts(np.array([[[0, 1], [1, 1]]]), np.array([0, 1]), 2).tolist()
    [[1, 0], [1, 2]]
    """
    other = tuple(d for d in range(3) if d != axis)
    return np.stack([(block == v).sum(axis=other) for v in values]).astype(np.int64)


def lag_pair_counts(mask: np.ndarray, stops: Sequence[int], max_lag: int) -> np.ndarray:
    """Pairs (p, p + k e_axis) with both voxels in the phase, per axis and lag.

    Pairs are identified by their first voxel; those before ``stops`` count (the block
    carries ``max_lag`` extra planes after its write region where the volume has them).

    Returns
    -------
    int64 ndarray, shape (3, max_lag + 1)

    Examples
    --------
    >>> m = np.array([[[1, 1, 0, 1]]], bool)
    >>> lag_pair_counts(m, (1, 1, 4), 2)[2].tolist()
    [3, 1, 1]
    """
    out = np.zeros((3, max_lag + 1), np.int64)
    own = mask[:stops[0], :stops[1], :stops[2]]
    out[:, 0] = int(own.sum())
    for axis in range(3):
        for k in range(1, max_lag + 1):
            n = min(stops[axis], mask.shape[axis] - k)
            if n <= 0:
                break
            s1 = [slice(0, stops[d]) for d in range(3)]
            s2 = list(s1)
            s1[axis] = slice(0, n)
            s2[axis] = slice(k, k + n)
            out[axis, k] = int(np.count_nonzero(mask[tuple(s1)] & mask[tuple(s2)]))
    return out


NEIGHBOURS = np.array(sorted(((dz, dy, dx) for dz in (-1, 0, 1) for dy in (-1, 0, 1)
                              for dx in (-1, 0, 1) if (dz, dy, dx) != (0, 0, 0)),
                             key=lambda v: abs(v[0]) + abs(v[1]) + abs(v[2])), np.int64)
PATTERNS = np.array([(abs(v[0]) << 2) | (abs(v[1]) << 1) | abs(v[2]) for v in NEIGHBOURS])


def containment_tables(r2max: float, spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Tables of the smallest neighbour ball that contains a ball, as voxel sets.

    The open ball of squared radius ``R`` holds the lattice offsets ``d`` with
    ``|d|^2 < R``; a neighbour at offset ``v`` contains it when its squared radius exceeds
    ``max |d - v|^2`` over those offsets. The ball is symmetric under each axis reflection,
    so the table depends only on which axes ``v`` moves along (7 patterns).

    Returns
    -------
    norms : float64 ndarray, shape (k,)
        The distinct squared norms of the lattice offsets, sorted.
    need : float64 ndarray, shape (8, k + 1)
        ``need[p, searchsorted(norms, R)]``: the containment bound for pattern ``p``.

    Examples
    --------
    >>> norms, need = containment_tables(4.0, (1, 1, 1))
    >>> norms[:3].tolist(), float(need[4, np.searchsorted(norms, 2.0)])
    ([0.0, 1.0, 2.0], 4.0)
    """
    sp = np.asarray(spacing, np.float64)
    reach = [int(np.sqrt(r2max) / s) + 1 for s in sp]
    grid = np.stack(np.meshgrid(*[np.arange(-r, r + 1) for r in reach], indexing="ij"), -1)
    d = grid.reshape(-1, 3).astype(np.float64) * sp
    norm = (d * d).sum(axis=1)
    keep = norm <= r2max
    d, norm = d[keep], norm[keep]
    order = np.argsort(norm, kind="stable")
    d, norm = d[order], norm[order]
    norms, heads = np.unique(norm, return_index=True)
    need = np.full((8, len(norms) + 1), -np.inf)
    for p in range(1, 8):
        v = np.array([(p >> 2) & 1, (p >> 1) & 1, p & 1], np.float64) * sp
        dist = ((d - v) ** 2).sum(axis=1)
        need[p, 1:] = np.maximum.accumulate(np.maximum.reduceat(dist, heads))
    return norms, need


@numba.njit(cache=True, nogil=True)
def _ridge(r2, norms, need, neighbours, patterns, rel, keep, z0,
           z1):  # pragma: no cover - compiled
    nz, ny, nx = r2.shape
    for z in range(z0, z1):
        for y in range(ny):
            for x in range(nx):
                v = r2[z, y, x]
                if v <= 0.0:
                    continue
                k = np.searchsorted(norms, v)
                kept = True
                for m in range(neighbours.shape[0]):
                    zz = z + neighbours[m, 0]
                    yy = y + neighbours[m, 1]
                    xx = x + neighbours[m, 2]
                    if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                        continue
                    w = r2[zz, yy, xx]
                    if w >= v and w > need[patterns[m], k] * rel:
                        kept = False
                        break
                keep[z, y, x] = kept


@numba.njit(cache=True, nogil=True)
def _integral(flat):  # pragma: no cover - compiled
    for v in flat:
        if v != np.floor(v) or v >= 2.0**31 or v < 0:
            return False
    return True


def as_integer(r2: np.ndarray, spacing: Sequence[float]) -> np.ndarray | None:
    """int32 squared radii when voxels are unit cubes and every value is a whole number
    below 2^31 (isotropic distances in voxel units are sums of squared integers), else None.

    Examples
    --------
    >>> as_integer(np.array([[[0.0, 2.0, 5.0]]]), (1, 1, 1)).dtype.name
    'int32'
    >>> as_integer(np.array([[[0.5]]]), (1, 1, 1)) is None
    True
    """
    if tuple(map(float, spacing)) != (1.0, 1.0, 1.0):
        return None
    if r2.dtype == np.int32:
        return r2
    if r2.dtype.kind in "iu":
        return r2.astype(np.int32) if r2.size == 0 or int(r2.max()) < 2**31 else None
    flat = np.ascontiguousarray(r2).ravel()
    return r2.astype(np.int32) if _integral(flat) else None


@numba.njit(cache=True, nogil=True)
def _ridge_rows(r2, need, offsets, kinds, patterns, root, span, pny, pnx, z_start, z_stop,
                found, higher, keys):  # pragma: no cover - compiled
    """The ridge of padded planes [z_start, z_stop) of int32 squared radii framed by one
    voxel of zeros (flat ``r2``), one image row at a time (the 26 neighbour tests run over
    whole rows: vectorised). A centre of squared radius v is kept unless a neighbour of
    kind k (0: face, 1: edge, 2: corner) has ``w >= v`` and ``w > need[k, v]``.

    Writes the kept flat indices (ascending) into ``found`` and, per kept centre, the
    neighbour ranking above it (``w > v``, or ``w == v`` and a larger index) whose ball
    reaches furthest beyond it (largest ``sqrt(w) - |offset|``; -1: none) into
    ``higher``, and its crescent's key ``(v * span + w - v) * 8 + pattern`` into ``keys``
    (-1: none, or ``w - v >= span``); returns their count.
    """
    n = 0
    nxi = pnx - 2
    v = np.empty(nxi, np.int32)
    bound = np.empty((3, nxi), np.int32)
    keep = np.empty(nxi, np.int32)
    top = np.empty((3, nxi), np.int32)  # per kind: the largest higher neighbour's w
    arg = np.empty((3, nxi), np.int32)  # and which neighbour it is
    reach = np.sqrt(np.arange(1.0, 4.0))
    for z in range(z_start, z_stop):
        for y in range(1, pny - 1):
            base = (z * pny + y) * pnx + 1
            row = r2[base:base + nxi]
            count = 0
            for x in range(nxi):
                a = row[x]
                v[x] = a
                count += a > 0
            if count == 0:
                continue
            for x in range(nxi):
                a = v[x]
                for k in range(3):
                    bound[k, x] = need[k, a]
                    top[k, x] = -1
                    arg[k, x] = -1
                keep[x] = np.int32(a > 0)
            for m in range(offsets.shape[0]):
                off = offsets[m]
                above = off > 0
                src = r2[base + off:base + off + nxi]
                bk, tk, ak = bound[kinds[m]], top[kinds[m]], arg[kinds[m]]
                mm = np.int32(m)
                for x in range(nxi):
                    w = src[x]
                    a = v[x]
                    keep[x] &= np.int32((w < a) | (w <= bk[x]))
                    better = ((w > a) | ((w == a) & above)) & (w > tk[x])
                    tk[x] = w if better else tk[x]
                    ak[x] = mm if better else ak[x]
            for x in range(nxi):
                if keep[x] != 0:
                    found[n] = base + x
                    best = -1
                    score = -np.inf
                    for k in range(3):
                        if top[k, x] >= 0 and root[top[k, x]] - reach[k] > score:
                            score = root[top[k, x]] - reach[k]
                            best = arg[k, x]
                    higher[n] = np.int8(best)
                    keys[n] = -1
                    if best >= 0:
                        a = v[x]
                        w = top[kinds[best], x]
                        if w - a < span:
                            keys[n] = (np.int64(a) * span + (w - a)) * 8 + patterns[best]
                    n += 1
    return n


def _padded_ridge(padded: np.ndarray, threads: int = 1) -> tuple:
    """(found, higher, keys, bound, span) of :func:`_ridge_rows` over a whole padded
    array, threads over slabs of planes. A kept centre's higher neighbour has
    ``v <= w <= bound[pattern, v]``: ``w - v < span``."""
    flat = padded.ravel()
    pnz, pny, pnx = padded.shape
    plane = pny * pnx
    bound = _bounds(int(padded.max(initial=0)))
    # unit voxels: the bound depends only on how many axes a neighbour moves along
    assert all((bound[p] == bound[q]).all() for p, q in ((1, 2), (1, 4), (3, 5), (3, 6)))
    need = np.ascontiguousarray(bound[[1, 3, 7]], np.int32)
    offsets = NEIGHBOURS @ np.array([plane, pnx, 1])
    kinds = np.abs(NEIGHBOURS).sum(axis=1) - 1
    root = np.sqrt(np.arange(bound.shape[1], dtype=np.float64))
    r2max = bound.shape[1] - 1
    span = int((bound[1:, 1:] - np.arange(1, r2max + 1)).max(initial=0)) + 1

    def part(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        found = np.empty((b - a) * (pny - 2) * (pnx - 2), np.int64)
        higher = np.empty(len(found), np.int8)
        keys = np.empty(len(found), np.int64)
        n = _ridge_rows(flat, need, offsets, kinds, PATTERNS, root, span, pny, pnx, a + 1,
                        b + 1, found, higher, keys)
        return found[:n], higher[:n], keys[:n]  # views: concatenated below

    parts = _in_threads(part, spans(pnz - 2, threads), threads)
    found, higher, keys = (np.concatenate([p[k] for p in parts] + [np.zeros(0, t)])
                           for k, t in enumerate((np.int64, np.int8, np.int64)))
    return found, higher, keys, bound, span


@numba.njit(cache=True, nogil=True)
def _crescent_ids(keys, span, slot, combo_v, combo_w, combo_p,
                  combo):  # pragma: no cover - compiled
    """Number the distinct crescent keys (:func:`_ridge_rows`) into ``combo`` (-1: paint
    the whole ball: no key, or one beyond ``slot``), decoding each new one into its
    (v, w, pattern); returns how many."""
    n = 0
    for k in range(keys.shape[0]):
        key = keys[k]
        combo[k] = -1
        if key < 0 or key >= slot.shape[0]:
            continue
        if slot[key] < 0:
            slot[key] = n
            combo_p[n] = key & 7
            combo_v[n] = (key >> 3) // span
            combo_w[n] = combo_v[n] + (key >> 3) % span
            n += 1
        combo[k] = slot[key]
    return n


@numba.njit(cache=True, nogil=True)
def _crescent_rows(combo_v, combo_w, combo_p, widths, piece_ptr, pieces, fill, t0,
                   t1):  # pragma: no cover - compiled
    """The row pieces (dz, dy, x0, x1) of crescents t0 .. t1 - 1: the voxels d of the ball
    ``|d|^2 < v`` outside the neighbour's ball ``|d - e|^2 < w``, e = (a, b, c) the
    pattern's unit offsets; written from ``piece_ptr[t]`` on with ``fill``, else only
    counted into ``piece_ptr[t + 1]``."""
    for t in range(t0, t1):
        v, w, p = combo_v[t], combo_w[t], combo_p[t]
        a, b, c = (p >> 2) & 1, (p >> 1) & 1, p & 1
        q = piece_ptr[t] if fill else 0
        e = widths[v]  # the largest |dz| with dz^2 < v
        for dz in range(-e, e + 1):
            for dy in range(-e, e + 1):
                rem = v - dz * dz - dy * dy
                if rem <= 0:
                    continue
                half = widths[rem]
                lo, hi = -half, half
                cover = w - (dz - a) * (dz - a) - (dy - b) * (dy - b)
                if cover <= 0:  # the neighbour's ball misses this row
                    if fill:
                        pieces[q, 0], pieces[q, 1], pieces[q, 2], pieces[q, 3] = dz, dy, lo, hi
                    q += 1
                    continue
                wn = widths[cover]
                left = min(hi, c - wn - 1)
                if left >= lo:
                    if fill:
                        pieces[q, 0], pieces[q, 1], pieces[q, 2], pieces[q, 3] = dz, dy, lo, left
                    q += 1
                right = max(lo, c + wn + 1)
                if right <= hi:
                    if fill:
                        pieces[q, 0], pieces[q, 1], pieces[q, 2], pieces[q, 3] = dz, dy, right, hi
                    q += 1
        if not fill:
            piece_ptr[t + 1] = q


@numba.njit(cache=True, nogil=True)
def _paint_found(found, radii, combo, higher, pny, pnx, origin, out, row_ptr, rows, piece_ptr,
                 pieces, signs, factor):  # pragma: no cover - compiled
    """:func:`_paint_rows` for centres given as flat indices into the padded radii (their
    squared radii in ``radii``): the whole ball (``combo`` -1), or only its crescent
    outside the ball of its higher neighbour ``higher`` (the crescent's pieces reflected
    by that neighbour's ``signs``), each with ``float32(sqrt(v)) * factor`` (float32: the
    values of multiplying the painted radii by ``factor`` afterwards, max being monotone)."""
    nz, ny, nx = out.shape
    plane = pny * pnx
    for k in range(found.shape[0]):
        i = found[k]
        v = radii[k]
        val = np.float32(np.sqrt(v)) * factor
        z0 = i // plane - 1 - origin[0]
        y0 = (i // pnx) % pny - 1 - origin[1]
        x0 = i % pnx - 1 - origin[2]
        t = combo[k]
        if t < 0:
            _ball_rows(out, rows, row_ptr[v], row_ptr[v + 1], z0, y0, x0, val)
            continue
        m = higher[k]
        sz, sy, sx = signs[m, 0], signs[m, 1], signs[m, 2]
        for q in range(piece_ptr[t], piece_ptr[t + 1]):
            z = z0 + sz * pieces[q, 0]
            y = y0 + sy * pieces[q, 1]
            if z < 0 or z >= nz or y < 0 or y >= ny:
                continue
            if sx > 0:
                lo, hi = x0 + pieces[q, 2], x0 + pieces[q, 3]
            else:
                lo, hi = x0 - pieces[q, 3], x0 - pieces[q, 2]
            row = out[z, y]
            for x in range(max(lo, 0), min(hi + 1, nx)):
                row[x] = max(row[x], val)


def _bounds(r2max: int) -> np.ndarray:
    """Containment bounds by pattern and integer squared radius v (the bound of the
    norms below v); w > need <=> w > floor(need) for integer w; -1: no bound."""
    norms, need = containment_tables(float(r2max), (1.0, 1.0, 1.0))
    by_value = need[:, np.searchsorted(norms, np.arange(r2max + 1))]
    return np.where(np.isfinite(by_value), np.floor(by_value), -1).astype(np.int64)


def padded_int32(shape: Sequence[int]) -> np.ndarray:
    """A zero int32 array one voxel larger than ``shape`` on every side (for
    :func:`paint_padded`: fill its interior with squared radii).

    Examples
    --------
    >>> padded_int32((1, 2, 3)).shape
    (3, 4, 5)
    """
    return np.zeros(tuple(int(n) + 2 for n in shape), np.int32)


def paint_padded(padded: np.ndarray, *, origin: Sequence[int] = (0, 0, 0),
                 shape: Sequence[int] | None = None, threads: int = 1,
                 reuse: bool = False, factor: float = 1.0) -> np.ndarray:
    """:func:`paint_balls` of the ridge for int32 squared radii in voxel units, given inside
    a one-voxel frame of zeros (:func:`padded_int32`): each thread lists the ridge of its
    planes, then paints the balls reaching its slab of the output (no other copy).

    A centre with a neighbour ranking above it (a larger squared radius, or an equal one
    and a larger index) paints only the crescent of its ball outside that neighbour's ball:
    by induction from the top of that order, every ball's voxels end up with at least its
    radius (a neighbour's ball is painted, or lies in a higher ball that is), so the result
    is that of painting every ball, with a twentieth of the writes on the real electrode.

    With ``reuse`` the output is painted over the memory of ``padded`` (destroyed): once
    the ridge is listed the radii are no longer read, and fresh pages cost about as much
    as the painting at 512^3. ``factor`` scales the painted radii (float32, the values of
    ``out * float32(factor)``) without another pass over the output.

    Examples
    --------
    >>> p = padded_int32((1, 1, 7)); p[1, 1, 4] = 4; p[1, 1, 1] = 1
    >>> paint_padded(p)[0, 0].tolist()
    [1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0]
    """
    flat = padded.ravel()
    inner = tuple(n - 2 for n in padded.shape)
    pny, pnx = padded.shape[1:]
    plane = pny * pnx
    found, higher, keys, bound, span = _padded_ridge(padded, threads)
    r2max = bound.shape[1] - 1
    widths = _widths(padded, (1.0, 1.0, 1.0))
    radii = flat[found]
    row_ptr, rows = _row_table(radii, widths)
    combo, piece_ptr, pieces = _crescents(keys, span, r2max, widths, threads)
    out_shape = tuple(int(n) for n in (shape if shape is not None else inner))
    if reuse:  # same bytes per voxel, fewer voxels: the output fits at its start
        out = flat.view(np.float32)[:int(np.prod(out_shape))].reshape(out_shape)
    else:
        out = np.zeros(out_shape, np.float32)
    far = int(np.sqrt(r2max)) + 1

    def paint_part(a: int, b: int) -> None:
        """Balls reaching output planes [a, b): centres in planes z0 - far .. (padded
        flat indices are z-major, so a range of them)."""
        z0 = int(origin[0]) + a
        i, j = np.searchsorted(found, [(z0 - far + 1) * plane, (z0 + b - a + far + 1) * plane])
        at = np.array([z0, origin[1], origin[2]], np.int64)
        if reuse:
            out[a:b] = 0
        _paint_found(found[i:j], radii[i:j], combo[i:j], higher[i:j], pny, pnx, at,
                     out[a:b], row_ptr, rows, piece_ptr, pieces, SIGNS, np.float32(factor))

    _in_threads(paint_part, spans(out.shape[0], threads), threads)
    return out


SIGNS = np.where(NEIGHBOURS < 0, -1, 1).astype(np.int64)  # reflections of the crescents
CRESCENT_SLOTS = 2**24  # (v, w - v, pattern) keys numbered in a dense table up to this


def _crescents(keys, span, r2max, widths, threads: int = 1):
    """Per centre, its crescent's number (-1: the whole ball) and the crescents' row
    pieces in CSR form (see :func:`_crescent_rows`, threads over the crescents)."""
    combo = np.full(len(keys), -1, np.int32)
    if not len(keys) or r2max < 1:
        return combo, np.zeros(1, np.int64), np.zeros((0, 4), np.int32)
    slot = np.full(min((r2max + 1) * span * 8, CRESCENT_SLOTS), -1, np.int32)
    cv, cw, cp = (np.empty(len(keys), np.int64) for _ in range(3))
    n = _crescent_ids(keys, span, slot, cv, cw, cp, combo)
    cv, cw, cp = cv[:n].copy(), cw[:n].copy(), cp[:n].copy()
    piece_ptr = np.zeros(n + 1, np.int64)
    none = np.zeros((0, 4), np.int32)
    parts = spans(n, threads)
    _in_threads(lambda a, b: _crescent_rows(cv, cw, cp, widths, piece_ptr, none, False, a, b),
                parts, threads)
    np.cumsum(piece_ptr, out=piece_ptr)
    pieces = np.empty((int(piece_ptr[-1]), 4), np.int32)
    _in_threads(lambda a, b: _crescent_rows(cv, cw, cp, widths, piece_ptr, pieces, True, a, b),
                parts, threads)
    return combo, piece_ptr, pieces


def _ridge_integer(r2: np.ndarray, threads: int = 1) -> np.ndarray:
    """:func:`ridge` for isotropic voxel units (integer squared radii, int32 work array)."""
    padded = padded_int32(r2.shape)
    padded[1:-1, 1:-1, 1:-1] = r2
    keep = np.zeros(padded.size, np.bool_)
    keep[_padded_ridge(padded, threads)[0]] = True
    return keep.reshape(padded.shape)[1:-1, 1:-1, 1:-1]


def ridge(r2: np.ndarray, spacing: Sequence[float], threads: int = 1) -> np.ndarray:
    """Centres whose ball is not contained in a neighbour's ball of at least its radius.

    Containment is tested on the voxel sets (:func:`containment_tables`) for the 26
    neighbours, which keeps a superset of the discrete maximal balls: painting the kept
    balls gives the same result as painting all of them.

    Parameters
    ----------
    r2 : float64 or int32 ndarray, shape (z, y, x)
        Squared ball radius per voxel (0: no ball).
    spacing : (z, y, x)
        Voxel size.
    threads : int
        Threads over slabs of z planes.

    Returns
    -------
    bool ndarray, shape (z, y, x)

    Examples
    --------
    >>> r2 = np.array([[[1.0, 9.0, 1.0]]])
    >>> ridge(r2, (1, 1, 1))[0, 0].tolist()
    [False, True, False]
    """
    integer = as_integer(r2, spacing)
    if integer is not None:
        return _ridge_integer(integer, threads)
    r2 = np.ascontiguousarray(r2, np.float64)
    norms, need = containment_tables(float(r2.max(initial=0.0)), spacing)
    keep = np.zeros(r2.shape, np.bool_)
    _in_threads(lambda a, b: _ridge(r2, norms, need, NEIGHBOURS, PATTERNS, 1.0 + 1e-12, keep,
                                    a, b), spans(r2.shape[0], threads), threads)
    return keep


@numba.njit(cache=True, nogil=True)
def _paint(cz, cy, cx, r2, origin, out, sz, sy, sx, widths):  # pragma: no cover
    nz, ny, nx = out.shape
    for i in range(cz.shape[0]):
        rr = r2[i]
        r = np.sqrt(rr)
        val = np.float32(r)
        z0, y0, x0 = cz[i] - origin[0], cy[i] - origin[1], cx[i] - origin[2]
        rz = int(r / sz) + 1
        ry = int(r / sy) + 1
        for dz in range(max(-rz, -z0), min(rz, nz - 1 - z0) + 1):
            remz = rr - (dz * sz) ** 2
            if remz <= 0.0:
                continue
            z = z0 + dz
            for dy in range(max(-ry, -y0), min(ry, ny - 1 - y0) + 1):
                rem = remz - (dy * sy) ** 2
                if rem <= 0.0:
                    continue
                y = y0 + dy
                if rem < widths.shape[0] and rem == int(rem):
                    w = widths[int(rem)]  # isotropic voxel units: integer squared radii
                else:
                    w = int(np.sqrt(rem) / sx)  # the largest w with (w sx)^2 < rem
                    while w > 0 and (w * sx) ** 2 >= rem:
                        w -= 1
                    while ((w + 1) * sx) ** 2 < rem:
                        w += 1
                row = out[z, y]
                for x in range(max(x0 - w, 0), min(x0 + w + 1, nx)):
                    row[x] = max(row[x], val)


@numba.njit(cache=True, nogil=True)
def _paint_rows(cz, cy, cx, r2, origin, out, row_ptr, rows):  # pragma: no cover
    """:func:`_paint` for integer squared radii, from a table of each radius' rows."""
    for i in range(cz.shape[0]):
        v = int(r2[i])
        val = np.float32(np.sqrt(r2[i]))
        _ball_rows(out, rows, row_ptr[v], row_ptr[v + 1], cz[i] - origin[0],
                   cy[i] - origin[1], cx[i] - origin[2], val)


@numba.njit(cache=True, nogil=True, inline="always")
def _ball_rows(out, rows, start, stop, z0, y0, x0, val):  # pragma: no cover - compiled
    """out = max(out, val) over the rows ``rows[start:stop]`` ((dz, dy, half width)) of a
    ball centred at (z0, y0, x0), clipped to ``out``."""
    nz, ny, nx = out.shape
    for k in range(start, stop):
        z = z0 + rows[k, 0]
        y = y0 + rows[k, 1]
        if z < 0 or z >= nz or y < 0 or y >= ny:
            continue
        w = rows[k, 2]
        row = out[z, y]
        for x in range(max(x0 - w, 0), min(x0 + w + 1, nx)):
            row[x] = max(row[x], val)


def _row_table(values: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR table of the rows (dz, dy, half width) of the ball of each integer squared
    radius in ``values``: ``rows[row_ptr[v]:row_ptr[v + 1]]``."""
    vmax = int(values.max(initial=0))
    reach = int(np.sqrt(vmax)) + 1
    dz, dy = np.meshgrid(np.arange(-reach, reach + 1), np.arange(-reach, reach + 1),
                         indexing="ij")
    dz, dy = dz.ravel(), dy.ravel()
    d2 = dz * dz + dy * dy
    counts = np.zeros(vmax + 2, np.int64)
    parts = []
    for v in np.flatnonzero(np.bincount(np.asarray(values, np.int64), minlength=1)):
        sel = d2 < v
        rem = v - d2[sel]
        parts.append((v, np.stack([dz[sel], dy[sel], widths[rem]], axis=1)))
        counts[v + 1] = sel.sum()
    row_ptr = np.cumsum(counts)
    rows = np.zeros((row_ptr[-1], 3), np.int64)
    for v, r in parts:
        rows[row_ptr[v]:row_ptr[v + 1]] = r
    return row_ptr, rows


def _widths(r2, spacing) -> np.ndarray:
    """Half widths ``w`` (largest with ``w^2 < rem``) of rows for integer ``rem`` in voxel
    units; empty for anisotropic spacing (the kernel then solves each row)."""
    if tuple(map(float, spacing)) != (1.0, 1.0, 1.0):
        return np.zeros(0, np.int64)
    rem = np.arange(int(r2.max(initial=0)) + 2)
    w = np.floor(np.sqrt(np.maximum(rem - 1, 0))).astype(np.int64)
    w -= (w * w >= np.maximum(rem, 1)) & (w > 0)
    w += (w + 1) ** 2 < rem
    return w


def paint_balls(r2: np.ndarray, spacing: Sequence[float], *, centres: np.ndarray | None = None,
                origin: Sequence[int] = (0, 0, 0), shape: Sequence[int] | None = None,
                threads: int = 1) -> np.ndarray:
    """Largest radius of the open balls ``|x - c| < r_c`` covering each voxel.

    Parameters
    ----------
    r2 : float64 or int32 ndarray, shape (z, y, x)
        Squared radius of the ball centred on each voxel (0: none).
    spacing : (z, y, x)
        Voxel size.
    centres : bool ndarray, optional
        The centres to paint (default :func:`ridge` of ``r2``, which gives the same result
        as painting every ball).
    origin, shape : (z, y, x), optional
        The output window within ``r2`` (default: all of it).
    threads : int
        Threads, each painting every ball that reaches its own slab of output planes.

    Returns
    -------
    float32 ndarray, shape ``shape``
        Radius (0 where no ball reaches).

    Examples
    --------
    >>> r2 = np.zeros((1, 1, 7)); r2[0, 0, 3] = 4.0; r2[0, 0, 0] = 1.0
    >>> paint_balls(r2, (1, 1, 1))[0, 0].tolist()
    [1.0, 0.0, 2.0, 2.0, 2.0, 0.0, 0.0]
    >>> paint_balls(r2, (1, 1, 1), origin=(0, 0, 2), shape=(1, 1, 2))[0, 0].tolist()
    [2.0, 2.0]
    """
    integer = as_integer(r2, spacing)
    if integer is not None and centres is None:
        padded = padded_int32(integer.shape)
        padded[1:-1, 1:-1, 1:-1] = integer
        return paint_padded(padded, origin=origin, shape=shape, threads=threads,
                            reuse=True)
    r2 = integer if integer is not None else np.ascontiguousarray(r2, np.float64)
    keep = ridge(r2, spacing, threads) if centres is None else centres & (r2 > 0)
    cz, cy, cx = (np.asarray(c, np.int64) for c in np.nonzero(keep))  # cz ascending
    out = np.zeros(tuple(shape) if shape is not None else r2.shape, np.float32)
    radii = r2[keep]
    table = None
    widths = _widths(r2, spacing)
    if integer is not None:
        table = _row_table(radii, widths)
    reach = int(np.sqrt(float(radii.max(initial=0))) / float(spacing[0])) + 1

    def slab(a: int, b: int) -> None:
        """Paint the balls reaching output planes [a, b) into out[a:b]."""
        z0 = int(origin[0]) + a
        i, j = np.searchsorted(cz, [z0 - reach, z0 + (b - a) + reach])
        at = np.array([z0, origin[1], origin[2]], np.int64)
        args = (cz[i:j], cy[i:j], cx[i:j], radii[i:j], at, out[a:b])
        if table is not None:
            _paint_rows(*args, *table)
        else:
            _paint(*args, *map(float, spacing), widths)

    _in_threads(slab, spans(out.shape[0], threads), threads)
    return out


@numba.njit(cache=True)
def _find(parent, i):  # pragma: no cover - compiled
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:
        parent[i], i = root, parent[i]
    return root


@numba.njit(cache=True)
def _access(r2flat, order, inlet, shape, offsets_z, offsets_y, offsets_x,
            out):  # pragma: no cover - compiled
    """Union-find over voxels added in decreasing r2: a component gets its access level
    when it first contains an inlet voxel; later joiners get their own level."""
    nz, ny, nx = shape
    n = r2flat.shape[0]
    parent = np.arange(n)
    connected = np.zeros(n, np.bool_)
    added = np.zeros(n, np.bool_)
    nxt = np.full(n, -1, np.int64)  # members linked list per root
    tail = np.arange(n)
    for k in range(order.shape[0]):
        i = order[k]
        level = r2flat[i]
        added[i] = True
        connected[i] = inlet[i]
        z = i // (ny * nx)
        y = (i // nx) % ny
        x = i % nx
        for m in range(offsets_z.shape[0]):
            zz, yy, xx = z + offsets_z[m], y + offsets_y[m], x + offsets_x[m]
            if zz < 0 or zz >= nz or yy < 0 or yy >= ny or xx < 0 or xx >= nx:
                continue
            j = (zz * ny + yy) * nx + xx
            if not added[j]:
                continue
            a, b = _find(parent, i), _find(parent, j)
            if a == b:
                continue
            if connected[a] != connected[b]:  # the unconnected side joins at this level
                u = b if connected[a] else a
                while u != -1:
                    out[u] = level
                    u = nxt[u]
            parent[b] = a
            connected[a] = connected[a] or connected[b]
            nxt[tail[a]] = b
            tail[a] = tail[b]
        if connected[_find(parent, i)]:
            out[i] = level


def access_radius(r2: np.ndarray, inlet: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Widest-path level of each voxel from the inlet: the largest ``t`` such that the voxel
    is connected to an inlet voxel through voxels with ``r2 >= t`` (0 when unreachable).

    Parameters
    ----------
    r2 : float64 ndarray, shape (z, y, x)
        Squared ball radius per voxel (0 outside the phase).
    inlet : bool ndarray, shape (z, y, x)
        Inlet voxels.
    offsets : int ndarray, shape (m, 3)
        Neighbour offsets (the connectivity).

    Returns
    -------
    float64 ndarray, shape (z, y, x)

    Examples
    --------
    >>> r2 = np.array([[[4.0, 1.0, 9.0, 0.0, 9.0]]])
    >>> inlet = np.zeros(r2.shape, bool); inlet[0, 0, 0] = True
    >>> off = np.array([[0, 0, -1], [0, 0, 1]])
    >>> access_radius(r2, inlet, off)[0, 0].tolist()
    [4.0, 1.0, 1.0, 0.0, 0.0]
    """
    flat = np.ascontiguousarray(r2, np.float64).ravel()
    where = np.flatnonzero(flat > 0)
    order = where[np.argsort(-flat[where], kind="stable")]
    out = np.zeros(flat.shape, np.float64)
    off = np.asarray(offsets, np.int64)
    _access(flat, order, np.ascontiguousarray(inlet, bool).ravel(), r2.shape,
            off[:, 0].copy(), off[:, 1].copy(), off[:, 2].copy(), out)
    return out.reshape(r2.shape)
