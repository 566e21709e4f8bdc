"""Electrode separation: the membrane as a surface x = f(z, y), half-cells, the cell region.

Pure functions on small 2D maps (one value per image row); the orchestration in
:mod:`redoxflow.analysis.masks` builds the maps with dask reductions over the class volume.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

OUTSIDE, LOW, MEMBRANE, HIGH = 0, 1, 2, 3


def membrane_band(xsum: np.ndarray, count: np.ndarray):
    """The membrane band of each row: centred on its voxels' mean x, as wide as their count.

    For a solid run first..last this is exactly (first - 0.5, last + 0.5), so a voxel is on
    the low side when x < low and on the high side when x > high (pixel-exact); a row whose
    membrane has gaps gets a compact band at the membrane's centre instead of the full
    first..last span, so bubbles caught in the gaps are assigned to a half-cell.

    Parameters
    ----------
    xsum : ndarray, shape (z, y)
        Sum of the membrane voxels' x per row.
    count : ndarray, shape (z, y)
        Number of membrane voxels per row.

    Returns
    -------
    low, high : float ndarray, shape (z, y)
        The band's faces (NaN where a row has no membrane).

    Examples
    --------
    >>> import numpy as np
    >>> low, high = membrane_band(np.array([12.0, 8.0]), np.array([3, 1]))
    >>> low.tolist(), high.tolist()  # voxels 3, 4, 5 and voxel 8
    ([2.5, 7.5], [5.5, 8.5])
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        mid = xsum / count
    return mid - count / 2.0, mid + count / 2.0


def fill_missing(first: np.ndarray, last: np.ndarray, present: np.ndarray):
    """Fill rows without membrane from the nearest rows that have one (2D nearest neighbour).

    Rows with membrane keep their exact positions; a missing row takes the
    positions of the closest row (in the (z, y) plane) that has membrane, so a gap never
    re-cuts whole slices.

    Parameters
    ----------
    first, last : ndarray, shape (z, y)
        Positions per row (any values where ``present`` is False).
    present : bool ndarray, shape (z, y)
        Rows that have membrane.

    Returns
    -------
    first, last : float ndarray, shape (z, y)
        Filled maps (NaN everywhere when there is no membrane).

    Examples
    --------
    >>> import numpy as np
    >>> present = np.array([[True, False], [False, False]])
    >>> first, last = fill_missing(np.full((2, 2), 4), np.full((2, 2), 6), present)
    >>> first.tolist(), last.tolist()
    ([[4.0, 4.0], [4.0, 4.0]], [[6.0, 6.0], [6.0, 6.0]])
    """
    from scipy.ndimage import distance_transform_edt

    if not present.any():
        nan = np.full(first.shape, np.nan)
        return nan, nan.copy()
    if present.all():
        return first.astype(float), last.astype(float)
    first, last = np.where(present, first, 0), np.where(present, last, 0)
    _, (iz, iy) = distance_transform_edt(~present, return_indices=True)
    return first[iz, iy].astype(float), last[iz, iy].astype(float)


def utile_cuts(first: np.ndarray, last: np.ndarray, present: np.ndarray):
    """The reference's row-wise cut positions, including its per-slice fallback.

    For each image row the reference keeps x >= first membrane voxel in the right half and
    x < last membrane voxel in the left half. A row without membrane that follows a row with
    membrane in the same slice re-cuts every row of that slice at the running mean of the
    first positions seen so far (rounded half to even); cuts only ever grow the removed part.

    Parameters
    ----------
    first, last : int ndarray, shape (z, y)
        First and last membrane voxel along x per row.
    present : bool ndarray, shape (z, y)
        Rows that have membrane.

    Returns
    -------
    right_start, left_stop : int64 ndarray, shape (z, y)
        The right half is x >= right_start, the left x < left_stop.

    Examples
    --------
    >>> import numpy as np
    >>> first, last = np.array([[3, 5, 0]]), np.array([[4, 6, -1]])
    >>> right, left = utile_cuts(first, last, np.array([[True, True, False]]))
    >>> right.tolist(), left.tolist()  # row 2 has none: the slice is re-cut at mean 4
    ([[4, 5, 4]], [[4, 4, 4]])
    """
    nz, ny = first.shape
    right = np.where(present, first, 0).astype(np.int64)
    big = np.iinfo(np.int64).max
    left = np.where(present, last, big).astype(np.int64)
    count = np.cumsum(present, axis=1)
    total = np.cumsum(np.where(present, first, 0), axis=1)
    fallback = ~present & (count > 0)
    for z in np.flatnonzero(fallback.any(axis=1)):
        means = np.round(total[z, fallback[z]] / count[z, fallback[z]]).astype(np.int64)
        right[z] = np.maximum(right[z], means.max())
        left[z] = np.minimum(left[z], means.min())
    return right, left


def check_sheet(first: np.ndarray, last: np.ndarray, present: np.ndarray, width: int) -> None:
    """Raise a clear error when class 2 is not a sheet across x (the membrane's geometry).

    A sheet is found in at least half of the (z, y) rows with a median thickness of at most
    a third of the width.

    Parameters
    ----------
    first, last : int ndarray, shape (z, y)
        First and last membrane voxel along x per row.
    present : bool ndarray, shape (z, y)
        Rows that have membrane (none at all: nothing is checked).
    width : int
        The volume's size along x.

    Raises
    ------
    InputError
        When class 2 is not such a sheet (wrong class ids or axis order).

    Examples
    --------
    >>> import numpy as np
    >>> present = np.ones((2, 2), bool)
    >>> check_sheet(np.full((2, 2), 5), np.full((2, 2), 6), present, 12)  # 2 voxels thick
    >>> check_sheet(np.zeros((2, 2), int), np.full((2, 2), 9), present, 12)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: class 2 (membrane) is not a sheet across the x axis: ...
    """
    if not present.any():
        return
    thickness = np.median((last - first + 1)[present])
    coverage = present.mean()
    if coverage < 0.5 or thickness > width / 3:
        raise InputError(
            f"class 2 (membrane) is not a sheet across the x axis: it is found in "
            f"{coverage:.0%} of the image rows with a median thickness of {thickness:.0f} of "
            f"{width} voxels; check the class ids (0 electrolyte, 1 bubble, 2 membrane, "
            "3 gasket) and that axis order is (z, y, x) with the membrane normal along x")


def side_of_points(points: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Half-cell code (LOW or HIGH) of voxel-coordinate points (k, 3) (z, y, x).

    A point is on the side of the membrane band's mid-surface it lies on (bubbles cannot be
    inside the membrane; a centroid in the band belongs to the nearer side); OUTSIDE where
    the band is unknown.

    Parameters
    ----------
    points : float ndarray, shape (k, 3)
        Voxel coordinates (z, y, x); z and y are rounded to pick the row.
    low, high : float ndarray, shape (z, y)
        The membrane band per row (:func:`membrane_band`, filled).

    Returns
    -------
    uint8 ndarray, shape (k,)
        ``LOW`` (1), ``HIGH`` (3) or ``OUTSIDE`` (0).

    Examples
    --------
    >>> import numpy as np
    >>> band_low, band_high = np.full((1, 1), 4.5), np.full((1, 1), 5.5)
    >>> side_of_points(np.array([[0.0, 0, 1], [0, 0, 9]]), band_low, band_high).tolist()
    [1, 3]
    """
    if len(points) == 0:
        return np.zeros(0, np.uint8)
    z = np.clip(np.rint(points[:, 0]).astype(int), 0, low.shape[0] - 1)
    y = np.clip(np.rint(points[:, 1]).astype(int), 0, low.shape[1] - 1)
    mid = (low[z, y] + high[z, y]) / 2
    code = np.where(points[:, 2] < mid, LOW, HIGH).astype(np.uint8)
    code[np.isnan(mid)] = OUTSIDE
    return code
