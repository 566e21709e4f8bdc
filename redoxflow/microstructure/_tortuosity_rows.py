"""Compiled kernels of the out-of-core diffusion solve (private): one slab at a time.

The finest level keeps its vectors on the active voxels only, in raster order (z, y, x):
the unknowns of row ``(z, y)`` are the elements ``rs[z * n1 + y] : rs[z * n1 + y + 1]``.
A stencil walks each row with five cursors (the row itself and its four neighbouring rows),
each advanced by the row's mask, so the index of every neighbour is known without an index
array: one byte of mask per voxel and the vectors on the active voxels (30 % of a 30 %-porous
volume) instead of dense vectors and conductances. The fine conductance is one constant per
axis (``c0, c1, c2``); ``d_in`` / ``d_out`` couple the first / last global layer to the faces.

The first coarse level is dense and holds the number of fine links crossing each aggregate
face (uint8, at most 4), scaled by the axis's constant, with the diagonal computed on the
fly: 3 bytes per coarse voxel instead of five float32 arrays.

Blocks carry one halo layer on each side along axis 0 (zeros outside the volume, whose
transport axis is never periodic); outputs on the halo layers are not computed. The kernels
are serial: dask runs one slab per worker thread.
"""

from __future__ import annotations

import numba
import numpy as np

# modes of the fine-level walk
APPLY_DOT = 0  # s1 = sum v . (A v)
CG_STEP = 1  # x += alpha v, r -= alpha A v (v the direction); s1 = r . r
JACOBI = 2  # out = v + omega (b - A v) / diag
JACOBI0 = 3  # out = omega b / diag
RESTRICT = 4  # rc[aggregate] += b - A v
DOTS = 5  # s1 = z . r, s2 = z . A v
PROLONG = 6  # v[halo'd] += rc[aggregate] (rc halo'd like v)
FLUXES = 7  # prof[z] = flux into layer z (from z - 1, or the inlet), prof[-1] = the outlet
RESIDUAL0 = 8  # out = b0 - A v, b0 the inlet term (1 on the first global layer); s1 = out.out

_FAST = {"reassoc", "nsz", "contract"}
_JIT = numba.njit(parallel=False, nogil=True, cache=True, error_model="numpy", fastmath=_FAST)


@_JIT
def walk(mode, m, rs, off, z_glob, n0, px, py, c0, c1, c2, d_in, d_out, v, b, u, xv, out,
         rc, f, alpha, omega, prof):  # pragma: no cover - compiled
    """One pass of ``mode`` over the interior layers ``1 .. len(m) - 2`` of a halo'd block.

    ``v`` is indexed like ``rs`` (halo'd), ``b``, ``u``, ``xv``, ``out`` by the interior
    (index - ``off``); ``z_glob`` is the global layer of interior layer 1; ``f`` the
    aggregation shifts (0 or 1 per axis) into ``rc``, whose layer 0 holds the aggregates of
    interior layer 1 (PROLONG: of halo layer 0). Returns (s1, s2) in float64.
    """
    nz, n1, n2 = m.shape
    s1 = 0.0
    s2 = 0.0
    z_lo = 0 if mode == PROLONG else 1
    z_hi = nz if mode == PROLONG else nz - 1
    zc0 = (z_glob - 1 + z_lo) >> f[0]  # global aggregate layer of rc's layer 0
    for z in range(z_lo, z_hi):
        zg = z_glob + z - 1
        first = zg == 0
        last = zg == n0 - 1
        for y in range(n1):
            row = z * n1 + y
            i = rs[row]
            if mode == PROLONG:
                yc = y >> f[1]
                zc = (zg >> f[0]) - zc0
                for k in range(n2):
                    if m[z, y, k]:
                        v[i] += rc[zc, yc, k >> f[2]]
                        i += 1
                continue
            start, end = i, rs[row + 1]
            ym = y - 1 if y > 0 else n1 - 1
            yp = y + 1 if y + 1 < n1 else 0
            has_ym = (y > 0 or py) and n1 > 1
            has_yp = (y + 1 < n1 or py) and n1 > 1
            czm = rs[row - n1]
            czp = rs[row + n1]
            cym = rs[z * n1 + ym]
            cyp = rs[z * n1 + yp]
            wrap = px and n2 > 1
            for k in range(n2):
                mzm = m[z - 1, y, k]
                mzp = m[z + 1, y, k]
                mym = m[z, ym, k] if has_ym else 0
                myp = m[z, yp, k] if has_yp else 0
                if m[z, y, k]:
                    diag = 0.0
                    acc = 0.0
                    if k > 0:
                        if m[z, y, k - 1]:
                            diag += c2
                            acc += c2 * v[i - 1]
                    elif wrap and m[z, y, n2 - 1]:
                        diag += c2
                        acc += c2 * v[end - 1]
                    if k + 1 < n2:
                        if m[z, y, k + 1]:
                            diag += c2
                            acc += c2 * v[i + 1]
                    elif wrap and m[z, y, 0]:
                        diag += c2
                        acc += c2 * v[start]
                    if mzm:
                        diag += c0
                        acc += c0 * v[czm]
                    if mzp:
                        diag += c0
                        acc += c0 * v[czp]
                    if mym:
                        diag += c1
                        acc += c1 * v[cym]
                    if myp:
                        diag += c1
                        acc += c1 * v[cyp]
                    if first:
                        diag += d_in[y, k]
                    if last:
                        diag += d_out[y, k]
                    j = i - off
                    av = diag * v[i] - acc  # (A v) at this voxel
                    if mode == APPLY_DOT:
                        s1 += v[i] * av
                    elif mode == CG_STEP:
                        xv[j] += alpha * v[i]
                        rv = b[j] - alpha * av
                        b[j] = rv
                        s1 += rv * rv
                    elif mode == JACOBI:
                        out[j] = v[i] + omega * (b[j] - av) / diag
                    elif mode == JACOBI0:
                        out[j] = omega * b[j] / diag
                    elif mode == RESTRICT:
                        rc[(zg >> f[0]) - zc0, y >> f[1], k >> f[2]] += b[j] - av
                    elif mode == DOTS:
                        s1 += np.float64(u[j]) * b[j]
                        s2 += np.float64(u[j]) * av
                    elif mode == FLUXES:
                        if first:
                            prof[z - 1] += d_in[y, k] * (1.0 - v[i])
                        elif mzm:
                            prof[z - 1] += c0 * (v[czm] - v[i])
                        if last:
                            prof[nz - 2] += d_out[y, k] * v[i]
                    elif mode == RESIDUAL0:
                        rv = (d_in[y, k] if first else 0.0) - av
                        out[j] = rv
                        s1 += rv * rv
                    i += 1
                czm += mzm
                czp += mzp
                cym += mym
                cyp += myp
    return s1, s2


@_JIT
def counts_walk(mode, x, b, u, g0, g1, g2, c0, c1, c2, d_in, d_out, i_in, i_out, omega, out,
                rc, f):  # pragma: no cover - compiled
    """JACOBI / JACOBI0 / RESTRICT / APPLY_DOT on a dense halo'd block of the first coarse
    level. APPLY_DOT: out = A x (where ``out`` is a full block) and returns
    (x . A x, x . b, x . u) in float64 (x . u = 0 where ``u`` is not a full block).

    ``g[a][z, y, k]`` counts the fine links from aggregate (z, y, k) to its neighbour along
    ``a`` (the last entry along y / x is the periodic wrap, zero otherwise); the conductance
    is ``count * c_a``. ``d_in`` applies on local layer ``i_in``, ``d_out`` on ``i_out``
    (-1: not in this block). RESTRICT sums ``b - A x`` of interior layer ``z`` into
    ``rc[(z - 1) >> f[0], ...]``.
    """
    nz, n1, n2 = x.shape
    has_out = out.shape[0] == nz
    has_u = u.shape[0] == nz
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for z in range(1, nz - 1):
        for y in range(n1):
            ym = y - 1 if y > 0 else n1 - 1
            yp = y + 1 if y + 1 < n1 else 0
            for k in range(n2):
                km = k - 1 if k > 0 else n2 - 1
                kp = k + 1 if k + 1 < n2 else 0
                a0, b0 = c0 * g0[z, y, k], c0 * g0[z - 1, y, k]
                a1, b1 = c1 * g1[z, y, k], c1 * g1[z, ym, k]
                a2, b2 = c2 * g2[z, y, k], c2 * g2[z, y, km]
                diag = a0 + b0 + a1 + b1 + a2 + b2
                if z == i_in:
                    diag += d_in[y, k]
                if z == i_out:
                    diag += d_out[y, k]
                if mode == JACOBI0:
                    out[z, y, k] = omega * b[z, y, k] / diag if diag > 0 else 0.0
                    continue
                av = diag * x[z, y, k] - (a0 * x[z + 1, y, k] + b0 * x[z - 1, y, k]
                                          + a1 * x[z, yp, k] + b1 * x[z, ym, k]
                                          + a2 * x[z, y, kp] + b2 * x[z, y, km])
                if mode == JACOBI:
                    if diag > 0:
                        out[z, y, k] = x[z, y, k] + omega * (b[z, y, k] - av) / diag
                    else:
                        out[z, y, k] = 0.0
                elif mode == APPLY_DOT:
                    if has_out:
                        out[z, y, k] = av
                    xv = np.float64(x[z, y, k])
                    s1 += xv * av
                    s2 += xv * b[z, y, k]
                    if has_u:
                        s3 += xv * u[z, y, k]
                else:
                    rc[(z - 1) >> f[0], y >> f[1], k >> f[2]] += b[z, y, k] - av
    return s1, s2, s3
