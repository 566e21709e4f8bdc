"""Pure per-block partial sums and their exact reduction into per-bubble moments."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._backend import get_array_module, group_min_max

PAIRS = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))


def block_moments(labels, origin: Sequence[int]) -> dict:
    """Partial sums of one label block, computed on the block's backend (NumPy or CuPy).

    Returns ids, count ``n``, ``mean`` (global voxel coords, float64), centred second moments
    ``m2`` (k, 3, 3), and the global ``bbmin``/``bbmax`` (inclusive voxel indices), as arrays
    of the block's backend. Second moments are centred per block, so the reduction stays
    exact for any coordinates.

    Examples
    --------
    >>> m = block_moments(np.array([[[0, 3, 3, 5]]]), (2, 0, 0))
    >>> m["ids"].tolist(), m["n"].tolist(), m["mean"][:, 2].tolist(), m["bbmax"][0].tolist()
    ([3, 5], [2, 1], [1.5, 3.0], [2, 0, 2])
    """
    xp = get_array_module(labels)
    flat = labels.ravel()
    idx = xp.flatnonzero(flat)
    if idx.size == 0:
        return empty_moments()
    ids, inv = xp.unique(flat[idx], return_inverse=True)
    inv = inv.ravel()
    icoords = xp.unravel_index(idx, labels.shape)
    coords = [c.astype(xp.float64) for c in icoords]
    n = xp.bincount(inv).astype(xp.int64)
    k = int(ids.size)
    s = xp.stack([xp.bincount(inv, weights=c, minlength=k) for c in coords], axis=1)
    local_mean = s / n[:, None]
    m2 = xp.empty((k, 3, 3), dtype=xp.float64)
    for a, b in PAIRS:
        q = xp.bincount(inv, weights=coords[a] * coords[b], minlength=k)
        m2[:, a, b] = m2[:, b, a] = q - n * local_mean[:, a] * local_mean[:, b]
    bbmin = xp.empty((k, 3), dtype=xp.int64)
    bbmax = xp.empty((k, 3), dtype=xp.int64)
    for a in range(3):
        lo, hi = group_min_max(inv, icoords[a], k, labels.shape[a])
        bbmin[:, a], bbmax[:, a] = lo + origin[a], hi + origin[a]
    mean = local_mean + xp.asarray(origin, dtype=xp.float64)
    return {"ids": ids.astype(xp.uint64), "n": n, "mean": mean, "m2": m2, "bbmin": bbmin,
            "bbmax": bbmax}


def empty_moments() -> dict[str, np.ndarray]:
    """Partial sums of a block without labels (host arrays of length 0).

    Examples
    --------
    >>> sorted(empty_moments())
    ['bbmax', 'bbmin', 'ids', 'm2', 'mean', 'n']
    """
    return {"ids": np.zeros(0, np.uint64), "n": np.zeros(0, np.int64),
            "mean": np.zeros((0, 3)), "m2": np.zeros((0, 3, 3)),
            "bbmin": np.zeros((0, 3), np.int64), "bbmax": np.zeros((0, 3), np.int64)}


def reduce_moments(parts: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Combine per-block partial sums of the same ids (parallel-axis theorem, exact).

    Examples
    --------
    >>> a = block_moments(np.array([[[1, 1, 0, 2]]]), (0, 0, 0))
    >>> b = block_moments(np.array([[[1, 0, 0, 2]]]), (1, 0, 0))
    >>> m = reduce_moments([a, b])
    >>> m["ids"].tolist(), m["n"].tolist(), m["bbmax"].tolist()
    ([1, 2], [3, 2], [[1, 0, 1], [1, 0, 3]])
    """
    parts = [p for p in parts if len(p["ids"])]
    if not parts:
        return empty_moments()
    cat = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    ids, inv = np.unique(cat["ids"], return_inverse=True)
    k = len(ids)
    n = np.bincount(inv, weights=cat["n"], minlength=k).astype(np.int64)
    w = cat["n"].astype(np.float64)
    mean = np.stack([np.bincount(inv, weights=w * cat["mean"][:, a], minlength=k)
                     for a in range(3)], axis=1) / n[:, None]
    d = cat["mean"] - mean[inv]
    m2 = np.empty((k, 3, 3))
    for a, b in PAIRS:
        v = cat["m2"][:, a, b] + w * d[:, a] * d[:, b]
        m2[:, a, b] = m2[:, b, a] = np.bincount(inv, weights=v, minlength=k)
    bbmin = np.full((k, 3), np.iinfo(np.int64).max)
    bbmax = np.full((k, 3), -1, dtype=np.int64)
    np.minimum.at(bbmin, inv, cat["bbmin"])
    np.maximum.at(bbmax, inv, cat["bbmax"])
    return {"ids": ids, "n": n, "mean": mean, "m2": m2, "bbmin": bbmin, "bbmax": bbmax}


def principal_axes(cov: np.ndarray, degenerate: float = np.nan, *, canonical: bool = True):
    """Eigen-decomposition of (k, 3, 3) covariances, largest first, with derived shape numbers.

    Returns eigenvalues (k, 3) descending, the major-axis unit vector (k, 3) in (z, y, x) with
    its sign canonicalised (x >= 0, then y >= 0, then z >= 0) unless ``canonical`` is False,
    elongation sqrt(l1/l2) and
    flatness sqrt(l2/l3) (``degenerate`` where the denominator is 0).

    Examples
    --------
    >>> vals, major, elong, flat = principal_axes(np.diag([4.0, 1.0, 1.0])[None])
    >>> vals.tolist(), major.tolist(), elong.tolist(), flat.tolist()
    ([[4.0, 1.0, 1.0]], [[1.0, 0.0, 0.0]], [2.0], [1.0])
    """
    if len(cov) == 0:
        return np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0), np.zeros(0)
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals[:, ::-1], 0.0, None)
    major = vecs[:, :, -1].copy()
    scale = np.abs(vals[:, :1]).clip(1e-300)
    vals = np.where(vals < 1e-12 * scale, 0.0, vals)
    if canonical:
        major = canonical_sign(major)
    with np.errstate(divide="ignore", invalid="ignore"):
        elong = np.where(vals[:, 1] > 0, np.sqrt(vals[:, 0] / vals[:, 1]), degenerate)
        flat = np.where(vals[:, 2] > 0, np.sqrt(vals[:, 1] / vals[:, 2]), degenerate)
    return vals, major, elong, flat


def canonical_sign(vec: np.ndarray) -> np.ndarray:
    """Flip axis vectors so the first non-zero component among (x, y, z) is positive.

    Examples
    --------
    >>> canonical_sign(np.array([[0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])).tolist()
    [[-0.0, -0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    comps = vec[:, ::-1]
    first = np.argmax(np.abs(comps) > 1e-12, axis=1)
    sign = np.sign(comps[np.arange(len(vec)), first])
    return vec * np.where(sign == 0, 1.0, sign)[:, None]


def orientation_angles(vec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """theta = atan2(e_y, e_z) and phi = acos(e_x) in degrees, e in (z, y, x) order.

    Examples
    --------
    >>> theta, phi = orientation_angles(np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]))
    >>> theta.tolist(), phi.tolist()
    ([0.0, 0.0], [90.0, 0.0])
    """
    theta = np.degrees(np.arctan2(vec[:, 1], vec[:, 0]))
    phi = np.degrees(np.arccos(np.clip(vec[:, 2], -1.0, 1.0)))
    return theta, phi
