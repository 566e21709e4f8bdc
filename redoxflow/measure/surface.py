"""Per-bubble shape measures on crops: marching-cubes surface, mesh volume, convex hull."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


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
    """
    from scipy.spatial import ConvexHull, QhullError
    from skimage.measure import marching_cubes, mesh_surface_area

    vol = mask.astype(np.float32)
    if pad is True:
        vol = np.pad(vol, 1)
    elif pad is not False:
        vol = np.pad(vol, pad)
    if min(vol.shape) < 2:
        return np.nan, np.nan, np.nan
    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, spacing=tuple(spacing))
    except (ValueError, RuntimeError):
        return np.nan, np.nan, np.nan
    area = float(mesh_surface_area(verts, faces))
    tri = verts[faces]
    enclosed = abs(float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6.0)
    try:
        hull = float(ConvexHull(verts).volume)
    except (QhullError, ValueError):  # planar or line-like objects have no 3D hull
        hull = np.nan
    return area, enclosed, hull


def crop_measures(crop: np.ndarray, ids: Sequence[int], boxes: Sequence[Sequence[int]],
                  spacing: Sequence[float], level: float, pad: bool) -> np.ndarray:
    """Mesh measures of several bubbles of one crop -> (k, 3) [area, enclosed, hull].

    ``boxes`` are the bounding boxes grown by one voxel and clipped to the volume,
    (z0, y0, x0, z1, y1, x1) relative to the crop, end exclusive, followed by how many voxels
    were clipped on each side (6 numbers). With ``pad`` the clipped sides get background, so
    the surface is closed; without it the crop stops at the volume's edge (the reference).
    """
    out = np.full((len(ids), 3), np.nan)
    for i, (bid, box) in enumerate(zip(ids, boxes)):
        sub = crop[box[0]:box[3], box[1]:box[4], box[2]:box[5]] == bid
        clipped = [(box[6 + a], box[9 + a]) for a in range(3)]
        out[i] = mesh_measures(sub, spacing, level=level, pad=clipped if pad else False)
    return out
