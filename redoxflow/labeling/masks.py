"""Mask clean-up before labeling: the reference's "1-D bubble" filter."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

__all__ = ["remove_z_isolated"]


def _z_isolated_block(block: np.ndarray) -> np.ndarray:
    """Clean the interior slices of a block that carries one slice of z halo on each side."""
    m = block.astype(bool)
    keep = m.copy()
    inner = m[1:-1] & ~m[:-2] & ~m[2:]
    keep[1:-1] &= ~inner
    return keep


def remove_z_isolated(mask: Any):
    """Drop mask voxels with no mask voxel directly above or below (z +- 1).

    The reference's "1-D bubble" filter. The first and last slices of the volume are never
    cleaned (the reference's rule).

    Parameters
    ----------
    mask : numpy or dask array, shape (z, y, x)
        Boolean (or 0/1) mask.

    Returns
    -------
    numpy or dask array of bool
        Numpy in, numpy out; dask in, lazy dask out (one-slice z halo per chunk).

    Examples
    --------
    >>> m = np.zeros((4, 1, 2), bool)
    >>> m[1, 0, 0] = True            # alone along z: removed
    >>> m[1:3, 0, 1] = True          # a two-slice column: kept
    >>> remove_z_isolated(m)[:, 0].tolist()
    [[False, False], [False, True], [False, True], [False, False]]
    """
    if mask.ndim != 3:
        raise InputError(f"mask has {mask.ndim} dimensions, expected 3 (z, y, x)")
    if isinstance(mask, np.ndarray):
        return _z_isolated_block(mask)
    return mask.map_overlap(_z_isolated_block, depth={0: 1, 1: 0, 2: 0}, boundary="none",
                            dtype=bool, trim=True)
