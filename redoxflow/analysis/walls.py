"""Walls of the cell (membrane, gasket, field of view): contacts, blockage and distances.

One halo pass over the wall codes and the labels gives each wall's contacts with the bubbles
(blockage), its boundary voxels (a KD-tree) and, in the default mode, each bubble's exact
surface distance to it (the walls' distance transforms read at the bubbles' voxels, never
stored; a pass of its own when the labels are not chunked in whole planes).
"""

from __future__ import annotations

import numpy as np

from ..distance import (
    min_distance_per_label,
    points_in_block,
    reduce_minima,
    slab_minima,
    slab_neighbours,
)
from .blockage import block_walls

WALLS = ["membrane", "gasket", "z-", "z+", "y-", "y+", "x-", "x+"]
UTILE_WALLS = ["top", "bottom", "left", "right", "front", "back", "membrane"]


def flags(names):
    """CF ``flag_values``/``flag_meanings`` attrs of a coded variable.

    Parameters
    ----------
    names : list of str
        The meaning of codes 0, 1, ... (no spaces).

    Returns
    -------
    dict
        ``flag_values`` and ``flag_meanings``.

    Examples
    --------
    >>> flags(["outside", "negative"])
    {'flag_values': [0, 1], 'flag_meanings': 'outside negative'}
    """
    return {"flag_values": list(range(len(names))), "flag_meanings": " ".join(names)}


def lookup(keys, ids, values, fill) -> np.ndarray:
    """``values`` of sorted ``ids`` at ``keys`` (``fill`` where a key is absent).

    Examples
    --------
    >>> lookup(np.array([3, 5, 9]), np.array([1, 3, 9]), [10., 30., 90.], 0.0).tolist()
    [30.0, 0.0, 90.0]
    """
    out = np.full(len(keys), fill, dtype=float)
    if len(ids):
        pos = np.clip(np.searchsorted(ids, keys), 0, len(ids) - 1)
        hit = ids[pos] == keys
        out[hit] = np.asarray(values)[pos[hit]]
    return out


def _origins(chunks):
    return [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int) for c in chunks]


def _halo_blocks(x):
    """Blocks with one voxel of their neighbours' on each side that has one (no padding
    at the volume's faces: a copy of every block saved)."""
    import dask.array as da

    return da.overlap.overlap(x, depth=1, boundary="none").to_delayed()


def _halo_sides(idx, numblocks) -> tuple[int, ...]:
    return tuple(s for a in range(3) for s in (int(idx[a] > 0), int(idx[a] < numblocks[a] - 1)))


def wall_contacts(walls, labels, side_lut, spacing, points=None):
    """One halo pass: per wall mask, the reduced contacts and a KD-tree of its boundary, and
    (given ``points``) every label's exact distance to each wall.

    Parameters
    ----------
    walls : dict of str to dask.array.Array or None
        Lazy bool masks (z, y, x) of the walls (None: absent).
    labels : dask.array.Array, shape (z, y, x)
        Bubble labels; the masks are rechunked like them.
    side_lut : uint8 ndarray, shape (max label + 1,)
        Half-cell code of each label.
    spacing : (z, y, x) float
        Voxel size.
    points : int ndarray, shape (m, 3), optional
        Voxels whose distance to each wall is wanted too; asks for the distances.

    Returns
    -------
    dict
        name -> (contacts, tree): the contacts of
        :func:`redoxflow.analysis.blockage.block_contacts` reduced over the volume
        (``row_map`` (4, z, y), ``blocked``, ``blocked_any``, ``ids``, ``area``) and a
        ``scipy.spatial.cKDTree`` of the wall's boundary voxels in physical coordinates;
        ``(None, None)`` for an absent wall (the tree is None when the wall is empty). With
        ``points``, ``"distances"`` -> (ids, distances, at_points) as
        :func:`redoxflow.distance.min_distance_per_label` gives them, one column per wall
        of ``walls`` (``inf`` for an absent one).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> membrane = np.zeros((4, 6, 8), bool); membrane[:, :, 4] = True
    >>> labels = np.zeros((4, 6, 8), np.uint32); labels[1:3, 2:4, 5:7] = 1
    >>> labels = da.from_array(labels, chunks=(2, 6, 8))
    >>> side_lut = np.array([0, 1], np.uint8)  # bubble 1: half-cell code 1
    >>> walls = wall_contacts({"membrane": da.from_array(membrane, chunks=(2, 6, 8)),
    ...                        "gasket": None}, labels, side_lut, (1.0, 1.0, 1.0),
    ...                       points=np.array([[0, 0, 0]]))
    >>> contacts, tree = walls["membrane"]
    >>> contacts["ids"].tolist(), contacts["area"].tolist(), contacts["blocked"].tolist()
    ([1], [4.0], [0, 4, 0, 0])
    >>> tree.n, walls["gasket"]
    (24, (None, None))
    >>> ids, dist, at = walls["distances"]
    >>> ids.tolist(), dist.tolist(), at.tolist()
    ([1], [[1.0, inf]], [[4.0, inf]])
    """
    import dask
    from scipy.spatial import cKDTree

    names = [k for k, v in walls.items() if v is not None]
    if not names:
        out = {k: (None, None) for k in walls}
        if points is not None:
            out["distances"] = _every_wall(walls, names, min_distance_per_label(
                labels, [], spacing=spacing, points=points))
        return out
    codes = sum((walls[k].astype(np.uint8) * (i + 1) for i, k in enumerate(names)))
    codes = codes.rechunk(labels.chunks)
    starts = _origins(labels.chunks)
    cb, lb = _halo_blocks(codes), _halo_blocks(labels)
    lut = dask.delayed(side_lut)
    # the distances in the same pass where each block holds whole planes
    fused = points is not None and labels.numblocks[1:] == (1, 1)
    if fused:
        pts = np.asarray(points, np.int64).reshape(-1, 3)
        neighbours = slab_neighbours([codes == i + 1 for i in range(len(names))])
    tasks = {}
    for idx in np.ndindex(*labels.numblocks):
        origin = [starts[a][idx[a]] for a in range(3)]
        sides = _halo_sides(idx, labels.numblocks)
        distance = None
        if fused:
            inside, local = points_in_block(pts, origin[0], labels.chunks[0][idx[0]])
            distance = ([nb[0][idx[0]] for nb in neighbours],
                        [nb[1][idx[0]] for nb in neighbours], local, inside)
        tasks[idx] = dask.delayed(_block_walls_distances)(cb[idx], lb[idx], origin, lut,
                                                          spacing, len(names), sides, distance)
    (res,) = dask.compute(tasks)
    out = {k: (None, None) for k in walls}
    for w, name in enumerate(names):
        parts = {idx: r[0][w][0] for idx, r in res.items()}
        pts_w = np.concatenate([r[0][w][1] for r in res.values()])
        tree = cKDTree(pts_w * np.asarray(spacing)) if len(pts_w) else None
        out[name] = (_reduce_contacts(parts, starts, labels.shape), tree)
    if fused:
        found = reduce_minima([r[1] for r in res.values()], len(names), len(pts))
    elif points is not None:
        found = min_distance_per_label(labels, [walls[k] for k in names], spacing=spacing,
                                       points=points)
    if points is not None:
        out["distances"] = _every_wall(walls, names, found)
    return out


def _every_wall(walls, names, found):
    """(ids, distances, at_points) with one column per wall of ``walls`` (inf: absent)."""
    ids, dist, at = found
    full_dist = np.full((len(ids), len(walls)), np.inf)
    full_at = np.full((len(at), len(walls)), np.inf)
    for k, name in enumerate(names):
        j = list(walls).index(name)
        full_dist[:, j], full_at[:, j] = dist[:, k], at[:, k]
    return ids, full_dist, full_at


def _block_walls_distances(codes, labels, origin, side_lut, spacing, n_walls, halo, distance):
    """:func:`~.blockage.block_walls` of a block and (given ``distance``: the block's
    packed neighbour maps, local points and their numbers) the per-label minimum squared
    distance to each wall of its core, a block of whole planes."""
    contacts = block_walls(codes, labels, origin, side_lut, spacing, n_walls, halo)
    if distance is None:
        return contacts, None
    codes, labels = np.asarray(codes), np.asarray(labels)
    core = slice(halo[0], codes.shape[0] - halo[1])  # whole planes: a halo along z only
    walls = [codes[core] == w + 1 for w in range(n_walls)]
    return contacts, slab_minima(labels[core], walls, int(origin[0]), *distance[:2], spacing,
                                 *distance[2:])


def _reduce_contacts(parts, starts, shape):
    nz, ny = shape[:2]
    row_map = np.zeros((4, nz, ny), np.int32)
    blocked = np.zeros(4, np.int64)
    blocked_any = 0
    ids, areas = [], []
    for idx, r in parts.items():
        z0, y0 = starts[0][idx[0]], starts[1][idx[1]]
        bz, by = r["row_map"].shape[1:]
        row_map[:, z0:z0 + bz, y0:y0 + by] += r["row_map"]
        blocked += r["blocked"]
        blocked_any += int(r["blocked_any"])
        ids.append(r["ids"])
        areas.append(r["area"])
    uniq, inv = np.unique(np.concatenate(ids), return_inverse=True)
    area = np.bincount(inv, weights=np.concatenate(areas)) if len(uniq) else np.zeros(0)
    return {"row_map": row_map, "blocked": blocked, "blocked_any": blocked_any,
            "ids": uniq, "area": area}


def bounded_query(tree, points: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Nearest-neighbour distances of ``points``, each known to be at most ``bounds``.

    A bound lets the KD-tree skip every node farther away (cKDTree is slow on unbounded
    queries far from thin slabs of points); queries are grouped by bound within 25 %.

    Examples
    --------
    >>> from scipy.spatial import cKDTree
    >>> tree = cKDTree([[0.0, 0.0, 0.0], [0.0, 0.0, 10.0]])
    >>> bounded_query(tree, np.array([[0.0, 0.0, 3.0], [0, 0, 9]]), np.array([4.0, 2])).tolist()
    [3.0, 1.0]
    """
    out = np.full(len(points), np.inf)
    finite = np.isfinite(bounds)
    out[~finite] = tree.query(points[~finite])[0] if (~finite).any() else out[~finite]
    group = np.floor(np.log(np.maximum(bounds, 1e-12)) / np.log(1.25))
    for g in np.unique(group[finite]):
        sel = np.flatnonzero(finite & (group == g))
        out[sel] = tree.query(points[sel], distance_upper_bound=float(bounds[sel].max()))[0]
    return out


def utile_proximity(ds, shape, tree):
    """The reference: min over centroid-to-array-face and centroid-to-membrane distances.

    Parameters
    ----------
    ds : xarray.Dataset
        The bubble table; ``centroid_voxel`` (bubble, 3) is used.
    shape : (z, y, x) int
        The volume's shape.
    tree : scipy.spatial.cKDTree
        The membrane's boundary voxels (voxel coordinates).

    Returns
    -------
    distance : float ndarray, shape (bubble,)
        Voxels.
    wall : int ndarray, shape (bubble,)
        Index into ``UTILE_WALLS`` (top, bottom, left, right, front, back, membrane).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from scipy.spatial import cKDTree
    >>> membrane = cKDTree(np.argwhere(np.ones((4, 6, 1))) + [0, 0, 4])  # the plane x = 4
    >>> ds = xr.Dataset({"centroid_voxel": (("bubble", "axis"), [[1.5, 2.5, 5.5]])})
    >>> dist, wall = utile_proximity(ds, (4, 6, 8), membrane)
    >>> dist.tolist(), [UTILE_WALLS[w] for w in wall]
    ([1.5], ['front'])
    """
    c = ds["centroid_voxel"].values
    d, h, w = shape
    faces = np.stack([h - c[:, 1], c[:, 1], c[:, 2], w - c[:, 2], c[:, 0], d - c[:, 0]], axis=1)
    mem = tree.query(c)[0] if len(c) else np.zeros(0)
    dist = np.concatenate([faces, mem[:, None]], axis=1)
    return dist.min(axis=1), dist.argmin(axis=1)


def centroid_voxels(ds, shape) -> np.ndarray:
    """The voxel (z, y, x) of each bubble's centroid, clipped to the volume.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset({"centroid_voxel": (("bubble", "axis"), [[1.4, 2.6, 9.0]])})
    >>> centroid_voxels(ds, (4, 6, 8)).tolist()
    [[1, 3, 7]]
    """
    return np.clip(np.rint(ds["centroid_voxel"].values).astype(np.int64), 0,
                   np.asarray(shape) - 1).reshape(-1, 3)


def default_proximity(ds, distances, trees, spacing, shape):
    """Surface (voxel-centre) and centroid distances to membrane, gasket and the FOV faces.

    Parameters
    ----------
    ds : xarray.Dataset
        The bubble table: ``bubble``, ``bbox_min``, ``bbox_max``, ``centroid``.
    distances : (ids, distances, at_points)
        The walls' exact distances (``"distances"`` of :func:`wall_contacts` asked at
        :func:`centroid_voxels`), columns (membrane, gasket).
    trees : (membrane, gasket) of scipy.spatial.cKDTree or None
        The walls' boundary voxels in physical coordinates, for the centroid distances
        (None: the wall is absent or empty).
    spacing : (z, y, x) float
        Voxel size.
    shape : (z, y, x) int
        The volume's shape.

    Returns
    -------
    surface : float ndarray, shape (bubble, 8)
        Distances to the walls of ``WALLS`` (membrane, gasket, z-, z+, y-, y+, x-, x+).
    centroid : float ndarray, shape (bubble, 2)
        Centroid distances to the membrane and the gasket. NaN for an absent wall.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> membrane = np.zeros((4, 6, 8), bool); membrane[:, :, 4] = True
    >>> labels = np.zeros((4, 6, 8), np.uint32); labels[1:3, 2:4, 5:7] = 1
    >>> labels = da.from_array(labels, chunks=(2, 6, 8))
    >>> import redoxflow as rf
    >>> table = rf.regionprops(labels, spacing=1.0)
    >>> side_lut = np.array([0, 1], np.uint8)  # bubble 1: half-cell code 1
    >>> walls = wall_contacts({"membrane": da.from_array(membrane, chunks=(2, 6, 8)),
    ...                        "gasket": None}, labels, side_lut, (1.0, 1.0, 1.0),
    ...                       points=centroid_voxels(table, (4, 6, 8)))
    >>> surface, centroid = default_proximity(table, walls["distances"],
    ...                                       (walls["membrane"][1], None), (1.0, 1.0, 1.0),
    ...                                       (4, 6, 8))
    >>> surface.tolist()
    [[1.0, nan, 2.0, 2.0, 3.0, 3.0, 6.0, 2.0]]
    """
    ids = ds["bubble"].values
    s = np.asarray(spacing)
    lo, hi = ds["bbox_min"].values, ds["bbox_max"].values
    fov = np.stack([(lo[:, 0] + 1) * s[0], (shape[0] - hi[:, 0]) * s[0],
                    (lo[:, 1] + 1) * s[1], (shape[1] - hi[:, 1]) * s[1],
                    (lo[:, 2] + 1) * s[2], (shape[2] - hi[:, 2]) * s[2]], axis=1)
    sid, sdist, at = distances
    walls = np.stack([lookup(ids, sid, sdist[:, j], np.inf) for j in range(2)], axis=1)
    surface = np.concatenate([walls.reshape(len(ids), 2), fov], axis=1)
    # centroid distances from the walls' boundary voxels; the distance transform at the
    # centroid's voxel bounds the search (|d(c) - d(voxel)| <= half a voxel diagonal)
    cen = ds["centroid"].values
    slack = 0.5 * float(np.linalg.norm(s)) * (1 + 1e-9) + 1e-9
    centroid = np.full((len(ids), 2), np.inf)
    for j, tree in enumerate(trees):
        if tree is not None and len(ids):
            # a centroid inside the wall (at == 0) has no bound from the transform: the
            # tree holds only the wall's boundary voxels
            bound = np.where(at[:, j] > 0, at[:, j] + slack, np.inf)
            centroid[:, j] = bounded_query(tree, cen, bound)
    surface[~np.isfinite(surface)] = np.nan
    centroid[~np.isfinite(centroid)] = np.nan
    return surface, centroid


def add_wall_columns(table, walls, spacing, shape, compat):
    """Contact and distance columns of the bubble table, from :func:`wall_contacts`.

    Parameters
    ----------
    table : xarray.Dataset
        The bubble table of :func:`redoxflow.regionprops`.
    walls : dict
        What :func:`wall_contacts` returns for ``membrane`` and ``gasket`` (and, outside
        compat mode, ``distances``).
    spacing : (z, y, x) float
        Voxel size.
    shape : (z, y, x) int
        The volume's shape.
    compat : {"utile"} or None
        The reference's centroid distance (``closest_distance``, ``closest_wall``), or the
        surface distances to every wall (``wall_distance``, ``nearest_wall``, ...).

    Returns
    -------
    xarray.Dataset
        ``table`` with ``membrane_contact_area``, ``touches_membrane`` (and
        ``touches_gasket``) and the distance columns.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> membrane = np.zeros((4, 6, 8), bool); membrane[:, :, 4] = True
    >>> labels = np.zeros((4, 6, 8), np.uint32); labels[1:3, 2:4, 5:7] = 1
    >>> labels = da.from_array(labels, chunks=(2, 6, 8))
    >>> import redoxflow as rf
    >>> table = rf.regionprops(labels, spacing=1.0)
    >>> side_lut = np.array([0, 1], np.uint8)  # bubble 1: half-cell code 1
    >>> walls = wall_contacts({"membrane": da.from_array(membrane, chunks=(2, 6, 8)),
    ...                        "gasket": None}, labels, side_lut, (1.0, 1.0, 1.0),
    ...                       points=centroid_voxels(table, (4, 6, 8)))
    >>> table = add_wall_columns(table, walls, (1.0, 1.0, 1.0), (4, 6, 8), None)
    >>> table["membrane_contact_area"].values.tolist(), WALLS[int(table["nearest_wall"][0])]
    ([4.0], 'membrane')
    """
    ids = table["bubble"].values.astype(np.int64)
    (mem_contacts, mem_tree), (gas_contacts, gas_tree) = walls["membrane"], walls["gasket"]
    table["membrane_contact_area"] = ("bubble", lookup(ids, mem_contacts["ids"].astype(np.int64),
                                                       mem_contacts["area"], 0.0),
                                      {"units": "micrometer^2" if not compat else "voxel^2"})
    table["touches_membrane"] = ("bubble", table["membrane_contact_area"].values > 0,
                                 {"long_name": "shares a voxel face with the membrane"})
    if gas_contacts is not None:
        table["touches_gasket"] = ("bubble", lookup(ids, gas_contacts["ids"].astype(np.int64),
                                                    gas_contacts["area"], 0.0) > 0)
    if compat:
        dist, which = utile_proximity(table, shape, mem_tree)
        table["closest_distance"] = ("bubble", dist, {"units": "voxel",
                                                      "definition": "from the centroid"})
        table["closest_wall"] = ("bubble", which.astype(np.int8), flags(UTILE_WALLS))
        return table
    surface, centroid = default_proximity(table, walls["distances"], (mem_tree, gas_tree),
                                          spacing, shape)
    um = {"units": "micrometer"}
    table = table.assign_coords(wall=WALLS)
    table["wall_distance"] = (("bubble", "wall"), surface,
                              {**um, "definition": "minimum distance between the centres "
                               "of the bubble's voxels and the wall's voxels (a touching "
                               "bubble is one voxel away); FOV faces as the layer outside"})
    table["distance_membrane_centroid"] = ("bubble", centroid[:, 0], um)
    table["distance_gasket_centroid"] = ("bubble", centroid[:, 1], um)
    nearest = np.nanargmin(np.where(np.isnan(surface), np.inf, surface), axis=1) \
        if len(ids) else np.zeros(0, int)
    table["nearest_wall"] = ("bubble", nearest.astype(np.int8), flags(WALLS))
    table["nearest_wall_distance"] = ("bubble", surface[np.arange(len(ids)), nearest]
                                      if len(ids) else np.zeros(0), um)
    return table
