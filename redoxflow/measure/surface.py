"""Per-bubble shape measures on crops: marching-cubes surface, mesh volume, convex hull."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import marching_cubes, mesh_surface_area


def _pad(mask: np.ndarray, pad) -> np.ndarray:
    vol = mask.astype(np.float32)
    if pad is True:
        return np.pad(vol, 1)
    return vol if pad is False else np.pad(vol, pad)


def _mesh(vol: np.ndarray, spacing, level: float):
    """Marching-cubes vertices and faces, or None when there is no surface."""
    if min(vol.shape) < 2:
        return None
    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, spacing=tuple(spacing))
    except (ValueError, RuntimeError):
        return None
    # skimage keeps float32 vertices at unit spacing: measure them in float64 (as it does
    # for any other spacing), so areas and volumes do not depend on the spacing's dtype path
    return verts.astype(np.float64), faces


def _signed_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Divergence theorem: sum of signed tetrahedra (origin, triangle); additive over pieces."""
    tri = verts[faces]
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0


def _hull_volume(points: np.ndarray) -> float:
    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):  # planar or line-like objects have no 3D hull
        return np.nan


def mesh_measures(mask: np.ndarray, spacing: Sequence[float], *, level: float = 0.5,
                  pad: bool | Sequence[Sequence[int]] = True) -> tuple[float, float, float]:
    """Surface area, enclosed volume and convex-hull volume of a binary crop's iso-surface.

    Parameters
    ----------
    mask : bool ndarray (z, y, x)
        The object's crop (its bounding box).
    spacing : (z, y, x)
        Voxel size.
    level : float
        Iso-level on the 0/1 mask (0.5 = halfway between object and background).
    pad : bool or ((before, after),) * 3
        Pad with one voxel of background (on every side, or as given per axis) so the
        surface is closed.

    Examples
    --------
    A 4-voxel cube: the level-0.5 surface cuts its corners (area < 96, volume < 64):

    >>> area, enclosed, hull = mesh_measures(np.ones((4, 4, 4), bool), (1.0, 1.0, 1.0))
    >>> round(area, 2), round(enclosed, 2), round(hull, 2)
    (81.19, 58.67, 58.67)
    """
    mesh = _mesh(_pad(mask, pad), spacing, level)
    if mesh is None:
        return np.nan, np.nan, np.nan
    verts, faces = mesh
    return (float(mesh_surface_area(verts, faces)), abs(_signed_volume(verts, faces)),
            _hull_volume(verts))


def slab_mesh_part(mask: np.ndarray, spacing: Sequence[float], level: float, pad,
                   z_offset: int) -> tuple[float, float, np.ndarray]:
    """One z slab of a large object -> (area, signed volume, convex-hull points).

    Slabs that share their boundary plane split the marching-cubes cells exactly, so areas
    and signed volumes add up to the whole object's, and the hull of all slabs' hull points is
    the object's hull. ``z_offset`` places the slab (in padded planes) along z.

    Examples
    --------
    >>> cube = np.ones((4, 4, 4), bool)
    >>> low = slab_mesh_part(cube[:3], (1, 1, 1), 0.5, ((1, 0), (1, 1), (1, 1)), 0)
    >>> high = slab_mesh_part(cube[2:], (1, 1, 1), 0.5, ((0, 1), (1, 1), (1, 1)), 3)
    >>> [round(v, 2) for v in combine_slab_parts([low, high])]
    [81.19, 58.67, 58.67]
    """
    mesh = _mesh(_pad(mask, pad), spacing, level)
    if mesh is None:
        return 0.0, 0.0, np.empty((0, 3))
    verts, faces = mesh
    verts[:, 0] += z_offset * spacing[0]
    hull = verts
    if len(verts) > 3:
        try:
            hull = verts[ConvexHull(verts).vertices]
        except (QhullError, ValueError):
            pass
    return float(mesh_surface_area(verts, faces)), _signed_volume(verts, faces), hull


def combine_slab_parts(parts) -> tuple[float, float, float]:
    """(area, enclosed volume, hull volume) of an object from its slabs' parts.

    Examples
    --------
    >>> combine_slab_parts([])
    (nan, nan, nan)
    """
    if not parts:
        return np.nan, np.nan, np.nan
    points = np.concatenate([p[2] for p in parts])
    area = sum(p[0] for p in parts)
    if area == 0:
        return np.nan, np.nan, np.nan
    return area, abs(sum(p[1] for p in parts)), _hull_volume(points)


def crop_measures(crop: np.ndarray, ids: Sequence[int], boxes: Sequence[Sequence[int]],
                  spacing: Sequence[float], level: float, pad: bool) -> np.ndarray:
    """Mesh measures of several bubbles of one crop -> (k, 3) [area, enclosed, hull].

    ``boxes`` are the bounding boxes grown by one voxel and clipped to the volume,
    (z0, y0, x0, z1, y1, x1) relative to the crop, end exclusive, followed by how many voxels
    were clipped on each side (6 numbers). With ``pad`` the clipped sides get background, so
    the surface is closed; without it the crop stops at the volume's edge (the reference).

    Examples
    --------
    >>> crop = np.pad(np.full((4, 4, 4), 3), 1)
    >>> crop_measures(crop, [3], [(0, 0, 0, 6, 6, 6) + (0,) * 6], (1, 1, 1), 0.5, True).round(2)
    array([[81.19, 58.67, 58.67]])
    """
    out = np.full((len(ids), 3), np.nan)
    for i, (bid, box) in enumerate(zip(ids, boxes)):
        sub = crop[box[0]:box[3], box[1]:box[4], box[2]:box[5]] == bid
        clipped = [(box[6 + a], box[9 + a]) for a in range(3)]
        out[i] = mesh_measures(sub, spacing, level=level, pad=clipped if pad else False)
    return out
