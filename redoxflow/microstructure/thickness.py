"""Distance maps, local thickness, pore size distribution, intrusion and constrictivity.

Local thickness (Hildebrand and Rüegsegger) is the diameter of the largest open ball
``|x - c| < r_c`` inside the phase that contains a voxel, with ``r_c`` the exact Euclidean
distance of the centre ``c`` to the nearest voxel outside the phase (the convention of
``scipy.ndimage.distance_transform_edt`` and PoreSpy). It is computed exactly, without radius
bins: the balls of the distance ridge are painted (a ball contained in a neighbour's is
skipped, which changes nothing; with isotropic voxels a ball with a neighbour ranking
above it paints only its crescent outside that neighbour's ball, a twentieth of the writes
on a real electrode). When the squared distances fit in memory (int32 in voxel units for
isotropic voxels) one task paints them, threads owning slabs of planes; larger volumes
write them once to a temporary Zarr store (the same pass finds the largest radius) and
are painted block by block from it, each block reading a halo of the largest radius.
Intrusion paints the same balls with the access radius instead: the largest radius
whose balls can travel from the inlet face to the centre (a widest path, union-find over
voxels in decreasing distance). With ``radii="integer"`` both round each radius down to an
integer number of voxels first, which reproduces PoreSpy's ``local_thickness`` and
``porosimetry`` value for value.
"""

from __future__ import annotations

import os
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .. import distance
from ..common.options import Connectivity, check_choice
from ..common.units import structure
from ..errors import InputError, RedoxflowError
from ..io.store import EVERY_CHUNK
from .blocks import map_halo, split_for_workers
from .inputs import phase_mask
from .kernels import access_radius, padded_int32, paint_balls, paint_padded
from .options import Radii, parse_inlet

__all__ = ["distance_transform", "local_thickness", "intrusion", "pore_size_distribution",
           "intrusion_distribution", "constrictivity", "size_quantile"]

IN_MEMORY_BYTES = 4 * 2**30  # squared distances up to this size are kept in memory


def _work_units(spacing) -> tuple[tuple[float, float, float], float]:
    """Isotropic voxels are measured in voxels (exact integer squared distances) and scaled
    at the end; anisotropic ones in micrometres."""
    if len(set(spacing)) == 1:
        return (1.0, 1.0, 1.0), float(spacing[0])
    return tuple(spacing), 1.0


def distance_transform(mask: Any, *, phase: int | None = None, spacing: Any = None):
    """Exact Euclidean distance of each phase voxel to the nearest voxel outside the phase.

    The values of ``scipy.ndimage.distance_transform_edt(mask, sampling=spacing)`` for any
    chunking, computed out of core by :func:`redoxflow.distance.distance_transform`.

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    phase : int, optional
        The phase value of a label volume.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).

    Returns
    -------
    float64 array, shape (z, y, x)
        numpy for a numpy input, else a lazy dask array; micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.array([[[0, 1, 1, 1, 0]]], np.uint8)
    >>> distance_transform(v, phase=1, spacing=0.5)[0, 0].tolist()
    [0.0, 0.5, 1.0, 0.5, 0.0]
    """
    vol, m = phase_mask(mask, phase)
    out = distance.distance_transform(m, spacing=vol.spacing(spacing))
    return out.compute() if isinstance(mask, np.ndarray) else out


def _slab_voxels(m, workers: int | None) -> int:
    """Distance slabs small enough for every worker to get one."""
    plane = int(m.shape[1]) * int(m.shape[2])
    per_worker = -(-int(m.size) // (workers or os.cpu_count() or 1))
    return max(plane, min(distance.SLAB_VOXELS, per_worker))


def _integer(r2: np.ndarray) -> np.ndarray:
    """Squared radii rounded down to whole voxels: floor(r)^2 (a table for integer input)."""
    if r2.dtype.kind in "iu":
        top = int(r2.max(initial=0))
        table = np.floor(np.sqrt(np.arange(top + 1)) + 1e-9) ** 2
        return table.astype(r2.dtype)[r2]
    return np.floor(np.sqrt(r2) + 1e-9) ** 2


def _squared_radii(m, work, workers):
    """Squared distances to the nearest voxel outside the phase, lazily: int32 in voxel
    units for isotropic voxels (whole numbers, written as such: half the memory of
    float64, no float copy); a phase without any voxel outside it has no finite radius."""
    dtype = np.int32 if work == (1.0, 1.0, 1.0) else np.float64
    d2 = distance.distance_to(~m, spacing=work, squared=True,
                              slab_voxels=_slab_voxels(m, workers), dtype=dtype)
    return d2.map_blocks(_radii_exist, dtype=dtype)


def _radii_exist(block: np.ndarray) -> np.ndarray:
    top = np.iinfo(block.dtype).max if block.dtype.kind in "iu" else np.inf
    if block.size and block.flat[0] == top:  # everywhere: no voxel outside the phase
        raise InputError("local thickness needs voxels outside the phase (the phase fills "
                         "the whole volume): crop the volume or choose another phase")
    return block


def _paint_block(block, origin, shape, write, work, radii):
    r2 = np.asarray(block)
    if radii == "integer":
        r2 = _integer(r2)
    return paint_balls(r2, work, origin=origin, shape=shape)


def _paint_whole(r2, work, radii, scale, threads):
    """Diameters from the squared radii of the whole volume, painted in slabs of planes
    by ``threads`` threads (no halo is read twice)."""
    r2 = np.asarray(r2)
    if radii == "integer":
        r2 = _integer(r2)
    out = paint_balls(r2, work, threads=threads)
    out *= np.float32(2 * scale)
    return out


def _paint_slabs(*slabs, shape, radii, scale, threads):
    """:func:`_paint_whole` for isotropic voxels from the int32 distance slabs, copied
    straight into the painter's framed array (fresh pages cost as much as the pass)."""
    padded = padded_int32(shape)
    z = 1
    for s in slabs:
        padded[z:z + len(s), 1:-1, 1:-1] = _integer(s) if radii == "integer" else s
        z += len(s)
    return paint_padded(padded, threads=threads, reuse=True, factor=2 * scale)


def _in_memory_bytes() -> int:
    """Squared distances (bytes) that one task may hold: :data:`IN_MEMORY_BYTES`, or a
    fifth of the smallest memory limit of a dask.distributed cluster's workers (the task
    holds about 10 bytes per voxel: int32 radii and their padded copy, over which the
    float32 output is painted, and the ridge)."""
    try:
        from distributed import get_client  # only where a cluster is in use

        workers = get_client().scheduler_info()["workers"].values()
    except (ImportError, ValueError):
        return IN_MEMORY_BYTES
    limits = [int(w.get("memory_limit") or 0) for w in workers]
    limits = [x for x in limits if x > 0]
    return min([IN_MEMORY_BYTES] + [x // 5 for x in limits])


def _threads(workers: int | None) -> int:
    return int(workers or os.cpu_count() or 1)


def _halo(r2max: float, work) -> tuple[int, int, int]:
    return tuple(int(np.sqrt(r2max) / s) + 1 for s in work)


def _finish(out, scale: float, mask: Any):
    out = out * np.float32(2 * scale)
    return out.compute() if isinstance(mask, np.ndarray) else out


def local_thickness(mask: Any, *, phase: int | None = None, spacing: Any = None,
                    radii: Radii = "exact", workers: int | None = None,
                    scratch: str | os.PathLike | None = None):
    """Diameter of the largest inscribed ball that contains each voxel (Hildebrand-Rüegsegger).

    Exact for any chunking: equal to drawing the ball ``|x - c| < dt(c)`` of every phase
    voxel ``c`` and keeping the largest at each voxel.

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    phase : int, optional
        The phase value of a label volume.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).
    radii : {"exact", "integer"}
        ``"integer"`` rounds radii down to whole voxels (PoreSpy's ``local_thickness``).
    workers : int, optional
        Threads of the painting pass and at least as many blocks of the distance pass
        (default: the CPUs).
    scratch : path, optional
        Where a volume too large to paint in one task keeps its squared distances between
        the distance pass and the painting (a temporary Zarr store, deleted with the
        returned array: keep it referenced until computed, also across ``persist()``;
        default: the system's temporary folder; every worker must see it).

    Returns
    -------
    float32 array, shape (z, y, x)
        Diameters in micrometres (0 outside the phase): numpy for a numpy input, else lazy.

    Examples
    --------
    >>> import numpy as np
    >>> slab = np.zeros((9, 9, 9), bool); slab[:, :, 2:5] = True
    >>> local_thickness(slab)[4, 4, 2:5].tolist()
    [4.0, 4.0, 4.0]
    """
    check_choice(radii, Radii, "radii")
    vol, m = phase_mask(mask, phase)
    work, scale = _work_units(vol.spacing(spacing))
    m = split_for_workers(m, workers)
    d2 = _squared_radii(m, work, workers)
    if d2.nbytes <= _in_memory_bytes():  # one task: every ball painted once, no halos
        if d2.dtype == np.int32:
            task = dask.delayed(_paint_slabs)(*d2.to_delayed().ravel(), shape=m.shape,
                                              radii=radii, scale=scale,
                                              threads=_threads(workers))
        else:
            task = dask.delayed(_paint_whole)(d2, work, radii, scale, _threads(workers))
        out = da.from_delayed(task, m.shape, np.float32)
        return out.compute() if isinstance(mask, np.ndarray) else out.rechunk(m.chunks)
    stored, r2max = _store_squared(d2, m.chunks, scratch)  # one distance pass + its maximum
    halo = _halo(r2max, work)
    out = map_halo(stored, _paint_block, before=halo, after=halo,
                   dtype=np.float32, args=(work, radii))
    return _finish(out, scale, mask)


def _write_block(block: np.ndarray, target, block_info=None) -> np.ndarray:
    """Write a slab of whole planes into ``target`` at its place; its maximum, (1, 1, 1)."""
    z0 = block_info[0]["array-location"][0][0]
    target[z0:z0 + block.shape[0]] = block
    return np.full((1, 1, 1), block.max(initial=0), block.dtype)


class _ScratchPlanes:
    """Read access to the temporary squared-distance store that refuses a removed store.

    Every plane is written (``write_empty_chunks``), so a missing plane file means the store
    was removed: a one-line error instead of zarr's fill value (0: a silently wrong local
    thickness). That happens when nothing on the client refers to the result any more while
    a cluster still computes it (``persist()`` without keeping the array), or when workers
    on other machines cannot see the ``scratch`` folder."""

    def __init__(self, path: str, shape, dtype):
        self.path, self.shape, self.dtype, self.ndim = path, tuple(shape), np.dtype(dtype), 3

    def __getitem__(self, index):
        import zarr

        z = range(*index[0].indices(self.shape[0]))
        if not all(os.path.exists(os.path.join(self.path, "c", str(k), "0", "0")) for k in z):
            raise RedoxflowError(
                f"the temporary distance store {self.path} of a local thickness was removed "
                "before its result was computed: compute or save the result while the array "
                "local_thickness returned is referenced (keep it across persist()), and give "
                "workers on other machines a shared scratch= folder")
        return zarr.open_array(self.path, mode="r")[index]


def _store_squared(d2, chunks, scratch=None) -> tuple[da.Array, float]:
    """The squared distances written once to a temporary Zarr store of one-plane chunks
    (every slab of whole planes is a set of whole chunks: no two tasks write one chunk),
    in the pass that also finds their maximum; returned lazily read from the store in
    ``chunks``, the store deleted when nothing refers to the array reading it any more."""
    import shutil
    import tempfile
    import weakref

    import zarr

    folder = tempfile.mkdtemp(prefix="redoxflow-thickness-", dir=scratch)
    try:
        target = zarr.create_array(
            folder, shape=d2.shape, chunks=(1,) + tuple(d2.shape[1:]), dtype=d2.dtype,
            fill_value=0, compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=1),
            config=EVERY_CHUNK)
        maxima = d2.map_blocks(_write_block, target=target, dtype=d2.dtype,
                               chunks=((1,) * d2.numblocks[0], (1,), (1,)))
        r2max = float(maxima.max().compute())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    planes = _ScratchPlanes(folder, d2.shape, d2.dtype)
    weakref.finalize(planes, shutil.rmtree, folder, ignore_errors=True)
    return da.from_array(planes, chunks=chunks, asarray=True, fancy=False), r2max


def intrusion(mask: Any, *, inlet: str = "x-", phase: int | None = None, spacing: Any = None,
              radii: Radii = "exact", connectivity: int = 6, workers: int | None = None):
    """Simulated mercury intrusion from one face: the diameter of the largest ball that can
    reach each voxel from the inlet (0 where none can).

    A ball of radius r enters at inlet-face voxels whose distance is at least r and moves
    between neighbouring centres (``connectivity``) whose distance is at least r; the
    voxels it covers (``|x - c| < r``) are intruded at r. Exact, no radius bins.

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    inlet : {"x-", "x+", "y-", "y+", "z-", "z+"}
        The face the intruding fluid enters from.
    phase : int, optional
        The phase value of a label volume.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres.
    radii : {"exact", "integer"}
        ``"integer"`` rounds radii down to whole voxels (PoreSpy's ``porosimetry``).
    connectivity : {6, 18, 26}
        Steps of the ball's centre (6: PoreSpy's).
    workers : int, optional
        Threads of the painting pass (default: the CPUs).

    Returns
    -------
    float32 array, shape (z, y, x)
        Diameters in micrometres: numpy for a numpy input, else lazy. The access pass
        holds the squared distances of the whole volume in memory (8 bytes per voxel).

    Examples
    --------
    >>> import numpy as np
    >>> pore = np.zeros((7, 7, 12), bool)
    >>> pore[1:6, 1:6, 0:5] = True; pore[3, 3, 5:7] = True; pore[1:6, 1:6, 7:12] = True
    >>> d = intrusion(pore, inlet="x-")
    >>> float(d[3, 3, 2]), float(d[3, 3, 9])
    (6.0, 2.0)
    """
    check_choice(radii, Radii, "radii")
    check_choice(connectivity, Connectivity, "connectivity")
    axis, high = parse_inlet(inlet)
    vol, m = phase_mask(mask, phase)
    work, scale = _work_units(vol.spacing(spacing))
    m = split_for_workers(m, workers)
    r2 = distance.distance_to(~m, spacing=work, squared=True,
                              slab_voxels=_slab_voxels(m, workers)).compute()
    if radii == "integer":
        r2 = _integer(r2)
    face = [slice(None)] * 3
    face[axis] = slice(-1, None) if high else slice(0, 1)
    inlet_mask = np.zeros(r2.shape, bool)
    inlet_mask[tuple(face)] = r2[tuple(face)] > 0
    offsets = np.argwhere(structure(connectivity)) - 1
    offsets = offsets[np.any(offsets != 0, axis=1)]
    a2 = access_radius(r2, inlet_mask, offsets)
    out = _paint_whole(a2, work, "exact", scale, _threads(workers))
    return out if isinstance(mask, np.ndarray) else da.from_array(out, chunks=m.chunks)


def _block_counts(d, m):
    d, m = np.asarray(d), np.asarray(m)
    values, counts = np.unique(d[m], return_counts=True)
    return np.stack([values.astype(np.float64), counts.astype(np.float64)])


def _distribution(diameters, m) -> tuple[np.ndarray, np.ndarray]:
    """Distinct radii (ascending) and their voxel counts over the phase (exact, chunked)."""
    d = da.asarray(diameters)
    m = da.asarray(m).rechunk(d.chunks)
    parts = da.map_blocks(_block_counts, d, m, dtype=np.float64, chunks=(2, np.nan),
                          drop_axis=[1, 2], new_axis=None)
    pairs = parts.compute() if parts.size else np.zeros((2, 0))
    values, inverse = np.unique(pairs[0], return_inverse=True)
    counts = np.bincount(inverse, weights=pairs[1], minlength=len(values))
    return values / 2, counts


def size_quantile(radii: np.ndarray, counts: np.ndarray, q: float = 0.5) -> float:
    """The largest radius r whose balls (radius >= r) cover at least ``q`` of the phase.

    Examples
    --------
    >>> size_quantile(np.array([0.0, 1.0, 2.0, 3.0]), np.array([1, 1, 1, 1]))
    2.0
    """
    cover = np.cumsum(counts[::-1])[::-1] / max(counts.sum(), 1)
    ok = np.flatnonzero((cover >= q) & (radii > 0))
    return float(radii[ok[-1]]) if len(ok) else 0.0


def _psd(diameters, m, long_name: str, quantile_name: str) -> xr.DataArray:
    radii, counts = _distribution(diameters, m)
    cover = np.cumsum(counts[::-1])[::-1] / max(counts.sum(), 1)
    keep = radii > 0
    out = xr.DataArray(cover[keep], dims=("radius",), coords={"radius": radii[keep]},
                       name="fraction", attrs={"units": "1", "long_name": long_name,
                                               quantile_name: size_quantile(radii, counts)})
    out["radius"].attrs.update(units="um", long_name="ball radius")
    return out


def pore_size_distribution(mask: Any, *, phase: int | None = None, spacing: Any = None,
                           thickness: Any = None, radii: Radii = "exact") -> xr.DataArray:
    """Continuous size distribution: the fraction of the phase covered by inscribed balls of
    radius >= r, at every distinct radius; ``r_max`` (attr) is its 50 % quantile.

    Parameters
    ----------
    mask : path, xarray, dask or numpy array, shape (z, y, x)
        A boolean mask, or a label volume with ``phase``.
    phase : int, optional
        The phase value of a label volume.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres.
    thickness : array, optional
        A :func:`local_thickness` of the same phase, if already computed.
    radii : {"exact", "integer"}
        As in :func:`local_thickness`.

    Returns
    -------
    xarray.DataArray, dims ("radius",)
        Non-increasing fractions; ``attrs["r_max"]`` in micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> slab = np.zeros((9, 9, 9), bool); slab[:, :, 2:5] = True
    >>> psd = pore_size_distribution(slab)
    >>> psd.radius.values.tolist(), psd.values.tolist(), psd.attrs["r_max"]
    ([2.0], [1.0], 2.0)
    """
    vol, m = phase_mask(mask, phase)
    lt = thickness if thickness is not None else local_thickness(
        vol.data if phase is None else vol.data == phase, spacing=vol.spacing(spacing),
        radii=radii)
    return _psd(lt, m, "phase fraction covered by balls of radius >= r", "r_max")


def intrusion_distribution(diameters: Any, mask: Any, *, phase: int | None = None
                           ) -> xr.DataArray:
    """Fraction of the phase intruded by balls of radius >= r; ``r_min`` its 50 % quantile.

    Parameters
    ----------
    diameters : array, shape (z, y, x)
        An :func:`intrusion` result.
    mask : array, shape (z, y, x)
        The phase (boolean, or a label volume with ``phase``).
    phase : int, optional
        The phase value of a label volume.

    Returns
    -------
    xarray.DataArray, dims ("radius",)

    Examples
    --------
    >>> import numpy as np
    >>> m = np.ones((1, 1, 4), bool)
    >>> intrusion_distribution(np.array([[[2.0, 2.0, 0.0, 4.0]]]), m).attrs["r_min"]
    1.0
    """
    _, m = phase_mask(mask, phase)
    return _psd(diameters, m, "phase fraction intruded by balls of radius >= r", "r_min")


def constrictivity(mask: Any, *, inlet: str = "x-", phase: int | None = None,
                   spacing: Any = None, radii: Radii = "exact") -> xr.DataArray:
    """Constrictivity beta = (r_min / r_max)^2 in [0, 1] (1: no bottlenecks).

    ``r_max`` is the 50 % quantile of the continuous size distribution, ``r_min`` that of
    the simulated intrusion from ``inlet``.

    Parameters
    ----------
    mask, phase, spacing, radii
        As in :func:`local_thickness`.
    inlet : {"x-", "x+", "y-", "y+", "z-", "z+"}
        The intrusion's inlet face.

    Returns
    -------
    xarray.DataArray (scalar), attrs ``r_min`` and ``r_max`` (micrometres)

    Examples
    --------
    >>> import numpy as np
    >>> tube = np.zeros((9, 9, 20), bool); tube[1:8, 1:8, :] = True
    >>> float(constrictivity(tube, inlet="x-"))
    1.0
    """
    vol, m = phase_mask(mask, phase)
    data = vol.data if phase is None else vol.data == phase
    if isinstance(mask, np.ndarray):
        data = data.compute()
    sp = vol.spacing(spacing)
    r_max = pore_size_distribution(data, spacing=sp, radii=radii).attrs["r_max"]
    r_min = intrusion_distribution(intrusion(data, inlet=inlet, spacing=sp, radii=radii),
                                   data).attrs["r_min"]
    beta = (r_min / r_max) ** 2 if r_max > 0 else 0.0
    return xr.DataArray(beta, name="constrictivity",
                        attrs={"units": "1", "long_name": "constrictivity (r_min / r_max)^2",
                               "r_min": r_min, "r_max": r_max, "inlet": inlet})
