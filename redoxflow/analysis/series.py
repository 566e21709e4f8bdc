"""4D series: analyse each time step, then link its bubbles to the previous step's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..common.provenance import combine_digests
from ..io.store import open_volume
from .tracking import assign_tracks, link, link_table, overlaps
from .volume import analyze_volume


def analyze_series(arr, spacing, *, negative_side, compat, acfg, scratch: Path,
                   progress: bool = False):
    """Analyse each time step, then link bubbles between consecutive steps."""
    trees, label_stores = [], []
    for t in range(arr.shape[0]):
        step_dir = scratch / f"t{t:04d}"
        step_dir.mkdir(parents=True, exist_ok=True)
        trees.append(analyze_volume(arr[t], spacing, negative_side=negative_side, compat=compat,
                                    acfg=acfg, scratch=step_dir, progress=progress))
        label_stores.append(step_dir / "labels.zarr")
    ids = [tr["bubbles"]["bubble"].values.astype(np.int64) for tr in trees]
    vols = [tr["bubbles"]["volume_voxels"].values for tr in trees]
    links = []
    for t in range(1, len(trees)):
        shared = overlaps(open_volume(label_stores[t - 1]).data, open_volume(label_stores[t]).data)
        links.append(link(ids[t - 1], vols[t - 1], ids[t], vols[t], shared))
    track_ids = assign_tracks(ids, links)
    return _series_tree(trees, links, track_ids)


def _series_tree(trees, links, track_ids):
    import xarray as xr

    times = np.arange(len(trees))
    summary = xr.concat([tr["summary"].to_dataset() for tr in trees], dim="time")
    summary = summary.assign_coords(time=times)
    births = [len(trees[0]["bubbles"]["bubble"])] + [len(lk["births"]) for lk in links]
    deaths = [0] + [len(lk["deaths"]) for lk in links]
    summary["births"] = ("time", np.array(births), {"long_name": "bubbles without predecessor"})
    summary["deaths"] = ("time", np.array(deaths),
                         {"long_name": "bubbles of the previous step without successor"})
    tables = []
    for t, tr in enumerate(trees):
        ds = tr["bubbles"].to_dataset()
        ds = ds.assign_coords(bubble=np.arange(ds.sizes["bubble"]) + sum(
            trees[k]["bubbles"].sizes["bubble"] for k in range(t)))
        ds["label"] = ("bubble", tr["bubbles"]["bubble"].values)
        ds["time"] = ("bubble", np.full(ds.sizes["bubble"], t))
        ds["track"] = ("bubble", track_ids[t])
        tables.append(ds)
    bubbles = xr.concat(tables, dim="bubble", data_vars="all", coords="minimal",
                        compat="override", join="outer", combine_attrs="override")
    tracks = link_table(links)
    density = xr.concat([tr["density"].to_dataset() for tr in trees], dim="time")
    blockage = xr.concat([tr["blockage"].to_dataset() for tr in trees], dim="time",
                         data_vars="all", coords="minimal", compat="override", join="outer")
    out = xr.DataTree.from_dict({"summary": summary, "bubbles": bubbles, "density": density,
                                 "blockage": blockage, "tracks": tracks})
    out.attrs["timings_s"] = json.dumps([json.loads(tr.attrs["timings_s"]) for tr in trees])
    out.attrs["input_checksum"] = "blake2b:" + combine_digests(
        [tr.attrs["input_checksum"] for tr in trees])
    return out
