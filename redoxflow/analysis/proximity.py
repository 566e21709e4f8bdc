"""The walls' boundary voxels: the points of the KD-trees of the centroid distances."""

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
    padded = mask.shape
    core_shape = tuple(n - 2 for n in padded)
    idx = np.unravel_index(np.flatnonzero(mask[1:-1, 1:-1, 1:-1]), core_shape)
    at = ((idx[0] + 1) * padded[1] + (idx[1] + 1)) * padded[2] + (idx[2] + 1)
    flat = np.ascontiguousarray(mask).ravel()
    inner = np.ones(len(at), bool)
    for stride in (padded[1] * padded[2], padded[2], 1):
        inner &= flat[at - stride] & flat[at + stride]
    pts = np.stack(idx, axis=1)[~inner]
    return (pts + np.asarray(origin)).astype(np.int32)
