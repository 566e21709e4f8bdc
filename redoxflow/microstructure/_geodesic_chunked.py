"""Geodesic distances from the inlet face, blockwise over dask (private).

The distance of every voxel of the phase from the inlet face along 26-connected paths with
Euclidean steps (the graph and weights of ``dijkstra3d.euclidean_distance_field``, which
the in-memory path uses) is the fixed point of per-block shortest-path sweeps: each block,
with a one-voxel halo of its neighbours' current distances (``dask.array.map_overlap``),
runs a Dijkstra seeded with every finite distance it sees (halo included) and keeps its own
voxels; the sweeps repeat until no distance changes. A path that crosses ``k`` block
boundaries is exact after at most ``k + 1`` sweeps, so the count is the largest number of
block crossings of a shortest path (a few for chunks much longer than the pores).

Why our own Dijkstra: ``dijkstra3d`` and scikit-image's ``MCP_Geometric`` start every
source at distance 0; a block needs sources that start at the distances its neighbours
found (a compiled binary-heap Dijkstra, ~20 lines).
"""

from __future__ import annotations

import heapq
import math

import dask.array as da
import numba
import numpy as np


@numba.njit(cache=True)
def _dijkstra_seeded(dist, mask, h0, h1, h2):  # pragma: no cover - compiled
    """In place: shortest 26-connected Euclidean paths through ``mask`` from every voxel
    with a finite ``dist`` (its start value). Returns how many voxels got shorter."""
    n0, n1, n2 = dist.shape
    steps = np.empty((26, 3), np.int64)
    cost = np.empty(26)
    m = 0
    for a in range(-1, 2):
        for b in range(-1, 2):
            for c in range(-1, 2):
                if a == 0 and b == 0 and c == 0:
                    continue
                steps[m, 0], steps[m, 1], steps[m, 2] = a, b, c
                cost[m] = math.sqrt((a * h0) ** 2 + (b * h1) ** 2 + (c * h2) ** 2)
                m += 1
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for i in range(n0):
        for j in range(n1):
            for k in range(n2):
                if mask[i, j, k] and dist[i, j, k] < np.inf:
                    heap.append((dist[i, j, k], np.int64((i * n1 + j) * n2 + k)))
    heapq.heapify(heap)
    improved = 0
    while heap:
        d, flat = heapq.heappop(heap)
        i, rest = divmod(flat, n1 * n2)
        j, k = divmod(rest, n2)
        if d > dist[i, j, k]:
            continue  # a stale entry
        for s in range(26):
            a, b, c = i + steps[s, 0], j + steps[s, 1], k + steps[s, 2]
            if 0 <= a < n0 and 0 <= b < n1 and 0 <= c < n2 and mask[a, b, c]:
                nd = d + cost[s]
                if nd < dist[a, b, c]:
                    dist[a, b, c] = nd
                    improved += 1
                    heapq.heappush(heap, (nd, np.int64((a * n1 + b) * n2 + c)))
    return improved


def _sweep_block(dist, mask, spacing):
    """One block's sweep: its halo'd distances relaxed, cut back to the block."""
    out = dist.astype(np.float64, copy=True)
    _dijkstra_seeded(out, np.ascontiguousarray(mask, dtype=np.bool_), *spacing)
    return out[1:-1, 1:-1, 1:-1]


def _inlet_block(mask, block_info=None):
    """0 on the inlet layer (global index 0 along axis 0) where the phase is, else inf."""
    out = np.full(mask.shape, np.inf)
    if block_info[0]["array-location"][0][0] == 0:
        out[0][mask[0]] = 0.0
    return out


def distance_chunked(through, spacing, max_sweeps: int = 10_000):
    """(distances from the inlet face through ``through`` as a persisted dask array, sweeps).

    ``through``: lazy bool mask, axis 0 the transport axis; unreachable voxels stay inf.

    Examples
    --------
    >>> m = np.zeros((6, 1, 3), bool)
    >>> m[:, 0, 0] = m[5, 0, :] = m[:, 0, 2] = True   # a U: down, across, back up
    >>> m[0, 0, 2] = False                             # the second leg is closed at the inlet
    >>> d, sweeps = distance_chunked(da.from_array(m, chunks=(2, 1, 1)), (1.0, 1.0, 1.0))
    >>> np.round(d[:, 0, 2].compute(), 3).tolist(), sweeps
    ([inf, 9.828, 8.828, 7.828, 6.828, 6.414], 7)
    """
    through = through.astype(bool)
    dist = through.map_blocks(_inlet_block, dtype=np.float64).persist()
    spacing = tuple(float(s) for s in spacing)
    # halos: outside the volume no phase (False) and no distance (inf)
    mask = da.overlap.overlap(through, depth=1, boundary=False).persist()
    for sweep in range(1, max_sweeps + 1):
        halo = da.overlap.overlap(dist, depth=1, boundary=np.inf)
        new = da.map_blocks(_sweep_block, halo, mask, spacing, dtype=np.float64,
                            chunks=dist.chunks, meta=np.empty((0, 0, 0), np.float64)).persist()
        changed = bool((new < dist).any().compute())
        dist = new
        if not changed:
            return dist, sweep
    return dist, max_sweeps
