"""Percolation of a phase between two opposite faces, from the exact chunked labeling."""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..common.options import Connectivity, check_choice
from ..labeling import label
from .blocks import regions
from .inputs import phase_mask
from .options import AXES, axis_index

__all__ = ["percolation", "percolation_axes"]

CLASSES = ("percolating", "dead_end", "isolated")


def _block_ids(labels, write, shape):
    """Per block: (ids, counts) of its components, and the ids on each of the six faces."""
    labels = np.asarray(labels)
    ids, counts = np.unique(labels[labels > 0], return_counts=True)
    faces = []
    for axis in range(3):
        low = np.unique(np.take(labels, 0, axis=axis)) if write[axis].start == 0 else ids[:0]
        high = (np.unique(np.take(labels, -1, axis=axis)) if write[axis].stop == shape[axis]
                else ids[:0])
        faces.append((low, high))
    return ids, counts, faces


def _fractions(size, parts, axis, n) -> tuple[np.ndarray, bool]:
    low = np.zeros(n + 1, bool)
    high = np.zeros(n + 1, bool)
    low[np.concatenate([p[2][axis][0] for p in parts]).astype(np.int64)] = True
    high[np.concatenate([p[2][axis][1] for p in parts]).astype(np.int64)] = True
    low[0] = high[0] = False
    total = size.sum()
    both = size[low & high].sum()
    one = size[low ^ high].sum()
    frac = np.array([both, one, total - both - one]) / total if total else np.zeros(3)
    return frac, bool(both > 0)


def percolation_axes(mask: Any, axes=AXES, *, phase: int | None = None,
                     connectivity: Connectivity = 6) -> xr.DataArray:
    """:func:`percolation` along several axes from one labeling.

    Returns
    -------
    xarray.DataArray, dims ("axis", "connection")

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((4, 4, 4), bool); m[:, 1, 1] = True
    >>> percolation_axes(m).sel(connection="percolating").values.tolist()
    [1.0, 0.0, 0.0]
    """
    check_choice(connectivity, Connectivity, "connectivity")
    names = [AXES[axis_index(a)] for a in axes]
    vol, m = phase_mask(mask, phase)
    labels, n = label(m, connectivity=connectivity)
    labels = da.asarray(labels)
    tasks = []
    for index, write in regions(labels.chunks):
        tasks.append(dask.delayed(_block_ids)(labels.blocks[index], write, labels.shape))
    (parts,) = dask.compute(tasks)
    ids = np.concatenate([p[0] for p in parts]).astype(np.int64)
    size = np.bincount(ids, weights=np.concatenate([p[1] for p in parts]), minlength=n + 1)
    rows = [_fractions(size, parts, AXES.index(a), n) for a in names]
    return xr.DataArray([r[0] for r in rows], dims=("axis", "connection"),
                        coords={"axis": names, "connection": list(CLASSES)},
                        name="percolation",
                        attrs={"units": "1", "long_name": "phase fraction by connection to "
                               "two opposite faces", "connectivity": connectivity,
                               "percolates": [r[1] for r in rows]})


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
    a = AXES[axis_index(axis)]
    out = percolation_axes(mask, [a], phase=phase, connectivity=connectivity).sel(axis=a)
    return out.drop_vars("axis").assign_attrs(
        axis=a, percolates=out.attrs["percolates"][0],
        long_name=f"phase fraction by connection to the {a} faces")
