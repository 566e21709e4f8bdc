"""Bubble tracking between label volumes by overlap (IoU), with split/merge events."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    pairs = np.stack([a[both].astype(np.int64), b[both].astype(np.int64)], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
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
        ``event`` (flag-coded) and ``volume_change``, each of dim ``link``.

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
                          {"long_name": "target volume - source volume", "units": "voxel"})})


def track(labels: Any, *, min_iou: float = 0.1, min_overlap_fraction: float = 0.25):
    """Track bubbles through a series of label volumes (list or (t, z, y, x) array).

    Each step is read into memory (as a numpy array) in turn.

    Parameters
    ----------
    labels : list of arrays (z, y, x), or array (t, z, y, x)
        Label volumes (0 background), e.g. from :func:`redoxflow.label`.
    min_iou, min_overlap_fraction : float
        Link criteria (see :func:`link`).

    Returns
    -------
    xarray.Dataset
        The links (dim ``link``: ``time``, ``source``, ``target``, ``shared_voxels``,
        ``iou``, ``event``, ``volume_change``), per step (dim ``step``) ``births``,
        ``deaths`` and ``n_bubbles``, and per step ``t`` the variables ``label_<t>`` (the
        ids) and ``track_<t>`` (their track ids) along dim ``bubble_<t>``.

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
    steps = [np.asarray(labels[t]) for t in range(len(labels))]
    ids, vols = [], []
    for lab in steps:
        counts = np.bincount(lab.ravel())
        i = np.flatnonzero(counts)
        i = i[i > 0]
        ids.append(i.astype(np.int64))
        vols.append(counts[i])
    links = [link(ids[t - 1], vols[t - 1], ids[t], vols[t], overlaps(steps[t - 1], steps[t]),
                  min_iou=min_iou, min_overlap_fraction=min_overlap_fraction)
             for t in range(1, len(steps))]
    tracks = assign_tracks(ids, links)
    ds = link_table(links).assign({
        "births": ("step", [len(ids[0])] + [len(lk["births"]) for lk in links]),
        "deaths": ("step", [0] + [len(lk["deaths"]) for lk in links]),
        "n_bubbles": ("step", [len(i) for i in ids]),
    })
    for t, tr in enumerate(tracks):
        ds[f"track_{t}"] = (f"bubble_{t}", tr)
        ds[f"label_{t}"] = (f"bubble_{t}", ids[t])
    return ds
