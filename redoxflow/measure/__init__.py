"""Per-bubble measures from a label volume, reduced exactly from per-block partial sums."""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph

from .._backend import Backend, blocks_to, to_numpy
from ..common.options import check_choice
from ..errors import InputError
from ..io.volume import as_volume
from ..labeling import remove_z_isolated
from .cells import LEVELS, block_surface, cell_tables, reduce_surface
from .filters import (
    filter_cut_by_fov,
    filter_degenerate,
    filter_min_volume,
    filter_solidity,
    filter_sphericity_above_one,
)
from .moments import block_moments, orientation_angles, principal_axes, reduce_moments
from .surface import combine_slab_parts, crop_measures, mesh_measures, slab_mesh_part

__all__ = [
    "MOMENT_PROPERTIES",
    "SHAPE_PROPERTIES",
    "filter_cut_by_fov",
    "filter_degenerate",
    "filter_min_volume",
    "filter_solidity",
    "filter_sphericity_above_one",
    "mesh_measures",
    "regionprops",
    "remove_z_isolated",
]

MOMENT_PROPERTIES = ("volume", "centroid", "bbox", "inertia", "orientation", "touches_border",
                     "equivalent_diameter")
SHAPE_PROPERTIES = ("surface_area", "sphericity", "solidity")
FACES = ["z-", "z+", "y-", "y+", "x-", "x+"]


def _resolve_properties(properties: Any) -> set[str]:
    if properties in (None, "all"):
        return set(MOMENT_PROPERTIES + SHAPE_PROPERTIES)
    if isinstance(properties, str):
        properties = [properties]
    props = set(properties)
    unknown = props - set(MOMENT_PROPERTIES + SHAPE_PROPERTIES)
    if unknown:
        raise InputError(f"unknown properties {sorted(unknown)}; valid: "
                         f"{', '.join(MOMENT_PROPERTIES + SHAPE_PROPERTIES)}")
    return props


def _partial_sums(labels) -> dict[str, np.ndarray]:
    """Per-block partial sums (on the blocks' backend), reduced exactly on the host."""
    starts = _block_starts(labels)
    blocks = labels.to_delayed()
    tasks = [dask.delayed(_host_moments, pure=True)(
        blocks[idx], tuple(int(starts[a][idx[a]]) for a in range(3)))
        for idx in np.ndindex(*labels.numblocks)]
    return reduce_moments(dask.compute(tasks)[0])


def _host_moments(block, origin):
    return {key: to_numpy(value) for key, value in block_moments(block, origin).items()}


def _block_starts(labels) -> list[np.ndarray]:
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in labels.chunks]


NEIGHBOURS = ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))


def _distributed() -> bool:
    """Whether dask computes on a distributed cluster (where blocks travel between workers)."""
    scheduler = dask.base.get_scheduler()
    return "distributed" in getattr(scheduler, "__module__", "")


def _block_task(core, *neighbours, origin, shape, tables, pad, points, moments):
    core = to_numpy(core)
    planes = [None if n is None else to_numpy(n) for n in neighbours]
    mom = _host_moments(core, origin) if moments else None
    surf = block_surface(core, planes, origin, shape, tables, pad, points)
    return mom, surf


def _block_passes(labels, tables, pad, points, moments):
    """One task per block: (moments or None, surface partial sums), host arrays.

    A block's task also reads the first plane of its 7 high neighbours: sliced inside the
    task on the local schedulers (no copies, no extra tasks), by one small task each on a
    distributed cluster (only the planes travel).
    """
    starts = _block_starts(labels)
    keys = labels.__dask_keys__()
    name = "rf-surface-" + dask.base.tokenize(labels.name, tables.level, tables.spacing, pad,
                                              points, moments)
    func = functools.partial(_block_task, shape=tuple(labels.shape), tables=tables, pad=pad,
                             points=points, moments=moments)
    planes_as_tasks = _distributed()
    dsk, out = {}, []
    nb = labels.numblocks
    for idx in np.ndindex(*nb):
        args = []
        for j, axes in enumerate(NEIGHBOURS):
            nidx = tuple(idx[a] + (a in axes) for a in range(3))
            if any(nidx[a] >= nb[a] for a in axes):
                args.append(None)
                continue
            sl = tuple(slice(0, 1) if a in axes else slice(None) for a in range(3))
            piece = (operator.getitem, keys[nidx[0]][nidx[1]][nidx[2]], sl)
            if planes_as_tasks:
                dsk[(name + "-plane", *idx, j)] = piece
                piece = (name + "-plane", *idx, j)
            args.append(piece)
        origin = tuple(int(starts[a][idx[a]]) for a in range(3))
        dsk[(name, *idx)] = (functools.partial(func, origin=origin),
                             keys[idx[0]][idx[1]][idx[2]], *args)
        out.append((name, *idx))
    dsk[name] = (list, out)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[labels])
    return Delayed(name, graph).compute()


def regionprops(
    labels: Any,
    *,
    spacing: Sequence[float] | float | None = None,
    properties: Sequence[str] | str = "all",
    ddof: int = 0,
    mc_level: float = 0.5,
    mc_pad: bool = True,
    degenerate: float = np.nan,
    flat_zeroes_both: bool = False,
    canonical: bool = True,
    batch_voxels: int = 2**24,
    backend: Backend = "numpy",
):
    """Per-bubble properties of a label volume as an ``xarray.Dataset`` with dim ``bubble``.

    Volumes, centroids, bounding boxes, covariances, principal axes, orientation and border
    contacts are reduced exactly from per-chunk partial sums. So are the surface area and
    the enclosed volume of each bubble's marching-cubes iso-surface: marching cubes is local
    to 2x2x2 cells, so they are sums over cells of per-configuration tables
    (:mod:`redoxflow.measure.cells`), equal to meshing each bubble's crop
    (:func:`~redoxflow.measure.surface.mesh_measures`) to rounding. Convex hulls (for
    ``solidity`` only) are exact integer hulls of the mesh vertices, which lie on a lattice.
    Every block is read once, with one plane of its neighbours; no mesh or crop is made.
    Iso-levels other than 0.5 and 0 are meshed per bubble crop, in spatial batches.

    Parameters
    ----------
    labels : path, zarr array, xarray.DataArray, dask or numpy array, shape (z, y, x)
        Integer labels, 0 = background, coerced with :func:`redoxflow.io.volume.as_volume`.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's ``voxel_size`` attr, else 1).
    properties : "all" or list of names
        From ``MOMENT_PROPERTIES`` and ``SHAPE_PROPERTIES``; moments are always computed.
    ddof : int
        Covariance normalisation (0: population; 1: N - 1 as the reference).
    mc_level, mc_pad : float, bool
        Marching-cubes iso-level on the 0/1 crop (the bounding box grown by one voxel) and
        whether to pad it closed where the volume's edge clips it (without padding the
        surface stops at the volume's edge, as the reference's ``mc_level=0.0``).
    degenerate : float
        Elongation/flatness value when a denominator eigenvalue is 0.
    flat_zeroes_both : bool
        Set both elongation and flatness to ``degenerate`` when l3 == 0 (the reference).
    canonical : bool
        Canonicalise the major axis' sign (False: the raw ``eigh`` vector, as the reference).
    batch_voxels : int
        Upper bound of a crop batch's region (voxels), for iso-levels meshed per crop.
    backend : {"numpy", "cupy"}
        Where the moment partial sums are computed: ``"cupy"`` moves each label block to the
        GPU (same results; the small per-block sums come back to the host). Surface sums and
        convex hulls are always computed on the CPU.

    Returns
    -------
    xarray.Dataset
        Coordinate ``bubble`` = label id; units in each variable's attrs. Shape properties
        add ``surface_area``, ``sphericity`` and ``surface_closed``, and ``solidity`` when it
        is asked for.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((4, 4, 4), np.uint32)
    >>> labels[1:3, 1:3, 1:3] = 1
    >>> labels[0, 0, 3] = 2
    >>> ds = regionprops(labels, spacing=2.0, properties="volume")
    >>> ds["bubble"].values.tolist(), ds["volume"].values.tolist()
    ([1, 2], [64.0, 8.0])
    >>> ds["centroid_voxel"].values[0].tolist(), ds["cut_by_fov"].values.tolist()
    ([1.5, 1.5, 1.5], [False, True])
    >>> ds = regionprops(labels, spacing=2.0)  # all properties
    >>> ds["surface_area"].values.round(2).tolist(), ds["solidity"].values.round(3).tolist()
    ([64.87, 6.93], [1.0, 1.0])
    """
    props = _resolve_properties(properties)
    check_choice(backend, Backend, "backend")
    vol = as_volume(labels, what="labels")
    sp = vol.spacing(spacing)
    arr = vol.data
    if np.dtype(arr.dtype).kind not in "iu":
        raise InputError(f"labels have dtype {arr.dtype}: label a mask first with redoxflow.label")
    if np.dtype(arr.dtype).kind == "i" and bool(arr.min() < 0):
        raise InputError(f"labels hold negative values (min {int(arr.min())}): ids must be 0 "
                         "(background) or positive; relabel them first")
    shape_props = props & set(SHAPE_PROPERTIES)
    hulls = "solidity" in props
    host = blocks_to(arr, "numpy")  # surface sums and crops are computed on the host
    cells = bool(shape_props) and float(mc_level) in LEVELS
    surface_parts = None
    if cells:
        tables = cell_tables(float(mc_level), tuple(float(v) for v in sp))
        fused = backend == "numpy"  # one read of each block for moments and surfaces
        results = _block_passes(host, tables, bool(mc_pad), hulls, moments=fused)
        surface_parts = [r[1] for r in results]
        mom = (reduce_moments([r[0] for r in results]) if fused
               else _partial_sums(blocks_to(arr, backend)))
    else:
        mom = _partial_sums(blocks_to(arr, backend))
    ds = _moment_dataset(mom, arr.shape, sp, ddof, degenerate, flat_zeroes_both, canonical)
    if shape_props:
        if cells:
            crop_origin = mom["bbmin"] - 1 if mc_pad else np.maximum(mom["bbmin"] - 1, 0)
            mesh = reduce_surface(surface_parts, mom["ids"], crop_origin, tables, hulls)
        else:
            mesh = _crop_measures(host, mom, sp, mc_level, mc_pad, batch_voxels)
        _add_shape(ds, mesh, mc_level, mc_pad, hulls)
    ds.attrs.update({"spacing": list(sp), "unit": "micrometer", "shape": list(arr.shape),
                     "ddof": ddof, "mc_level": mc_level, "mc_pad": int(mc_pad),
                     "canonical_orientation": int(canonical),
                     "filters": "[]"})
    return ds


def _moment_dataset(mom, shape, sp, ddof, degenerate, flat_zeroes_both=False, canonical=True):
    n = mom["n"]
    voxel = float(np.prod(sp))
    s = np.asarray(sp)
    denom = np.maximum(n - ddof, 1)[:, None, None]
    cov = mom["m2"] / denom * (s[None, :, None] * s[None, None, :])
    vals, major, elong, flat = principal_axes(cov, degenerate, canonical=canonical)
    if flat_zeroes_both:
        elong = np.where(vals[:, 2] > 0, elong, degenerate)
    theta, phi = orientation_angles(major)
    touches = np.concatenate([mom["bbmin"] == 0, mom["bbmax"] == np.asarray(shape) - 1], axis=1)
    touches = touches[:, [0, 3, 1, 4, 2, 5]]
    volume = n * voxel
    um, um2, um3 = {"units": "micrometer"}, {"units": "micrometer^2"}, {"units": "micrometer^3"}
    data = {
        "volume_voxels": ("bubble", n, {"units": "voxel"}),
        "volume": ("bubble", volume, um3),
        "equivalent_diameter": ("bubble", np.cbrt(6 * volume / np.pi), um),
        "centroid": (("bubble", "axis"), mom["mean"] * s, um),
        "centroid_voxel": (("bubble", "axis"), mom["mean"], {"units": "voxel"}),
        "bbox_min": (("bubble", "axis"), mom["bbmin"], {"units": "voxel", "note": "inclusive"}),
        "bbox_max": (("bubble", "axis"), mom["bbmax"], {"units": "voxel", "note": "inclusive"}),
        "covariance": (("bubble", "axis", "axis2"), cov, um2),
        "inertia_eigenvalues": (("bubble", "component"), vals, um2),
        "axis_lengths": (("bubble", "component"), 2 * np.sqrt(5 * vals),
                         {"units": "micrometer", "note": "full axes of the ellipsoid with the "
                                                         "same second moments"}),
        "elongation": ("bubble", elong, {"definition": "sqrt(l1/l2)"}),
        "flatness": ("bubble", flat, {"definition": "sqrt(l2/l3)"}),
        "orientation": (("bubble", "axis"), major, {"note": "major axis unit vector (z, y, x), "
                                                            "first non-zero of x, y, z positive"}),
        "theta": ("bubble", theta, {"units": "degree", "definition": "atan2(e_y, e_z)"}),
        "phi": ("bubble", phi, {"units": "degree", "definition": "acos(e_x)"}),
        "touches_border": (("bubble", "face"), touches, {}),
        "cut_by_fov": ("bubble", touches.any(axis=1), {}),
    }
    ds = xr.Dataset({k: xr.Variable(d, v, a) for k, (d, v, a) in data.items()},
                    coords={"bubble": mom["ids"].astype(np.uint64), "axis": ["z", "y", "x"],
                            "axis2": ["z", "y", "x"], "component": [1, 2, 3], "face": FACES})
    return ds


def _crop_batches(bbmin, bbmax, budget, chunks):
    """Group bubbles by the tile holding their first corner, then by a region budget.

    Tiles are the chunks, halved along their longest side until a tile is at most half the
    budget, so the batches' regions add up to about the volume (sorting all bubbles by z
    alone made each batch span whole y-x planes: 7-18x the volume).
    """
    tile = np.array([max(c) if len(c) else 1 for c in chunks], dtype=np.int64)
    while np.prod(tile) > max(budget // 2, 1) and tile.max() > 1:
        tile[np.argmax(tile)] = (tile.max() + 1) // 2
    key = bbmin // tile
    order = np.lexsort((bbmin[:, 2], bbmin[:, 1], bbmin[:, 0], key[:, 2], key[:, 1],
                        key[:, 0]))
    batches, current, lo, hi, ckey = [], [], None, None, None
    for i in order:
        nlo = bbmin[i] if lo is None else np.minimum(lo, bbmin[i])
        nhi = bbmax[i] if hi is None else np.maximum(hi, bbmax[i])
        if current and (np.prod(nhi - nlo + 1) > budget or tuple(key[i]) != ckey):
            batches.append((current, lo, hi))
            current, nlo, nhi = [], bbmin[i], bbmax[i]
        current.append(i)
        lo, hi, ckey = nlo, nhi, tuple(key[i])
    if current:
        batches.append((current, lo, hi))
    return batches


def _big_bubble_task(arr, bid, lo, hi, clip_lo, clip_hi, sp, level, pad, budget):
    """Mesh measures of one bubble whose box exceeds the budget, from z slabs of its box."""
    plane = int((hi[1] - lo[1] + 1) * (hi[2] - lo[2] + 1))
    height = max(2, budget // plane)
    yx = (slice(lo[1], hi[1] + 1), slice(lo[2], hi[2] + 1))
    parts, a = [], int(lo[0])
    while True:
        b = min(a + height - 1, int(hi[0]))
        first, last = a == lo[0], b == hi[0]
        pads = ((int(clip_lo[0]) if first else 0, int(clip_hi[0]) if last else 0),
                (int(clip_lo[1]), int(clip_hi[1])), (int(clip_lo[2]), int(clip_hi[2])))
        # where the slab's first (padded) plane lies in the whole padded box
        offset = 0 if first else (a - int(lo[0])) + (int(clip_lo[0]) if pad else 0)
        parts.append(dask.delayed(slab_mesh_part, pure=True)(
            arr[(slice(a, b + 1), *yx)] == bid, sp, level, pads if pad else False, offset))
        if last:
            break
        a = b  # slabs share their boundary plane: every cell belongs to exactly one slab
    return dask.delayed(combine_slab_parts, pure=True)(parts)


def _crop_measures(arr, mom, sp, level, pad, budget):
    """(area, enclosed volume, hull volume) per bubble from marching cubes on its crop.

    Used for iso-levels without cell tables (see :mod:`.cells`).
    """
    shape = np.asarray(arr.shape)
    grown_min = np.maximum(mom["bbmin"] - 1, 0)  # one voxel of margin, clipped to the volume
    grown_max = np.minimum(mom["bbmax"] + 1, shape - 1)
    clip_lo = grown_min - (mom["bbmin"] - 1)
    clip_hi = (mom["bbmax"] + 1) - grown_max
    big = np.prod(grown_max - grown_min + 1, axis=1) > budget
    small = np.flatnonzero(~big)
    batches = _crop_batches(grown_min[small], grown_max[small], budget, arr.chunks)
    tasks = []
    for members, lo, hi in batches:
        region = arr[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
        members = small[members]
        boxes = [tuple(grown_min[i] - lo) + tuple(grown_max[i] - lo + 1)
                 + tuple(clip_lo[i]) + tuple(clip_hi[i]) for i in members]
        tasks.append((members, dask.delayed(crop_measures, pure=True)(
            region, mom["ids"][members].tolist(), boxes, sp, level, pad)))
    for i in np.flatnonzero(big):  # e.g. percolating gas: never one crop in memory
        tasks.append(([i], _big_bubble_task(arr, int(mom["ids"][i]), grown_min[i], grown_max[i],
                                            clip_lo[i], clip_hi[i], sp, level, pad, budget)))
    results = dask.compute([t for _, t in tasks])[0]
    mesh = np.full((len(mom["ids"]), 3), np.nan)
    for (members, _), res in zip(tasks, results):
        mesh[members] = res
    return mesh


def _add_shape(ds, mesh, level, pad, hulls):
    area = mesh[:, 0]
    volume = ds["volume"].values
    with np.errstate(divide="ignore", invalid="ignore"):
        sphericity = np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area
        solidity = mesh[:, 1] / mesh[:, 2]
    ds["surface_area"] = ("bubble", area, {"units": "micrometer^2",
                                           "method": f"marching cubes level {level}"})
    ds["sphericity"] = ("bubble", sphericity, {"definition": "pi^(1/3) (6V)^(2/3) / A"})
    if hulls:
        ds["solidity"] = ("bubble", solidity,
                          {"definition": "mesh volume / convex hull volume"})
    ds["surface_closed"] = ("bubble", ~ds["cut_by_fov"].values if not pad else
                            np.ones(len(area), bool), {})
