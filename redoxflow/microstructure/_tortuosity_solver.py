"""Steady diffusion through one phase: multigrid-preconditioned conjugate gradient (private).

The problem is the cell-centred finite-volume discretisation of ``div(grad c) = 0`` on the
active (percolating) voxels of a volume whose transport axis is axis 0: ``c = 1`` on the
inlet face, ``c = 0`` on the outlet face, no flux through the other faces (or periodic
sides). Every level of the solver is a 7-point stencil held as three conductance arrays
``g[a]`` (``g[a][..., i, ...]`` couples voxel ``i`` to ``i + 1`` along axis ``a``; the last
entry is the periodic wrap, zero when the axis is not periodic) and two Dirichlet layers
``d_in`` / ``d_out`` (conductances from the first / last layer to the faces).

Coarse levels are the Galerkin operators ``P^T A P`` of piecewise-constant aggregation of
2x2x2 blocks, which for a 7-point stencil is again a 7-point stencil: a coarse conductance is
the sum of the fine conductances that cross the coarse face. This is unsmoothed aggregation
multigrid on the voxel grid (structured, matrix-free, nothing but sums to set up), used as a
symmetric V-cycle (damped Jacobi, as many sweeps before as after) to precondition CG; the
coarsest level is factorised once with SuperLU.

Why not PyAMG: its setup (strength of connection, aggregation, smoothing of the prolongator,
triple products on a CSR matrix) costs more than the whole solve here, needs the assembled
matrix (~100 B per unknown) and does not run on a GPU or blockwise; the geometric
aggregation needs no setup beyond the sums, is the same on every backend, and measured faster
(see ``benchmarks/bench_tortuosity.py``).

Kernels: array expressions on any array module (NumPy, CuPy: the GPU path) and compiled
numba kernels for the same operations on the CPU (the fast path; the same arithmetic up to
the order of float64 sums). On the CPU the finest level is held as one byte of link bits per
voxel (its conductances are one constant per axis): its passes are memory bound, and the
bits read 1 byte where three conductances, a diagonal and its inverse read 20 (measured at
128^3, 30 % porous: 1.4x less time per iteration, the same iterations). Every cycle reuses
its levels' work arrays (see :meth:`Hierarchy.buffer`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numba
import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from scipy.sparse.linalg import splu

from .._backend import to_backend, to_numpy

COARSEST = 512  # voxels of the coarsest level (factorised)
PARALLEL = 1 << 16  # voxels from which the compiled kernels run on all threads
SWEEPS = 2  # Jacobi sweeps before and after the coarse correction
OMEGA = 0.8  # Jacobi damping
ALPHA = 1.0  # coarse-correction scaling
KCYCLE_TOL = 0.25  # second K-cycle step skipped below this residual reduction


# --------------------------------------------------------------------------------------------
# numba kernels (CPU). Every axis wraps: the last conductance is zero unless periodic.

def _nb_apply(x, g0, g1, g2, d_in, d_out, out):  # pragma: no cover - compiled
    """out = A x; the diagonal (sum of the six conductances and the face terms) on the fly."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                a0, b0 = np.float64(g0[i, j, k]), np.float64(g0[ip, j, k])
                a1, b1 = np.float64(g1[i, j, k]), np.float64(g1[i, jp, k])
                a2, b2 = np.float64(g2[i, j, k]), np.float64(g2[i, j, kp])
                diag = a0 + b0 + a1 + b1 + a2 + b2
                if i == 0:
                    diag += d_in[j, k]
                if i == n0 - 1:
                    diag += d_out[j, k]
                out[i, j, k] = (diag * x[i, j, k] - a0 * x[inn, j, k] - b0 * x[ip, j, k]
                                - a1 * x[i, jn, k] - b1 * x[i, jp, k]
                                - a2 * x[i, j, kn] - b2 * x[i, j, kp])


def _nb_jacobi(x, b, g0, g1, g2, diag, inv, out):  # pragma: no cover - compiled
    """out = x + inv (b - A x), ``inv`` the damped inverse diagonal (0 on inactive voxels)."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                ax = (diag[i, j, k] * x[i, j, k]
                      - g0[i, j, k] * x[inn, j, k] - g0[ip, j, k] * x[ip, j, k]
                      - g1[i, j, k] * x[i, jn, k] - g1[i, jp, k] * x[i, jp, k]
                      - g2[i, j, k] * x[i, j, kn] - g2[i, j, kp] * x[i, j, kp])
                out[i, j, k] = x[i, j, k] + inv[i, j, k] * (b[i, j, k] - ax)


def _nb_jacobi0(b, inv, out):  # pragma: no cover - compiled
    """out = inv b (the first sweep from a zero guess)."""
    n0, n1, n2 = b.shape
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                out[i, j, k] = inv[i, j, k] * b[i, j, k]


def _nb_residual(x, b, g0, g1, g2, diag, out):  # pragma: no cover - compiled
    """out = b - A x (the diagonal from the array)."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                out[i, j, k] = b[i, j, k] - (
                    diag[i, j, k] * x[i, j, k]
                    - g0[i, j, k] * x[inn, j, k] - g0[ip, j, k] * x[ip, j, k]
                    - g1[i, j, k] * x[i, jn, k] - g1[i, jp, k] * x[i, jp, k]
                    - g2[i, j, k] * x[i, j, kn] - g2[i, j, kp] * x[i, j, kp])


def _nb_cg_step(x, r, p, q, alpha):  # pragma: no cover - compiled
    """x += alpha p, r -= alpha q; returns r . r (float64)."""
    n0, n1, n2 = x.shape
    s = 0.0
    for i in numba.prange(n0):
        t = 0.0
        for j in range(n1):
            for k in range(n2):
                x[i, j, k] += alpha * p[i, j, k]
                v = r[i, j, k] - alpha * q[i, j, k]
                r[i, j, k] = v
                t += v * v
        s += t
    return s


def _nb_direction(p, z, beta):  # pragma: no cover - compiled
    """p = z + beta p."""
    n0, n1, n2 = p.shape
    for i in numba.prange(n0):
        for j in range(n1):
            for k in range(n2):
                p[i, j, k] = z[i, j, k] + beta * p[i, j, k]


def _nb_dot(u, v):  # pragma: no cover - compiled
    """Float64 dot product of two 3D arrays (numba's threads, not BLAS's)."""
    n0, n1, n2 = u.shape
    s = 0.0
    for i in numba.prange(n0):
        t = 0.0
        for j in range(n1):
            for k in range(n2):
                t += np.float64(u[i, j, k]) * np.float64(v[i, j, k])
        s += t
    return s


def _nb_dot2(z, r, q):  # pragma: no cover - compiled
    """(z . r, z . q) in float64, one pass over z."""
    n0, n1, n2 = z.shape
    s1 = 0.0
    s2 = 0.0
    for i in numba.prange(n0):
        t1 = 0.0
        t2 = 0.0
        for j in range(n1):
            for k in range(n2):
                v = np.float64(z[i, j, k])
                t1 += v * r[i, j, k]
                t2 += v * q[i, j, k]
        s1 += t1
        s2 += t2
    return s1, s2


@numba.njit(inline="always")
def _add_row(row, f2, coarse):  # pragma: no cover - compiled
    """coarse[K] += the sum of row over the fine block K along the last axis (f2 = 1 or 2)."""
    n2 = row.shape[0]
    if f2 == 1:
        for k in range(n2):
            coarse[k] += row[k]
    else:
        for kc in range(n2 // 2):
            coarse[kc] += row[2 * kc] + row[2 * kc + 1]
        if n2 % 2:
            coarse[n2 // 2] += row[n2 - 1]


def _nb_restrict(r, f0, f1, f2, out):  # pragma: no cover - compiled
    """out[I, J, K] = sum of r over the fine block (I, J, K) (f0 x f1 x f2 voxels, f = 1 or 2).

    One pass over r in its own order (coarse rows written by one thread each)."""
    n0, n1, n2 = r.shape
    c0, c1, c2 = out.shape
    s1 = f1 - 1  # shift: a factor is 1 or 2
    for ic in numba.prange(c0):
        for jc in range(c1):
            for kc in range(c2):
                out[ic, jc, kc] = 0.0
        for di in range(f0):
            i = ic * f0 + di
            if i < n0:
                for j in range(n1):
                    _add_row(r[i, j], f2, out[ic, j >> s1])


def _nb_prolong_add(xc, f0, f1, f2, alpha, x):  # pragma: no cover - compiled
    """x += alpha * xc repeated over each fine block."""
    n0, n1, n2 = x.shape
    s0, s1, s2 = f0 - 1, f1 - 1, f2 - 1  # shifts: a factor is 1 or 2
    for i in numba.prange(n0):
        for j in range(n1):
            xr = x[i, j]
            cr = xc[i >> s0, j >> s1]
            for k in range(n2):
                xr[k] += alpha * cr[k >> s2]


def _nb_layer_fluxes(x, g0, d_in, d_out, out):  # pragma: no cover - compiled
    """Flux through the n0 + 1 faces normal to axis 0 (float64): inlet, interfaces, outlet."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0 + 1):
        s = 0.0
        for j in range(n1):
            for k in range(n2):
                if i == 0:
                    s += d_in[j, k] * (1.0 - x[0, j, k])
                elif i == n0:
                    s += d_out[j, k] * x[n0 - 1, j, k]
                else:
                    s += g0[i - 1, j, k] * (x[i - 1, j, k] - x[i, j, k])
        out[i] = s


# --- finest level from link bits: ``links`` bit a set where voxel i couples to i + 1 along a
# (the conductance is the axis's constant ``c_a``). One byte per voxel instead of three
# float32 conductances, a diagonal and an inverse: the finest level's passes are memory bound.

@numba.njit(inline="always")
def _link_row(x, links, i, ip, inn, j, jp, jn, k, kp, kn, c0, c1, c2):  # pragma: no cover
    """(diagonal without the face terms, sum of g x over the six neighbours) of one voxel."""
    el = links[i, j, k]
    a0 = c0 * (el & 1)
    b0 = c0 * (links[ip, j, k] & 1)
    a1 = c1 * ((el >> 1) & 1)
    b1 = c1 * ((links[i, jp, k] >> 1) & 1)
    a2 = c2 * ((el >> 2) & 1)
    b2 = c2 * ((links[i, j, kp] >> 2) & 1)
    acc = (a0 * x[inn, j, k] + b0 * x[ip, j, k] + a1 * x[i, jn, k] + b1 * x[i, jp, k]
           + a2 * x[i, j, kn] + b2 * x[i, j, kp])
    return a0 + b0 + a1 + b1 + a2 + b2, acc


def _nb_link_apply(x, links, c0, c1, c2, d_in, d_out, out):  # pragma: no cover - compiled
    """out = A x (float64); returns x . out."""
    n0, n1, n2 = x.shape
    s = 0.0
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        t = 0.0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                diag, acc = _link_row(x, links, i, ip, inn, j, jp, jn, k, kp, kn, c0, c1, c2)
                if i == 0:
                    diag += d_in[j, k]
                if i == n0 - 1:
                    diag += d_out[j, k]
                v = diag * x[i, j, k] - acc
                out[i, j, k] = v
                t += v * x[i, j, k]
        s += t
    return s


def _nb_link_jacobi(x, b, links, c0, c1, c2, d_in, d_out, omega, first, out):  # pragma: no cover
    """out = x + omega (b - A x) / diag (x = 0 when ``first``); 0 on inactive voxels."""
    n0, n1, n2 = b.shape
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                if first:
                    diag, acc = _link_row(b, links, i, ip, inn, j, jp, jn, k, kp, kn,
                                          c0, c1, c2)
                    acc = 0.0
                    xv = 0.0
                else:
                    diag, acc = _link_row(x, links, i, ip, inn, j, jp, jn, k, kp, kn,
                                          c0, c1, c2)
                    xv = x[i, j, k]
                if i == 0:
                    diag += d_in[j, k]
                if i == n0 - 1:
                    diag += d_out[j, k]
                if diag > 0:
                    out[i, j, k] = xv + omega * (b[i, j, k] - diag * xv + acc) / diag
                else:
                    out[i, j, k] = 0.0


def _nb_link_residual(x, b, links, c0, c1, c2, d_in, d_out, out):  # pragma: no cover
    """out = b - A x (float32 out). Restricting it in a second pass measured 1.7x faster
    than summing each fine residual into the coarse array in the same pass."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0):
        ip = i - 1 if i > 0 else n0 - 1
        inn = i + 1 if i + 1 < n0 else 0
        wi = 1.0 if i == 0 else 0.0
        wo = 1.0 if i == n0 - 1 else 0.0
        for j in range(n1):
            jp = j - 1 if j > 0 else n1 - 1
            jn = j + 1 if j + 1 < n1 else 0
            for k in range(n2):
                kp = k - 1 if k > 0 else n2 - 1
                kn = k + 1 if k + 1 < n2 else 0
                diag, acc = _link_row(x, links, i, ip, inn, j, jp, jn, k, kp, kn, c0, c1, c2)
                diag += wi * d_in[j, k] + wo * d_out[j, k]
                out[i, j, k] = b[i, j, k] - (diag * x[i, j, k] - acc)


def _nb_link_fluxes(x, links, c0, d_in, d_out, out):  # pragma: no cover - compiled
    """Flux through the n0 + 1 faces normal to axis 0 (float64): inlet, interfaces, outlet."""
    n0, n1, n2 = x.shape
    for i in numba.prange(n0 + 1):
        s = 0.0
        for j in range(n1):
            for k in range(n2):
                if i == 0:
                    s += d_in[j, k] * (1.0 - x[0, j, k])
                elif i == n0:
                    s += d_out[j, k] * x[n0 - 1, j, k]
                elif links[i - 1, j, k] & 1:
                    s += c0 * (x[i - 1, j, k] - x[i, j, k])
        out[i] = s


def links_of(g) -> np.ndarray:
    """Link bits (uint8) of three conductance arrays: bit a where ``g[a] > 0``.

    Examples
    --------
    >>> g = [np.array([[[1.0, 0.0]]]), np.zeros((1, 1, 2)), np.array([[[2.0, 0.0]]])]
    >>> links_of(g).ravel().tolist()
    [5, 0]
    """
    out = (g[0] > 0).astype(np.uint8)
    out |= (g[1] > 0).astype(np.uint8) << 1
    out |= (g[2] > 0).astype(np.uint8) << 2
    return out


# serial twins for small levels: thread launches cost more than the work there
# error_model="numpy": no zero-division checks (the kernels divide only where the divisor is
# positive); the checks kept the loops from vectorising: 3x slower Jacobi sweeps, measured
# fastmath reassoc/contract: float64 sums (dot products, A x . x) may be reordered, which
# lets them vectorise (2.3x faster operator, measured); no nnan/ninf: the kernels rely on them
_FAST = {"reassoc", "nsz", "contract"}
_JIT_PAR = numba.njit(parallel=True, cache=True, error_model="numpy", fastmath=_FAST)
_JIT_SER = numba.njit(parallel=False, cache=True, error_model="numpy", fastmath=_FAST)
_nb_apply_par = _JIT_PAR(_nb_apply)
_nb_apply_ser = _JIT_SER(_nb_apply)
_nb_jacobi_par = _JIT_PAR(_nb_jacobi)
_nb_jacobi_ser = _JIT_SER(_nb_jacobi)
_nb_jacobi0_par = _JIT_PAR(_nb_jacobi0)
_nb_jacobi0_ser = _JIT_SER(_nb_jacobi0)
_nb_residual_par = _JIT_PAR(_nb_residual)
_nb_residual_ser = _JIT_SER(_nb_residual)
_nb_dot2_par = _JIT_PAR(_nb_dot2)
_nb_dot2_ser = _JIT_SER(_nb_dot2)
_nb_dot_par = _JIT_PAR(_nb_dot)
_nb_dot_ser = _JIT_SER(_nb_dot)
_nb_restrict_par = _JIT_PAR(_nb_restrict)
_nb_restrict_ser = _JIT_SER(_nb_restrict)
_nb_prolong_add_par = _JIT_PAR(_nb_prolong_add)
_nb_prolong_add_ser = _JIT_SER(_nb_prolong_add)
_nb_layer_fluxes_par = _JIT_PAR(_nb_layer_fluxes)
_nb_layer_fluxes_ser = _JIT_SER(_nb_layer_fluxes)
_nb_cg_step_par = _JIT_PAR(_nb_cg_step)
_nb_cg_step_ser = _JIT_SER(_nb_cg_step)
_nb_link_apply_par = _JIT_PAR(_nb_link_apply)
_nb_link_apply_ser = _JIT_SER(_nb_link_apply)
_nb_link_jacobi_par = _JIT_PAR(_nb_link_jacobi)
_nb_link_jacobi_ser = _JIT_SER(_nb_link_jacobi)
_nb_link_residual_par = _JIT_PAR(_nb_link_residual)
_nb_link_residual_ser = _JIT_SER(_nb_link_residual)
_nb_link_fluxes_par = _JIT_PAR(_nb_link_fluxes)
_nb_link_fluxes_ser = _JIT_SER(_nb_link_fluxes)
_nb_direction_par = _JIT_PAR(_nb_direction)
_nb_direction_ser = _JIT_SER(_nb_direction)


def _k(name: str, size: int):
    return _KERNELS[name][size >= PARALLEL]


_KERNELS = {n: (globals()[n + "_ser"], globals()[n + "_par"]) for n in
            ("_nb_apply", "_nb_jacobi", "_nb_jacobi0", "_nb_residual", "_nb_dot", "_nb_dot2",
             "_nb_restrict", "_nb_prolong_add", "_nb_layer_fluxes", "_nb_cg_step",
             "_nb_direction", "_nb_link_apply", "_nb_link_jacobi", "_nb_link_residual",
             "_nb_link_fluxes")}


# --------------------------------------------------------------------------------------------
# array-module kernels (NumPy or CuPy): the same arithmetic as the numba kernels

def _sl(a: int, s: slice | int) -> tuple:
    return (slice(None),) * a + (s,)


def _xp_apply(xp, x, g, diag):
    out = diag * x
    for a in range(3):
        n = x.shape[a]
        if n == 1:
            continue
        lo, hi = _sl(a, slice(0, n - 1)), _sl(a, slice(1, n))
        glo = g[a][lo]
        out[lo] -= glo * x[hi]
        out[hi] -= glo * x[lo]
        first, last = _sl(a, slice(0, 1)), _sl(a, slice(n - 1, n))
        gw = g[a][last]
        out[last] -= gw * x[first]
        out[first] -= gw * x[last]
    return out


def _xp_restrict(xp, r, f, shape_c):
    pads = [(0, c * k - n) for n, c, k in zip(r.shape, shape_c, f)]
    if any(p for _, p in pads):
        r = xp.pad(r, pads)
    c0, c1, c2 = shape_c
    return r.reshape(c0, f[0], c1, f[1], c2, f[2]).sum(axis=(1, 3, 5))


def _xp_prolong(xp, xc, f, shape):
    x = xc
    for a in range(3):
        if f[a] > 1:
            x = xp.repeat(x, f[a], axis=a)
    return x[: shape[0], : shape[1], : shape[2]]


# --------------------------------------------------------------------------------------------

@dataclass
class Level:
    """One level of the hierarchy: conductances, Dirichlet layers and derived diagonals.

    Examples
    --------
    >>> lv = fine_level(np, np.ones((2, 1, 1), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> lv.shape, lv.diag.ravel().tolist()
    ((2, 1, 1), [3.0, 3.0])
    """

    g: tuple
    d_in: Any
    d_out: Any
    diag: Any = None
    inv: Any = None
    factor: tuple = (1, 1, 1)  # block size of the next level's aggregates
    work: dict = field(default_factory=dict)
    cond: tuple | None = None  # the fine level's conductance per axis (g is 0 or cond)
    links: Any = None  # link bits (uint8) replacing g on the CPU's finest level

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple((self.g[0] if self.g is not None else self.links).shape)


def _diagonal(xp, g, d_in, d_out):
    diag = g[0] + g[1] + g[2]
    for a in range(3):
        n = g[a].shape[a]
        if n > 1:
            diag[_sl(a, slice(1, n))] += g[a][_sl(a, slice(0, n - 1))]
            diag[_sl(a, slice(0, 1))] += g[a][_sl(a, slice(n - 1, n))]
        else:
            diag += g[a]
    diag[0] += d_in
    diag[-1] += d_out
    return diag


def _finish(xp, level: Level, arrays: bool = True) -> Level:
    """Diagonal and damped inverse diagonal arrays (the array-module path; the compiled
    kernels compute them on the fly)."""
    if not arrays:
        return level
    level.diag = _diagonal(xp, level.g, level.d_in, level.d_out)
    level.inv = xp.where(level.diag > 0, OMEGA / xp.where(level.diag > 0, level.diag, 1), 0)
    level.inv = level.inv.astype(level.diag.dtype)
    return level


def fine_level(xp, active, spacing, periodic, dtype, arrays: bool = True) -> Level:
    """The fine level of an active mask (axis 0 = transport, face boundary conditions).

    Examples
    --------
    >>> lv = fine_level(np, np.ones((3, 1, 1), bool), (2.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> lv.g[0].ravel().tolist(), lv.d_in.ravel().tolist()
    ([0.5, 0.5, 0.0], [1.0])
    """
    h = [float(s) for s in spacing]
    cond = [h[1] * h[2] / h[0], h[0] * h[2] / h[1], h[0] * h[1] / h[2]]  # area / distance
    g = []
    for a in range(3):
        n = active.shape[a]
        ga = xp.zeros(active.shape, dtype=dtype)
        if n > 1:
            lo, hi = _sl(a, slice(0, n - 1)), _sl(a, slice(1, n))
            ga[lo] = (active[lo] & active[hi]) * cond[a]
            if a > 0 and periodic[a - 1]:
                first, last = _sl(a, slice(0, 1)), _sl(a, slice(n - 1, n))
                ga[last] = (active[last] & active[first]) * cond[a]
        g.append(ga)
    d_in = (active[0] * (2 * cond[0])).astype(dtype)
    d_out = (active[-1] * (2 * cond[0])).astype(dtype)
    return _finish(xp, Level(tuple(g), d_in, d_out, cond=tuple(cond)), arrays)


def voxel_level(xp, active, spacing, periodic, dtype, arrays: bool = True) -> Level:
    """Fine level with the first and last layers held fixed (PoreSpy / OpenPNM's convention).

    Examples
    --------
    >>> voxel_level(np, np.ones((4, 1, 1), bool), (1.0, 1.0, 1.0), (False, False),
    ...             np.float64).shape
    (2, 1, 1)
    """
    inner = fine_level(xp, active[1:-1], spacing, periodic, dtype, False)
    cond = spacing[1] * spacing[2] / spacing[0]
    inner.d_in = ((active[0] & active[1]) * cond).astype(dtype)
    inner.d_out = ((active[-1] & active[-2]) * cond).astype(dtype)
    return _finish(xp, inner, arrays)


def coarsen(xp, level: Level, arrays: bool = True) -> Level:
    """Galerkin operator of 2x2x2 piecewise-constant aggregation (axes of length 1 stay).

    Examples
    --------
    >>> lv = fine_level(np, np.ones((4, 2, 1), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> c = coarsen(np, lv)
    >>> c.shape, c.g[0].ravel().tolist(), c.d_in.ravel().tolist()
    ((2, 1, 1), [2.0, 0.0], [4.0])
    """
    shape = level.shape
    f = tuple(2 if n > 1 else 1 for n in shape)
    shape_c = tuple(-(-n // k) for n, k in zip(shape, f))
    level.factor = f
    g_c = []
    for a in range(3):
        ga = level.g[a]
        n = shape[a]
        if n > 1 and n % 2:  # odd: the wrap conductance moves to the padded last index
            pads = [(0, 0)] * 3
            pads[a] = (0, 1)
            ga = xp.pad(ga, pads)
            ga[_sl(a, slice(n, n + 1))] = ga[_sl(a, slice(n - 1, n))]
            ga[_sl(a, slice(n - 1, n))] = 0
        # the conductances leaving each aggregate along a: the last fine index of the block
        ga = ga[_sl(a, slice(f[a] - 1, None, f[a]))]
        other = [1 if b == a else f[b] for b in range(3)]
        target = list(shape_c)
        gc = _xp_restrict(xp, ga, other, target)
        if shape_c[a] == 1:
            gc = xp.zeros_like(gc)
        g_c.append(gc.astype(level.g[a].dtype))
    d_in = _xp_restrict(xp, level.d_in[None], (1,) + f[1:], (1,) + shape_c[1:])[0]
    d_out = _xp_restrict(xp, level.d_out[None], (1,) + f[1:], (1,) + shape_c[1:])[0]
    return _finish(xp, Level(tuple(g_c), d_in, d_out), arrays)


def _sparse(level: Level) -> sp.csr_matrix:
    """The level's matrix (host, float64) as CSR; used on the coarsest level only."""
    g = [to_numpy(a).astype(np.float64) for a in level.g]
    shape = level.shape
    idx = np.arange(math.prod(shape)).reshape(shape)
    rows, cols, vals = [], [], []
    for a in range(3):
        nb = np.roll(idx, -1, axis=a)
        keep = (g[a] > 0) & (nb != idx)
        i, j, v = idx[keep], nb[keep], g[a][keep]
        rows += [i, j]
        cols += [j, i]
        vals += [-v, -v]
    diag = _diagonal(np, g, to_numpy(level.d_in).astype(np.float64),
                     to_numpy(level.d_out).astype(np.float64)).ravel()
    rows.append(idx.ravel())
    cols.append(idx.ravel())
    vals.append(diag)
    n = idx.size
    return sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(n, n))


class Hierarchy:
    """Multigrid cycle on a list of levels; ``backend`` "numpy" uses the numba kernels.

    Examples
    --------
    >>> lv = fine_level(np, np.ones((8, 8, 8), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> len(Hierarchy(np, lv, "numpy", coarsest=64).levels)
    2
    """

    def __init__(self, xp, fine: Level, backend: str, coarsest: int = COARSEST):
        self.xp = xp
        self.numba = backend == "numpy"
        self.levels = [fine]
        while math.prod(self.levels[-1].shape) > coarsest and max(self.levels[-1].shape) > 1:
            self.levels.append(coarsen(xp, self.levels[-1]))
        last = self.levels[-1]
        a = _sparse(last)
        self.active = np.flatnonzero(a.diagonal() > 0)
        sub = a[self.active][:, self.active].tocsc()
        self.lu = splu(sub) if self.active.size else None

    def _coarse_solve(self, r):
        level = self.levels[-1]
        host = to_numpy(r).ravel().astype(np.float64)
        x = np.zeros_like(host)
        if self.lu is not None:
            x[self.active] = self.lu.solve(host[self.active])
        x = x.reshape(level.shape).astype(level.g[0].dtype)
        return x if self.numba else to_backend(x, "cupy")

    def buffer(self, depth: int, name, shape=None, dtype=None):
        """A work array of level ``depth`` kept for the next cycle (CPU path).

        Fresh arrays cost more than the passes that fill them on this kind of machine (page
        faults of transparent huge pages: 0.1 s for a 64 MiB array against 0.02 s for a
        Jacobi sweep over it, measured), so every cycle reuses its level's arrays. Each name
        is used by one call at a time: a level's cycles run one after the other."""
        lv = self.levels[depth]
        shape = lv.shape if shape is None else shape
        dtype = lv.g[0].dtype if dtype is None else dtype
        a = lv.work.get(name)
        if a is None or a.shape != tuple(shape) or a.dtype != dtype:
            a = lv.work[name] = np.empty(shape, dtype)
        return a

    def apply(self, depth: int, x, out=None):
        lv = self.levels[depth]
        if self.numba:
            out = np.empty_like(x) if out is None else out
            _k("_nb_apply", x.size)(x, *lv.g, lv.d_in, lv.d_out, out)
            return out
        return _xp_apply(self.xp, x, lv.g, lv.diag)

    def dot(self, u, v) -> float:
        if self.numba:
            return float(_k("_nb_dot", u.size)(u, v))
        return float(self.xp.sum(u * v, dtype=self.xp.float64))

    def coarse_correction(self, r, depth: int):
        """Approximate solve on level ``depth``: exact on the coarsest, else Notay's K-cycle
        (two flexible-CG steps preconditioned by the cycle of that level). On the CPU the
        result lives in the level's work arrays until the next call on that level."""
        if depth == len(self.levels) - 1:
            return self._coarse_solve(r)
        cpu = self.numba
        c1 = self.vcycle(r, depth, slot=0)
        v1 = self.apply(depth, c1, self.buffer(depth, "v1") if cpu else None)
        rho1 = self.dot(c1, v1)
        a1 = self.dot(c1, r)
        if rho1 <= 0:
            return c1
        if cpu:  # rt = r - (a1 / rho1) v1, in place
            rt = np.multiply(v1, -(a1 / rho1), out=self.buffer(depth, "rt"))
            rt += r
        else:
            rt = r - (a1 / rho1) * v1
        rn, rtn = self.dot(r, r), self.dot(rt, rt)
        if rtn <= (KCYCLE_TOL ** 2) * rn:
            if cpu:
                c1 *= a1 / rho1
                return c1
            return (a1 / rho1) * c1
        c2 = self.vcycle(rt, depth, slot=1)
        v2 = self.apply(depth, c2, self.buffer(depth, "v2") if cpu else None)
        gamma, beta, a2 = self.dot(c2, v1), self.dot(c2, v2), self.dot(c2, rt)
        rho2 = beta - gamma * gamma / rho1
        if rho2 <= 0:
            if cpu:
                c1 *= a1 / rho1
                return c1
            return (a1 / rho1) * c1
        s1, s2 = a1 / rho1 - gamma * a2 / (rho1 * rho2), a2 / rho2
        if cpu:
            c1 *= s1
            c2 *= s2
            c1 += c2
            return c1
        return s1 * c1 + s2 * c2

    def _link_vcycle(self, r, lv: Level, nxt: Level, depth: int):
        """The V-cycle on a level held as link bits (CPU finest level): Jacobi sweeps,
        residual, restriction, coarse correction, Jacobi sweeps. One pair of work arrays
        (no slots): only CG calls it, never a K-cycle, which keeps two results."""
        n, c, f = r.size, lv.cond, lv.factor
        args = (lv.links, c[0], c[1], c[2], lv.d_in, lv.d_out)
        jac = _k("_nb_link_jacobi", n)
        x = self.buffer(depth, "x", r.shape, np.float32)
        tmp = self.buffer(depth, "tmp", r.shape, np.float32)
        jac(x, r, *args, OMEGA, True, x)
        for _ in range(SWEEPS - 1):
            jac(x, r, *args, OMEGA, False, tmp)
            x, tmp = tmp, x
        rc = self.buffer(depth, "rc", nxt.shape, np.float32)
        _k("_nb_link_residual", n)(x, r, *args, tmp)
        _k("_nb_restrict", n)(tmp, *f, rc)
        xc = self.coarse_correction(rc, depth + 1)
        _k("_nb_prolong_add", n)(xc, *f, ALPHA, x)
        for _ in range(SWEEPS):
            jac(x, r, *args, OMEGA, False, tmp)
            x, tmp = tmp, x
        return x

    def vcycle(self, r, depth: int = 0, slot: int = 0):
        """Approximate ``A^-1 r``: Jacobi sweeps, the coarse correction, as many sweeps.

        On the CPU the result is one of the level's two work arrays of ``slot`` (the K-cycle
        keeps two results alive: slots 0 and 1), valid until the next cycle in that slot."""
        xp = self.xp
        if depth == len(self.levels) - 1:
            return self._coarse_solve(r)
        lv = self.levels[depth]
        nxt = self.levels[depth + 1]
        if self.numba and lv.links is not None:
            return self._link_vcycle(r, lv, nxt, depth)
        if self.numba:
            g, diag, inv, n = lv.g, lv.diag, lv.inv, r.size
            # in the level's precision whatever r's (the finest gets CG's float64 residual)
            x = self.buffer(depth, ("x", slot), r.shape, diag.dtype)
            tmp = self.buffer(depth, ("tmp", slot), r.shape, diag.dtype)
            _k("_nb_jacobi0", n)(r, inv, x)
            for _ in range(SWEEPS - 1):
                _k("_nb_jacobi", n)(x, r, *g, diag, inv, tmp)
                x, tmp = tmp, x
            _k("_nb_residual", n)(x, r, *g, diag, tmp)
            rc = self.buffer(depth, "rc", nxt.shape, diag.dtype)
            _k("_nb_restrict", n)(tmp, *lv.factor, rc)
            xc = self.coarse_correction(rc, depth + 1)
            _k("_nb_prolong_add", n)(xc, *lv.factor, ALPHA, x)
            for _ in range(SWEEPS):
                _k("_nb_jacobi", n)(x, r, *g, diag, inv, tmp)
                x, tmp = tmp, x
            return x
        x = lv.inv * r
        for _ in range(SWEEPS - 1):
            x = x + lv.inv * (r - _xp_apply(xp, x, lv.g, lv.diag))
        res = r - _xp_apply(xp, x, lv.g, lv.diag)
        rc = _xp_restrict(xp, res, lv.factor, nxt.shape)
        xc = self.coarse_correction(rc, depth + 1)
        x = x + ALPHA * _xp_prolong(xp, xc, lv.factor, lv.shape)
        for _ in range(SWEEPS):
            x = x + lv.inv * (r - _xp_apply(xp, x, lv.g, lv.diag))
        return x


def merge_periodic(pairs, n: int) -> np.ndarray:
    """Component id of every label (0 stays 0) after joining labels facing across sides.

    ``pairs``: (labels on one side, labels on the opposite side) per periodic axis, or None.

    Examples
    --------
    >>> merge_periodic([(np.array([1, 0]), np.array([2, 0])), None], 3).tolist()
    [0, 2, 2, 3]
    """
    rows, cols = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for pair in pairs:
        if pair is None:
            continue
        a, b = (np.asarray(p).ravel().astype(np.int64) for p in pair)
        touching = (a > 0) & (b > 0)
        rows.append(a[touching])
        cols.append(b[touching])
    r, c = np.concatenate(rows), np.concatenate(cols)
    graph = sp.coo_matrix((np.ones(r.size), (r, c)), shape=(n + 1, n + 1))
    _, comp = connected_components(graph, directed=False)
    comp = comp.astype(np.int64) + 1
    comp[0] = 0
    return comp


def linear_guess(xp, active, boundary: str):
    """Initial concentration: linear from the inlet (1) to the outlet (0) on the active
    voxels (the straight-pore solution; 15-20 % fewer iterations than 0 at 128^3).

    ``boundary="face"``: the values at the voxel centres between faces fixed at 1 and 0;
    ``"voxel"``: ``active`` is the inner layers between two fixed layers.

    Examples
    --------
    >>> linear_guess(np, np.ones((4, 1, 1), bool), "face").ravel().tolist()
    [0.875, 0.625, 0.375, 0.125]
    >>> linear_guess(np, np.ones((3, 1, 1), bool), "voxel").ravel().tolist()
    [0.75, 0.5, 0.25]
    """
    n0 = active.shape[0]
    i = xp.arange(n0, dtype=xp.float64)
    line = 1.0 - (i + 0.5) / n0 if boundary == "face" else 1.0 - (i + 1.0) / (n0 + 1.0)
    return line[:, None, None] * active


@dataclass
class Solution:
    """Concentration field and the convergence record of one solve.

    Examples
    --------
    >>> lv = fine_level(np, np.ones((4, 1, 1), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> sol = solve(np, lv, "numpy", 1e-8, 50)
    >>> sol.converged, [round(float(v), 4) for v in sol.c.ravel()]
    (True, [0.875, 0.625, 0.375, 0.125])
    """

    c: Any  # float64, the level's shape
    fluxes: np.ndarray  # float64 (n0 + 1,): inlet, interfaces, outlet
    iterations: int
    residual: float  # relative: ||b - A c|| / ||b||
    balance: float  # (max - min) / mean of the layer fluxes
    converged: bool


def layer_fluxes(xp, level: Level, c, numba_ok: bool) -> np.ndarray:
    """Flux through every face normal to the transport axis (host float64).

    Examples
    --------
    >>> lv = fine_level(np, np.ones((2, 1, 1), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> layer_fluxes(np, lv, np.array([0.75, 0.25]).reshape(2, 1, 1), False).tolist()
    [0.5, 0.5, 0.5]
    """
    if numba_ok:
        out = np.empty(c.shape[0] + 1)
        _k("_nb_layer_fluxes", c.size)(c, level.g[0], level.d_in, level.d_out, out)
        return out
    f64 = xp.float64
    inlet = xp.sum(level.d_in.astype(f64) * (1.0 - c[0]), dtype=f64)
    outlet = xp.sum(level.d_out.astype(f64) * c[-1], dtype=f64)
    inner = xp.sum(level.g[0][:-1].astype(f64) * (c[:-1] - c[1:]), axis=(1, 2), dtype=f64)
    return np.concatenate([[float(inlet)], to_numpy(inner).astype(np.float64),
                           [float(outlet)]])


def balance_of(fluxes: np.ndarray) -> float:
    """(max - min) / mean of the layer fluxes (inf when no flux).

    Examples
    --------
    >>> round(balance_of(np.array([1.0, 1.0, 0.9])), 6)
    0.103448
    """
    mean = float(np.mean(fluxes))
    if mean <= 0:
        return math.inf
    return float((fluxes.max() - fluxes.min()) / mean)


def solve(xp, fine: Level, backend: str, tol: float, maxiter: int,
          x0=None, coarsest: int = COARSEST, precision=np.float32) -> Solution:
    """Preconditioned CG on ``fine`` (a float64 level) until the layer fluxes balance to
    ``tol``; the multigrid preconditioner runs in ``precision`` (its own diagonal).

    Examples
    --------
    >>> lv = fine_level(np, np.ones((6, 2, 2), bool), (1.0, 1.0, 1.0), (False, False),
    ...                 np.float64)
    >>> sol = solve(np, lv, "numpy", 1e-8, 50)
    >>> sol.converged, round(float(sol.fluxes.mean()), 6)   # 4 columns of 6 voxels
    (True, 0.666667)
    """
    f64 = xp.float64
    numba_ok = backend == "numpy"
    links = numba_ok and fine.cond is not None and math.prod(fine.shape) > coarsest
    if links:  # the finest level as link bits: the operator and the smoother on the fly
        low = Level(fine.g, fine.d_in, fine.d_out, cond=tuple(float(c) for c in fine.cond))
    elif numba_ok:  # one set of conductances; the operator's diagonal on the fly (float64)
        low = _finish(xp, Level(fine.g, fine.d_in, fine.d_out))
    else:  # the float64 operator and a copy in ``precision`` for the preconditioner
        low = _finish(xp, Level(tuple(a.astype(precision) for a in fine.g),
                                fine.d_in.astype(precision), fine.d_out.astype(precision)))
    hier = Hierarchy(xp, low, backend, coarsest)
    if links:  # the conductances are dropped (3 float32 per voxel: 1.6 GB at 512^3)
        low.links, low.g = links_of(fine.g), None
        fine = low
        largs = (low.links, *low.cond, low.d_in, low.d_out)

    def apply_dot(v, out):
        """(A v, v . A v)."""
        if links:
            return out, float(_k("_nb_link_apply", v.size)(v, *largs, out))
        out = apply(v, out)
        return out, dot(v, out)

    def apply(v, out):
        if links:
            _k("_nb_link_apply", v.size)(v, *largs, out)
            return out
        if numba_ok:
            _k("_nb_apply", v.size)(v, *fine.g, fine.d_in, fine.d_out, out)
            return out
        return _xp_apply(xp, v, fine.g, fine.diag)

    def dot(u, v) -> float:
        if numba_ok:
            return float(_k("_nb_dot", u.size)(u, v))
        return float(xp.sum(u * v, dtype=f64))

    def precondition(r):
        if numba_ok:  # the kernels read float64 r and return z in the preconditioner's dtype
            return hier.vcycle(r)
        return hier.vcycle(r.astype(low.g[0].dtype)).astype(f64)

    def fluxes_of(c):
        if links:
            out = np.empty(c.shape[0] + 1)
            _k("_nb_link_fluxes", c.size)(c, low.links, low.cond[0], low.d_in, low.d_out, out)
            return out
        return layer_fluxes(xp, fine, c, numba_ok)

    x = xp.zeros(fine.shape, dtype=f64) if x0 is None else x0.astype(f64, copy=False)
    q = xp.empty_like(x)
    r = -apply(x, q)  # b - A x, where b is the inlet layer's Dirichlet term (no volume array)
    r[0] += fine.d_in
    bnorm = math.sqrt(float(xp.sum(fine.d_in.astype(f64) ** 2)))
    if bnorm == 0:
        return Solution(x, np.zeros(fine.shape[0] + 1), 0, 0.0, 0.0, True)
    z = precondition(r)
    p = z.astype(f64)
    rz = dot(r, z)
    it = 0
    residual = math.sqrt(dot(r, r)) / bnorm
    fluxes = fluxes_of(x)
    balance = balance_of(fluxes)
    while it < maxiter and not (balance <= tol and residual <= tol):
        q, pq = apply_dot(p, q)
        if pq <= 0:
            break
        alpha = rz / pq
        if numba_ok:
            rr = _k("_nb_cg_step", x.size)(x, r, p, q, alpha)
        else:
            x += alpha * p
            r -= alpha * q
            rr = dot(r, r)
        it += 1
        residual = math.sqrt(rr) / bnorm
        if residual <= tol:  # the fluxes only matter once the residual is small
            fluxes = fluxes_of(x)
            balance = balance_of(fluxes)
            if balance <= tol:
                break
        z = precondition(r)
        # flexible CG (the K-cycle varies): beta = z.(r - r_old) / rz_old, r - r_old = -alpha q
        if numba_ok:
            rz_new, zq = _k("_nb_dot2", z.size)(z, r, q)
        else:
            rz_new, zq = dot(r, z), dot(z, q)
        beta = max(-alpha * zq / rz, 0.0)
        rz = rz_new
        if numba_ok:
            _k("_nb_direction", x.size)(p, z, beta)
        else:
            p *= beta
            p += z
    if residual > tol:
        fluxes = fluxes_of(x)
        balance = balance_of(fluxes)
    return Solution(x, fluxes, it, residual, balance, balance <= tol and residual <= tol)
