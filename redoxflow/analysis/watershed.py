"""Split touching bubbles (films thinner than a voxel) with a distance-transform watershed."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..common.units import normalize_voxel_size
from ..errors import InputError

MAX_VOXELS = 2**31


def split_touching(mask: np.ndarray, *, spacing: Sequence[float] | float = 1.0,
                   min_distance: float = 3.0, h: float = 2.0,
                   connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Separate bubbles that touch through sub-voxel films: watershed of the distance map.

    Markers are the maxima of the Euclidean distance transform (with ``spacing``) that are
    at least ``h`` (in voxel units of the smallest spacing) above their surroundings and
    ``min_distance`` voxels apart; the watershed of the negated distance map, restricted to
    the mask, gives one id per bubble (ids in raster order of their first voxel).

    Parameters
    ----------
    mask : bool ndarray (z, y, x)
        The gas phase.
    spacing : float or (z, y, x)
        Voxel size (anisotropic volumes split correctly).
    min_distance : float
        Minimum distance between two bubble centres (voxels).
    h : float
        Dynamic of the distance maxima kept as markers (voxels); larger merges more.
    connectivity : {6, 18, 26}
        Neighbourhood of the watershed and of the components left without a marker.

    Returns
    -------
    labels : uint32 ndarray, shape (z, y, x)
        Ids 1..n in raster order, 0 outside the mask.
    n : int
        Number of bubbles.

    Examples
    --------
    >>> import numpy as np
    >>> z, y, x = np.ogrid[:12, :12, :20]
    >>> mask = (((z - 6)**2 + (y - 6)**2 + (x - 5)**2 <= 16)
    ...         | ((z - 6)**2 + (y - 6)**2 + (x - 12)**2 <= 16))  # two balls, one component
    >>> labels, n = split_touching(mask)
    >>> n, int(labels[6, 6, 5]), int(labels[6, 6, 12])
    (2, 1, 2)
    """
    from scipy import ndimage as ndi
    from skimage.feature import peak_local_max
    from skimage.morphology import h_maxima
    from skimage.segmentation import watershed

    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise InputError(f"mask has {mask.ndim} dimensions, expected 3 (z, y, x)")
    if mask.size > MAX_VOXELS:
        raise InputError(f"split_touching works in memory: {mask.size} voxels is too many; "
                         "split a sub-volume or a pyramid level")
    sp = np.asarray(normalize_voxel_size(spacing))
    mask = mask.astype(bool)
    if not mask.any():
        return np.zeros(mask.shape, np.uint32), 0
    dist = ndi.distance_transform_edt(mask, sampling=sp) / sp.min()
    peaks = h_maxima(dist, h).astype(bool)
    coords = peak_local_max(dist, min_distance=max(1, int(min_distance)), labels=peaks.astype(int),
                            exclude_border=False)
    markers = np.zeros(mask.shape, np.int32)
    markers[tuple(coords.T)] = np.arange(1, len(coords) + 1)
    structure = ndi.generate_binary_structure(3, {6: 1, 18: 2, 26: 3}[connectivity])
    ws = watershed(-dist, markers, mask=mask, connectivity=structure)
    # components without a marker keep their own id (watershed leaves them 0)
    rest, n_rest = ndi.label(mask & (ws == 0), structure=structure)
    ws = np.where(rest > 0, rest + len(coords), ws)
    return _raster_order(ws)


def _raster_order(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """Renumber ids 1..n in the raster order of each id's first voxel."""
    flat = labels.ravel()
    ids, first = np.unique(flat, return_index=True)
    keep = ids > 0
    ids, first = ids[keep], first[keep]
    order = ids[np.argsort(first)]
    lut = np.zeros(int(labels.max()) + 1, np.uint32)
    lut[order] = np.arange(1, len(order) + 1, dtype=np.uint32)
    return lut[labels], len(order)
