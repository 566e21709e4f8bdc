"""Distances from bubbles to walls: KD-trees over the walls' boundary voxels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def boundary_points(mask: np.ndarray, origin: Sequence[int]) -> np.ndarray:
    """Global (z, y, x) coordinates of voxels of a block (with a 1-voxel halo) that have a
    6-neighbour outside the mask. Only these can be nearest to a point outside the mask."""
    core = mask[1:-1, 1:-1, 1:-1]
    inner = core.copy()
    for axis in range(3):
        for step in (-1, 1):
            sl = [slice(1, -1)] * 3
            sl[axis] = slice(1 + step, mask.shape[axis] - 1 + step)
            inner &= mask[tuple(sl)]
    pts = np.argwhere(core & ~inner)
    return (pts + np.asarray(origin)).astype(np.int32)


def label_boundary(labels: np.ndarray) -> np.ndarray:
    """Bool mask of label voxels with a 6-neighbour of another value (block edges count)."""
    edge = np.zeros(labels.shape, bool)
    for axis in range(3):
        a = [slice(None)] * 3
        b = [slice(None)] * 3
        a[axis], b[axis] = slice(1, None), slice(None, -1)
        diff = labels[tuple(a)] != labels[tuple(b)]
        edge[tuple(a)] |= diff
        edge[tuple(b)] |= diff
        lo = [slice(None)] * 3
        lo[axis] = 0
        edge[tuple(lo)] = True
        lo[axis] = -1
        edge[tuple(lo)] = True
    return edge & (labels > 0)


def nearest_per_group(tree, phys: np.ndarray, inv: np.ndarray, k: int,
                      cell: Sequence[float]) -> np.ndarray:
    """Exact minimum distance from each group of points to a KD-tree.

    Points are binned into cells of size ``cell``; one query per (group, cell) centre bounds
    every point of that cell within half a cell diagonal. Cells whose lower bound exceeds
    their group's best upper bound cannot hold the minimum and are skipped; only the points
    of the remaining cells are queried exactly.
    """
    cell = np.asarray(cell, dtype=float)
    half_diag = 0.5 * float(np.linalg.norm(cell))
    keys = np.column_stack([inv, np.floor(phys / cell).astype(np.int64)])
    uniq, point_cell = np.unique(keys, axis=0, return_inverse=True)
    point_cell = point_cell.ravel()
    centre_dist, _ = tree.query((uniq[:, 1:] + 0.5) * cell)
    bound = np.full(k, np.inf)
    np.minimum.at(bound, uniq[:, 0], centre_dist + half_diag)
    useful = centre_dist - half_diag <= bound[uniq[:, 0]]
    sel = np.flatnonzero(useful[point_cell])
    out = np.full(k, np.inf)
    d, _ = tree.query(phys[sel])
    np.minimum.at(out, inv[sel], d)
    return out


def block_surface_distances(labels: np.ndarray, origin: Sequence[int], trees: Sequence,
                            spacing: Sequence[float]):
    """Per bubble of one block: the minimum distance from its boundary voxels to each tree.

    Returns ``(ids, distances (k, n_trees))``; trees hold physical coordinates; a missing
    tree (None) gives infinity.
    """
    pts = np.argwhere(label_boundary(labels))
    if len(pts) == 0:
        return np.zeros(0, np.uint64), np.zeros((0, len(trees)))
    lab = labels[tuple(pts.T)]
    ids, inv = np.unique(lab, return_inverse=True)
    phys = (pts + np.asarray(origin)) * np.asarray(spacing)
    out = np.full((len(ids), len(trees)), np.inf)
    for j, tree in enumerate(trees):
        if tree is not None:
            out[:, j] = nearest_per_group(tree, phys, inv, len(ids), 4 * np.asarray(spacing))
    return ids.astype(np.uint64), out


def reduce_min(parts) -> tuple[np.ndarray, np.ndarray]:
    """Combine per-block (ids, distances) by taking the minimum per id."""
    parts = [p for p in parts if len(p[0])]
    if not parts:
        return np.zeros(0, np.uint64), np.zeros((0, 0))
    ids = np.concatenate([p[0] for p in parts])
    dist = np.concatenate([p[1] for p in parts])
    uniq, inv = np.unique(ids, return_inverse=True)
    out = np.full((len(uniq), dist.shape[1]), np.inf)
    for j in range(dist.shape[1]):
        np.minimum.at(out[:, j], inv, dist[:, j])
    return uniq, out
