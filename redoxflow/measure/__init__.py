"""Per-bubble measures from a label volume, reduced exactly from per-block partial sums."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import numpy as np
import xarray as xr

from .._backend import Backend, blocks_to, to_numpy
from ..common.options import check_choice
from ..errors import InputError
from ..io.volume import as_volume
from ..labeling import remove_z_isolated
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
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in labels.chunks]
    blocks = labels.to_delayed()
    tasks = [dask.delayed(_host_moments, pure=True)(
        blocks[idx], tuple(int(starts[a][idx[a]]) for a in range(3)))
        for idx in np.ndindex(*labels.numblocks)]
    return reduce_moments(dask.compute(tasks)[0])


def _host_moments(block, origin):
    return {key: to_numpy(value) for key, value in block_moments(block, origin).items()}


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
    contacts are reduced exactly from per-chunk partial sums. Surface area, sphericity and
    solidity are computed on per-bubble crops (marching cubes), in batches of bubbles that
    read neighbouring regions.

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
        whether to pad it closed where the volume's edge clips it.
    degenerate : float
        Elongation/flatness value when a denominator eigenvalue is 0.
    flat_zeroes_both : bool
        Set both elongation and flatness to ``degenerate`` when l3 == 0 (the reference).
    canonical : bool
        Canonicalise the major axis' sign (False: the raw ``eigh`` vector, as the reference).
    batch_voxels : int
        Upper bound of a crop batch's region (voxels).
    backend : {"numpy", "cupy"}
        Where the moment partial sums are computed: ``"cupy"`` moves each label block to the
        GPU (same results; the small per-block sums come back to the host). Surface meshes
        (marching cubes, convex hulls) are always computed on the CPU.

    Returns
    -------
    xarray.Dataset
        Coordinate ``bubble`` = label id; units in each variable's attrs.

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
    """
    props = _resolve_properties(properties)
    check_choice(backend, Backend, "backend")
    vol = as_volume(labels, what="labels")
    sp = vol.spacing(spacing)
    arr = vol.data
    if np.dtype(arr.dtype).kind not in "iu":
        raise InputError(f"labels have dtype {arr.dtype}: label a mask first with redoxflow.label")
    mom = _partial_sums(blocks_to(arr, backend))
    arr = blocks_to(arr, "numpy")  # crops for the surface meshes are read on the host
    ds = _moment_dataset(mom, arr.shape, sp, ddof, degenerate, flat_zeroes_both, canonical)
    if props & set(SHAPE_PROPERTIES):
        _add_shape(ds, arr, mom, sp, mc_level, mc_pad, batch_voxels)
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


def _crop_batches(bbmin, bbmax, shape, budget):
    """Group bubbles (sorted by first corner) into batches whose union box stays small."""
    order = np.lexsort((bbmin[:, 2], bbmin[:, 1], bbmin[:, 0]))
    batches, current, lo, hi = [], [], None, None
    for i in order:
        nlo = bbmin[i] if lo is None else np.minimum(lo, bbmin[i])
        nhi = bbmax[i] if hi is None else np.maximum(hi, bbmax[i])
        if current and np.prod(nhi - nlo + 1) > budget:
            batches.append((current, lo, hi))
            current, nlo, nhi = [], bbmin[i], bbmax[i]
        current.append(i)
        lo, hi = nlo, nhi
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


def _add_shape(ds, arr, mom, sp, level, pad, budget):
    shape = np.asarray(arr.shape)
    grown_min = np.maximum(mom["bbmin"] - 1, 0)  # one voxel of margin, clipped to the volume
    grown_max = np.minimum(mom["bbmax"] + 1, shape - 1)
    clip_lo = grown_min - (mom["bbmin"] - 1)
    clip_hi = (mom["bbmax"] + 1) - grown_max
    big = np.prod(grown_max - grown_min + 1, axis=1) > budget
    small = np.flatnonzero(~big)
    batches = _crop_batches(grown_min[small], grown_max[small], arr.shape, budget)
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
    area = mesh[:, 0]
    volume = ds["volume"].values
    with np.errstate(divide="ignore", invalid="ignore"):
        sphericity = np.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area
        solidity = mesh[:, 1] / mesh[:, 2]
    ds["surface_area"] = ("bubble", area, {"units": "micrometer^2",
                                           "method": f"marching cubes level {level}"})
    ds["sphericity"] = ("bubble", sphericity, {"definition": "pi^(1/3) (6V)^(2/3) / A"})
    ds["solidity"] = ("bubble", solidity, {"definition": "mesh volume / convex hull volume"})
    ds["surface_closed"] = ("bubble", ~ds["cut_by_fov"].values if not pad else
                            np.ones(len(area), bool), {})
