"""Percolation of a phase between two opposite faces, from the exact chunked labeling."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import xarray as xr

from ..common.options import Connectivity, check_choice
from ..labeling import label
from .inputs import phase_mask
from .options import AXES, axis_index

__all__ = ["percolation"]

CLASSES = ("percolating", "dead_end", "isolated")


def _block_ids(labels, write, axis, n):
    """Per block: (ids, counts) of its components, and the ids on the two faces."""
    labels = np.asarray(labels)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    low = np.unique(np.take(labels, 0, axis=axis)) if write[axis].start == 0 else ids[:0]
    high = (np.unique(np.take(labels, -1, axis=axis)) if write[axis].stop == n
            else ids[:0])
    return ids, counts, low, high


def percolation(mask: Any, axis: Any = "z", *, phase: int | None = None,
                connectivity: Connectivity = 6) -> xr.DataArray:
    """Fractions of a phase connected to both faces along ``axis``, to one face only (dead
    ends) and to neither (isolated).

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    axis : {"z", "y", "x"} or 0, 1, 2
        The transport direction.
    phase : int, optional
        The phase value of a label volume.
    connectivity : {6, 18, 26}
        6 (faces) is the connectivity of diffusion between voxels.

    Returns
    -------
    xarray.DataArray, dims ("connection",)
        Fractions of the phase volume (they sum to 1; 0 for an empty phase);
        ``attrs["percolates"]``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((5, 5, 5), bool); m[:, 2, 2] = True; m[:3, 0, 0] = True
    >>> percolation(m, "z").values.tolist()
    [0.625, 0.375, 0.0]
    """
    check_choice(connectivity, Connectivity, "connectivity")
    a = axis_index(axis)
    vol, m = phase_mask(mask, phase)
    labels, n = label(m, connectivity=connectivity)
    tasks = []
    for index in np.ndindex(*labels.numblocks):
        starts = [sum(c[:i]) for c, i in zip(labels.chunks, index)]
        write = tuple(slice(s, s + c[i]) for s, c, i in zip(starts, labels.chunks, index))
        tasks.append(dask.delayed(_block_ids)(labels.blocks[index], write, a,
                                              labels.shape[a]))
    (parts,) = dask.compute(tasks)
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    counts = np.concatenate([p[1] for p in parts])
    size = np.bincount(ids, weights=counts, minlength=n + 1)
    low = np.zeros(n + 1, bool)
    high = np.zeros(n + 1, bool)
    low[np.concatenate([p[2] for p in parts]).astype(np.int64)] = True
    high[np.concatenate([p[3] for p in parts]).astype(np.int64)] = True
    low[0] = high[0] = False
    total = size.sum()
    both = size[low & high].sum()
    one = size[low ^ high].sum()
    frac = np.array([both, one, total - both - one]) / total if total else np.zeros(3)
    return xr.DataArray(frac, dims=("connection",), coords={"connection": list(CLASSES)},
                        name="percolation",
                        attrs={"units": "1", "long_name": f"phase fraction by connection "
                               f"to the {AXES[a]} faces", "axis": AXES[a],
                               "connectivity": connectivity, "percolates": bool(both > 0)})
