"""``microstructure``: every electrode metric of a phase volume in one ``xarray.Dataset``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from .connectivity import percolation_axes
from .correlation import two_point_correlation
from .fractions import fraction_profile, volume_fractions
from .inputs import phase_volume
from .options import AXES, Inlet, Radii, SurfaceMethod, check_method, parse_inlet
from .surface import SIGMA, interfacial_area, specific_surface_area, triple_phase_boundary
from .thickness import intrusion, intrusion_distribution, local_thickness, pore_size_distribution

__all__ = ["microstructure", "METRICS"]

METRICS = ("fractions", "surfaces", "sizes", "intrusion", "percolation", "correlation")


def microstructure(volume: Any, *, phases: Any = None, spacing: Any = None,
                   method: SurfaceMethod = "marching_cubes", sigma: float = SIGMA,
                   profile_axis: Any = "z", axes: Sequence[Any] = AXES,
                   inlet: Inlet = "x-", radii: Radii = "exact", r_max: int = 32,
                   metrics: Sequence[str] = METRICS) -> xr.Dataset:
    """Fractions, surfaces, sizes, percolation and correlation of a phase volume.

    Parameters
    ----------
    volume : path, xarray, dask or numpy array, shape (z, y, x)
        Integer phase labels (any uint8/uint16 values) or a boolean mask.
    phases : mapping name -> value or "pore=0,NMC=85,CBD=170", optional
        Default: every value present, named by itself.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).
    method : {"marching_cubes", "face_counting"}
        Surface-area estimator (see :func:`specific_surface_area`).
    sigma : float
        Smoothing of marching cubes, in voxels.
    profile_axis : {"z", "y", "x"}
        The depth axis of ``fraction_profile``.
    axes : sequence of {"z", "y", "x"}
        Axes of the percolation analysis.
    inlet : {"x-", "x+", "y-", "y+", "z-", "z+"}
        Inlet face of the simulated intrusion (``r_min``, constrictivity).
    radii : {"exact", "integer"}
        Exact ball radii, or whole voxels as PoreSpy.
    r_max : int
        Largest lag of the two-point correlation, in voxels.
    metrics : sequence of str
        Any of ``"fractions"``, ``"surfaces"``, ``"sizes"``, ``"intrusion"``,
        ``"percolation"``, ``"correlation"`` (default: all).

    Returns
    -------
    xarray.Dataset
        Every variable carries ``units`` and ``long_name``; dims ``phase``, ``pair``,
        ``depth``, ``radius``, ``axis``, ``lag``, ``connection``.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((6, 6, 6), np.uint8); v[:, :, 3:] = 1
    >>> ds = microstructure(v, phases="pore=0,solid=1", method="face_counting",
    ...                     metrics=("fractions", "surfaces", "percolation"))
    >>> ds.volume_fraction.values.tolist(), ds.specific_surface_area.values.tolist()
    ([0.5, 0.5], [0.16666666666666666, 0.16666666666666666])
    >>> bool(ds.percolation.sel(phase="pore", axis="z", connection="percolating") == 1)
    True
    """
    check_method(method)
    parse_inlet(inlet)
    unknown = sorted(set(metrics) - set(METRICS))
    if unknown:
        raise_unknown(unknown)
    vol, ph = phase_volume(volume, phases)
    sp = vol.spacing(spacing)
    data = vol.data
    parts: list[xr.DataArray | xr.Dataset] = []
    if "fractions" in metrics:
        parts += [volume_fractions(data, phases=ph),
                  fraction_profile(data, profile_axis, phases=ph, spacing=sp)]
    if "surfaces" in metrics:
        parts += [specific_surface_area(data, phases=ph, spacing=sp, method=method,
                                        sigma=sigma)]
        if len(ph) > 1:
            parts.append(interfacial_area(data, phases=ph, spacing=sp, method=method,
                                          sigma=sigma))
        if len(ph) > 2:
            parts.append(triple_phase_boundary(data, phases=ph, spacing=sp))
    if "sizes" in metrics or "intrusion" in metrics:
        parts += _sizes(data, ph, sp, inlet, radii, "intrusion" in metrics)
    if "percolation" in metrics:
        perc = [percolation_axes(data, axes, phase=v) for v in ph.values()]
        parts.append(xr.concat(perc, "phase").assign_coords(phase=list(ph))
                     .drop_attrs(deep=False)
                     .assign_attrs(units="1", long_name="phase fraction by connection to "
                                   "two opposite faces (connectivity 6)"))
    if "correlation" in metrics:
        s2 = [two_point_correlation(data, r_max, phase=v, spacing=sp) for v in ph.values()]
        parts.append(xr.concat(s2, "phase", coords="minimal").assign_coords(phase=list(ph)))
    ds = xr.merge(parts, combine_attrs="drop", join="outer")  # axes: percolation ones
    for p in parts:  # merge drops variable attrs: units and long_name travel with each
        ds[p.name].attrs = dict(p.attrs)
        for c in p.coords:
            ds[c].attrs.update(p[c].attrs)
    ds["phase_value"] = xr.DataArray(list(ph.values()), dims=("phase",),
                                     attrs={"units": "1", "long_name": "voxel value"})
    ds.attrs.update(voxel_size=list(sp), voxel_size_units="um", source=vol.identity,
                    surface_method=method, sigma=sigma, radii=radii, inlet=inlet)
    return ds


def raise_unknown(unknown) -> None:
    """Raise the one-line error for unknown metric names.

    Examples
    --------
    >>> raise_unknown(["pores"])
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: metrics ['pores'] are unknown: use any of fractions, surfaces, sizes, intrusion, percolation, correlation
    """
    raise InputError(f"metrics {unknown} are unknown: use any of {', '.join(METRICS)}")


def _sizes(data, ph, sp, inlet, radii, with_intrusion) -> list[xr.DataArray]:
    """r_max, PSD (and r_min, constrictivity) per phase on a common radius grid."""
    psds, r_max, r_min, beta = [], [], [], []
    for value in ph.values():
        m = data == value
        lt = local_thickness(m, spacing=sp, radii=radii)
        psd = pore_size_distribution(m, spacing=sp, thickness=lt)
        psds.append(psd)
        r_max.append(psd.attrs["r_max"])
        if with_intrusion:
            dist = intrusion_distribution(intrusion(m, inlet=inlet, spacing=sp, radii=radii),
                                          m)
            r_min.append(dist.attrs["r_min"])
            beta.append((r_min[-1] / r_max[-1]) ** 2 if r_max[-1] > 0 else 0.0)
    grid = np.unique(np.concatenate([p.radius.values for p in psds]))
    # the cumulative fraction is a step function: carry each value down to smaller radii
    curves = [p.reindex(radius=grid, method="bfill").fillna(0.0) for p in psds]
    out = [xr.concat(curves, "phase").assign_coords(phase=list(ph)).drop_attrs()
           .assign_attrs(units="1", long_name="phase fraction covered by balls of radius >= r")
           .rename("size_distribution"),
           xr.DataArray(r_max, dims=("phase",), coords={"phase": list(ph)}, name="r_max",
                        attrs={"units": "um", "long_name": "50 % quantile of the continuous "
                               "size distribution"})]
    if with_intrusion:
        out += [xr.DataArray(r_min, dims=("phase",), coords={"phase": list(ph)}, name="r_min",
                             attrs={"units": "um", "long_name": f"50 % quantile of the "
                                    f"intrusion from {inlet}"}),
                xr.DataArray(beta, dims=("phase",), coords={"phase": list(ph)},
                             name="constrictivity",
                             attrs={"units": "1", "long_name": "constrictivity "
                                    "(r_min / r_max)^2"})]
    return out
