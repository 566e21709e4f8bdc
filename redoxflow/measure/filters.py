"""Explicit, composable filters; each records what it removed in ``ds.attrs["filters"]``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import InputError
from ..labeling import remove_z_isolated

__all__ = ["filter_cut_by_fov", "filter_degenerate", "filter_min_volume", "filter_solidity",
           "filter_sphericity_above_one", "remove_z_isolated"]


def _record(ds, name: str, removed: int, **params: Any):
    log = json.loads(ds.attrs.get("filters", "[]"))
    log.append({"filter": name, "removed": int(removed), **params})
    ds.attrs["filters"] = json.dumps(log)
    return ds


def _keep(ds, keep: np.ndarray, name: str, **params: Any):
    out = ds.isel(bubble=np.flatnonzero(keep))
    out.attrs = dict(ds.attrs)
    return _record(out, name, int((~keep).sum()), **params)


def filter_min_volume(ds, min_voxels: int = 60):
    """Keep bubbles with at least ``min_voxels`` voxels (the reference uses 60).

    Examples
    --------
    >>> from redoxflow.measure import regionprops
    >>> labels = np.zeros((5, 5, 5), np.uint32)
    >>> labels[1:4, 1:4, 1:4], labels[0, 0, 0], labels[2, 0, :3] = 1, 2, 3
    >>> ds = regionprops(labels)  # a cube, a voxel in a corner, a 3-voxel rod on a face
    >>> out = filter_min_volume(ds, min_voxels=2)
    >>> out["bubble"].values.tolist(), out.attrs["filters"]
    ([1, 3], '[{"filter": "min_volume", "removed": 1, "min_voxels": 2}]')
    """
    return _keep(ds, ds["volume_voxels"].values >= min_voxels, "min_volume",
                 min_voxels=int(min_voxels))


def filter_degenerate(ds):
    """Drop planar or line-like objects (smallest inertia eigenvalue 0).

    Examples
    --------
    >>> from redoxflow.measure import regionprops
    >>> labels = np.zeros((5, 5, 5), np.uint32)
    >>> labels[1:4, 1:4, 1:4], labels[0, 0, 0], labels[2, 0, :3] = 1, 2, 3
    >>> ds = regionprops(labels)  # a cube, a voxel in a corner, a 3-voxel rod on a face
    >>> filter_degenerate(ds)["bubble"].values.tolist()
    [1]
    """
    return _keep(ds, ds["inertia_eigenvalues"].values[:, 2] > 0, "degenerate")


def filter_solidity(ds, threshold: float = 0.8):
    """Drop non-convex artefacts with solidity below ``threshold`` (NaN solidity is dropped).

    Examples
    --------
    >>> from redoxflow.measure import regionprops
    >>> labels = np.zeros((5, 5, 5), np.uint32)
    >>> labels[1:4, 1:4, 1:4], labels[0, 0, 0], labels[2, 0, :3] = 1, 2, 3
    >>> ds = regionprops(labels)  # a cube, a voxel in a corner, a 3-voxel rod on a face
    >>> filter_solidity(ds, 0.9)["bubble"].values.tolist()
    [1, 2, 3]
    """
    if "solidity" not in ds:
        raise InputError("filter_solidity needs the 'solidity' property: measure it with "
                         "regionprops(..., properties='all')")
    return _keep(ds, ds["solidity"].values >= threshold, "solidity", threshold=float(threshold))


def filter_cut_by_fov(ds):
    """Drop bubbles that touch a face of the field of view (their shape is truncated).

    Examples
    --------
    >>> from redoxflow.measure import regionprops
    >>> labels = np.zeros((5, 5, 5), np.uint32)
    >>> labels[1:4, 1:4, 1:4], labels[0, 0, 0], labels[2, 0, :3] = 1, 2, 3
    >>> ds = regionprops(labels)  # a cube, a voxel in a corner, a 3-voxel rod on a face
    >>> filter_cut_by_fov(ds)["bubble"].values.tolist()
    [1]
    """
    return _keep(ds, ~ds["cut_by_fov"].values, "cut_by_fov")


def filter_sphericity_above_one(ds):
    """The reference's only shape filter: drop sphericity > 1 (non-physical values).

    Examples
    --------
    >>> from redoxflow.measure import regionprops
    >>> labels = np.zeros((5, 5, 5), np.uint32)
    >>> labels[1:4, 1:4, 1:4], labels[0, 0, 0], labels[2, 0, :3] = 1, 2, 3
    >>> ds = regionprops(labels)  # a cube, a voxel in a corner, a 3-voxel rod on a face
    >>> ds["sphericity"].values.round(2).tolist()  # level-0.5 meshes of tiny objects
    [1.02, 2.79, 1.36]
    >>> filter_sphericity_above_one(ds)["bubble"].values.tolist()
    []
    """
    return _keep(ds, ~(ds["sphericity"].values > 1.0), "sphericity_above_one")
