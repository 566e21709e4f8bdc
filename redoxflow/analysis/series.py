"""4D series: analyse each time step, then link its bubbles to the previous step's."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..common.provenance import combine_digests
from .tracking import track
from .volume import analyze_volume


def analyze_series(arr, spacing, *, negative_side, compat, acfg, scratch: Path,
                   progress: bool = False, backend: str = "numpy", connectivity: int = 26):
    """Analyse each time step, then link bubbles between consecutive steps.

    Each step goes through :func:`redoxflow.analysis.volume.analyze_volume` (its labels in
    ``scratch/tNNNN/labels.zarr``); the label stores are then tracked two steps at a time
    (:func:`redoxflow.analysis.tracking.track`). :func:`redoxflow.analyze` calls this for 4D
    input.

    Parameters
    ----------
    arr : dask.array.Array, shape (t, z, y, x)
        Integer class ids.
    spacing : (z, y, x) float
        Voxel size in micrometres.
    negative_side : {"low", "high"}
        Which half along x is the negative electrode.
    compat : {"utile"} or None
        The reference's definitions.
    acfg : redoxflow.config.AnalyzeConfig
        Filters and options.
    scratch : pathlib.Path
        Folder for the intermediate label stores.
    progress : bool
        Show progress bars.

    Returns
    -------
    xarray.DataTree
        ``summary`` (dim ``time``, with ``births``/``deaths``), ``bubbles`` (all steps, with
        ``time``, ``label`` and ``track``), ``density``, ``blockage`` (dim ``time``) and
        ``tracks`` (the links).

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from redoxflow.analysis.masks import class_volume
    >>> from redoxflow.config import AnalyzeConfig
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> arr, sp, _ = class_volume(np.stack([v, v]), 2.0)
    >>> tree = analyze_series(arr, sp, negative_side="high", compat=None, acfg=AnalyzeConfig(),
    ...                       scratch=pathlib.Path(tempfile.mkdtemp()))
    >>> tree["summary/births"].values.tolist(), tree["bubbles/track"].values.tolist()
    ([1, 0], [1, 1])
    """
    trees, label_stores = [], []
    for t in range(arr.shape[0]):
        step_dir = scratch / f"t{t:04d}"
        step_dir.mkdir(parents=True, exist_ok=True)
        trees.append(analyze_volume(arr[t], spacing, negative_side=negative_side, compat=compat,
                                    acfg=acfg, scratch=step_dir, progress=progress,
                                    backend=backend, connectivity=connectivity))
        label_stores.append(step_dir / "labels.zarr")
    tracked = track([str(p) for p in label_stores], spacing=spacing)  # two steps at a time
    track_ids = []
    for t, tr in enumerate(trees):
        lut = dict(zip(tracked[f"label_{t}"].values.tolist(),
                       tracked[f"track_{t}"].values.tolist()))
        track_ids.append(np.array([lut.get(i, 0) for i in
                                   tr["bubbles"]["bubble"].values.astype(np.int64).tolist()],
                                  np.int64))
    return _series_tree(trees, tracked, track_ids)


def _series_tree(trees, tracked, track_ids):
    import xarray as xr

    times = np.arange(len(trees))
    summary = xr.concat([tr["summary"].to_dataset() for tr in trees], dim="time")
    summary = summary.assign_coords(time=times)
    summary["births"] = ("time", tracked["births"].values,
                         {"long_name": "bubbles without predecessor"})
    summary["deaths"] = ("time", tracked["deaths"].values,
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
    tracks = tracked[[k for k, v in tracked.data_vars.items() if v.dims == ("link",)]]
    tracks.attrs = dict(tracked.attrs)
    density = xr.concat([tr["density"].to_dataset() for tr in trees], dim="time")
    blockage = xr.concat([tr["blockage"].to_dataset() for tr in trees], dim="time",
                         data_vars="all", coords="minimal", compat="override", join="outer")
    out = xr.DataTree.from_dict({"summary": summary, "bubbles": bubbles, "density": density,
                                 "blockage": blockage, "tracks": tracks})
    out.attrs["timings_s"] = json.dumps([json.loads(tr.attrs["timings_s"]) for tr in trees])
    out.attrs["class_voxels"] = np.sum([tr.attrs["class_voxels"] for tr in trees],
                                       axis=0).tolist()
    out.attrs["input_checksum"] = "blake2b:" + combine_digests(
        [tr.attrs["input_checksum"] for tr in trees])
    return out
