"""Distances from bubbles to walls: KD-trees over the walls' boundary voxels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def boundary_points(mask: np.ndarray, origin: Sequence[int]) -> np.ndarray:
    """Global (z, y, x) coordinates of voxels of a block (with a 1-voxel halo) that have a
    6-neighbour outside the mask. Only these can be nearest to a point outside the mask.

    Parameters
    ----------
    mask : bool ndarray, shape (bz + 2, by + 2, bx + 2)
        The wall's voxels with a 1-voxel halo on every side.
    origin : (z, y, x) int
        Global index of the block's first core voxel.

    Returns
    -------
    int32 ndarray, shape (k, 3)
        Global voxel indices of the boundary voxels of the core.

    Examples
    --------
    >>> import numpy as np
    >>> cube = np.zeros((5, 5, 5), bool); cube[1:4, 1:4, 1:4] = True
    >>> len(boundary_points(cube, (0, 0, 0)))  # 27 voxels, the centre is interior
    26
    >>> boundary_points(np.pad(np.ones((1, 1, 1), bool), 1), (10, 20, 30)).tolist()
    [[10, 20, 30]]
    """
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
    """Bool mask of label voxels with a 6-neighbour of another value (block edges count).

    Parameters
    ----------
    labels : integer ndarray, shape (z, y, x)
        A block of labels (0 background).

    Returns
    -------
    bool ndarray, shape (z, y, x)

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((1, 1, 6), np.uint32); labels[0, 0, 1:5] = 1
    >>> label_boundary(labels).astype(int).tolist()  # one voxel thick: all on the edge
    [[[0, 1, 1, 1, 1, 0]]]
    """
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

    Parameters
    ----------
    tree : scipy.spatial.cKDTree
        Points in physical coordinates.
    phys : float ndarray, shape (n, 3)
        Query points in physical coordinates.
    inv : int ndarray, shape (n,)
        Group (0..k-1) of each point.
    k : int
        Number of groups.
    cell : (z, y, x) float
        Bin size of the pruning.

    Returns
    -------
    float ndarray, shape (k,)
        Minimum distance per group (inf for an empty group).

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.spatial import cKDTree
    >>> tree = cKDTree(np.array([[0.0, 0.0, 10.0]]))
    >>> phys = np.array([[0.0, 0, 0], [0, 0, 4], [0, 0, 7], [0, 0, 9]])
    >>> nearest_per_group(tree, phys, np.array([0, 0, 1, 1]), 2, (4.0, 4.0, 4.0)).tolist()
    [6.0, 1.0]
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

    Parameters
    ----------
    labels : integer ndarray, shape (bz, by, bx)
        One block of labels.
    origin : (z, y, x) int
        Global index of the block's first voxel.
    trees : sequence of scipy.spatial.cKDTree or None
        Walls, in physical coordinates; a missing tree (None) gives infinity.
    spacing : (z, y, x) float
        Voxel size.

    Returns
    -------
    ids : uint64 ndarray, shape (k,)
        The labels present in the block.
    distances : float ndarray, shape (k, len(trees))
        Minimum distance from each label's boundary voxel centres to each tree.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.spatial import cKDTree
    >>> labels = np.zeros((4, 4, 8), np.uint32)
    >>> labels[1:3, 1:3, 1:3] = 1; labels[1:3, 1:3, 5:7] = 2
    >>> wall = cKDTree(np.array([[1.5, 1.5, 10.0]]))
    >>> ids, dist = block_surface_distances(labels, (0, 0, 0), [wall, None], (1, 1, 1))
    >>> ids.tolist(), dist.round(2).tolist()
    ([1, 2], [[8.03, inf], [4.06, inf]])
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
    """Combine per-block (ids, distances) by taking the minimum per id.

    Parameters
    ----------
    parts : list of (ids (k,), distances (k, n)) tuples
        What :func:`block_surface_distances` returns for each block.

    Returns
    -------
    ids : uint64 ndarray, shape (m,)
        Sorted unique ids.
    distances : float ndarray, shape (m, n)

    Examples
    --------
    >>> import numpy as np
    >>> parts = [(np.array([1, 2], np.uint64), np.array([[5.0], [3.0]])),
    ...          (np.array([2], np.uint64), np.array([[1.0]]))]
    >>> ids, dist = reduce_min(parts)
    >>> ids.tolist(), dist.tolist()
    ([1, 2], [[5.0], [1.0]])
    """
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
