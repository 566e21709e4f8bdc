"""Exact Euclidean distance transforms over dask arrays, streamed in slabs of whole planes.

:func:`distance_to` (every voxel's distance to the nearest feature voxel) and
:func:`distance_transform` (scipy's convention: each True voxel's distance to the nearest
False voxel) return lazy dask arrays; :func:`min_distance_per_label` reduces the distance of
several feature masks to a per-label minimum without ever materialising a distance volume.
All are exact (the same values as ``scipy.ndimage.distance_transform_edt`` up to float
rounding) for any chunking and anisotropic voxels, and linear in the number of voxels.

How: the z pass of the separable transform needs, per (y, x) column, only the nearest
feature above and below a slab (:func:`~.kernels.column_extents`, one pass over the features
when the transform is set up); each slab then finishes the y and x passes on its own planes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from numcodecs import Blosc

from ..errors import InputError
from ..io.volume import as_volume
from .kernels import NONE_ABOVE, NONE_BELOW, column_extents, slab_label_minima, slab_sqdist

__all__ = ["distance_to", "distance_transform", "min_distance_per_label", "slab_neighbours",
           "slab_minima", "reduce_minima", "points_in_block", "SLAB_VOXELS"]

SLAB_VOXELS = 2**24  # voxels per slab task (float64 work arrays of ~128 MiB)
SLAB_BATCH = 2  # source chunks whose slabs min_distance_per_label computes together


def plane_slabs(x, slab_voxels: int = SLAB_VOXELS):
    """Rechunk a (z, y, x) dask array into slabs of whole planes of about ``slab_voxels``.

    Chunks of whole planes are split into near-equal slabs (each chunk is read once);
    other chunkings are rechunked into uniform slabs.

    Examples
    --------
    >>> import dask.array as da
    >>> plane_slabs(da.zeros((10, 4, 5), chunks=2), slab_voxels=60).chunks
    ((3, 3, 3, 1), (4,), (5,))
    >>> plane_slabs(da.zeros((10, 4, 5), chunks=(7, 4, 5)), slab_voxels=60).chunks[0]
    (3, 2, 2, 3)
    """
    plane = int(x.shape[1]) * int(x.shape[2])
    target = max(1, slab_voxels // max(plane, 1))
    if x.numblocks[1] != 1 or x.numblocks[2] != 1:
        return x.rechunk((target, -1, -1))
    parts = []
    for c in x.chunks[0]:
        k = -(-c // target)
        parts += [c // k + (i < c % k) for i in range(k)]
    return x.rechunk((tuple(parts), -1, -1))


def _pack(a: np.ndarray) -> tuple:
    """A map compressed for the task graph (blosc-lz4; the maps of a column's nearest
    feature are mostly one value and shrink 100-1000x)."""
    return Blosc(cname="lz4", clevel=1).encode(np.ascontiguousarray(a)), a.shape, a.dtype.str


def _unpack(packed: tuple) -> np.ndarray:
    """The map of :func:`_pack`."""
    data, shape, dtype = packed
    return np.frombuffer(Blosc().decode(data), dtype=dtype).reshape(shape)


def _packed_extents(block, z0: int) -> tuple:
    return tuple(_pack(e) for e in column_extents(block, z0))


def _neighbours(extents: list) -> tuple[list, list]:
    """Per slab, the nearest feature z before it and after it, per column (packed)."""
    n = len(extents)
    below, above = [None] * n, [None] * n
    shape = extents[0][0][1] if n else (0, 0)
    carry = np.full(shape, NONE_BELOW, np.int32)
    for b in range(n):
        below[b] = _pack(carry)
        carry = np.maximum(carry, _unpack(extents[b][1]))
    carry = np.full(shape, NONE_ABOVE, np.int32)
    for b in range(n - 1, -1, -1):
        above[b] = _pack(carry)
        carry = np.minimum(carry, _unpack(extents[b][0]))
    return below, above


def slab_neighbours(features: Sequence[Any]) -> list[tuple[list, list]]:
    """Per feature mask and z block, the nearest feature z before and after the block, per
    (y, x) column, packed (one pass over the masks).

    Parameters
    ----------
    features : sequence of bool dask arrays, shape (z, y, x)
        Chunked in whole planes, all alike.

    Returns
    -------
    list of (below, above)
        Per feature, a list of packed ``below`` and one of packed ``above`` maps, one per
        z block, as :func:`slab_minima` takes them.

    Notes
    -----
    The maps come from a pass of their own: were they part of the slab tasks' graph, every
    mask block would stay in memory until the last slab is done. They travel compressed
    (:func:`_pack`): raw, they would cost 8 bytes per column and block.

    Examples
    --------
    >>> import dask.array as da
    >>> wall = np.zeros((6, 2, 3), bool); wall[1, 0, 0] = True
    >>> [(below, above)] = slab_neighbours([da.from_array(wall, chunks=(3, 2, 3))])
    >>> int(_unpack(below[1])[0, 0]), int(_unpack(above[0])[0, 0]) == NONE_ABOVE
    (1, True)
    """
    starts = np.concatenate([[0], np.cumsum(features[0].chunks[0])[:-1]]).astype(int)
    extents = [[dask.delayed(_packed_extents)(b, int(z0))
                for b, z0 in zip(f.to_delayed().ravel(), starts)] for f in features]
    (extents,) = dask.compute(extents)
    return [_neighbours(e) for e in extents]



def distance_to(features: Any, *, spacing: Any = None, squared: bool = False,
                slab_voxels: int = SLAB_VOXELS, dtype: Any = np.float64):
    """Exact Euclidean distance of every voxel to the nearest feature voxel (lazy: only the
    columns' feature extents are computed when called, one pass over ``features``).

    Parameters
    ----------
    features : bool array (numpy, dask, xarray or store path), shape (z, y, x)
        The feature voxels (distance 0).
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).
    squared : bool
        Return squared distances.
    slab_voxels : int
        Voxels per slab task.
    dtype : numpy dtype
        float64, or (with ``squared`` and whole-number ``spacing``) an integer type: the
        exact squared distances written as integers, half the memory of float64 for int32.

    Returns
    -------
    dask.array.Array of ``dtype``, shape (z, y, x)
        ``inf`` (an integer type's maximum) everywhere when there is no feature voxel;
        chunks are slabs of whole planes.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> walls = np.zeros((9, 10, 11), bool); walls[:, :, 0] = True; walls[4, 5, 9] = True
    >>> got = distance_to(walls, spacing=(2.0, 1.0, 0.5), slab_voxels=200).compute()
    >>> bool(np.allclose(got, ndimage.distance_transform_edt(~walls, sampling=(2, 1, .5))))
    True
    >>> d2 = distance_to(walls, squared=True, dtype=np.int32, slab_voxels=200).compute()
    >>> d2.dtype.name, int(d2[4, 5, 5])
    ('int32', 16)
    """
    vol = as_volume(features, what="feature mask")
    sp = vol.spacing(spacing)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        top = sum(((n - 1) * s) ** 2 for n, s in zip(vol.data.shape, sp))  # largest possible
        if not (squared and all(float(s).is_integer() for s in sp)) or top >= np.iinfo(dtype).max:
            raise InputError(f"integer distances ({dtype}) need squared=True, whole-number "
                             f"spacing and room for {top:g}; got spacing {sp}: use float64")
    mask = plane_slabs(vol.data.astype(bool), slab_voxels)
    below, above = slab_neighbours([mask])[0]
    starts = np.concatenate([[0], np.cumsum(mask.chunks[0])[:-1]]).astype(int)
    parts = []
    for b, z0, lo, hi, bz in zip(mask.to_delayed().ravel(), starts, below, above,
                                 mask.chunks[0]):
        task = dask.delayed(_slab_distance)(b, int(z0), lo, hi, sp, squared, dtype)
        parts.append(da.from_delayed(task, (bz, *mask.shape[1:]), dtype))
    return da.concatenate(parts, axis=0)


def _slab_distance(mask, z0, below, above, spacing, squared, dtype) -> np.ndarray:
    d2 = slab_sqdist(np.asarray(mask, bool), z0, _unpack(below), _unpack(above), spacing,
                     dtype=dtype)
    return d2 if squared else np.sqrt(d2, out=d2)


def distance_transform(mask: Any, *, spacing: Any = None, slab_voxels: int = SLAB_VOXELS):
    """Distance of each True voxel to the nearest False voxel (0 on False voxels), lazy.

    The convention of ``scipy.ndimage.distance_transform_edt`` and PoreSpy, exact for any
    chunking. A phase without any False voxel gets ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy import ndimage
    >>> pore = np.random.default_rng(1).random((12, 13, 14)) < 0.7
    >>> got = distance_transform(pore, spacing=1.5, slab_voxels=500).compute()
    >>> bool(np.allclose(got, ndimage.distance_transform_edt(pore, sampling=1.5)))
    True
    """
    vol = as_volume(mask, what="mask")
    return distance_to(~vol.data.astype(bool), spacing=vol.spacing(spacing),
                       slab_voxels=slab_voxels)


def min_distance_per_label(labels: Any, features: Sequence[Any], *, spacing: Any = None,
                           points: np.ndarray | None = None, slab_voxels: int = SLAB_VOXELS):
    """Each label's minimum distance (voxel centres) to each feature mask, and optionally
    the distance of given voxels, without materialising a distance volume.

    Parameters
    ----------
    labels : integer array (numpy, dask, xarray or store path), shape (z, y, x)
        0 is background.
    features : sequence of bool arrays, shape (z, y, x)
        One mask per feature kind (e.g. membrane, gasket).
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the labels', else 1).
    points : int ndarray, shape (m, 3), optional
        Voxel indices at which to report each feature's distance as well.
    slab_voxels : int
        Voxels per slab task.

    Returns
    -------
    ids : uint64 ndarray, shape (n,)
        The labels present, sorted.
    distances : float64 ndarray, shape (n, len(features))
        ``inf`` where a feature mask is empty.
    at_points : float64 ndarray, shape (m, len(features))
        Distances at ``points`` (empty when ``points`` is None).

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((5, 6, 20), np.uint32); labels[2, 3, 10:12] = 7
    >>> wall = np.zeros(labels.shape, bool); wall[:, :, 0] = True
    >>> ids, dist, at = min_distance_per_label(labels, [wall], spacing=(1, 1, 2),
    ...                                        points=np.array([[0, 0, 3]]))
    >>> ids.tolist(), dist.tolist(), at.tolist()
    ([7], [[20.0]], [[6.0]])
    """
    lab = as_volume(labels, what="labels")
    sp = lab.spacing(spacing)
    feats = [as_volume(f, what="feature mask").data.astype(bool) for f in features]
    if any(f.shape != lab.data.shape for f in feats):
        raise InputError(f"feature masks of shapes {[f.shape for f in feats]} differ from the "
                         f"labels' {lab.data.shape}: pass masks of the labels' shape")
    lab_slabs = plane_slabs(lab.data, slab_voxels)
    masks = [plane_slabs(f, slab_voxels).rechunk(lab_slabs.chunks) for f in feats]
    pts = np.zeros((0, 3), np.int64) if points is None else np.asarray(points, np.int64)
    if not masks:
        return np.zeros(0, np.uint64), np.zeros((0, 0)), np.zeros((len(pts), 0))
    neighbours = slab_neighbours(masks)
    blocks = [m.to_delayed().ravel() for m in masks]
    label_blocks = lab_slabs.to_delayed().ravel()
    starts = np.concatenate([[0], np.cumsum(lab_slabs.chunks[0])[:-1]]).astype(int)
    tasks = []
    for s, z0 in enumerate(starts):
        inside, local = points_in_block(pts, z0, lab_slabs.chunks[0][s])
        tasks.append(dask.delayed(slab_minima)(
            label_blocks[s], [fb[s] for fb in blocks], int(z0),
            [nb[0][s] for nb in neighbours], [nb[1][s] for nb in neighbours], sp,
            local, inside))
    # in batches of whole source chunks (each read once): one graph of every slab let the
    # scheduler read ahead (15 GB at 8.6 G voxels)
    source = np.searchsorted(np.cumsum(lab.data.chunks[0]), starts, side="right") // SLAB_BATCH
    results = [r for b in np.unique(source)
               for r in dask.compute([t for t, s in zip(tasks, source) if s == b])[0]]
    return reduce_minima(results, len(masks), len(pts))


def points_in_block(points: np.ndarray, z0: int, bz: int) -> tuple[np.ndarray, np.ndarray]:
    """Which of ``points`` (global (z, y, x)) lie in the planes ``z0 .. z0 + bz - 1``, and
    their local indices.

    Examples
    --------
    >>> inside, local = points_in_block(np.array([[0, 1, 2], [5, 1, 1]]), 4, 3)
    >>> inside.tolist(), local.tolist()
    ([1], [[1, 1, 1]])
    """
    inside = np.flatnonzero((points[:, 0] >= z0) & (points[:, 0] < z0 + bz))
    return inside, points[inside] - [z0, 0, 0]


def slab_minima(labels, masks, z0, belows, aboves, spacing, local_points, which):
    """Per-label minimum squared distance to each mask in one block of whole planes, and the
    squared distances at points; one part of :func:`reduce_minima`.

    ``belows``/``aboves`` are the block's packed maps from :func:`slab_neighbours`;
    ``which`` numbers the points among all.

    Examples
    --------
    >>> import dask.array as da
    >>> wall = np.zeros((2, 1, 6), bool); wall[:, 0, 0] = True
    >>> labels = np.zeros(wall.shape, np.uint32); labels[1, 0, 4:] = 3
    >>> [(below, above)] = slab_neighbours([da.from_array(wall)])
    >>> part = slab_minima(labels, [wall], 0, below, above, (1, 1, 1), np.zeros((0, 3)), [])
    >>> ids, dist, _ = reduce_minima([part], 1, 0)
    >>> ids.tolist(), dist.tolist()
    ([3], [[4.0]])
    """
    ids, minima, at = slab_label_minima(
        np.asarray(labels), [np.asarray(m, bool) for m in masks], z0,
        [_unpack(lo) for lo in belows], [_unpack(hi) for hi in aboves], spacing, local_points)
    return ids.astype(np.uint64), minima, which, at


def reduce_minima(results, n_features: int, n_points: int):
    """Labels, per-label minimum distances and distances at points from the parts of
    :func:`slab_minima`.

    Examples
    --------
    >>> a = (np.array([2, 5], np.uint64), np.array([[9.0], [4.0]]), np.array([0]), np.array([[1.0]]))
    >>> b = (np.array([5], np.uint64), np.array([[1.0]]), np.array([1]), np.array([[16.0]]))
    >>> ids, dist, at = reduce_minima([a, b], 1, 2)
    >>> ids.tolist(), dist.tolist(), at.tolist()
    ([2, 5], [[3.0], [1.0]], [[1.0], [4.0]])
    """
    ids = np.concatenate([r[0] for r in results]) if results else np.zeros(0, np.uint64)
    mins = np.concatenate([r[1] for r in results]) if results else np.zeros((0, n_features))
    uniq, inv = np.unique(ids, return_inverse=True)
    out = np.full((len(uniq), n_features), np.inf)
    for k in range(n_features):
        np.minimum.at(out[:, k], inv, mins[:, k])
    at = np.full((n_points, n_features), np.inf)
    for _, _, which, values in results:
        at[which] = values
    return uniq, np.sqrt(out), np.sqrt(at)
