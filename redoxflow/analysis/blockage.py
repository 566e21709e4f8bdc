"""Membrane blockage on one block: membrane voxels with a 6-neighbour bubble voxel."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def block_contacts(membrane: np.ndarray, labels: np.ndarray, side_lut: np.ndarray,
                   spacing: Sequence[float]) -> dict[str, np.ndarray]:
    """Contacts between membrane voxels and bubble voxels in one block with a 1-voxel halo.

    ``membrane`` (bool) and ``labels`` carry one voxel of halo on every side (zeros outside
    the volume). ``side_lut[label]`` gives each bubble's half-cell code (0-3).

    Parameters
    ----------
    membrane : bool ndarray, shape (bz + 2, by + 2, bx + 2)
        The wall's voxels (membrane, or any other wall) with the halo.
    labels : integer ndarray, shape (bz + 2, by + 2, bx + 2)
        Bubble labels with the halo (0 background).
    side_lut : uint8 ndarray, shape (max label + 1,)
        Half-cell code of each label.
    spacing : (z, y, x) float
        Voxel size; a face normal to axis ``a`` has the area of the other two sides.

    Returns
    -------
    dict
        ``blocked`` (int64 (4,): membrane voxels with any bubble 6-neighbour, per side
        code), ``blocked_any`` (those counted once whatever the side), ``row_map``
        (int32 (4, bz, by): blocked membrane voxels per image row and side), and per bubble
        ``ids`` (uint64 (k,)) with the contact ``area`` (float (k,): summed shared voxel
        faces, in spacing units^2).

    Examples
    --------
    >>> import numpy as np
    >>> membrane = np.zeros((3, 3, 4), bool); membrane[1, 1, 1] = True
    >>> labels = np.zeros((3, 3, 4), np.uint32); labels[1, 1, 2] = 7
    >>> side_lut = np.zeros(8, np.uint8); side_lut[7] = 1
    >>> r = block_contacts(membrane, labels, side_lut, (2.0, 1.0, 1.0))
    >>> r["blocked"].tolist(), r["ids"].tolist(), r["area"].tolist(), r["row_map"].shape
    ([0, 1, 0, 0], [7], [2.0], (4, 1, 1))
    """
    padded = membrane.shape
    core_shape = tuple(n - 2 for n in padded)
    bz, by = core_shape[:2]
    face_area = [spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]]
    # work on the wall's voxels only (a few % of the block): their padded flat indices
    cz, cy, cx = np.unravel_index(np.flatnonzero(membrane[1:-1, 1:-1, 1:-1]), core_shape)
    at = ((cz + 1) * padded[1] + (cy + 1)) * padded[2] + (cx + 1)
    strides = (padded[1] * padded[2], padded[2], 1)
    flat = np.ascontiguousarray(labels).ravel()
    sides = np.zeros(len(at), np.uint8)  # bit s: touches a bubble of half-cell code s
    ids, areas = [], []
    for axis in range(3):
        for step in (-1, 1):
            lab = flat[at + step * strides[axis]]
            hit = lab > 0
            if not hit.any():
                continue
            lab = lab[hit]
            sides[hit] |= np.left_shift(1, side_lut[lab]).astype(np.uint8)
            ids.append(lab)
            areas.append(np.full(lab.size, face_area[axis]))
    if ids:
        uniq, inv = np.unique(np.concatenate(ids), return_inverse=True)
        area = np.bincount(inv, weights=np.concatenate(areas))
    else:
        uniq, area = np.zeros(0, labels.dtype), np.zeros(0)
    bits = [(sides >> s) & 1 for s in range(4)]
    row = cz * by + cy
    row_map = np.stack([np.bincount(row, weights=b, minlength=bz * by) for b in bits])
    return {"blocked": np.array([int(b.sum()) for b in bits], dtype=np.int64),
            "blocked_any": np.int64((sides > 0).sum()),
            "row_map": row_map.reshape(4, bz, by).astype(np.int32),
            "ids": uniq.astype(np.uint64), "area": area}
