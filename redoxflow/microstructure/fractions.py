"""Volume fractions, and fraction profiles along an axis (exact counts, any chunking)."""

from __future__ import annotations

from typing import Any

import dask
import numpy as np
import xarray as xr

from .blocks import halo_tasks
from .inputs import phase_volume
from .kernels import profile_counts
from .options import AXES, axis_index

__all__ = ["volume_fractions", "fraction_profile"]


def _counts(block, origin, shape, write, values):
    return np.array([(block == v).sum() for v in values], np.int64)


def volume_fractions(volume: Any, *, phases: Any = None) -> xr.DataArray:
    """Fraction of the voxels that belong to each phase.

    Parameters
    ----------
    volume : path, xarray, dask or numpy array, shape (z, y, x) or (t, z, y, x)
        Integer phase labels (or a boolean mask).
    phases : mapping name -> value or "name=value,...", optional
        Default: every value present, named by itself.

    Returns
    -------
    xarray.DataArray, dims ("phase",) or ("t", "phase")
        Dimensionless fractions.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[[0, 0, 85, 170]]], np.uint8)
    >>> volume_fractions(v, phases="pore=0,NMC=85").values.tolist()
    [0.5, 0.25]
    """
    vol, ph = phase_volume(volume, phases, ndim=(3, 4))
    values = np.array(list(ph.values()))
    stack = [vol.data[t] for t in range(vol.data.shape[0])] if vol.data.ndim == 4 else [vol.data]
    parts = [halo_tasks(d, _counts, args=(values,)) for d in stack]
    (computed,) = dask.compute(parts)
    frac = np.array([np.sum(c, axis=0) / d.size for c, d in zip(computed, stack)])
    attrs = {"units": "1", "long_name": "volume fraction"}
    if vol.data.ndim == 3:
        return xr.DataArray(frac[0], dims=("phase",), coords={"phase": list(ph)},
                            attrs=attrs, name="volume_fraction")
    return xr.DataArray(frac, dims=("t", "phase"), attrs=attrs, name="volume_fraction",
                        coords={"phase": list(ph), "t": np.arange(len(frac))})


def _profile(block, origin, shape, write, values, axis, length):
    out = np.zeros((len(values), length), np.int64)
    out[:, write[axis]] = profile_counts(block, values, axis)
    return out


def fraction_profile(volume: Any, axis: Any = "z", *, phases: Any = None,
                     spacing: Any = None) -> xr.DataArray:
    """Volume fraction of each phase per plane along ``axis`` (e.g. separator to collector).

    Parameters
    ----------
    volume : path, xarray, dask or numpy array, shape (z, y, x) or (t, z, y, x)
        Integer phase labels.
    axis : {"z", "y", "x"} or 0, 1, 2
        The depth axis.
    phases : mapping or str, optional
        As in :func:`volume_fractions`.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1); gives the depth coord.

    Returns
    -------
    xarray.DataArray, dims ("phase", "depth") or ("t", "phase", "depth")
        The ``depth`` coord is the plane centre in micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((2, 2, 2), np.uint8); v[1, 0, :] = 1
    >>> fraction_profile(v, "z", phases=[0, 1]).values.tolist()
    [[1.0, 0.5], [0.0, 0.5]]
    """
    vol, ph = phase_volume(volume, phases, ndim=(3, 4))
    a = axis_index(axis)
    sp = vol.spacing(spacing)
    values = np.array(list(ph.values()))
    stack = [vol.data[t] for t in range(vol.data.shape[0])] if vol.data.ndim == 4 else [vol.data]
    n = stack[0].shape[a]
    parts = [halo_tasks(d, _profile, args=(values, a, n)) for d in stack]
    (computed,) = dask.compute(parts)
    plane = stack[0].size // n
    prof = np.array([np.sum(c, axis=0) / plane for c in computed])
    coords = {"phase": list(ph), "depth": (np.arange(n) + 0.5) * sp[a]}
    attrs = {"units": "1", "long_name": f"volume fraction per plane along {AXES[a]}"}
    if vol.data.ndim == 3:
        out = xr.DataArray(prof[0], dims=("phase", "depth"), coords=coords, attrs=attrs,
                           name="fraction_profile")
    else:
        coords["t"] = np.arange(len(prof))
        out = xr.DataArray(prof, dims=("t", "phase", "depth"), coords=coords, attrs=attrs,
                           name="fraction_profile")
    out["depth"].attrs.update(units="um", long_name=f"depth along {AXES[a]}")
    return out
