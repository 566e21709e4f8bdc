"""Tortuosity of one phase along an axis: the diffusion tortuosity factor and geodesic paths.

``method="diffusion"`` solves steady diffusion through the phase (cell-centred finite
volumes on the voxels; concentration 1 on the inlet face and 0 on the outlet face, no flux
through the sides or periodic sides) on the percolating voxels only, with conjugate gradient
preconditioned by aggregation multigrid on the voxel grid
(:mod:`redoxflow.microstructure._tortuosity_solver`), and reports TauFactor's tortuosity
factor ``eps * D_bulk / D_eff`` (not squared). ``method="geodesic"`` computes the shortest
paths through the phase from the inlet face (Dijkstra on the 26-connected voxel graph with
Euclidean steps, ``dijkstra3d``) and their length over the thickness at every outlet voxel.
See ``docs/microstructure_reference.md`` for the definitions and reference values.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal

import dask
import numpy as np
import xarray as xr

from .. import __version__
from .._backend import get_array_module, has_gpu, to_backend, to_numpy
from ..common.atomic import check_writable
from ..common.options import check_choice
from ..errors import InputError
from ..labeling import label
from . import _geodesic_chunked as geodesic_blockwise
from . import _tortuosity_chunked as blockwise
from . import _tortuosity_solver as solver
from .inputs import phase_mask
from .options import AXES, axis_index

Method = Literal["diffusion", "geodesic"]
Device = Literal["auto", "cpu", "gpu"]
Boundary = Literal["face", "voxel"]

__all__ = ["tortuosity", "Method", "Device", "Boundary"]

DEFAULT_TOL = 1e-6
CHUNKED_FROM = 1 << 30  # voxels from which a lazy input is solved blockwise by default


def tortuosity(
    mask: Any,
    axis: Any = 0,
    method: Method = "diffusion",
    *,
    spacing: Any = None,
    phase: int | None = None,
    device: Device = "auto",
    tol: float = DEFAULT_TOL,
    maxiter: int = 500,
    periodic: bool | tuple[bool, bool] = False,
    boundary: Boundary = "face",
    chunks: Any = None,
    scratch: str | os.PathLike | None = None,
) -> xr.Dataset:
    """Tortuosity of a phase along one axis: diffusion tortuosity factor or geodesic paths.

    Parameters
    ----------
    mask : path, zarr array, xarray.DataArray, dask or numpy array, shape (z, y, x)
        Boolean mask of the phase (or a label volume with ``phase=``), coerced with
        :func:`redoxflow.io.volume.as_volume`.
    axis : {0, 1, 2, "z", "y", "x"}
        The transport axis: the inlet is the face at index 0, the outlet the last face.
    method : {"diffusion", "geodesic"}
        ``"diffusion"``: steady diffusion solve, tortuosity factor ``eps * D_bulk / D_eff``.
        ``"geodesic"``: shortest paths from the inlet face over the thickness, per outlet
        voxel.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1); anisotropic voxels are
        exact (the conductances are face area over centre distance).
    phase : int, optional
        Phase value of a label volume (``mask == phase``); default ``mask != 0``.
    device : {"auto", "cpu", "gpu"}
        ``"gpu"`` runs the solve with CuPy (needs the ``gpu`` extra and a CUDA device; same
        result as ``"cpu"``, the oracle); ``"auto"`` uses the GPU when one is usable.
    tol : float
        Convergence: the fluxes through every slice normal to the axis agree to ``tol``
        (``(max - min) / mean``) and the relative residual is below ``tol``.
    maxiter : int
        Conjugate-gradient iterations at most (``converged`` says whether ``tol`` was met).
    periodic : bool or (bool, bool)
        Periodic side faces (the two axes other than ``axis``, in z, y, x order) instead of
        no-flux sides. Diffusion only.
    boundary : {"face", "voxel"}
        Where the concentrations are fixed. ``"face"`` (TauFactor's convention): on the outer
        faces of the first and last voxel layers, thickness = all voxels. ``"voxel"``
        (PoreSpy/OpenPNM's ``tortuosity_fd``): at the centres of the first and last layers,
        thickness = one voxel less.
    chunks : (z, y, x) or "auto", optional
        Solve out of core over dask (CPU): the percolating voxels go to a scratch store and
        every pass of the solver is one task per slab of layers along ``axis`` that reads
        its slab with one halo layer and writes its own layers back, so a worker holds one
        slab at a time (slabs are no thicker than the chunks along ``axis``, rounded up to
        4, nor larger than 2**26 voxels; "auto": the input's chunks). About 32 bytes per
        percolating voxel plus 5 per voxel go to the store (14 per voxel at 30 %).
        Default: out of core for lazy inputs (dask, zarr, stores) of more than 2**30
        voxels, else in memory (faster when it fits).
    scratch : path, optional
        Folder of the out-of-core solve's temporary store, made if missing (default: the
        temp folder; on a cluster of several machines, a folder every worker can read and
        write). The store is removed when the solve ends.

    Returns
    -------
    xarray.Dataset
        ``diffusion``: scalars ``tortuosity_factor`` (inf without a percolating path),
        ``effective_diffusivity`` (D_eff / D_bulk, 0 without a path), ``porosity``,
        ``through_porosity`` (the part connected to both faces), ``iterations``,
        ``residual``, ``flux_balance``, ``converged``; profiles along the axis
        ``porosity_profile``, ``concentration_profile`` (slice ``position``),
        ``tortuosity_profile`` and ``flux_profile`` (``interface`` between slices).
        ``geodesic``: ``geodesic_tortuosity`` per outlet voxel (NaN where no path) and its
        ``mean``/``median``/``std``/``min``/``max`` as ``geodesic_tortuosity_*``,
        ``reachable_fraction``, ``porosity``, ``through_porosity``. Every variable has
        ``units`` and ``long_name``.

    Notes
    -----
    The diffusion solve is restricted to the voxels of the components (face-connected, 6)
    that touch both faces (with periodic sides, components joined through them count as
    one); isolated and dead-end-only components carry no flux but count in ``porosity``,
    as in TauFactor (``tau = porosity / D_eff``; PoreSpy's ``tortuosity_fd`` divides
    ``through_porosity`` instead: ``through_porosity / effective_diffusivity``). The
    matrix is the 7-point finite-volume stencil with conductances ``A / h`` per face, the
    face values enter through half-voxel conductances ``2 A / h``.

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((6, 4, 4), bool)
    >>> m[:, 1, 1] = True                      # a straight channel along z
    >>> ds = tortuosity(m, "z")
    >>> round(float(ds.tortuosity_factor), 6), float(ds.porosity)
    (1.0, 0.0625)
    >>> m[3, 1, 1] = False                     # blocked: no percolating path
    >>> float(tortuosity(m, "z").tortuosity_factor)
    inf
    >>> round(float(tortuosity(np.ones((5, 3, 3), bool), "x", "geodesic")
    ...             .geodesic_tortuosity_mean), 6)
    1.0
    """
    check_choice(method, Method, "method")
    check_choice(device, Device, "device")
    check_choice(boundary, Boundary, "boundary")
    ax = axis_index(axis)
    if not (isinstance(tol, (int, float)) and 0 < tol < 1):
        raise InputError(f"tol={tol!r} must be a number between 0 and 1 (e.g. 1e-6)")
    if not (isinstance(maxiter, (int, np.integer)) and maxiter > 0):
        raise InputError(f"maxiter={maxiter!r} must be a positive integer")
    sides = _periodic(periodic)
    if method == "geodesic" and any(sides):
        raise InputError("periodic sides are not supported by method='geodesic': "
                         "use periodic=False")
    vol, lazy = phase_mask(mask, phase)
    h_all = vol.spacing(spacing)
    shape = tuple(int(n) for n in lazy.shape)
    if min(shape) < 1 or (boundary == "voxel" and shape[ax] < 3):
        raise InputError(f"mask of shape {shape} is too small along axis {AXES[ax]!r}: "
                         "boundary='voxel' needs at least 3 voxels, others at least 1")
    order = (ax,) + tuple(a for a in range(3) if a != ax)
    h = tuple(h_all[a] for a in order)
    chunked = _use_chunks(mask, lazy, chunks)
    attrs = {"axis": AXES[ax], "method": method, "spacing": list(h_all),
             "source": vol.identity, "redoxflow_version": __version__}
    if chunked:
        data = lazy.transpose(order)
        if chunks is not None and chunks != "auto":
            data = data.rechunk(tuple(chunks[a] for a in order))
        m = None
    else:
        data = None
        m = np.ascontiguousarray(np.transpose(np.asarray(lazy.compute(), dtype=bool), order))
    if method == "geodesic":
        attrs["chunked"] = int(chunked)
        return _geodesic_chunked(data, h, order, attrs) if chunked else _geodesic(m, h, order,
                                                                                  attrs)
    backend = _backend("cpu" if chunked and device == "auto" else device)
    attrs.update(boundary=boundary, periodic=[int(s) for s in sides], device=backend,
                 tol=float(tol), chunked=int(chunked),
                 solver="CG preconditioned by aggregation multigrid (K-cycle), float64")
    if chunked:
        if backend != "numpy":
            raise InputError("the chunked solve runs on the CPU: use device='cpu' (or leave "
                             "chunks unset for the GPU)")
        if scratch is not None:  # a one-line error before the labeling pass, not after
            check_writable(scratch)
        profiles = _solve_chunked(data, h, sides, boundary, float(tol), int(maxiter),
                                  scratch)
    else:
        through = _through(m, sides, 6)
        phase_slices = m.reshape(m.shape[0], -1).sum(axis=1, dtype=np.int64)
        profiles = (phase_slices,) + _solve_memory(through, h, sides, boundary, backend,
                                                   float(tol), int(maxiter))
    shape = tuple(shape[a] for a in order)
    return _diffusion_dataset(shape, *profiles, h, boundary, attrs)


# --------------------------------------------------------------------------------------------

def _periodic(periodic: Any) -> tuple[bool, bool]:
    if isinstance(periodic, (bool, np.bool_)):
        return (bool(periodic),) * 2
    try:
        sides = tuple(bool(p) for p in periodic)
    except TypeError:
        sides = ()
    if len(sides) != 2:
        raise InputError(f"periodic={periodic!r} is malformed: give one bool or two (the "
                         "two side axes in z, y, x order)")
    return sides  # type: ignore[return-value]


def _use_chunks(mask, lazy, chunks) -> bool:
    if chunks is None:  # large lazy inputs only: in memory is faster when it fits
        lazy_input = not isinstance(getattr(mask, "data", mask), np.ndarray)
        return lazy_input and math.prod(lazy.shape) > CHUNKED_FROM
    if chunks == "auto":
        return True
    try:
        ok = len(chunks) == 3 and all(int(c) > 0 for c in chunks)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise InputError(f"chunks={chunks!r} is malformed: give three positive chunk sizes "
                         "(z, y, x) or 'auto'")
    return True


def _backend(device: str) -> str:
    if device == "cpu" or (device == "auto" and not has_gpu()):
        return "numpy"
    get_array_module(backend="cupy")  # a one-line InputError without a usable GPU
    return "cupy"


def _through(m: np.ndarray, sides: tuple[bool, bool], connectivity: int) -> np.ndarray:
    """The voxels of the components that touch both faces normal to axis 0."""
    labels, n = label(m, connectivity=connectivity)
    if n == 0:
        return np.zeros(m.shape, bool)
    comp = solver.merge_periodic([(labels[:, 0], labels[:, -1]) if sides[0] else None,
                            (labels[:, :, 0], labels[:, :, -1]) if sides[1] else None], n)
    inlet = np.unique(comp[labels[0]])
    outlet = np.unique(comp[labels[-1]])
    both = np.intersect1d(inlet, outlet)
    keep = np.isin(comp, both)
    keep[0] = False
    return keep[labels]


def _solve_memory(through, h, sides, boundary, backend, tol, maxiter):
    """(percolating voxels per slice, their concentration sums per slice, Solution)."""
    n0 = through.shape[0]
    counts = through.reshape(n0, -1).sum(axis=1, dtype=np.int64)
    if not counts.any():
        return counts, None, None
    xp = get_array_module(backend=backend)
    active = to_backend(through, backend)
    # CPU: float32 conductances, float64 arithmetic in the compiled kernels; GPU: a float64
    # operator (and a float32 copy for the preconditioner)
    dtype, arrays = (np.float32, False) if backend == "numpy" else (xp.float64, True)
    make = solver.fine_level if boundary == "face" else solver.voxel_level
    x0 = solver.linear_guess(xp, active if boundary == "face" else active[1:-1], boundary)
    # the level is not kept here: the solver drops its conductances once coded as link bits
    sol = solver.solve(xp, make(xp, active, h, sides, dtype, arrays), backend, tol, maxiter,
                       x0=x0)
    del x0  # the solver iterated in it (sol.c)
    c = to_numpy(sol.c)
    inner = through if boundary == "face" else through[1:-1]
    sums = (c * inner).reshape(inner.shape[0], -1).sum(axis=1)
    if boundary == "voxel":
        sums = np.concatenate([[counts[0]], sums, [0.0]])
    return counts, sums, sol


def _solve_chunked(data, h, sides, boundary, tol, maxiter, scratch=None):
    """The same as :func:`_solve_memory` (with the phase counts first), out of core."""
    through, phase_slices = blockwise.through_chunked(data, sides)
    counts, sums, sol = blockwise.solve_chunked(through, h, sides, boundary, tol, maxiter,
                                                scratch)
    if sol is not None and boundary == "voxel":
        sums = np.concatenate([[counts[0]], sums, [0.0]])
    return phase_slices, counts, sums, sol


def _diffusion_dataset(shape, phase_slices, through_slices, sums, sol, h, boundary, attrs):
    n0, n1, n2 = shape
    size = n0 * n1 * n2
    h0 = h[0]
    area = n1 * h[1] * n2 * h[2]
    length = (n0 if boundary == "face" else n0 - 1) * h0
    porosity = float(phase_slices.sum() / size)
    porosity_slices = phase_slices / (n1 * n2)
    through_porosity = float(through_slices.sum() / size)
    positions = (np.arange(n0) + 0.5) * h0
    interfaces = (np.arange(1, n0)) * h0
    if sol is None:
        tau, deff, iterations, residual, balance, converged = math.inf, 0.0, 0, 0.0, 0.0, True
        conc_profile = np.full(n0, np.nan)
        tau_profile = np.full(n0 - 1, np.inf)
        flux_profile = np.zeros(n0 - 1)
    else:
        flux = float(np.mean(sol.fluxes))
        deff = max(flux, 0.0) * length / area
        tau = porosity / deff if deff > 0 else math.inf
        iterations, residual, balance = sol.iterations, sol.residual, sol.balance
        converged = sol.converged
        with np.errstate(invalid="ignore", divide="ignore"):
            conc_profile = np.where(through_slices > 0, sums / through_slices, np.nan)
            drop = conc_profile[:-1] - conc_profile[1:]
            local_d = flux * h0 / (area * drop)
            eps_face = 0.5 * (porosity_slices[:-1] + porosity_slices[1:])
            tau_profile = np.where(local_d > 0, eps_face / local_d, np.inf)
        inner = sol.fluxes[1:-1] if boundary == "face" else sol.fluxes
        flux_profile = inner / flux if flux > 0 else np.zeros_like(inner)
    axis_name = attrs["axis"]

    def var(value, units, long_name, dims=(), coords=None, **extra):
        return xr.DataArray(value, dims=dims, attrs={"units": units, "long_name": long_name,
                                                     **extra})

    ds = xr.Dataset(
        {
            "tortuosity_factor": var(tau, "1", "tortuosity factor eps * D_bulk / D_eff "
                                     "(TauFactor's tau, not squared)"),
            "effective_diffusivity": var(deff, "1", "relative effective diffusivity "
                                         "D_eff / D_bulk"),
            "porosity": var(porosity, "1", "volume fraction of the phase"),
            "through_porosity": var(through_porosity, "1", "volume fraction of the phase "
                                    "connected to both faces (percolating)"),
            "iterations": var(np.int64(iterations), "1", "conjugate-gradient iterations"),
            "residual": var(float(residual), "1", "relative residual ||b - A c|| / ||b||"),
            "flux_balance": var(float(balance), "1", "(max - min) / mean of the fluxes "
                                "through the slices normal to the axis"),
            "converged": var(bool(converged), "1", "tol met within maxiter"),
            "porosity_profile": var(np.asarray(porosity_slices, float), "1",
                                    f"volume fraction of the phase per slice along "
                                    f"{axis_name}", ("position",)),
            "concentration_profile": var(conc_profile, "1", "mean concentration of the "
                                         "percolating voxels per slice (inlet 1, outlet 0)",
                                         ("position",)),
            "tortuosity_profile": var(tau_profile, "1", "local tortuosity factor between "
                                      "neighbouring slices: mean porosity * A * "
                                      "concentration drop / (flux * spacing)",
                                      ("interface",)),
            "flux_profile": var(np.asarray(flux_profile, float), "1", "flux through the "
                                "interfaces between slices over the mean flux (1 when "
                                "converged)", ("interface",)),
        },
        coords={
            "position": xr.DataArray(positions, dims=("position",),
                                     attrs={"units": "um", "long_name":
                                            f"slice centre along {axis_name}"}),
            "interface": xr.DataArray(interfaces, dims=("interface",),
                                      attrs={"units": "um", "long_name":
                                             f"interface between slices along {axis_name}"}),
        },
        attrs=attrs,
    )
    return ds


# --------------------------------------------------------------------------------------------

def _geodesic(m, h, order, attrs):
    """Shortest paths through the phase (26-connected, Euclidean steps) from the inlet face."""
    import dijkstra3d

    through = _through(m, (False, False), 26)
    sources = np.argwhere(through[0])
    last = np.full(m.shape[1:], np.inf)
    if len(sources):
        field = dijkstra3d.euclidean_distance_field(
            np.asfortranarray(through.astype(np.uint8)), [(0, int(j), int(k)) for j, k in sources],
            anisotropy=tuple(float(v) for v in h))
        last = np.asarray(field[-1], dtype=np.float64)
    attrs = dict(attrs, solver="dijkstra3d.euclidean_distance_field (26 neighbours, "
                 "Euclidean steps)")
    return _geodesic_dataset(m.shape[0], last, through[-1], int(m[-1].sum()), float(m.mean()),
                             float(through.mean()), h, order, attrs)


def _geodesic_chunked(data, h, order, attrs):
    """The same as :func:`_geodesic`, blockwise: per-block Dijkstra sweeps with halo exchange
    until nothing changes (:mod:`redoxflow.microstructure._geodesic_chunked`)."""
    through, phase_slices = blockwise.through_chunked(data, (False, False), connectivity=26)
    dist, sweeps = geodesic_blockwise.distance_chunked(through, h)
    last, through_last, through_sum = dask.compute(dist[-1], through[-1],
                                                   through.sum(dtype=np.int64))
    size = math.prod(data.shape)
    attrs = dict(attrs, sweeps=int(sweeps), solver="blockwise Dijkstra sweeps with halo "
                 "exchange until no distance changes (26 neighbours, Euclidean steps)")
    return _geodesic_dataset(int(data.shape[0]), np.asarray(last, np.float64),
                             np.asarray(through_last, bool), int(phase_slices[-1]), float(phase_slices.sum() / size),
                             float(through_sum / size), h, order, attrs)


def _geodesic_dataset(n0, last, through_last, outlet_phase, porosity, through_fraction, h,
                      order, attrs):
    """The geodesic dataset from the distances on the outlet layer (inf: unreachable)."""
    out = np.full(last.shape, np.nan)
    ok = through_last & np.isfinite(last)
    thickness = n0 * h[0]
    # centre to centre plus half a voxel at each end: a straight path is the thickness
    out[ok] = (last[ok] + h[0]) / thickness
    values = out[np.isfinite(out)]
    stats = {k: (float(f(values)) if values.size else math.inf)
             for k, f in (("mean", np.mean), ("median", np.median), ("std", np.std),
                          ("min", np.min), ("max", np.max))}
    if not values.size:
        stats["std"] = math.nan
    side = [AXES[a] for a in order[1:]]
    coords = {name: xr.DataArray((np.arange(n) + 0.5) * h[i + 1], dims=(name,),
                                 attrs={"units": "um", "long_name": f"voxel centre along {name}"})
              for i, (name, n) in enumerate(zip(side, out.shape))}
    data = {"geodesic_tortuosity": xr.DataArray(
        out, dims=tuple(side), attrs={"units": "1", "long_name": "shortest path through the "
                                      "phase from the inlet face over the thickness, per "
                                      "outlet voxel (NaN: no path)"})}
    for k, v in stats.items():
        data[f"geodesic_tortuosity_{k}"] = xr.DataArray(
            v, attrs={"units": "1", "long_name": f"{k} of the geodesic tortuosity over the "
                      "reachable outlet voxels"})
    data["reachable_fraction"] = xr.DataArray(
        values.size / outlet_phase if outlet_phase else 0.0,
        attrs={"units": "1", "long_name": "outlet voxels of the phase reached from the inlet"})
    data["porosity"] = xr.DataArray(porosity, attrs={"units": "1", "long_name":
                                                     "volume fraction of the phase"})
    data["through_porosity"] = xr.DataArray(
        through_fraction, attrs={"units": "1", "long_name": "volume fraction of the "
                                      "phase connected to both faces (26-connected)"})
    attrs = dict(attrs, connectivity=26)
    return xr.Dataset(data, coords=coords, attrs=attrs)
