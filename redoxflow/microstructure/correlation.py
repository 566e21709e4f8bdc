"""Two-point correlation along the axes, and representative-volume curves."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from .blocks import halo_tasks
from .inputs import phase_mask
from .kernels import lag_pair_counts
from .options import AXES

__all__ = ["two_point_correlation", "rev"]


def _lag_block(block, origin, shape, write, max_lag):
    return lag_pair_counts(np.asarray(block, bool), shape, max_lag)


def two_point_correlation(mask: Any, r_max: int = 32, *, phase: int | None = None,
                          spacing: Any = None) -> xr.DataArray:
    """S2(r): probability that two voxels a lag r apart along an axis are both in the phase.

    Non-periodic: every pair inside the volume counts once. S2(0) is the volume fraction
    and S2 tends to its square for uncorrelated distances.

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    r_max : int
        The largest lag in voxels.
    phase : int, optional
        The phase value of a label volume.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (the ``distance`` coord).

    Returns
    -------
    xarray.DataArray, dims ("axis", "lag")
        With coord ``distance`` (axis, lag) in micrometres; NaN where a lag does not fit.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((2, 2, 4), bool); m[..., ::2] = True
    >>> two_point_correlation(m, 2).sel(axis="x").values.tolist()
    [0.5, 0.0, 0.5]
    """
    vol, m = phase_mask(mask, phase)
    sp = vol.spacing(spacing)
    r_max = int(r_max)
    tasks = halo_tasks(m, _lag_block, after=(r_max,) * 3, args=(r_max,))
    (parts,) = dask.compute(tasks)
    pairs = np.sum(parts, axis=0).astype(np.float64)
    shape = np.array(m.shape)
    lags = np.arange(r_max + 1)
    total = np.array([[(shape[a] - k) * shape.prod() / shape[a] if k < shape[a] else np.nan
                       for k in lags] for a in range(3)])
    out = xr.DataArray(pairs / total, dims=("axis", "lag"), name="two_point_correlation",
                       coords={"axis": list(AXES), "lag": lags,
                               "distance": (("axis", "lag"), np.outer(sp, lags))},
                       attrs={"units": "1", "long_name": "two-point correlation S2"})
    out["distance"].attrs.update(units="um", long_name="lag distance")
    return out


def rev(metric: Callable[[Any], Any], volume: Any, sizes: Sequence[int]) -> xr.DataArray:
    """A metric on centred cubic sub-volumes of growing edge: the representative volume
    is reached where the curve stops changing.

    Parameters
    ----------
    metric : callable
        ``metric(sub_volume) -> float`` (or a scalar DataArray).
    volume : array, shape (z, y, x)
        Anything sliceable (numpy, dask, xarray).
    sizes : sequence of int
        Cube edges in voxels (clipped to the volume).

    Returns
    -------
    xarray.DataArray, dims ("size",)

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((8, 8, 8)); v[2:6, 2:6, 2:6] = 1
    >>> rev(lambda s: float(s.mean()), v, [4, 8]).values.tolist()
    [1.0, 0.125]
    """
    values = []
    shape = np.shape(volume)
    for size in sizes:
        sl = tuple(slice(max((n - size) // 2, 0), max((n - size) // 2, 0) + min(size, n))
                   for n in shape)
        values.append(float(metric(volume[sl])))
    out = xr.DataArray(np.array(values), dims=("size",), coords={"size": list(sizes)},
                       name="rev", attrs={"units": "1", "long_name": "metric per sub-volume"})
    out["size"].attrs.update(units="voxel", long_name="cube edge")
    return out
