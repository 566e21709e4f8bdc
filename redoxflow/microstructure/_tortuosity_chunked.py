"""The diffusion solve out of core (private): the same CG + multigrid, one slab at a time.

The percolating mask comes from the chunked labeling (:func:`through_chunked`); the solve
(:class:`SlabSolve`) then keeps every array in raw files of a scratch folder and runs each
pass as one dask task per slab of layers along the transport axis, which reads its inputs
with one halo layer on each side and writes its own layers, so the halo exchange goes
through the store and a worker holds one slab (at most ``SLAB_VOXELS`` voxels) at a time.

On disk: the mask (1 B per voxel), the fine vectors on the percolating voxels only
(x, r, p in float64, z and a temporary in float32: 32 B per percolating voxel, addressed
row by row with the compiled cursors of :mod:`._tortuosity_rows`), and the first coarse
level (2x2x2 aggregates: link counts and seven float32 arrays, about 4 B per voxel). The
second coarse level and below (1/64 of the voxels) are the in-memory hierarchy of
:mod:`._tortuosity_solver` in the calling process. Dot products, fluxes and the CG vectors
x, r, p are float64. A labeling pass plus about ten slab passes per CG iteration read the
volume; the scratch folder is removed when the solve ends, whatever the outcome.

Written here rather than taken from a library: PyAMG and TauFactor hold the whole operator
in one process (or one GPU), PETSc's multigrid in the memory of its MPI ranks; none solves
matrix-free on the percolating voxels only from a chunked store on disk.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np

from ..labeling import label
from . import _tortuosity_rows as R
from . import _tortuosity_solver as S

log = logging.getLogger(__name__)


def through_chunked(data, sides, connectivity: int = 6):
    """(lazy mask of the voxels of components touching both faces, phase voxels per slice).

    Examples
    --------
    >>> m = np.zeros((4, 3, 3), bool)
    >>> m[:, 1, 1] = True
    >>> m[:2, 0, 0] = True
    >>> through, counts = through_chunked(da.from_array(m, chunks=2), (False, False))
    >>> int(through.sum().compute()), counts.tolist()
    (4, [2, 2, 1, 1])
    """
    labels, n = label(data, connectivity=connectivity)
    counts = data.sum(axis=(1, 2), dtype=np.int64)
    if n == 0:
        return da.zeros_like(data, dtype=bool), counts.compute()
    pairs = []
    for a in (1, 2):
        if sides[a - 1]:
            pairs += [da.take(labels, [0], axis=a), da.take(labels, [-1], axis=a)]
    inlet, outlet, counts, *side = dask.compute(labels[0], labels[-1], counts, *pairs)
    comp = S.merge_periodic([(side[i], side[i + 1]) for i in range(0, len(side), 2)], n)
    both = np.intersect1d(np.unique(comp[inlet]), np.unique(comp[outlet]))
    keep = np.isin(comp, both)
    keep[0] = False
    return labels.map_blocks(lambda b: keep[b], dtype=bool), counts


# --- the out-of-core solve -------------------------------------------------------------------

SLAB_VOXELS = 1 << 26  # at most this many voxels per slab (or the input's chunks, if thinner)
FINE = {"x": np.float64, "r": np.float64, "p": np.float64, "z": np.float32, "t": np.float32}
COARSE = ("r1", "a1", "b1", "c1", "c2", "v1", "rt")  # first coarse level (float32)


@dataclass
class Grid:
    """Where a solve keeps its arrays and how its slabs lie (small: sent with every task).

    ``edges[z]``: index of layer z's first unknown in the fine vectors (``edges[n0]`` = N).

    Examples
    --------
    >>> g = Grid("/tmp", (9, 4, 4), (5, 2, 2), (1, 1, 1), (1, 1, 1), ((0, 8), (8, 9)),
    ...          np.zeros(10, np.int64), (1.0, 1.0, 1.0), (False, False))
    >>> [g.layers1(*s) for s in g.slabs], g.path("x")
    ([(0, 4), (4, 5)], '/tmp/x')
    """

    folder: str
    shape: tuple  # fine (n0, n1, n2)
    shape1: tuple  # first coarse level
    f: tuple  # aggregation shifts fine -> first coarse level (1, or 0 for a length-1 axis)
    f1: tuple  # first -> second coarse level
    slabs: tuple  # (z0, z1) per slab, z0 a multiple of 4
    edges: np.ndarray
    cond: tuple
    sides: tuple

    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def layers1(self, z0: int, z1: int) -> tuple[int, int]:
        """First coarse layers of fine layers z0 .. z1 - 1."""
        return z0 >> self.f[0], ((z1 - 1) >> self.f[0]) + 1


def _read(path, dtype, start: int, stop: int) -> np.ndarray:
    """Elements ``start:stop`` of a raw file."""
    dtype = np.dtype(dtype)
    with open(path, "rb") as fh:
        return np.fromfile(fh, dtype, max(stop - start, 0), offset=start * dtype.itemsize)


def _write(path, a: np.ndarray, start: int) -> None:
    with open(path, "r+b") as fh:
        fh.seek(start * a.dtype.itemsize)
        np.ascontiguousarray(a).tofile(fh)


def _create(path, nbytes: int) -> None:
    with open(path, "wb") as fh:
        fh.truncate(nbytes)


def _layers(path, dtype, shape, lo: int, hi: int) -> np.ndarray:
    """Layers ``lo:hi`` of a raw dense volume, zero outside ``0:shape[0]``."""
    layer = shape[1] * shape[2]
    out = np.zeros((hi - lo,) + tuple(shape[1:]), dtype)
    a, b = max(lo, 0), min(hi, shape[0])
    if b > a:
        out[a - lo: b - lo] = _read(path, dtype, a * layer, b * layer).reshape(
            (b - a,) + tuple(shape[1:]))
    return out


def _halo_vector(grid: Grid, name: str, z0: int, z1: int):
    """(fine vector over layers z0 - 1 .. z1 (halo'd), offset of layer z0 within it)."""
    e, n0 = grid.edges, grid.shape[0]
    lo, hi = e[max(z0 - 1, 0)], e[min(z1 + 1, n0)]
    return _read(grid.path(name), FINE[name], lo, hi), int(e[z0] - lo)


def _rows(grid: Grid, z0: int, z1: int) -> np.ndarray:
    """Row starts of layers z0 - 1 .. z1 (+ the end), relative to the halo'd vector."""
    n0, n1 = grid.shape[:2]
    rows = np.zeros((z1 - z0 + 2) * n1 + 1, np.int64)
    a, b = max(z0 - 1, 0), min(z1 + 1, n0)
    got = _read(grid.path("rows"), np.int64, a * n1, b * n1 + 1)
    lo = got[0]
    rows[(a - (z0 - 1)) * n1: (a - (z0 - 1)) * n1 + got.size] = got - lo
    if z0 == 0:  # the empty halo layer before the volume
        rows[:n1] = 0
    if z1 == n0:  # and after it
        rows[(z1 - z0 + 1) * n1:] = got[-1] - lo
    return rows


def _faces(grid: Grid, z0: int, z1: int):
    """(d_in, d_out) of the fine level: zeros unless the slab holds the first / last layer."""
    empty = np.zeros(grid.shape[1:], np.float32)
    d_in = np.load(grid.path("d_in.npy")) if z0 == 0 else empty
    d_out = np.load(grid.path("d_out.npy")) if z1 == grid.shape[0] else empty
    return d_in, d_out


def _fine_task(grid: Grid, s: int, mode: int, v: str, b: str | None = None,
               out: str | None = None, u: str | None = None, x: str | None = None,
               alpha: float = 0.0, prolong: str | None = None):
    """One fine-level pass over slab ``s``: reads its halo'd inputs, writes its outputs."""
    z0, z1 = grid.slabs[s]
    n0 = grid.shape[0]
    m = _layers(grid.path("mask"), np.uint8, grid.shape, z0 - 1, z1 + 1)
    rs = _rows(grid, z0, z1)
    vv, off = _halo_vector(grid, v, z0, z1)
    e0, e1 = int(grid.edges[z0]), int(grid.edges[z1])
    if prolong is not None:  # v += P (coarse correction) over the halo'd layers
        lo, hi = (z0 - 1) >> grid.f[0], (z1 >> grid.f[0]) + 1
        xc = _layers(grid.path(prolong), np.float32, grid.shape1, lo, hi)
        vv = vv.astype(np.float64) if vv.dtype != np.float64 else vv
        R.walk(R.PROLONG, m, rs, off, z0, n0, *_walk_consts(grid, z0, z1), vv, _NO64, _NO32,
               _NO64, _NO32, xc, np.array(grid.f), 0.0, S.OMEGA, _NO64)
    bb = _read(grid.path(b), FINE[b], e0, e1) if b is not None else _NO64
    uu = _read(grid.path(u), FINE[u], e0, e1) if u is not None else _NO32
    xv = _read(grid.path(x), FINE[x], e0, e1) if x is not None else _NO64
    oo = np.empty(e1 - e0, FINE[out]) if out is not None else _NO32
    rc = _NO3
    prof = np.zeros(z1 - z0 + 1)
    if mode == R.RESTRICT:
        l0, l1 = grid.layers1(z0, z1)
        rc = np.zeros((l1 - l0,) + grid.shape1[1:], np.float32)
    s1, s2 = R.walk(mode, m, rs, off, z0, n0, *_walk_consts(grid, z0, z1), vv, bb, uu, xv, oo,
                    rc, np.array(grid.f), alpha, S.OMEGA, prof)
    if mode == R.CG_STEP:
        _write(grid.path(b), bb, e0)
        _write(grid.path(x), xv, e0)
    if out is not None:
        _write(grid.path(out), oo, e0)
    if mode == R.RESTRICT:
        _write(grid.path("r1"), rc, grid.layers1(z0, z1)[0] * rc[0].size)
    return (s1, s2) if mode != R.FLUXES else prof


def _walk_consts(grid: Grid, z0: int, z1: int):
    n1, n2 = grid.shape[1:]
    return (bool(grid.sides[1]) and n2 > 1, bool(grid.sides[0]) and n1 > 1,
            *grid.cond, *_faces(grid, z0, z1))


_NO64 = np.zeros(1, np.float64)
_NO32 = np.zeros(1, np.float32)
_NO3 = np.zeros((1, 1, 1), np.float32)


def _coarse_task(grid: Grid, s: int, mode: int, x: str | None, b: str, out: str | None,
                 u: str | None = None, prolong=None):
    """One pass on the first coarse level over slab ``s`` (its coarse layers).

    RESTRICT returns the slab's part of the second level's right-hand side, APPLY_DOT the
    sums of :func:`~._tortuosity_rows.counts_walk`; ``prolong`` (the second level's layers
    from ``(l0 - 1) >> f1[0]`` on) is added to ``x`` first."""
    shape = grid.shape1
    l0, l1 = grid.layers1(*grid.slabs[s])
    lo, hi = l0 - 1, l1 + 1

    def layers(name, dtype=np.float32):
        return _layers(grid.path(name), dtype, shape, lo, hi)

    g = [layers(f"g{a}", np.uint8) for a in range(3)]
    bb = layers(b)
    xx = layers(x) if x is not None else bb
    uu = layers(u) if u is not None else _NO3
    if prolong is not None:
        f = grid.f1
        idx = np.ix_((np.arange(lo, hi) >> f[0]) - (lo >> f[0]), np.arange(shape[1]) >> f[1],
                     np.arange(shape[2]) >> f[2])
        xx = xx + prolong[idx]
    d_in = np.load(grid.path("d_in1.npy"))
    d_out = np.load(grid.path("d_out1.npy"))
    i_in = 1 if l0 == 0 else -1
    i_out = l1 - lo - 1 if l1 == shape[0] else -1
    oo = np.zeros_like(xx) if out is not None else _NO3
    rc = _NO3
    if mode == R.RESTRICT:
        m0, m1 = l0 >> grid.f1[0], ((l1 - 1) >> grid.f1[0]) + 1
        rc = np.zeros((m1 - m0,) + tuple(-(-n // (1 << k)) for n, k in
                                          zip(shape[1:], grid.f1[1:])), np.float32)
    sums = R.counts_walk(mode, xx, bb, uu, *g, *grid.cond, d_in, d_out, i_in, i_out, S.OMEGA,
                         oo, rc, np.array(grid.f1))
    if out is not None:
        _write(grid.path(out), oo[1:-1], l0 * shape[1] * shape[2])
    return rc if mode == R.RESTRICT else sums


def _coarse_elementwise(grid: Grid, s: int, op: str, a: float, b: float = 0.0):
    """First coarse level, slab ``s``: ``"rt"``: rt = r1 - a v1, returns (rt . rt, r1 . r1);
    ``"combine"``: c1 = a c1 + b c2."""
    l0, l1 = grid.layers1(*grid.slabs[s])
    size = grid.shape1[1] * grid.shape1[2]

    def read(name):
        return _read(grid.path(name), np.float32, l0 * size, l1 * size)

    if op == "rt":
        r1 = read("r1")
        rt = r1 - np.float32(a) * read("v1")
        _write(grid.path("rt"), rt, l0 * size)
        return float(np.dot(rt, rt.astype(np.float64))), float(np.dot(r1, r1.astype(np.float64)))
    c1 = read("c1")
    c1 *= np.float32(a)
    if b:
        c1 += np.float32(b) * read("c2")
    _write(grid.path("c1"), c1, l0 * size)
    return None


def _restrict_block(r, f):
    out = np.zeros(tuple(-(-n // k) for n, k in zip(r.shape, f)), dtype=r.dtype)
    S._k("_nb_restrict", r.size)(np.ascontiguousarray(r), *f, out)
    return out


def _coarse_links(g, axis: int, f, move_wrap: bool, zero: bool):
    """Coarse conductances along ``axis`` of one slab (its aggregates lie inside it)."""
    n = g.shape[axis]
    if n % f[axis]:  # odd: the last aggregate is one voxel thick, padded
        pads = [(0, 0)] * 3
        pads[axis] = (0, 1)
        g = np.pad(g, pads)
        if move_wrap:  # odd periodic axis: the wrap conductance to the padded end
            src = [slice(None)] * 3
            dst = [slice(None)] * 3
            src[axis], dst[axis] = slice(n - 1, n), slice(n, n + 1)
            g[tuple(dst)] = g[tuple(src)]
            g[tuple(src)] = 0
    sl = [slice(None)] * 3
    sl[axis] = slice(f[axis] - 1, None, f[axis])
    out = _restrict_block(g[tuple(sl)], tuple(1 if b == axis else f[b] for b in range(3)))
    if zero:
        out[...] = 0
    return out


def _aggregate(g, shifts, full, sides):
    """Links crossing the faces of one slab's aggregates: the Galerkin coarse conductances of
    piecewise-constant aggregation (as :func:`~._tortuosity_solver.coarsen`)."""
    f = tuple(1 << k for k in shifts)
    return [_coarse_links(g[a], a, f, a > 0 and sides[a - 1] and full[a] % 2 == 1
                          and full[a] > 1, -(-full[a] // f[a]) == 1) for a in range(3)]


def _fine_links(m_ext, sides):
    """Unit links of a slab's mask (``m_ext``: the slab and the next layer, zero at the end)."""
    m = m_ext[:-1].astype(bool)
    g = [m & m_ext[1:].astype(bool), np.zeros_like(m), np.zeros_like(m)]
    for a in (1, 2):
        n = m.shape[a]
        lo, hi = [slice(None)] * 3, [slice(None)] * 3
        lo[a], hi[a] = slice(0, n - 1), slice(1, n)
        g[a][tuple(lo)] = m[tuple(lo)] & m[tuple(hi)]
        if sides[a - 1] and n > 1:
            last, first = [slice(None)] * 3, [slice(None)] * 3
            last[a], first[a] = slice(n - 1, n), slice(0, 1)
            g[a][tuple(last)] = m[tuple(last)] & m[tuple(first)]
    return [a.astype(np.float32) for a in g]


def _setup_task(grid: Grid, s: int, line: np.ndarray):
    """Coarse link counts of slab ``s`` (written) and the initial guess; returns the second
    coarse level's conductance counts of the slab."""
    z0, z1 = grid.slabs[s]
    m_ext = _layers(grid.path("mask"), np.uint8, grid.shape, z0, z1 + 1)
    g1 = _aggregate(_fine_links(m_ext, grid.sides), grid.f, grid.shape, grid.sides)
    l0 = grid.layers1(z0, z1)[0]
    for a in range(3):
        _write(grid.path(f"g{a}"), g1[a].astype(np.uint8), l0 * g1[a][0].size)
    e = grid.edges
    x0 = np.repeat(line[z0:z1], np.diff(e[z0: z1 + 1]))
    _write(grid.path("x"), x0, int(e[z0]))
    return _aggregate(g1, grid.f1, grid.shape1, grid.sides)


def _elementwise_task(grid: Grid, s: int, op: str, beta: float = 0.0):
    """``"direction"``: p = z + beta p; ``"sums"``: the concentration sum of every layer."""
    z0, z1 = grid.slabs[s]
    e0, e1 = int(grid.edges[z0]), int(grid.edges[z1])
    if op == "sums":
        cs = np.concatenate([[0.0], np.cumsum(_read(grid.path("x"), np.float64, e0, e1))])
        at = grid.edges[z0: z1 + 1] - e0
        return cs[at[1:]] - cs[at[:-1]]
    p = _read(grid.path("p"), np.float64, e0, e1)
    p *= beta
    p += _read(grid.path("z"), np.float32, e0, e1)
    _write(grid.path("p"), p, e0)
    return None


def _store_block(block, path, shape, block_info=None):
    """Write a mask block into the raw volume; its row counts (for the row starts)."""
    (z0, z1), (y0, y1), (x0, x1) = block_info[0]["array-location"]
    mm = np.memmap(path, np.uint8, "r+", shape=shape)
    mm[z0:z1, y0:y1, x0:x1] = block
    mm.flush()
    del mm
    return block.sum(axis=2, dtype=np.int64)[:, :, None]


def _restrict_face(d, f):
    out = np.zeros((1,) + tuple(-(-n // (1 << k)) for n, k in zip(d.shape, f[1:])), d.dtype)
    S._k("_nb_restrict", d.size)(np.ascontiguousarray(d[None]), 1, 1 << f[1], 1 << f[2], out)
    return out[0]


def _pad_layers(a, lo: int, hi: int) -> np.ndarray:
    out = np.zeros((hi - lo,) + a.shape[1:], a.dtype)
    b0, b1 = max(lo, 0), min(hi, a.shape[0])
    if b1 > b0:
        out[b0 - lo: b1 - lo] = a[b0:b1]
    return out


class SlabSolve:
    """The diffusion solve out of core: CG + multigrid over slabs of a raw scratch store.

    The fine vectors (x, r, p in float64; z and a temporary in float32) hold the active
    voxels only; the first coarse level is dense (link counts and three float32 arrays);
    the second coarse level and below are the in-memory hierarchy of
    :mod:`._tortuosity_solver` (its K-cycle). Each pass is one dask task per slab, which
    reads its inputs with one halo layer from the store and writes its own layers: the halo
    exchange goes through the store, so a worker holds one slab at a time.

    Examples
    --------
    >>> folder = tempfile.mkdtemp()
    >>> m = da.ones((10, 3, 2), bool, chunks=(4, 3, 2))
    >>> solve = SlabSolve(m, (1.0, 1.0, 1.0), (False, False), "face", folder)
    >>> solve.grid.slabs, solve.through_slices.tolist()
    (((0, 4), (4, 8), (8, 10)), [6, 6, 6, 6, 6, 6, 6, 6, 6, 6])
    >>> sol = solve.solve(1e-8, 50)
    >>> sol.converged, round(float(sol.fluxes.mean()) / 6, 6)  # D_eff = flux * L / area
    (True, 0.1)
    >>> shutil.rmtree(folder)
    """

    def __init__(self, through, h, sides, boundary: str, folder: str):
        cond = (h[1] * h[2] / h[0], h[0] * h[2] / h[1], h[0] * h[1] / h[2])
        active = through[1:-1] if boundary == "voxel" else through
        shape = tuple(int(n) for n in active.shape)
        n0, n1, n2 = shape
        f = tuple(int(n > 1) for n in shape)
        shape1 = tuple(-(-n // (1 << k)) for n, k in zip(shape, f))
        f1 = tuple(int(n > 1) for n in shape1)
        t = min(4 * -(-int(max(active.chunks[0])) // 4),
                max(4, SLAB_VOXELS // (n1 * n2) // 4 * 4))
        slabs = tuple((z, min(z + t, n0)) for z in range(0, n0, t))
        _create(os.path.join(folder, "mask"), n0 * n1 * n2)
        counts = da.map_blocks(_store_block, active.astype(np.uint8),
                               os.path.join(folder, "mask"), shape, dtype=np.int64,
                               chunks=active.chunks[:2] + ((1,) * active.numblocks[2],))
        # one pass of the labeling: the mask to the store and the layers next to the faces
        n = through.shape[0]
        rowcounts, t0, t1, t2, t3 = dask.compute(counts.sum(axis=2), through[0],
                                                 through[min(1, n - 1)],
                                                 through[max(n - 2, 0)], through[-1])
        layers = rowcounts.sum(axis=1)
        if boundary == "voxel":
            d_in, d_out = (t0 & t1) * cond[0], (t3 & t2) * cond[0]
            layers = np.concatenate([[t0.sum()], layers, [t3.sum()]])
        else:
            d_in, d_out = t0 * (2 * cond[0]), t3 * (2 * cond[0])
        self.through_slices = layers.astype(np.int64)
        d_in, d_out = d_in.astype(np.float32), d_out.astype(np.float32)
        rows = np.concatenate([[0], np.cumsum(rowcounts.ravel())]).astype(np.int64)
        rows.tofile(os.path.join(folder, "rows"))
        self.grid = grid = Grid(folder, shape, shape1, f, f1, slabs, rows[::n1].copy(),
                                tuple(float(c) for c in cond), tuple(sides))
        size1 = math.prod(shape1)
        for name, dtype in FINE.items():
            _create(grid.path(name), int(rows[-1]) * np.dtype(dtype).itemsize)
        for name in ("g0", "g1", "g2"):
            _create(grid.path(name), size1)
        for name in COARSE:
            _create(grid.path(name), 4 * size1)
        d_in1, d_out1 = _restrict_face(d_in, f), _restrict_face(d_out, f)
        for name, a in (("d_in", d_in), ("d_out", d_out), ("d_in1", d_in1),
                        ("d_out1", d_out1)):
            np.save(grid.path(name + ".npy"), a)
        i = np.arange(n0, dtype=np.float64)
        line = 1.0 - (i + 0.5) / n0 if boundary == "face" else 1.0 - (i + 1.0) / (n0 + 1.0)
        parts = self._run(_setup_task, line)
        g2 = tuple(np.concatenate([p[a] for p in parts]) * np.float32(cond[a])
                   for a in range(3))
        self.hier = S.Hierarchy(np, S._finish(np, S.Level(
            g2, _restrict_face(d_in1, f1), _restrict_face(d_out1, f1))), "numpy")
        self.bnorm = math.sqrt(float(np.sum(d_in.astype(np.float64) ** 2)))

    def _run(self, func, *args, per_slab=None, **kwargs):
        """``func(grid, s, *args, **kwargs)`` on every slab, in parallel; their results."""
        extra = per_slab or [{}] * len(self.grid.slabs)
        task = dask.delayed(func, pure=False)
        return dask.compute(*[task(self.grid, s, *args, **kwargs, **extra[s])
                              for s in range(len(self.grid.slabs))])

    @staticmethod
    def _sums(parts) -> tuple[float, ...]:
        return tuple(float(sum(p[i] for p in parts)) for i in range(len(parts[0])))

    def _sum(self, *args, **kwargs) -> tuple[float, ...]:
        return self._sums(self._run(_fine_task, *args, **kwargs))

    def _vcycle1(self, rhs: str, out: str):
        """V-cycle on the first coarse level (its rhs file to ``out``); below it the
        in-memory hierarchy's K-cycle."""
        run = self._run
        run(_coarse_task, R.JACOBI0, None, rhs, "a1")
        run(_coarse_task, R.JACOBI, "a1", rhs, "b1")
        rc2 = np.concatenate(run(_coarse_task, R.RESTRICT, "b1", rhs, None))
        xc2 = self.hier.coarse_correction(rc2, 0)
        f = self.grid.f1[0]
        extra = [{"prolong": _pad_layers(xc2, (l0 - 1) >> f, (l1 >> f) + 1)}
                 for l0, l1 in (self.grid.layers1(*z) for z in self.grid.slabs)]
        run(_coarse_task, R.JACOBI, "b1", rhs, "a1", per_slab=extra)
        run(_coarse_task, R.JACOBI, "a1", rhs, out)

    def _kcycle1(self):
        """Notay's K-cycle on the first coarse level (as
        :meth:`~._tortuosity_solver.Hierarchy.coarse_correction`): the correction in c1.
        A V-cycle there instead measured 36 CG iterations against 20 at 128^3."""
        self._vcycle1("r1", "c1")
        rho1, a1, _ = self._sums(self._run(_coarse_task, R.APPLY_DOT, "c1", "r1", "v1"))
        if rho1 <= 0:
            return
        rtn, rn = self._sums(self._run(_coarse_elementwise, "rt", a1 / rho1))
        if rtn <= (S.KCYCLE_TOL ** 2) * rn:
            self._run(_coarse_elementwise, "combine", a1 / rho1)
            return
        self._vcycle1("rt", "c2")
        beta, a2, gamma = self._sums(self._run(_coarse_task, R.APPLY_DOT, "c2", "rt", None,
                                               u="v1"))
        rho2 = beta - gamma * gamma / rho1
        if rho2 <= 0:
            self._run(_coarse_elementwise, "combine", a1 / rho1)
            return
        self._run(_coarse_elementwise, "combine", a1 / rho1 - gamma * a2 / (rho1 * rho2),
                  a2 / rho2)

    def precondition(self):
        """z = one V-cycle on r (the preconditioner; float32): Jacobi sweeps, the first
        coarse level's K-cycle, Jacobi sweeps (``SWEEPS`` = 2 before and after)."""
        run = self._run
        run(_fine_task, R.JACOBI0, "r", b="r", out="t")
        run(_fine_task, R.JACOBI, "t", b="r", out="z")
        run(_fine_task, R.RESTRICT, "z", b="r")
        self._kcycle1()
        run(_fine_task, R.JACOBI, "z", b="r", out="t", prolong="c1")
        run(_fine_task, R.JACOBI, "t", b="r", out="z")

    def fluxes(self) -> np.ndarray:
        parts = self._run(_fine_task, R.FLUXES, "x")
        return np.concatenate([p[:-1] for p in parts] + [parts[-1][-1:]])

    def layer_sums(self) -> np.ndarray:
        return np.concatenate(self._run(_elementwise_task, "sums"))

    def solve(self, tol: float, maxiter: int) -> S.Solution:
        """Flexible CG as :func:`~._tortuosity_solver.solve`, pass by pass."""
        n0 = self.grid.shape[0]
        if self.bnorm == 0:
            return S.Solution(None, np.zeros(n0 + 1), 0, 0.0, 0.0, True)
        rr = self._sum(R.RESIDUAL0, "x", out="r")[0]
        self.precondition()
        self._run(_elementwise_task, "direction", beta=0.0)
        rz = self._sum(R.DOTS, "p", b="r", u="z")[0]
        it, residual = 0, math.sqrt(rr) / self.bnorm
        fluxes = self.fluxes()
        balance = S.balance_of(fluxes)
        while it < maxiter and not (balance <= tol and residual <= tol):
            pq = self._sum(R.APPLY_DOT, "p")[0]
            if pq <= 0:
                break
            alpha = rz / pq
            rr = self._sum(R.CG_STEP, "p", b="r", x="x", alpha=alpha)[0]
            it += 1
            residual = math.sqrt(rr) / self.bnorm
            log.info("tortuosity CG iteration %d: relative residual %.3g", it, residual)
            if residual <= tol:
                fluxes = self.fluxes()
                balance = S.balance_of(fluxes)
                if balance <= tol:
                    break
            self.precondition()
            rz_new, zq = self._sum(R.DOTS, "p", b="r", u="z")  # z . r and z . A p (= q)
            beta = max(-alpha * zq / rz, 0.0)
            rz = rz_new
            self._run(_elementwise_task, "direction", beta=beta)
        if residual > tol:
            fluxes = self.fluxes()
            balance = S.balance_of(fluxes)
        return S.Solution(None, fluxes, it, residual, balance,
                          balance <= tol and residual <= tol)


def solve_chunked(through, h, sides, boundary, tol, maxiter, scratch=None):
    """(percolating voxels per slice, concentration sum per slice of the unknowns, Solution),
    out of core in a temporary folder under ``scratch`` (default: the temp folder).

    Examples
    --------
    >>> m = da.ones((6, 2, 2), bool, chunks=(2, 2, 2))
    >>> counts, sums, sol = solve_chunked(m, (1.0, 1.0, 1.0), (False, False), "face", 1e-8, 50)
    >>> sol.converged, [round(float(v) / 4, 4) for v in sums]
    (True, [0.9167, 0.75, 0.5833, 0.4167, 0.25, 0.0833])
    """
    folder = tempfile.mkdtemp(prefix="redoxflow-tortuosity-", dir=scratch)
    try:
        solver = SlabSolve(through, h, sides, boundary, folder)
        if not solver.through_slices.any():
            return solver.through_slices, None, None
        sol = solver.solve(tol, maxiter)
        return solver.through_slices, solver.layer_sums(), sol
    finally:
        shutil.rmtree(folder, ignore_errors=True)
