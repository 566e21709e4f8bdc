"""The diffusion solve blockwise over dask (private): the same CG + multigrid, chunked.

The finest ``k`` levels stay dask arrays: conductances, diagonals and every CG vector are
chunked; the operator and the Jacobi sweeps run per block with one-voxel halos
(``dask.array.map_overlap``: zero outside the volume, wrapped on periodic sides);
restriction and prolongation are blockwise (chunks are multiples of ``2**k``, so the 2x2x2
aggregates never straddle blocks); the Dirichlet terms travel as a volume ``dd`` (zero but
on the first and last layers) so that the stencil kernels need not know where a block lies.
Level ``k`` (1/8**k of the voxels) is gathered and handed to the in-memory hierarchy (its
K-cycle). Dot products and fluxes are float64 reductions; every vector is persisted once per
iteration. Percolation uses the chunked labeling of :func:`redoxflow.labeling.label`.
"""

from __future__ import annotations

import math

import dask
import dask.array as da
import numpy as np

from ..labeling import label
from . import _tortuosity_solver as S

IN_MEMORY = 1 << 24  # at most this many voxels in the first level gathered into memory
MAX_CHUNKED_LEVELS = 3


def _boundary(sides):
    return {0: 0, 1: "periodic" if sides[0] else 0, 2: "periodic" if sides[1] else 0}


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


# --- blockwise kernels (numpy blocks; halo'd ones return their input's shape) ---------------

def _g_block(m, axis, cond):
    """Conductances i -> i + 1 along ``axis`` (float32) of a halo'd block."""
    m = m.astype(bool, copy=False)
    g = np.zeros(m.shape, np.float32)
    lo = [slice(None)] * 3
    hi = [slice(None)] * 3
    lo[axis], hi[axis] = slice(0, -1), slice(1, None)
    g[tuple(lo)] = (m[tuple(lo)] & m[tuple(hi)]) * np.float32(cond)
    return g


def _diag_block(g0, g1, g2, dd):
    """Sum of the six conductances plus the Dirichlet term (float64) of a halo'd block."""
    diag = g0.astype(np.float64) + g1 + g2 + dd
    diag[1:] += g0[:-1]
    diag[:, 1:] += g1[:, :-1]
    diag[:, :, 1:] += g2[:, :, :-1]
    return diag


def _apply_block(x, g0, g1, g2, diag):
    out = np.empty_like(x)
    S._k("_nb_residual", x.size)(x, np.zeros_like(x), g0, g1, g2, diag, out)
    return np.negative(out, out=out)


def _jacobi_block(x, b, g0, g1, g2, diag, inv):
    out = np.empty_like(x)
    S._k("_nb_jacobi", x.size)(x, b, g0, g1, g2, diag, inv, out)
    return out


def _residual_block(x, b, g0, g1, g2, diag):
    out = np.empty_like(x)
    S._k("_nb_residual", x.size)(x, b, g0, g1, g2, diag, out)
    return out


def _restrict_block(r, f):
    out = np.empty(tuple(-(-n // k) for n, k in zip(r.shape, f)), dtype=r.dtype)
    S._k("_nb_restrict", r.size)(np.ascontiguousarray(r), *f, out)
    return out


def _prolong_block(x, xc, f):
    out = x.copy()
    S._k("_nb_prolong_add", x.size)(np.ascontiguousarray(xc), *f, 1.0, out)
    return out


def _coarse_g_block(g, axis, f, move_wrap, zero):
    """Coarse conductances along ``axis`` of one block (its aggregates lie inside it)."""
    n = g.shape[axis]
    if n % f[axis]:  # odd block (the last): its last aggregate is one voxel, padded
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


def _layer_block(zeros, first, last, n0, block_info=None):
    """A block of a volume that is zero but on global layer 0 and the last layer."""
    (z0, z1), (y0, y1), (x0, x1) = block_info[0]["array-location"]
    out = zeros.copy()
    if z0 == 0 and first is not None:
        out[0] += first[y0:y1, x0:x1]
    if z1 == n0 and last is not None:
        out[-1] += last[y0:y1, x0:x1]
    return out


def _layer_volume(shape, chunks, dtype, first, last):
    return da.zeros(shape, dtype=dtype, chunks=chunks).map_blocks(
        _layer_block, first, last, shape[0], dtype=dtype)


# --- levels ------------------------------------------------------------------------------------

class ChunkedLevel:
    """Conductances, the Dirichlet volume and the diagonals of one level, persisted.

    Examples
    --------
    >>> g = tuple(da.zeros((4, 2, 2), np.float32, chunks=2) for _ in range(3))
    >>> dd = da.ones((4, 2, 2), np.float32, chunks=2)
    >>> ChunkedLevel(g, dd, (False, False)).diag.sum().compute()
    np.float32(16.0)
    """

    def __init__(self, g, dd, sides):
        self.g, self.dd, self.sides = g, dd, sides
        self.shape = tuple(int(n) for n in dd.shape)
        self.bnd = _boundary(sides)
        self.factor = (1, 1, 1)
        self.diag64 = da.map_overlap(_diag_block, *g, dd, depth=1, boundary=self.bnd,
                                     dtype=np.float64,
                                     meta=np.empty((0, 0, 0), np.float64)).persist()
        self.diag = self.diag64.astype(np.float32).persist()
        safe = da.where(self.diag > 0, self.diag, np.float32(1))
        self.inv = da.where(self.diag > 0, np.float32(S.OMEGA) / safe,
                            np.float32(0)).astype(np.float32).persist()
        # the halo'd copies of the fixed arrays, made once: per sweep only x gets a halo
        self.halo = {name: self._halo(a).persist() for name, a in
                     (("g0", g[0]), ("g1", g[1]), ("g2", g[2]), ("diag", self.diag),
                      ("diag64", self.diag64), ("inv", self.inv))}

    def _halo(self, a):
        return da.overlap.overlap(a, depth=1, boundary=self.bnd)

    def _run(self, func, x, *fixed, b=None, dtype):
        parts = [self._halo(x)] + ([self._halo(b)] if b is not None else [])
        parts += [self.halo[name] for name in fixed]
        out = da.map_blocks(_interior, func, *parts, dtype=dtype, chunks=x.chunks,
                            meta=np.empty((0, 0, 0), dtype))
        return out

    def apply(self, x):
        return self._run(_apply_block, x, "g0", "g1", "g2", "diag64", dtype=np.float64)

    def jacobi(self, x, b):
        return self._run(_jacobi_block, x, "g0", "g1", "g2", "diag", "inv", b=b,
                         dtype=np.float32)

    def residual(self, x, b):
        return self._run(_residual_block, x, "g0", "g1", "g2", "diag", b=b,
                         dtype=np.float32)


def _interior(func, *blocks):
    """``func`` on halo'd blocks, cut back to the block's own voxels."""
    return func(*blocks)[1:-1, 1:-1, 1:-1]


def _coarse_chunks(chunks, f):
    return tuple(tuple(-(-c // f[b]) for c in chunks[b]) for b in range(3))


def _coarsen(level: ChunkedLevel) -> ChunkedLevel:
    f = tuple(2 if n > 1 else 1 for n in level.shape)
    level.factor = f
    shape_c = tuple(-(-n // k) for n, k in zip(level.shape, f))
    chunks = _coarse_chunks(level.dd.chunks, f)
    g_c = []
    for a in range(3):
        last_block = level.g[a].numblocks[a] - 1
        wrap = a > 0 and level.sides[a - 1] and level.shape[a] % 2 == 1 and level.shape[a] > 1

        def block(g, block_info=None, a=a, last_block=last_block, wrap=wrap):
            here = block_info[0]["chunk-location"][a]
            return _coarse_g_block(g, a, f, wrap and here == last_block, shape_c[a] == 1)

        g_c.append(level.g[a].map_blocks(block, chunks=chunks, dtype=np.float32).persist())
    dd = level.dd.map_blocks(_restrict_block, f, chunks=chunks, dtype=np.float32).persist()
    return ChunkedLevel(tuple(g_c), dd, level.sides)


def _memory_level(level: ChunkedLevel) -> S.Level:
    *g, dd = dask.compute(*level.g, level.dd)
    d_out = dd[-1].copy() if dd.shape[0] > 1 else np.zeros_like(dd[0])
    return S._finish(np, S.Level(tuple(np.ascontiguousarray(a) for a in g), dd[0].copy(),
                                 d_out))


def _aligned(chunks, n: int, step: int) -> tuple[int, ...]:
    """Chunks of one axis as multiples of ``step`` (but the last), near the given size."""
    c = max(step, -(-int(max(chunks)) // step) * step)
    full, rest = divmod(n, c)
    return (c,) * full + ((rest,) if rest else ())


def _dot(u, v) -> float:
    return float((u.astype(np.float64) * v).sum().compute())


def solve_chunked(through, h, sides, boundary, tol, maxiter):
    """(concentration of the unknowns as a persisted dask array, Solution).

    Examples
    --------
    >>> m = da.ones((6, 2, 2), bool, chunks=(2, 2, 2))
    >>> c, sol = solve_chunked(m, (1.0, 1.0, 1.0), (False, False), "face", 1e-8, 50)
    >>> sol.converged, [round(float(v), 4) for v in c[:, 0, 0].compute()]
    (True, [0.9167, 0.75, 0.5833, 0.4167, 0.25, 0.0833])
    """
    cond = [h[1] * h[2] / h[0], h[0] * h[2] / h[1], h[0] * h[1] / h[2]]
    if boundary == "voxel":
        active = through[1:-1]
        d_in, d_out = ((through[0] & through[1]) * cond[0], (through[-1] & through[-2])
                       * cond[0])
    else:
        active = through
        d_in, d_out = through[0] * (2 * cond[0]), through[-1] * (2 * cond[0])
    d_in, d_out = (a.astype(np.float32) for a in dask.compute(d_in, d_out))
    shape = tuple(int(n) for n in active.shape)
    levels = 1
    while math.prod(shape) / 8 ** levels > IN_MEMORY and levels < MAX_CHUNKED_LEVELS:
        levels += 1
    chunks = tuple(_aligned(active.chunks[a], shape[a], 2 ** levels) for a in range(3))
    active = active.rechunk(chunks).persist()
    bnd = _boundary(sides)
    g = tuple(da.map_overlap(_g_block, active, depth=1, boundary=bnd, dtype=np.float32,
                             meta=np.empty((0, 0, 0), np.float32), axis=a,
                             cond=0.0 if shape[a] == 1 else cond[a]).persist()
              for a in range(3))
    dd = _layer_volume(shape, chunks, np.float32, d_in,
                       d_out if shape[0] > 1 else None).persist()
    if shape[0] == 1:  # one layer: both Dirichlet terms on it
        dd = (dd + _layer_volume(shape, chunks, np.float32, d_out, None)).persist()
    chunked = [ChunkedLevel(g, dd, sides)]
    for _ in range(levels - 1):
        chunked.append(_coarsen(chunked[-1]))
    memory = S.Hierarchy(np, _memory_level(_coarsen(chunked[-1])), "numpy")
    fine = chunked[0]

    def vcycle(r, depth=0):
        lv = chunked[depth]
        x = (lv.inv * r).persist()
        for _ in range(S.SWEEPS - 1):
            x = lv.jacobi(x, r).persist()
        f = lv.factor
        coarse = _coarse_chunks(r.chunks, f)
        rc = lv.residual(x, r).map_blocks(_restrict_block, f, chunks=coarse, dtype=np.float32)
        if depth + 1 < len(chunked):
            xc = vcycle(rc.persist(), depth + 1)
        else:
            xc = da.from_array(memory.coarse_correction(np.ascontiguousarray(rc.compute()),
                                                        0), chunks=coarse)
        # block (I, J, K) of x with block (I, J, K) of xc (other chunks: no alignment)
        x = da.blockwise(_prolong_block, "ijk", x, "ijk", xc, "ijk", f, None,
                         dtype=np.float32, align_arrays=False,
                         meta=np.empty((0, 0, 0), np.float32)).persist()
        for _ in range(S.SWEEPS):
            x = lv.jacobi(x, r).persist()
        return x

    def precondition(r):
        return vcycle(r.astype(np.float32).persist()).astype(np.float64).persist()

    g0_64 = g[0].astype(np.float64)

    def fluxes_of(x):
        inlet = (d_in.astype(np.float64) * (1.0 - x[0])).sum()
        outlet = (d_out.astype(np.float64) * x[-1]).sum()
        inner = (g0_64[:-1] * (x[:-1] - x[1:])).sum(axis=(1, 2))
        i, o, inner = dask.compute(inlet, outlet, inner)
        return np.concatenate([[float(i)], np.asarray(inner, np.float64), [float(o)]])

    b = _layer_volume(shape, chunks, np.float64, d_in.astype(np.float64), None).persist()
    x = da.zeros(shape, dtype=np.float64, chunks=chunks)
    r = b
    bnorm = math.sqrt(_dot(b, b))
    if bnorm == 0:
        return x, S.Solution(x, np.zeros(shape[0] + 1), 0, 0.0, 0.0, True)
    z = precondition(r)
    p = z
    rz = _dot(r, z)
    it, residual, balance = 0, 1.0, math.inf
    fluxes = np.zeros(shape[0] + 1)
    while it < maxiter:
        q = fine.apply(p).persist()
        pq = _dot(p, q)
        if pq <= 0:
            break
        alpha = rz / pq
        x = (x + alpha * p).persist()
        r = (r - alpha * q).persist()
        it += 1
        residual = math.sqrt(_dot(r, r)) / bnorm
        if residual <= tol:
            fluxes = fluxes_of(x)
            balance = S.balance_of(fluxes)
            if balance <= tol:
                break
        z = precondition(r)
        rz_new = _dot(r, z)
        beta = max(-alpha * _dot(z, q) / rz, 0.0)
        rz = rz_new
        p = (z + beta * p).persist()
    if residual > tol:
        fluxes = fluxes_of(x)
        balance = S.balance_of(fluxes)
    return x, S.Solution(x, fluxes, it, residual, balance, balance <= tol and residual <= tol)
