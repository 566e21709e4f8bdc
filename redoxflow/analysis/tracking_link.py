"""Linking kernels of the tracker: pure functions of per-step bubble tables.

A step is a :class:`StepTable` (ids, centroids, volumes, equivalent radii, FOV contact), built
from :func:`redoxflow.measure.regionprops`. Linking two steps is

1. a prediction of every source bubble's position (constant velocity from its previous link,
   else the median velocity of its linked neighbours, else the rigid drift of the step);
2. gated candidate pairs (distance between prediction and target below a fraction of the
   bubble's radius, volume ratio below a bound) with a cost combining the normalised
   residual distance, the log volume ratio and the lack of overlap;
3. one global assignment with a no-link alternative for every source and target
   (:func:`assign`, the Jaqaman et al. 2008 augmented matrix solved as a sparse minimum-weight
   full bipartite matching by :func:`scipy.sparse.csgraph.min_weight_full_bipartite_matching`);
4. merges and splits found among the left-over sources and targets by volume conservation
   and proximity (:func:`find_merges`; a split is a merge with time reversed).

Nothing here reads a volume; :mod:`redoxflow.analysis.tracking` orchestrates.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np


@dataclass
class StepTable:
    """The bubbles of one step as the tracker sees them.

    Attributes
    ----------
    ids : int64 ndarray, shape (n,)
        Label ids.
    centroid : float ndarray, shape (n, 3)
        Centroids (z, y, x) in micrometres.
    volume : float ndarray, shape (n,)
        Volumes in cubic micrometres.
    voxels : int64 ndarray, shape (n,)
        Volumes in voxels.
    cut : bool ndarray, shape (n,)
        Touches the edge of the field of view.
    extent : float ndarray, shape (3,)
        Size of the field of view (micrometres).
    faces : bool ndarray, shape (n, 6), optional
        Which faces of the field of view (z-, z+, y-, y+, x-, x+) each bubble touches
        (default: all of them where ``cut``).

    Examples
    --------
    >>> import numpy as np
    >>> t = StepTable(np.array([1]), np.zeros((1, 3)), np.array([33.5]), np.array([33]),
    ...               np.array([False]), np.array([10.0, 10.0, 10.0]))
    >>> round(float(t.radius[0]), 2), len(t)
    (2.0, 1)
    """

    ids: np.ndarray
    centroid: np.ndarray
    volume: np.ndarray
    voxels: np.ndarray
    cut: np.ndarray
    extent: np.ndarray
    faces: np.ndarray | None = None

    def __post_init__(self):
        if self.faces is None:
            self.faces = np.repeat(np.asarray(self.cut, bool)[:, None], 6, axis=1)

    def subset(self, index: np.ndarray) -> StepTable:
        """The bubbles at ``index`` (positions, not ids)."""
        return StepTable(self.ids[index], self.centroid[index], self.volume[index],
                         self.voxels[index], self.cut[index], self.extent,
                         self.faces[index])

    @property
    def radius(self) -> np.ndarray:
        """Equivalent-sphere radius of each bubble (micrometres)."""
        return np.cbrt(3 * np.maximum(self.volume, 0) / (4 * np.pi))

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class Gates:
    """Gating and cost weights of the linking.

    Attributes
    ----------
    displacement_factor : float
        Largest distance between a predicted and an observed centroid, as a fraction of the
        source bubble's equivalent radius (the default gate, derived from the data).
    max_displacement : float or None
        Absolute cap on that distance (micrometres); None: no cap.
    min_displacement : float
        Floor of the gate (micrometres), so that tiny bubbles can move by a voxel.
    max_volume_ratio : float
        Largest ratio between the larger and the smaller volume of a link (squared for
        bubbles cut by the field of view, whose visible volume changes as they move).
    overlap_weight : float
        Weight of ``1 - shared / smaller volume`` in the cost.
    merge_volume_ratio : float
        Largest ratio between a merged (split) bubble's volume and its parts' summed volume
        (gas volume is conserved: tight).
    merge_centre_factor : float
        The parts' volume-weighted centroid lies within this fraction of the distance gate
        of the merged (split) bubble's centroid.

    Examples
    --------
    >>> g = Gates()
    >>> g.displacement_factor, g.max_volume_ratio
    (0.35, 1.5)
    """

    displacement_factor: float = 0.35
    max_displacement: float | None = None
    min_displacement: float = 1.0
    max_volume_ratio: float = 1.5
    overlap_weight: float = 0.5
    merge_volume_ratio: float = 1.13
    merge_centre_factor: float = 0.5

    def radius_gate(self, radius: np.ndarray) -> np.ndarray:
        """Distance gate (micrometres) of bubbles of the given equivalent radius."""
        gate = np.maximum(self.displacement_factor * np.asarray(radius, float),
                          self.min_displacement)
        if self.max_displacement is not None:
            gate = np.minimum(gate, self.max_displacement)
        return gate

    @property
    def alternative(self) -> float:
        """Cost of leaving a source or a target unlinked (above half the largest link
        cost, so every gated link beats a death plus a birth)."""
        return 1.05 * (2.0 + self.overlap_weight) / 2


def neighbour_velocity(points: np.ndarray, known: np.ndarray, velocity: np.ndarray,
                       fallback: np.ndarray, k: int = 8, *,
                       exclude_self: bool = False) -> np.ndarray:
    """Velocity of each point: its own where known, else the median of its ``k`` nearest
    points whose velocity is known, else ``fallback``.

    With ``exclude_self`` every point gets the median of its ``k`` nearest *other* known
    points (a local motion field that does not use the point's own displacement).

    Parameters
    ----------
    points : float ndarray, shape (n, 3)
        Positions.
    known : bool ndarray, shape (n,)
        Whose velocity is known.
    velocity : float ndarray, shape (n, 3)
        Velocities (rows where ``known`` is False are ignored).
    fallback : float ndarray, shape (3,)
        The velocity used when no point's velocity is known.
    k : int
        Neighbours in the median.
    exclude_self : bool
        Estimate every point from its neighbours only.

    Returns
    -------
    float ndarray, shape (n, 3)

    Examples
    --------
    >>> import numpy as np
    >>> p = np.array([[0.0, 0, 0], [0, 0, 1], [0, 0, 2]])
    >>> v = np.array([[0.0, 0, 3], [0, 0, 0], [0, 0, 5]])
    >>> neighbour_velocity(p, np.array([True, False, True]), v, np.zeros(3))[:, 2].tolist()
    [3.0, 4.0, 5.0]
    """
    from scipy.spatial import cKDTree

    out = np.array(velocity, float, copy=True).reshape(-1, 3)
    known = np.asarray(known, bool)
    ask = np.ones(len(out), bool) if exclude_self else ~known
    if not ask.any():
        return out
    n_known = int(known.sum())
    if n_known <= int(exclude_self):
        out[ask] = fallback
        return out
    kk = min(k + int(exclude_self), n_known)
    dist, idx = cKDTree(points[known]).query(points[ask], k=kk)
    idx = np.asarray(idx).reshape(int(ask.sum()), kk)
    known_vel = out[known][idx]
    if exclude_self:  # drop each known point itself (distance 0, first neighbour)
        own = np.asarray(dist).reshape(idx.shape)[:, 0] == 0
        own &= known[ask]
        known_vel = np.where(own[:, None, None], np.roll(known_vel, -1, axis=1), known_vel)
        known_vel = known_vel[:, :max(kk - 1, 1)]
    out[ask] = np.median(known_vel, axis=1)
    return out


def candidates(src: StepTable, dst: StepTable, predicted: np.ndarray, gates: Gates,
               shared: np.ndarray | None = None, steps: int = 1,
               motion: np.ndarray | None = None):
    """Gated candidate links and their costs.

    For a pair where a bubble is cut by the field of view (both cut: by a common face), the
    residual along the cut axes is forgiven up to ``R min(1, |log volume ratio| / log 2)``
    with ``R`` the larger equivalent radius (the visible centroid of a bubble entering or
    leaving lags its centre as its visible fraction changes), and the volume may change by
    the volume ratio gate or by the slab a sphere of radius ``1.5 R`` sweeps through the
    cut faces, ``pi (1.5 R)^2 (|motion across them| + min_displacement)``.

    Parameters
    ----------
    src, dst : StepTable
        Sources (earlier step) and targets.
    predicted : float ndarray, shape (len(src), 3)
        Predicted centroid of every source at the targets' step.
    gates : Gates
    shared : int ndarray, shape (k, 3), optional
        Rows (source id, target id, shared voxels) from
        :func:`redoxflow.analysis.tracking.overlaps`.
    steps : int
        Steps between sources and targets (2 for gap closing widens the gate by sqrt 2).
    motion : float ndarray, shape (len(src), 3), optional
        Each source's predicted displacement (micrometres; default 0).

    Returns
    -------
    rows, cols : int64 ndarray
        Indices into ``src`` and ``dst`` of the candidate pairs.
    cost : float ndarray
        Their costs (between 0 and ``2 + overlap_weight``).
    residual : float ndarray
        Distance between prediction and target centroid (micrometres).
    shared_voxels : int64 ndarray

    Examples
    --------
    >>> import numpy as np
    >>> a = StepTable(np.array([1]), np.array([[5.0, 5, 5]]), np.array([100.0]),
    ...               np.array([100]), np.array([False]), np.full(3, 20.0))
    >>> b = StepTable(np.array([1, 2]), np.array([[5.0, 5, 6], [5, 5, 15]]),
    ...               np.array([110.0, 100]), np.array([110, 100]), np.array([False, False]),
    ...               np.full(3, 20.0))
    >>> rows, cols, cost, res, sh = candidates(a, b, a.centroid, Gates())
    >>> cols.tolist(), res.tolist()
    ([0], [1.0])
    """
    from scipy.spatial import cKDTree

    empty = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(0),
             np.zeros(0, np.int64))
    if not len(src) or not len(dst):
        return empty
    r_src, r_dst = src.radius, dst.radius
    gate = gates.radius_gate(r_src) * np.sqrt(steps)
    r_big = max(float(r_src.max()), float(r_dst.max()))
    search = np.where(src.cut, gate + r_big, gate)
    hits = cKDTree(dst.centroid).query_ball_point(predicted, r=search)
    counts = np.fromiter((len(h) for h in hits), np.int64, len(hits))
    if not counts.sum():
        return empty
    rows = np.repeat(np.arange(len(src)), counts)
    cols = np.fromiter((j for h in hits for j in h), np.int64, int(counts.sum()))
    both = src.cut[rows] & dst.cut[cols]
    shared_face = (src.faces[rows] & dst.faces[cols]).any(axis=1)
    ok = ~both | shared_face  # a bubble cut at two steps is cut by the same face
    rows, cols = rows[ok], cols[ok]
    cut = src.cut[rows] | dst.cut[cols]
    axes = (src.faces[rows] | dst.faces[cols]).reshape(-1, 3, 2).any(axis=2)
    radius = np.maximum(r_src[rows], r_dst[cols])
    v_src, v_dst = np.maximum(src.volume[rows], 1e-12), np.maximum(dst.volume[cols], 1e-12)
    ln_ratio = np.abs(np.log(v_dst / v_src))
    delta = dst.centroid[cols] - predicted[rows]
    # the visible centroid's lag changes with the visible fraction: forgive along the cut
    # axes up to R, in proportion to the volume change
    lag = radius * np.minimum(ln_ratio / np.log(2), 1)
    forgiven = np.where(axes, np.sign(delta) * np.maximum(np.abs(delta) - lag[:, None], 0),
                        delta)
    residual = np.linalg.norm(forgiven, axis=1)
    gate_pair = np.where(cut, gates.radius_gate(radius) * np.sqrt(steps), gate[rows])
    ln_gate = np.full(len(rows), np.log(gates.max_volume_ratio))
    vol_term = ln_ratio / ln_gate
    if cut.any():
        move = np.zeros((len(src), 3)) if motion is None else np.asarray(motion, float)
        normal = np.linalg.norm(np.where(axes, move[rows], 0), axis=1)
        # the visible part's equivalent radius underestimates the bubble's: 1.5 R
        sweep = np.pi * (1.5 * radius) ** 2 * (normal + gates.min_displacement) + 1e-12
        slab = np.abs(v_dst - v_src) / sweep
        vol_term = np.where(cut, np.minimum(vol_term, slab), vol_term)
    keep = (vol_term <= 1) & (residual <= gate_pair)
    rows, cols, residual, vol_term, gate_pair = (rows[keep], cols[keep], residual[keep],
                                                 vol_term[keep], gate_pair[keep])
    sh = np.zeros(len(rows), np.int64)
    if shared is not None and len(shared) and len(rows):
        src_pos = {int(v): i for i, v in enumerate(src.ids.tolist())}
        dst_pos = {int(v): i for i, v in enumerate(dst.ids.tolist())}
        pair = {}
        for a, b, n in shared.tolist():
            if a in src_pos and b in dst_pos:
                pair[(src_pos[a], dst_pos[b])] = n
        sh = np.fromiter((pair.get((r, c), 0) for r, c in zip(rows.tolist(), cols.tolist())),
                         np.int64, len(rows))
    smaller = np.minimum(src.voxels[rows], dst.voxels[cols]).astype(float)
    overlap = np.minimum(sh / np.maximum(smaller, 1), 1.0)
    cost = ((residual / gate_pair) ** 2 + vol_term ** 2
            + gates.overlap_weight * (1 - overlap))
    return rows, cols, cost, residual, sh


def assign(n_src: int, n_dst: int, rows: np.ndarray, cols: np.ndarray, cost: np.ndarray,
           alternative: float) -> np.ndarray:
    """One-to-one links of minimum total cost, each source and target free to stay unlinked.

    The augmented cost matrix of Jaqaman et al. (Nat. Methods 2008): sources x targets with
    the candidate costs, a diagonal of ``alternative`` for "no successor" and for "no
    predecessor", and the transposed candidate pattern between the two dummy sets. It is
    solved sparse (scipy's LAPJVsp), so thousands of bubbles cost little.

    Parameters
    ----------
    n_src, n_dst : int
        Numbers of sources and targets.
    rows, cols, cost : ndarray
        Candidate pairs (indices) and their costs.
    alternative : float
        Cost of leaving one source or one target unlinked.

    Returns
    -------
    int64 ndarray, shape (n_src,)
        Index of each source's target, -1 when unlinked.

    Examples
    --------
    >>> import numpy as np
    >>> assign(2, 2, np.array([0, 0, 1]), np.array([0, 1, 1]), np.array([0.1, 0.2, 0.1]),
    ...        1.0).tolist()
    [0, 1]
    >>> assign(1, 1, np.array([0]), np.array([0]), np.array([2.5]), 1.0).tolist()
    [-1]
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import min_weight_full_bipartite_matching

    out = np.full(n_src, -1, np.int64)
    if not n_src or not n_dst or not len(rows):
        return out
    offset = 1.0  # every full matching has n_src + n_dst edges: an offset changes nothing
    i_src, i_dst = np.arange(n_src), np.arange(n_dst)
    r = np.concatenate([rows, i_src, n_src + i_dst, n_src + cols])
    c = np.concatenate([cols, n_dst + i_src, i_dst, n_dst + rows])
    w = np.concatenate([cost + offset, np.full(n_src + n_dst, alternative + offset),
                        np.full(len(rows), offset)])
    n = n_src + n_dst
    graph = coo_matrix((w, (r, c)), shape=(n, n)).tocsr()
    _, match = min_weight_full_bipartite_matching(graph)
    linked = match[:n_src] < n_dst
    out[linked] = match[:n_src][linked]
    return out


def find_merges(parts: StepTable, parts_pos: np.ndarray, whole: StepTable,
                whole_pos: np.ndarray, match: np.ndarray, gates: Gates,
                max_parts: int = 3) -> list[tuple[int, list[int]]]:
    """Bubbles of one side that are the union of several of the other side.

    For merges, ``parts`` are the sources (at their predicted positions) and ``whole`` the
    targets; for splits the roles swap (targets are the parts, sources at their predicted
    positions the wholes). A whole ``j`` takes the parts left without a link that touch it
    (centre within the sum of the equivalent radii) together with the part the assignment
    gave it, when their summed volume matches its volume (``merge_volume_ratio``) and their
    volume-weighted centroid its centroid (``merge_centre_factor`` x the distance gate)
    better than the assigned part alone.

    Parameters
    ----------
    parts, whole : StepTable
        The two steps, as above.
    parts_pos, whole_pos : float ndarray, shape (n, 3)
        Positions compared (predicted for sources, observed for targets).
    match : int64 ndarray, shape (len(parts),)
        One-to-one assignment: index into ``whole`` or -1.
    gates : Gates
    max_parts : int
        Largest number of parts of one whole.

    Returns
    -------
    list of (int, list of int)
        ``(whole index, part indices)`` with at least two parts each; a part is used once.

    Examples
    --------
    >>> import numpy as np
    >>> ext = np.full(3, 50.0)
    >>> two = StepTable(np.array([1, 2]), np.array([[10.0, 10, 8], [10, 10, 14]]),
    ...                 np.array([1000.0, 500]), np.array([1000, 500]),
    ...                 np.zeros(2, bool), ext)
    >>> one = StepTable(np.array([1]), np.array([[10.0, 10, 10]]), np.array([1500.0]),
    ...                 np.array([1500]), np.zeros(1, bool), ext)
    >>> find_merges(two, two.centroid, one, one.centroid, np.array([0, -1]), Gates())
    [(0, [0, 1])]
    """
    from scipy.spatial import cKDTree

    n_parts, n_whole = len(parts), len(whole)
    if n_parts < 2 or not n_whole:
        return []
    free = match < 0
    if not free.any():
        return []
    r_part, r_whole = parts.radius, whole.radius
    owner = np.full(n_whole, -1, np.int64)
    owner[match[~free]] = np.flatnonzero(~free)
    reach = r_whole.max() + r_part.max()
    free_idx = np.flatnonzero(free)
    hits = cKDTree(whole_pos).query_ball_point(parts_pos[free_idx], r=reach)
    near: dict[int, list[int]] = {}
    for p, hs in zip(free_idx.tolist(), hits):
        for j in hs:
            if np.linalg.norm(parts_pos[p] - whole_pos[j]) <= r_whole[j] + r_part[p]:
                near.setdefault(j, []).append(p)
    found = []
    for j, loose in near.items():
        base = [int(owner[j])] if owner[j] >= 0 else []
        gate = float(gates.radius_gate(r_whole[j])) * gates.merge_centre_factor
        ln_gate = np.log(gates.merge_volume_ratio)

        def score(members, j=j, gate=gate, ln_gate=ln_gate):
            m = np.asarray(members)
            vol = parts.volume[m].sum()
            centre = (parts_pos[m] * parts.volume[m, None]).sum(0) / max(vol, 1e-12)
            d = np.linalg.norm(centre - whole_pos[j])
            lr = abs(np.log(max(whole.volume[j], 1e-12) / max(vol, 1e-12)))
            if d > gate or lr > ln_gate:
                return np.inf
            return (d / gate) ** 2 + (lr / ln_gate) ** 2

        single = score(base) if base else np.inf
        best, best_cost = None, single
        loose = sorted(loose, key=lambda p: -parts.volume[p])[:6]
        for k in range(1, max_parts - len(base) + 1):
            for extra in combinations(loose, k):
                members = base + list(extra)
                if len(members) < 2:
                    continue
                c = score(members)
                if c < best_cost:
                    best, best_cost = members, c
        if best is not None:
            found.append((best_cost, j, best))
    used: set[int] = set()
    out = []
    for _, j, members in sorted(found, key=lambda f: f[0]):
        extra = [p for p in members if match[p] < 0]
        if used.intersection(extra):
            continue
        used.update(extra)
        out.append((int(j), [int(p) for p in members]))
    return sorted(out)
