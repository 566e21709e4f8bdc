"""Split touching bubbles (films thinner than a voxel) with a distance-transform watershed,
block by block with a halo so that it runs out of core and gives the same labels whatever
the chunking."""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError
from ..io.volume import as_volume

MAX_VOXELS = 2**31  # largest single window (an in-memory call splits larger inputs in blocks)
DEFAULT_HALO = 32
BLOCK_VOXELS = 256**3  # default block of out-of-core inputs


def _window_labels(window: np.ndarray, origin: Sequence[int], shape: Sequence[int],
                   core: tuple[slice, ...], sp: np.ndarray, min_distance: float, h: float,
                   h_edge: float, connectivity: int) -> tuple[np.ndarray, bool]:
    """Watershed of one window (a block and its halo); the core's labels as global ids.

    A bubble's id is ``1 +`` the global linear index of its marker, or ``1 + size +`` that
    of the first voxel of a component without marker, so windows that see the same bubble
    give it the same id. Markers are the maxima of the distance map of dynamic ``h``, and
    ``h_edge`` for maxima within one voxel of the field of view's faces (whose liquid
    channels are cut off, which flattens their distance maps). Also says whether a label of
    the core reaches the window's inner faces (the halo may then be too small).
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = np.asarray(window, bool)
    core_shape = tuple(s.stop - s.start for s in core)
    if not mask[core].any():
        return np.zeros(core_shape, np.int64), False
    structure = ndi.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    dist = ndi.distance_transform_edt(mask, sampling=sp) / sp.min()
    # ties (plateaus of equal distance) broken by the global raster position, so that every
    # window floods and picks markers in the same order whatever the chunking
    grid = np.indices(mask.shape, sparse=True)
    gidx = sum((g + o) * int(np.prod(shape[a + 1:])) for a, (g, o) in
               enumerate(zip(grid, origin)))
    dist -= 1e-6 * gidx / max(int(np.prod(shape)), 1)
    dist[~mask] = 0
    peaks = h_maxima(dist, h).astype(bool)
    if h_edge < h:
        face = np.zeros(mask.shape, bool)
        for ax in range(3):
            lo = [slice(None)] * 3
            if origin[ax] == 0:
                lo[ax] = slice(0, 2)
                face[tuple(lo)] = True
            if origin[ax] + mask.shape[ax] == shape[ax]:
                lo[ax] = slice(mask.shape[ax] - 2, mask.shape[ax])
                face[tuple(lo)] = True
        if face.any():
            low = h_maxima(dist, h_edge).astype(bool)
            plateaus, _ = ndi.label(low, structure=np.ones((3, 3, 3)))
            at_face = np.unique(plateaus[face & low])
            at_face = np.isin(plateaus, at_face[at_face > 0])
            plateaus, _ = ndi.label(peaks, structure=np.ones((3, 3, 3)))
            touching = np.unique(plateaus[face & peaks])
            peaks = (peaks & ~np.isin(plateaus, touching[touching > 0])) | at_face
    coords = peak_local_max(dist, min_distance=max(1, int(min_distance)),
                            labels=peaks.astype(np.int32), exclude_border=False)
    gidx = np.ravel_multi_index(tuple((coords + np.asarray(origin)).T), shape) \
        if len(coords) else np.zeros(0, np.int64)
    markers = np.zeros(mask.shape, np.int64)
    markers[tuple(coords.T)] = gidx + 1
    ws = watershed(-dist, markers, mask=mask, connectivity=structure)
    rest = mask & (ws == 0)
    if rest.any():  # components without a marker: id from their first voxel
        comp, n = ndi.label(rest, structure=structure)
        flat = comp.ravel()
        ids, first = np.unique(flat, return_index=True)
        first = first[ids > 0]
        local = np.unravel_index(first, mask.shape)
        glob = np.ravel_multi_index(tuple(np.asarray(local) + np.asarray(origin)[:, None]),
                                    shape)
        lut = np.zeros(n + 1, np.int64)
        lut[1:] = int(np.prod(shape)) + glob + 1
        ws = np.where(comp > 0, lut[comp], ws)
    out = ws[core]
    inner = []  # labels on the window's faces that are not the field of view's
    for ax in range(3):
        if origin[ax] > 0:
            inner.append(np.take(ws, 0, axis=ax).ravel())
        if origin[ax] + mask.shape[ax] < shape[ax]:
            inner.append(np.take(ws, -1, axis=ax).ravel())
    reaches = bool(inner) and np.isin(np.unique(out), np.concatenate(inner)[
        np.concatenate(inner) > 0]).any()
    return out, reaches


def _first_voxels(labels: np.ndarray, origin: Sequence[int], shape: Sequence[int]):
    """(ids, global linear index of each id's first voxel in this block)."""
    ids, first = np.unique(labels.ravel(), return_index=True)
    keep = ids > 0
    ids, first = ids[keep], first[keep]
    local = np.unravel_index(first, labels.shape)
    glob = np.ravel_multi_index(tuple(np.asarray(local) + np.asarray(origin)[:, None]), shape)
    return ids, glob


def _relabel(labels: np.ndarray, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(labels.shape, np.uint32)
    fg = labels > 0
    out[fg] = values[np.searchsorted(keys, labels[fg])]
    return out


def split_touching(mask: Any, *, spacing: Sequence[float] | float | None = None,
                   min_distance: float = 3.0, h: float = 2.0, h_edge: float | None = None,
                   connectivity: int = 26, chunks: Sequence[int] | None = None,
                   halo: int = DEFAULT_HALO) -> tuple[Any, int]:
    """Separate bubbles that touch through sub-voxel films: watershed of the distance map.

    Markers are the maxima of the Euclidean distance transform (with ``spacing``) that are
    at least ``h`` (in voxel units of the smallest spacing) above their surroundings and
    ``min_distance`` voxels apart; the watershed of the negated distance map, restricted to
    the mask, gives one id per bubble (ids in raster order of their first voxel).

    Bubbles cut by the field of view have flattened distance maps (their liquid channels
    are cut off at the edge), so their maxima at the faces need only the dynamic
    ``h_edge`` (default ``h / 8``): with one ``h`` for all, neighbours at the edge merge
    (on the shared foam series, 89 of ~500 bubbles per step merged at ``h = 2``; with the
    default ``h_edge`` 19).

    The volume is processed block by block (the input's chunks, or ``chunks``), each block
    with ``halo`` voxels of its neighbours; a bubble's id is fixed by the global position
    of its marker, and the final ids follow the raster order of first voxels, so the labels
    do not depend on the chunking as long as ``halo`` exceeds the largest bubble's diameter
    (a ``RuntimeWarning`` says when a bubble reaches past a block's halo).

    Parameters
    ----------
    mask : path, zarr, xarray, dask or numpy array, bool (z, y, x)
        The gas phase, coerced with :func:`redoxflow.io.volume.as_volume`.
    spacing : float or (z, y, x), optional
        Voxel size (default: the input's, else 1; anisotropic volumes split correctly).
    min_distance : float
        Minimum distance between two bubble centres (voxels).
    h : float
        Dynamic of the distance maxima kept as markers (voxels); larger merges more.
    h_edge : float, optional
        Dynamic of the maxima at the field of view's faces (default ``h / 8``; ``h`` gives
        the former behaviour).
    connectivity : {6, 18, 26}
        Neighbourhood of the watershed and of the components left without a marker.
    chunks : (z, y, x), optional
        Block shape (default: the input's chunks for dask and stores, 256^3 blocks where
        they are larger; one block for numpy inputs up to 2^31 voxels).
    halo : int
        Voxels of the neighbouring blocks read around each block.

    Returns
    -------
    labels : uint32 ndarray, or dask array for dask and store inputs, shape (z, y, x)
        Ids 1..n in raster order, 0 outside the mask (lazy for dask/store inputs: write it
        with :func:`redoxflow.io.store.write_dask` or compute it).
    n : int
        Number of bubbles.

    Examples
    --------
    >>> import numpy as np
    >>> z, y, x = np.ogrid[:16, :16, :28]
    >>> mask = (((z - 8)**2 + (y - 8)**2 + (x - 7)**2 <= 36)
    ...         | ((z - 8)**2 + (y - 8)**2 + (x - 18)**2 <= 36))  # two balls, one component
    >>> labels, n = split_touching(mask)
    >>> n, int(labels[8, 8, 7]), int(labels[8, 8, 18])
    (2, 1, 2)
    >>> blocks, _ = split_touching(mask, chunks=(7, 9, 11), halo=16)  # same ids
    >>> bool((blocks == labels).all())
    True
    """
    import dask
    import dask.array as da

    if connectivity not in (6, 18, 26):
        raise InputError(f"connectivity = {connectivity}: choose 6, 18 or 26")
    lazy = not isinstance(mask, np.ndarray)
    vol = as_volume(mask, what="mask")
    sp = np.asarray(vol.spacing(spacing))
    data = vol.data
    shape = tuple(int(s) for s in data.shape)
    if chunks is not None:
        data = data.rechunk(tuple(int(c) for c in chunks))
    elif not lazy and int(np.prod(shape)) <= MAX_VOXELS:
        data = data.rechunk(shape)  # in memory: one window
    elif max(int(np.prod(c)) for c in itertools.product(*data.chunks)) > BLOCK_VOXELS:
        side = int(np.cbrt(BLOCK_VOXELS))  # a window and its float maps fit a few GiB
        data = data.rechunk((side, side, side))
    h_edge = h / 8 if h_edge is None else float(h_edge)
    halo = int(halo)
    bounds = [np.cumsum((0,) + c) for c in data.chunks]
    blocks = []
    for idx in itertools.product(*[range(len(c)) for c in data.chunks]):
        lo = [int(bounds[a][i]) for a, i in enumerate(idx)]
        hi = [int(bounds[a][i + 1]) for a, i in enumerate(idx)]
        wlo = [max(0, v - halo) for v in lo]
        whi = [min(s, v + halo) for s, v in zip(shape, hi)]
        core = tuple(slice(a - b, c - b) for a, b, c in zip(lo, wlo, hi))
        window = data[tuple(slice(a, b) for a, b in zip(wlo, whi))].astype(bool)
        blocks.append((idx, lo, hi, wlo, core, window))
    params = (shape, sp, float(min_distance), float(h), h_edge, int(connectivity))

    def task(window, wlo, core, lo):
        out, reaches = _window_labels(window, wlo, params[0], core, *params[1:])
        ids, first = _first_voxels(out, lo, shape)
        return ids, first, reaches, None if lazy else out

    parts = dask.compute(*[dask.delayed(task)(w, wlo, core, lo)
                           for _, lo, _, wlo, core, w in blocks])
    if any(p[2] for p in parts) and len(blocks) > 1:
        warnings.warn(f"a bubble reaches past a block's halo ({halo} voxels): labels may "
                      "depend on the chunking; pass a larger halo (above the largest "
                      "bubble's diameter) or larger chunks", RuntimeWarning, stacklevel=2)
    ids = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    first = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
    order = np.lexsort((first, ids))
    ids, first = ids[order], first[order]
    head = np.ones(len(ids), bool)
    head[1:] = ids[1:] != ids[:-1]
    keys, first = ids[head], first[head]  # each id's first voxel over all blocks
    values = np.empty(len(keys), np.uint32)
    values[np.argsort(first, kind="stable")] = np.arange(1, len(keys) + 1, dtype=np.uint32)
    n = len(keys)

    def relabel_task(window, wlo, core):
        out, _ = _window_labels(window, wlo, params[0], core, *params[1:])
        return _relabel(out, keys, values)

    if not lazy:  # in memory: relabel the blocks already computed
        labels = np.zeros(shape, np.uint32)
        for (_, lo, hi, *_), part in zip(blocks, parts):
            labels[tuple(slice(a, b) for a, b in zip(lo, hi))] = _relabel(part[3], keys,
                                                                          values)
        return labels, n
    grid = np.empty(tuple(len(c) for c in data.chunks), dtype=object)
    for idx, lo, hi, wlo, core, window in blocks:
        grid[idx] = da.from_delayed(dask.delayed(relabel_task)(window, wlo, core),
                                    shape=tuple(b - a for a, b in zip(lo, hi)),
                                    dtype=np.uint32)
    return da.block(grid.tolist()), n

