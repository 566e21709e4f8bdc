"""Bubble tracking between label volumes by overlap (IoU), with split/merge events."""

from __future__ import annotations

from typing import Any

import numpy as np

EVENTS = ["continue", "split", "merge", "split+merge"]


def block_overlaps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(k, 3) rows (id in a, id in b, voxels shared) of one block pair; background skipped."""
    both = (a > 0) & (b > 0)
    if not both.any():
        return np.zeros((0, 3), np.int64)
    pairs = np.stack([a[both].astype(np.int64), b[both].astype(np.int64)], axis=1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    return np.column_stack([uniq, counts])


def overlaps(a, b) -> np.ndarray:
    """Shared voxels between every pair of ids of two label volumes (numpy or dask)."""
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

    Returns arrays ``source``, ``target``, ``shared``, ``iou``, ``event`` (codes of EVENTS),
    ``volume_change`` (target - source voxels) and the unmatched ``deaths`` (ids of a) and
    ``births`` (ids of b).
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
    unless that predecessor's track already went to a better-overlapping successor."""
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
    """The links of every step pair as one ``xarray.Dataset`` (dim ``link``)."""
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

    Returns an ``xarray.Dataset`` of links (dim ``link``: time, source, target, shared_voxels,
    iou, event) with per-step ``births``/``deaths`` and each bubble's ``track`` id in attrs-free
    variables ``track_<t>`` aligned with the ids of that step.
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
