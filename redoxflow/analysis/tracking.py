"""Bubble tracking through a series of label volumes.

:func:`track` links the bubbles of consecutive steps by one global assignment over a cost of
predicted position (constant velocity), volume change and overlap, with gating, gap closing
over one missed step and split/merge detection by volume conservation
(:mod:`redoxflow.analysis.tracking_link` holds the kernels). It reads two steps at a time.
:func:`link` and :func:`assign_tracks` are the older overlap-only linking (IoU criteria).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..common.units import normalize_voxel_size
from ..errors import InputError
from ..io.volume import as_volume
from ..measure import regionprops
from .tracking_link import Gates, StepTable, assign, candidates, find_merges, neighbour_velocity

EVENTS = ["continue", "split", "merge", "split+merge"]


def block_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 3) rows (id in a, id in b, voxels shared) of one block pair; background skipped.

    Parameters
    ----------
    a, b : integer ndarray, same shape
        The same block of two label volumes.

    Returns
    -------
    int64 ndarray, shape (k, 3)
        One row per pair of ids that share voxels, sorted.

    Examples
    --------
    >>> import numpy as np
    >>> block_overlaps(np.array([[[1, 1, 0, 2]]]), np.array([[[3, 3, 3, 0]]])).tolist()
    [[1, 3, 2]]
    """
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 3), np.int64)
    va, vb = a[both].astype(np.int64), b[both].astype(np.int64)
    base = int(vb.max()) + 1
    if int(va.max()) < np.iinfo(np.int64).max // base:  # one 1-D key per pair: faster sort
        keys, counts = np.unique(va * base + vb, return_counts=True)
        return np.column_stack([keys // base, keys % base, counts])
    uniq, counts = np.unique(np.stack([va, vb], axis=1), axis=0, return_counts=True)
    return np.column_stack([uniq, counts])


def overlaps(a, b) -> np.ndarray:
    """Shared voxels between every pair of ids of two label volumes (numpy or dask).

    Dask inputs are compared block by block (``b`` is rechunked like ``a``) and the rows
    summed per pair.

    Parameters
    ----------
    a, b : numpy or dask array, same shape (z, y, x)
        Label volumes (0 background).

    Returns
    -------
    int64 ndarray, shape (k, 3)
        Rows (id in a, id in b, voxels shared).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> a = da.from_array(np.array([[[1, 1, 0, 2]]]), chunks=(1, 1, 2))
    >>> overlaps(a, np.array([[[3, 3, 3, 2]]])).tolist()
    [[1, 3, 2], [2, 2, 1]]
    """
    import dask
    import dask.array as da

    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return block_overlaps(a, b)
    a, b = da.asarray(a), da.asarray(b)
    b = b.rechunk(a.chunks)
    parts = dask.compute([dask.delayed(block_overlaps)(x, y) for x, y in
                          zip(a.to_delayed().ravel(), b.to_delayed().ravel())])[0]
    rows = np.concatenate(parts)
    if not len(rows):
        return rows
    uniq, inv = np.unique(rows[:, :2], axis=0, return_inverse=True)
    return np.column_stack([uniq, np.bincount(inv.ravel(), weights=rows[:, 2]).astype(np.int64)])


def link(ids_a, vol_a, ids_b, vol_b, shared: np.ndarray, *, min_iou: float = 0.1,
         min_overlap_fraction: float = 0.25) -> dict[str, np.ndarray]:
    """Links between the bubbles of two steps.

    A pair is linked when its IoU is at least ``min_iou`` or the shared voxels are at least
    ``min_overlap_fraction`` of the smaller bubble (a small bubble merging into a large one
    has a small IoU). A source with several links splits; a target with several merges.

    Parameters
    ----------
    ids_a, vol_a : ndarray, shape (n_a,)
        Ids and voxel counts of the bubbles of the earlier step.
    ids_b, vol_b : ndarray, shape (n_b,)
        The same for the later step.
    shared : int ndarray, shape (k, 3)
        Rows (id in a, id in b, voxels shared), as :func:`overlaps` gives.
    min_iou, min_overlap_fraction : float
        The link criteria above.

    Returns
    -------
    dict of ndarray
        ``source``, ``target``, ``shared``, ``iou``, ``event`` (codes of EVENTS),
        ``volume_change`` (target - source voxels), one entry per link, and the unmatched
        ``deaths`` (ids of a) and ``births`` (ids of b).

    Examples
    --------
    >>> import numpy as np
    >>> lk = link(np.array([1, 2]), np.array([10, 10]), np.array([5, 6]), np.array([6, 6]),
    ...           np.array([[1, 5, 5], [1, 6, 5]]))
    >>> lk["source"].tolist(), lk["target"].tolist(), [EVENTS[e] for e in lk["event"]]
    ([1, 1], [5, 6], ['split', 'split'])
    >>> lk["deaths"].tolist(), lk["births"].tolist()
    ([2], [])
    """
    va = dict(zip(ids_a.tolist(), vol_a.tolist()))
    vb = dict(zip(ids_b.tolist(), vol_b.tolist()))
    rows = [r for r in shared.tolist() if r[0] in va and r[1] in vb]
    src = np.array([r[0] for r in rows], np.int64)
    dst = np.array([r[1] for r in rows], np.int64)
    n = np.array([r[2] for r in rows], np.float64)
    a_vol = np.array([va[s] for s in src.tolist()], float)
    b_vol = np.array([vb[d] for d in dst.tolist()], float)
    iou = n / np.maximum(a_vol + b_vol - n, 1)
    keep = (iou >= min_iou) | (n >= min_overlap_fraction * np.minimum(a_vol, b_vol))
    src, dst, n, iou = src[keep], dst[keep], n[keep], iou[keep]
    out_deg = dict(zip(*np.unique(src, return_counts=True)))
    in_deg = dict(zip(*np.unique(dst, return_counts=True)))
    split = np.array([out_deg[s] > 1 for s in src.tolist()], bool)
    merge = np.array([in_deg[d] > 1 for d in dst.tolist()], bool)
    event = (split.astype(np.int8) + 2 * merge.astype(np.int8))
    return {"source": src, "target": dst, "shared": n.astype(np.int64), "iou": iou,
            "event": event, "volume_change": (b_vol - a_vol)[keep].astype(np.int64),
            "deaths": np.setdiff1d(ids_a, src), "births": np.setdiff1d(ids_b, dst)}


def assign_tracks(steps: list[np.ndarray], links: list[dict]) -> list[np.ndarray]:
    """Track ids per step: a bubble continues the track of its best (max IoU) predecessor,
    unless that predecessor's track already went to a better-overlapping successor.

    Parameters
    ----------
    steps : list of ndarray
        The bubble ids of each step.
    links : list of dict
        What :func:`link` returns for each pair of consecutive steps.

    Returns
    -------
    list of int64 ndarray
        Track ids aligned with ``steps`` (new tracks are numbered from 1 on).

    Examples
    --------
    >>> import numpy as np
    >>> lk = link(np.array([1, 2]), np.array([10, 10]), np.array([5, 6]), np.array([6, 6]),
    ...           np.array([[1, 5, 5], [1, 6, 5]]))
    >>> [t.tolist() for t in assign_tracks([np.array([1, 2]), np.array([5, 6])], [lk])]
    [[1, 2], [1, 3]]
    """
    next_id = 1
    tracks = []
    first = np.arange(next_id, next_id + len(steps[0]))
    next_id += len(steps[0])
    tracks.append(first)
    for t, lk in enumerate(links, start=1):
        prev = dict(zip(steps[t - 1].tolist(), tracks[t - 1].tolist()))
        ids = steps[t]
        order = np.argsort(-lk["iou"])
        taken_src, taken_dst, cont = set(), set(), {}
        for i in order:
            s, d = int(lk["source"][i]), int(lk["target"][i])
            if s in taken_src or d in taken_dst:
                continue
            taken_src.add(s)
            taken_dst.add(d)
            cont[d] = prev[s]
        cur = np.empty(len(ids), np.int64)
        for j, d in enumerate(ids.tolist()):
            if d in cont:
                cur[j] = cont[d]
            else:
                cur[j] = next_id
                next_id += 1
        tracks.append(cur)
    return tracks


def link_table(links: list[dict]):
    """The links of every step pair as one ``xarray.Dataset`` (dim ``link``).

    Parameters
    ----------
    links : list of dict
        What :func:`link` returns for steps (0, 1), (1, 2), ...

    Returns
    -------
    xarray.Dataset
        ``time`` (step of the target), ``source``, ``target``, ``shared_voxels``, ``iou``,
        ``event`` (flag-coded) and ``volume_change``, each of dim ``link``; also
        ``source_time``, ``gap``, ``primary``, ``distance``, ``residual`` and ``cost`` when
        every link dict has them (as :func:`track` makes them).

    Examples
    --------
    >>> import numpy as np
    >>> lk = link(np.array([1, 2]), np.array([10, 10]), np.array([5, 6]), np.array([6, 6]),
    ...           np.array([[1, 5, 5], [1, 6, 5]]))
    >>> ds = link_table([lk])
    >>> ds.sizes["link"], ds["time"].values.tolist(), ds["event"].attrs["flag_meanings"]
    (2, [1, 1], 'continue split merge split+merge')
    """
    import xarray as xr

    def cat(key, dtype):
        return np.concatenate([np.asarray(lk[key], dtype) for lk in links]) if links \
            else np.zeros(0, dtype)

    step = np.concatenate([np.full(len(lk["source"]), t + 1) for t, lk in enumerate(links)]) \
        if links else np.zeros(0, np.int64)
    return xr.Dataset({
        "time": ("link", step, {"long_name": "step of the target"}),
        "source": ("link", cat("source", np.int64), {"long_name": "label at time - 1"}),
        "target": ("link", cat("target", np.int64), {"long_name": "label at time"}),
        "shared_voxels": ("link", cat("shared", np.int64)),
        "iou": ("link", cat("iou", float)),
        "event": ("link", cat("event", np.int8),
                  {"flag_values": list(range(4)), "flag_meanings": " ".join(EVENTS)}),
        "volume_change": ("link", cat("volume_change", np.int64),
                          {"long_name": "target volume - source volume", "units": "voxel"}),
        **{k: ("link", cat(k, dtype), attrs) for k, dtype, attrs in _EXTRA_LINK_VARS
           if links and all(k in lk for lk in links)}})


_EXTRA_LINK_VARS = [
    ("source_time", np.int64, {"long_name": "step of the source (time - 1, or time - 2 "
                                            "for a link over a missed step)"}),
    ("gap", np.int8, {"long_name": "steps missed between source and target"}),
    ("primary", bool, {"long_name": "the link that carries the source's track on"}),
    ("distance", float, {"long_name": "centroid displacement", "units": "micrometer"}),
    ("residual", float, {"long_name": "distance of the target from the predicted position",
                         "units": "micrometer"}),
    ("cost", float, {"long_name": "assignment cost (nan for merge/split partners)"}),
]




def step_table(labels: Any, spacing: Sequence[float] | float | None = None) -> StepTable:
    """The bubbles of one label volume as a :class:`~.tracking_link.StepTable`.

    Volumes, centroids and contacts with the edge of the field of view come from
    :func:`redoxflow.measure.regionprops` (moments only, chunked, out of core).

    Parameters
    ----------
    labels : path, zarr, xarray, dask or numpy array, shape (z, y, x)
        Integer labels, 0 background.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).

    Returns
    -------
    StepTable

    Examples
    --------
    >>> import numpy as np
    >>> lab = np.zeros((4, 6, 6), np.uint32); lab[1:3, 1:3, 1:3] = 7; lab[0, 0, 5] = 2
    >>> tab = step_table(lab, spacing=2.0)
    >>> tab.ids.tolist(), tab.volume.tolist(), tab.cut.tolist()
    ([2, 7], [8.0, 64.0], [True, False])
    """
    vol = as_volume(labels, what="labels")
    sp = vol.spacing(spacing)
    extent = np.asarray(vol.data.shape, float) * np.asarray(sp)
    if np.dtype(vol.data.dtype).kind not in "iu":
        raise InputError(f"labels have dtype {vol.data.dtype}: label a mask first with "
                         "redoxflow.label")
    ds = regionprops(vol.data, spacing=sp, properties=["volume", "centroid", "touches_border"])
    faces = ds["touches_border"].values.astype(bool).reshape(-1, 6)
    return StepTable(ds["bubble"].values.astype(np.int64),
                     ds["centroid"].values.astype(float).reshape(-1, 3),
                     ds["volume"].values.astype(float),
                     ds["volume_voxels"].values.astype(np.int64),
                     ds["cut_by_fov"].values.astype(bool), extent, faces)


def estimate_drift(a: Any, b: Any, spacing: Sequence[float] | float = 1.0, *,
                   max_size: int = 128) -> np.ndarray:
    """Rigid shift of the bubbles from ``a`` to ``b`` by phase correlation (micrometres).

    Both gas masks are block-averaged (dask, out of core) so that the longest axis has at
    most ``max_size`` cells, then registered with
    :func:`skimage.registration.phase_cross_correlation` (sub-cell precision).

    Parameters
    ----------
    a, b : array-like, shape (z, y, x)
        Label (or mask) volumes of two steps.
    spacing : float or (z, y, x)
        Voxel size in micrometres.
    max_size : int
        Longest axis of the averaged masks.

    Returns
    -------
    float ndarray, shape (3,)
        (z, y, x) displacement of ``b`` relative to ``a`` in micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((16, 16, 32), np.uint8); a[4:9, 5:10, 3:8] = 1; a[10:14, 2:6, 12:20] = 2
    >>> (estimate_drift(a, np.roll(a, 5, axis=2), spacing=2.0).round(1) + 0.0).tolist()
    [0.0, 0.0, 10.0]
    """
    import dask.array as da
    from skimage.registration import phase_cross_correlation

    sp = np.asarray(normalize_voxel_size(spacing))
    a, b = da.asarray(a), da.asarray(b)
    if a.shape != b.shape:
        raise InputError(f"steps have shapes {a.shape} and {b.shape}: give every step the "
                         "same field of view")
    factor = max(1, int(np.ceil(max(a.shape) / max_size)))
    masks = []
    for x in (a, b):
        m = (x > 0).astype(np.float32)
        if factor > 1:
            m = da.coarsen(np.mean, m, {0: factor, 1: factor, 2: factor}, trim_excess=True)
        masks.append(np.asarray(m.compute(), np.float32))
    if not masks[0].any() or not masks[1].any():
        return np.zeros(3)
    shift = phase_cross_correlation(masks[0], masks[1], upsample_factor=4)[0]
    return -np.asarray(shift, float) * factor * sp + 0.0  # no negative zeros


def _series_steps(labels: Any) -> list[Any]:
    """The steps of a series as lazy (dask) arrays, plus the recorded voxel size."""
    if isinstance(labels, (list, tuple)):
        vols = [as_volume(x, what=f"labels of step {t}") for t, x in enumerate(labels)]
        return [v.data for v in vols], (vols[0].voxel_size if vols else None)
    vol = as_volume(labels, what="label series", ndim=(4,))
    return [vol.data[t] for t in range(vol.data.shape[0])], vol.voxel_size


def _prediction(tab: StepTable, velocity: np.ndarray, known: np.ndarray,
                drift: np.ndarray) -> np.ndarray:
    """Velocity used for each source: its own, else its linked neighbours', else drift."""
    return neighbour_velocity(tab.centroid, known, velocity, drift)


def _link_pair(src: StepTable, dst: StepTable, velocity: np.ndarray, known: np.ndarray,
               drift: np.ndarray, shared: np.ndarray, gates: Gates, merges_splits: bool):
    """One step pair: assignment (refined by the local motion field when few sources have a
    history), then merges and splits. Returns the link rows and the velocities used."""
    vel = _prediction(src, velocity, known, drift)
    pred = src.centroid + vel
    rows, cols, cost, res, sh = candidates(src, dst, pred, gates, shared,
                                           motion=vel)
    match = assign(len(src), len(dst), rows, cols, cost, gates.alternative)
    if len(src) and known.mean() < 0.5 and (match >= 0).sum() >= 3:
        # few histories: estimate each bubble's motion from its neighbours' first links
        linked = match >= 0
        disp = np.zeros_like(src.centroid)
        disp[linked] = dst.centroid[match[linked]] - src.centroid[linked]
        local = neighbour_velocity(src.centroid, linked, disp, drift, exclude_self=True)
        vel = np.where(known[:, None], vel, local)
        pred = src.centroid + vel
        rows, cols, cost, res, sh = candidates(src, dst, pred, gates, shared,
                                               motion=vel)
        match = assign(len(src), len(dst), rows, cols, cost, gates.alternative)
    pair_cost = {(int(r), int(c)): (float(k), float(e), int(s))
                 for r, c, k, e, s in zip(rows, cols, cost, res, sh)}
    free = np.flatnonzero((match < 0) & known)
    if len(free) and (match >= 0).sum() >= 3:
        # rescue: a bubble whose own history mispredicts (the foam jumps) moves like its
        # neighbours did in this step; offered to the targets still free
        linked = match >= 0
        disp = np.zeros_like(src.centroid)
        disp[linked] = dst.centroid[match[linked]] - src.centroid[linked]
        local = neighbour_velocity(src.centroid, linked, disp, drift, exclude_self=True)[free]
        open_dst = np.ones(len(dst), bool)
        open_dst[match[linked]] = False
        cols_open = np.flatnonzero(open_dst)
        sub_src, sub_dst = src.subset(free), dst.subset(cols_open)
        r2, c2, k2, e2, s2 = candidates(sub_src, sub_dst, sub_src.centroid + local, gates,
                                        shared, motion=local)
        m2 = assign(len(free), len(cols_open), r2, c2, k2, gates.alternative)
        for a, b, k, e, sv in zip(r2, c2, k2, e2, s2):
            if m2[a] == b:
                i, j = int(free[a]), int(cols_open[b])
                match[i] = j
                vel[i] = local[a]
                pair_cost[(i, j)] = (float(k), float(e), int(sv))
        pred = src.centroid + vel
    out = []  # (source index, target index, primary, cost, residual, shared)
    for i in np.flatnonzero(match >= 0):
        k, e, s = pair_cost[(int(i), int(match[i]))]
        out.append((int(i), int(match[i]), True, k, e, s))
    if merges_splits and len(src) and len(dst):
        shared_of = {(int(a), int(b)): int(n) for a, b, n in shared.tolist()}
        taken = match >= 0
        inv = np.full(len(dst), -1, np.int64)
        inv[match[taken]] = np.flatnonzero(taken)
        for j, members in find_merges(src, pred, dst, dst.centroid, match, gates):
            primary = inv[j] < 0  # no assigned source: the largest part carries the track
            biggest = max(members, key=lambda p: src.volume[p])
            for p in members:
                if match[p] >= 0:
                    continue
                match[p] = j
                out.append((p, j, bool(primary and p == biggest), np.nan,
                            float(np.linalg.norm(pred[p] - dst.centroid[j])),
                            shared_of.get((int(src.ids[p]), int(dst.ids[j])), 0)))
            inv[j] = biggest if inv[j] < 0 else inv[j]
        for i, members in find_merges(dst, dst.centroid, src, pred, inv, gates):
            primary = not any(inv[q] == i for q in members)
            biggest = max(members, key=lambda q: dst.volume[q])
            for q in members:
                if inv[q] >= 0:
                    continue
                inv[q] = i
                out.append((i, q, bool(primary and q == biggest), np.nan,
                            float(np.linalg.norm(pred[i] - dst.centroid[q])),
                            shared_of.get((int(src.ids[i]), int(dst.ids[q])), 0)))
    return out, vel


def _pack(rows, src: StepTable, dst: StepTable, t: int, gap: int) -> dict[str, np.ndarray]:
    """Link rows as the arrays of :func:`link_table`, with flag-coded events."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    i = np.array([r[0] for r in rows], np.int64)
    j = np.array([r[1] for r in rows], np.int64)
    shared = np.array([r[5] for r in rows], np.int64)
    va, vb = src.voxels[i] if len(i) else np.zeros(0), dst.voxels[j] if len(j) else np.zeros(0)
    out_deg = np.bincount(i, minlength=len(src))
    in_deg = np.bincount(j, minlength=len(dst))
    event = ((out_deg[i] > 1).astype(np.int8) + 2 * (in_deg[j] > 1).astype(np.int8)) \
        if len(i) else np.zeros(0, np.int8)
    return {"source": src.ids[i] if len(i) else np.zeros(0, np.int64),
            "target": dst.ids[j] if len(j) else np.zeros(0, np.int64),
            "shared": shared, "iou": shared / np.maximum(va + vb - shared, 1),
            "event": event, "volume_change": (vb - va).astype(np.int64),
            "source_time": np.full(len(i), t - 1 - gap, np.int64),
            "gap": np.full(len(i), gap, np.int8),
            "primary": np.array([r[2] for r in rows], bool),
            "distance": (np.linalg.norm(dst.centroid[j] - src.centroid[i], axis=1)
                         if len(i) else np.zeros(0)),
            "residual": np.array([r[4] for r in rows], float),
            "cost": np.array([r[3] for r in rows], float),
            "_i": i, "_j": j}


def _concat(a: dict, b: dict) -> dict:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _outside(points: np.ndarray, extent: np.ndarray) -> np.ndarray:
    return ((points < 0) | (points > extent)).any(axis=1)


def track(
    labels: Any,
    *,
    spacing: Sequence[float] | float | None = None,
    displacement_factor: float = 0.35,
    max_displacement: float | None = None,
    max_volume_ratio: float = 1.5,
    merge_volume_ratio: float = 1.13,
    overlap_weight: float = 0.5,
    gap_closing: bool = True,
    merges_splits: bool = True,
    drift_correction: bool = True,
):
    """Track bubbles through a series of label volumes, two steps at a time.

    Each step's bubbles (volume, centroid, contact with the field of view's edge) come from
    :func:`redoxflow.measure.regionprops`; consecutive steps are overlapped block by block
    (:func:`overlaps`). Only two steps are read at a time, each out of core when it is a
    store or a dask array. Linking (:mod:`redoxflow.analysis.tracking_link`):

    - **prediction**: a bubble moves on with the velocity of its previous link; bubbles
      without one take the median velocity of their linked neighbours, else the rigid drift
      of the step (phase correlation, :func:`estimate_drift`); in a step where most bubbles
      have no history the neighbours' first-pass links give a local motion field;
    - **gating**: the observed centroid lies within ``displacement_factor`` x the bubble's
      equivalent radius of the prediction (at least one voxel, at most
      ``max_displacement``), and the volumes differ by at most ``max_volume_ratio``; for
      bubbles cut by the field of view (both cut: by a common face) the lag of the visible
      centroid along the cut axes is forgiven in proportion to the volume change, and the
      volume may also change by the slab swept through the cut faces
      (:func:`~redoxflow.analysis.tracking_link.candidates`);
    - **assignment**: one global minimum-cost one-to-one assignment over
      ``(residual / gate)^2 + (log volume ratio / log max ratio)^2 + overlap_weight x (1 -
      shared / smaller volume)``, every bubble free to stay unlinked;
    - **rescue**: a bubble with a history that found no partner is offered, at the
      position its linked neighbours moved to in this step, to the targets still free
      (flowing foams move in jumps);
    - **merges and splits**: unlinked bubbles touching a bubble of the other step whose
      summed volume (within ``merge_volume_ratio``) and volume-weighted centroid match it
      better than its one-to-one partner (volume conservation and proximity, not overlap);
    - **gap closing**: bubbles without successor are offered to the next step's bubbles
      without predecessor (one missed step, gate x sqrt 2).

    Two unrelated volumes therefore give few links (only chance coincidences of position
    and volume), and a bubble moving more than its diameter per step is followed.

    Parameters
    ----------
    labels : list of label volumes (path, zarr, xarray, dask, numpy), or one (t, z, y, x)
        Label volumes, 0 background, one per step, all of one shape; e.g. the per-step
        ``labels.zarr`` stores of a series.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's ``voxel_size``, else 1).
    displacement_factor : float
        Distance gate as a fraction of each bubble's equivalent radius.
    max_displacement : float, optional
        Absolute cap on the distance gate (micrometres).
    max_volume_ratio : float
        Largest volume ratio of a link (> 1).
    merge_volume_ratio : float
        Largest ratio between a merged (split) bubble's volume and the sum of its parts.
    overlap_weight : float
        Weight of the overlap term in the cost.
    gap_closing, merges_splits, drift_correction : bool
        Switch the gap closing, the merge/split detection and the phase-correlation drift
        off.

    Returns
    -------
    xarray.Dataset
        Links (dim ``link``): ``time`` (step of the target), ``source``, ``target``,
        ``shared_voxels``, ``iou``, ``event`` (flags of ``EVENTS``), ``volume_change``,
        ``source_time``, ``gap``, ``primary``, ``distance``, ``residual``, ``cost``.
        Per step (dim ``step``): ``n_bubbles``, ``births``, ``deaths`` (bubbles of the
        previous step without successor), ``births_edge``/``deaths_edge`` (of those, at
        the field of view's edge), ``merges``, ``splits``, ``gaps`` (links over a missed
        step ending here), ``one_to_one`` (links of degree one on both sides) and
        ``drift`` (step, axis; micrometres). Per step ``t``: ``label_<t>``, ``track_<t>``,
        ``volume_<t>`` and ``centroid_<t>`` along dim ``bubble_<t>``.

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.zeros((2, 1, 4, 4), np.uint32)
    >>> steps[0, 0, :2, :2] = 1                        # a bubble moves down one row
    >>> steps[1, 0, 1:3, :2] = 1; steps[1, 0, 3, 3] = 2  # and a new one appears
    >>> ds = track(steps)
    >>> ds["track_1"].values.tolist(), ds["births"].values.tolist()
    ([1, 2], [1, 1])
    """

    for name, value in (("max_volume_ratio", max_volume_ratio),
                        ("merge_volume_ratio", merge_volume_ratio)):
        if value <= 1:
            raise InputError(f"{name} = {value}: give a ratio above 1")
    if displacement_factor <= 0:
        raise InputError(f"displacement_factor = {displacement_factor}: give a positive "
                         "fraction of the bubble radius")
    steps, voxel = _series_steps(labels)
    if not steps:
        raise InputError("the series has no steps: give at least one label volume")
    shape = steps[0].shape
    for t, s in enumerate(steps):
        if s.shape != shape:
            raise InputError(f"step {t} has shape {s.shape}, step 0 {shape}: give every "
                             "step the same field of view")
    sp = normalize_voxel_size(spacing if spacing is not None
                              else (voxel if voxel is not None else 1.0))
    gates = Gates(displacement_factor=displacement_factor, max_displacement=max_displacement,
                  min_displacement=float(max(sp)), max_volume_ratio=max_volume_ratio,
                  overlap_weight=overlap_weight, merge_volume_ratio=merge_volume_ratio)
    tables, track_ids, links = [], [], []
    per_step = {k: [] for k in ("births", "deaths", "births_edge", "deaths_edge", "merges",
                                "splits", "gaps", "one_to_one")}
    drifts = [np.zeros(3)]
    prev = step_table(steps[0], sp)
    tables.append(prev)
    track_ids.append(np.arange(1, len(prev) + 1, dtype=np.int64))
    next_track = len(prev) + 1
    for k in per_step:
        per_step[k].append(0)
    per_step["births"][0] = len(prev)
    per_step["births_edge"][0] = int(prev.cut.sum())
    velocity, known = np.zeros((len(prev), 3)), np.zeros(len(prev), bool)
    pending = None  # deaths of the previous pair, offered to gap closing
    for t in range(1, len(steps)):
        cur = step_table(steps[t], sp)
        drift = estimate_drift(steps[t - 1], steps[t], sp) if drift_correction \
            else np.zeros(3)
        drifts.append(drift)
        shared = overlaps(steps[t - 1], steps[t])
        rows, vel = _link_pair(prev, cur, velocity, known, drift, shared, gates, merges_splits)
        lk = _pack(rows, prev, cur, t, 0)
        has_pred = np.zeros(len(cur), bool)
        has_pred[lk["_j"]] = True
        new_tracks = np.zeros(len(cur), np.int64)
        new_vel, new_known = np.zeros((len(cur), 3)), np.zeros(len(cur), bool)
        for i, j, primary, event in zip(lk["_i"], lk["_j"], lk["primary"], lk["event"]):
            if primary:
                new_tracks[j] = track_ids[t - 1][i]
                # a merge or split moves the centroid by a jump, not by the flow
                new_vel[j] = cur.centroid[j] - prev.centroid[i] if event == 0 else vel[i]
                # the visible centroid of a bubble cut by the field of view lags its centre
                new_known[j] = not (prev.cut[i] or cur.cut[j])
        gaps = 0
        if gap_closing and pending is not None and len(pending[0]) and (~has_pred).any():
            p_tab, p_pos, p_tracks, p_edge = pending
            free = np.flatnonzero(~has_pred)
            sub = cur.subset(free)
            g_rows, g_cols, g_cost, g_res, g_sh = candidates(
                p_tab, sub, p_pos, gates, None, steps=2,
                motion=p_pos - p_tab.centroid)
            g_match = assign(len(p_tab), len(sub), g_rows, g_cols, g_cost, gates.alternative)
            cost_of = {(int(r), int(c)): (float(k), float(e))
                       for r, c, k, e in zip(g_rows, g_cols, g_cost, g_res)}
            g_links = [(int(i), int(free[m]), True, *cost_of[(int(i), int(m))], 0)
                       for i, m in enumerate(g_match) if m >= 0]
            if g_links:
                glk = _pack(g_links, p_tab, cur, t, 1)
                for i, j in zip(glk["_i"], glk["_j"]):
                    has_pred[j] = True
                    new_tracks[j] = p_tracks[i]
                    new_vel[j] = (cur.centroid[j] - p_tab.centroid[i]) / 2
                    new_known[j] = not (p_tab.cut[i] or cur.cut[j])
                    per_step["deaths"][t - 1] -= 1
                    per_step["deaths_edge"][t - 1] -= int(p_edge[i])
                gaps = len(g_links)
                lk = _concat(lk, glk)
        for j in np.flatnonzero(new_tracks == 0):
            new_tracks[j] = next_track
            next_track += 1
        direct = lk["gap"] == 0
        has_succ = np.zeros(len(prev), bool)
        has_succ[lk["_i"][direct]] = True
        pred = prev.centroid + vel
        edge_death = prev.cut | _outside(pred, prev.extent)
        per_step["births"].append(int((~has_pred).sum()))
        per_step["births_edge"].append(int((~has_pred & cur.cut).sum()))
        per_step["deaths"].append(int((~has_succ).sum()))
        per_step["deaths_edge"].append(int((~has_succ & edge_death).sum()))
        per_step["merges"].append(len(np.unique(lk["_j"][direct & (lk["event"] & 2 > 0)])))
        per_step["splits"].append(len(np.unique(lk["_i"][direct & (lk["event"] & 1 > 0)])))
        per_step["gaps"].append(gaps)
        per_step["one_to_one"].append(int((direct & (lk["event"] == 0)).sum()))
        dead = np.flatnonzero(~has_succ & ~edge_death)
        pending = (prev.subset(dead), pred[dead] + vel[dead], track_ids[t - 1][dead],
                   edge_death[dead])
        links.append({k: v for k, v in lk.items() if not k.startswith("_")})
        tables.append(cur)
        track_ids.append(new_tracks)
        prev, velocity, known = cur, new_vel, new_known
    ds = link_table(links)
    ds = ds.assign({k: ("step", np.asarray(v, np.int64)) for k, v in per_step.items()})
    ds["n_bubbles"] = ("step", np.array([len(tb) for tb in tables], np.int64))
    ds["drift"] = (("step", "axis"), np.array(drifts),
                   {"units": "micrometer", "long_name": "rigid shift from the previous step "
                                                       "(phase correlation)"})
    ds = ds.assign_coords(axis=["z", "y", "x"])
    for t, (tb, tr) in enumerate(zip(tables, track_ids)):
        ds[f"track_{t}"] = (f"bubble_{t}", tr)
        ds[f"label_{t}"] = (f"bubble_{t}", tb.ids)
        ds[f"volume_{t}"] = (f"bubble_{t}", tb.volume, {"units": "micrometer^3"})
        ds[f"centroid_{t}"] = ((f"bubble_{t}", "axis"), tb.centroid, {"units": "micrometer"})
    ds.attrs.update({"method": "global assignment (scipy LAPJVsp) with constant-velocity "
                               "prediction, gap closing and volume-conserving merges/splits",
                     "spacing": list(sp), "displacement_factor": displacement_factor,
                     "max_displacement": -1.0 if max_displacement is None
                     else float(max_displacement),
                     "max_volume_ratio": max_volume_ratio, "overlap_weight": overlap_weight,
                     "merge_volume_ratio": merge_volume_ratio,
                     "gap_closing": int(gap_closing), "merges_splits": int(merges_splits),
                     "drift_correction": int(drift_correction)})
    return ds


def track_table(ds):
    """The per-step bubbles of :func:`track`'s output as one table (dim ``bubble``).

    The shape of the bubble table of a 4D analysis, so
    :func:`redoxflow.viz.plots.tracks_plot` draws it directly.

    Parameters
    ----------
    ds : xarray.Dataset
        What :func:`track` returns.

    Returns
    -------
    xarray.Dataset
        ``time``, ``label``, ``track``, ``volume`` (micrometre^3) and ``centroid``
        (bubble, axis; micrometres), one row per bubble and step.

    Examples
    --------
    >>> import numpy as np
    >>> steps = np.zeros((2, 1, 4, 4), np.uint32)
    >>> steps[0, 0, :2, :2] = 1
    >>> steps[1, 0, 1:3, :2] = 1; steps[1, 0, 3, 3] = 2
    >>> tab = track_table(track(steps))
    >>> tab["time"].values.tolist(), tab["track"].values.tolist()
    ([0, 1, 1], [1, 1, 2])
    """
    import xarray as xr

    n_steps = int(ds.sizes.get("step", 0))
    cat = {k: np.concatenate([np.asarray(ds[f"{k}_{t}"].values) for t in range(n_steps)])
           for k in ("label", "track", "volume")} if n_steps else {}
    times = np.concatenate([np.full(ds.sizes.get(f"bubble_{t}", 0), t, np.int64)
                            for t in range(n_steps)]) if n_steps else np.zeros(0, np.int64)
    centroid = np.concatenate([ds[f"centroid_{t}"].values.reshape(-1, 3)
                               for t in range(n_steps)]) if n_steps else np.zeros((0, 3))
    return xr.Dataset({
        "time": ("bubble", times, {"long_name": "time step"}),
        "label": ("bubble", cat.get("label", np.zeros(0, np.int64)),
                  {"long_name": "label id in its step"}),
        "track": ("bubble", cat.get("track", np.zeros(0, np.int64)),
                  {"long_name": "track id"}),
        "volume": ("bubble", cat.get("volume", np.zeros(0)), {"units": "micrometer^3"}),
        "centroid": (("bubble", "axis"), centroid, {"units": "micrometer"})},
        coords={"axis": ["z", "y", "x"]})
