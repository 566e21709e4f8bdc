"""Compose the stages from one config: ingest -> segment -> label -> measure -> analyze -> report.

Each stage writes one artifact under the output directory and skips itself when that artifact
is already complete, so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .config import Config
from .errors import InputError, require


def _done(path: Path) -> bool:
    return path.exists()  # stores and tables are renamed into place only when complete


def run_pipeline(cfg: Config, *, progress: bool = True, log=print) -> dict[str, Any]:
    """Run the configured stages; returns a summary dict (also written as ``summary.json``).

    Stages: the input (a grey-level or class volume path, or ``synthetic``: the built-in
    phantom) is ingested to ``raw.zarr`` (grey levels) or ``classes.zarr``; grey levels are
    segmented into ``classes.zarr`` (for the phantom, scored against its ground truth);
    bubbles (class 1) are labelled into ``labels.zarr``; per-bubble properties go to ``bubbles.nc``
    and ``bubbles.csv``; the VRFB analysis (half-cells, R_bv, density, blockage, wall
    distances) goes to ``results.zarr``.
    """
    from .io import ingest, open_volume
    from .labeling import label
    from .measure import regionprops

    out = check_paths(cfg)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    raw_store, classes_store = out / "raw.zarr", out / "classes.zarr"
    labels_store = out / "labels.zarr"
    synthetic = cfg.input.source == "synthetic"
    truth = None

    t0 = time.perf_counter()
    if synthetic:
        from .synthetic import make_phantom

        ph = make_phantom(tuple(cfg.input.shape), seed=cfg.input.seed,
                          voxel_size=cfg.input.voxel_size or 10.0)
        truth = ph.classes
        if not _done(raw_store):
            ingest(ph.image, raw_store, voxel_size=ph.voxel_size, kind="intensity", config=cfg,
                   progress=progress)
        if cfg.segment.model == "skip" and not _done(classes_store):
            ingest(ph.classes, classes_store, voxel_size=ph.voxel_size, kind="classes",
                   config=cfg, progress=progress)
    elif not (_done(classes_store) or _done(raw_store)):
        kind = input_kind(cfg)
        ingest(cfg.input.source, classes_store if kind == "classes" else raw_store,
               voxel_size=cfg.input.voxel_size, kind=kind, config=cfg, progress=progress)
    timings["ingest"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scores = None
    if not _done(classes_store):
        if cfg.segment.model == "skip":
            raise InputError("the input holds grey levels but segment.model is 'skip': set "
                             "segment.model to builtin, classical or a checkpoint path")
        from .segment import segment

        seg = cfg.segment
        segment(raw_store, seg.model, out=classes_store, tile=seg.tile, overlap=seg.overlap,
                batch_size=seg.batch_size, mode=seg.mode, slab=seg.slab,
                triplanar=seg.triplanar, probabilities=seg.probabilities, device=seg.device,
                nan_policy=seg.nan_policy, progress=progress, config=cfg)
    if truth is not None and cfg.segment.model != "skip":
        from .segment import evaluate

        ds = evaluate(open_volume(classes_store).data, truth)
        scores = {str(c): round(float(ds["f1"].sel({"class": c})), 4)
                  for c in ds["class"].values}
    timings["segment"] = time.perf_counter() - t0

    classes = open_volume(classes_store)
    if classes.ndim != 3:
        raise InputError("4D class volumes are not supported by `run` yet: run one time step")

    t0 = time.perf_counter()
    if not _done(labels_store):
        mask = classes.data == 1
        if cfg.label.backend == "cupy":  # label on the workers' GPUs (cuCIM/CuPy kernel)
            cupy = require("cupy", "gpu")
            mask = mask.map_blocks(cupy.asarray)
        label(mask, connectivity=cfg.label.connectivity, out=labels_store,
              voxel_size=classes.attrs["voxel_size"], progress=progress)
    labels = open_volume(labels_store)
    timings["label"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    table = out / "bubbles.nc"
    if _done(table):
        import xarray as xr

        ds = xr.load_dataset(table)
    else:
        ds = regionprops(labels, spacing=labels.attrs["voxel_size"])
        ds.attrs["config"] = cfg.to_json()
        _write_table(ds, out)
    timings["measure"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    results = out / "results.zarr"
    if not _done(results):
        from .analysis import analyze

        side = cfg.analyze.negative_side or ("high" if synthetic else None)
        tree = analyze(classes_store, config=cfg, negative_side=side, out=out,
                       progress=progress)
    else:
        import xarray as xr

        tree = xr.open_datatree(results, engine="zarr", consolidated=False)
    timings["analyze"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    report_path = out / "report.html"
    if cfg.output.report and not _done(report_path):
        from .viz import report

        report(results, report_path, orbit_frames=cfg.output.orbit_frames)
    timings["report"] = time.perf_counter() - t0

    import dask.array as da

    counts = da.bincount(classes.data.ravel(), minlength=4).compute()
    summary = {
        "output": str(out.absolute()),
        "report": str(report_path.absolute()) if report_path.exists() else None,
        "shape": list(classes.shape),
        "voxel_size_um": list(classes.attrs["voxel_size"]),
        "n_bubbles": int(ds.sizes["bubble"]),
        "bubble_volume_um3": float(ds["volume"].sum()) if ds.sizes["bubble"] else 0.0,
        "class_voxels": counts.tolist(),
        "bubble_volume_fraction": float(tree["summary/bubble_volume_fraction"]),
        "membrane_blocked_fraction": float(tree["summary/membrane_blocked_fraction"]),
        "segmentation_f1": scores,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


ARTIFACTS = ("raw.zarr", "classes.zarr", "labels.zarr", "bubbles.nc", "bubbles.csv",
             "results.zarr", "report.html", "figures", "summary.json")


def check_paths(cfg: Config) -> Path:
    """The output folder, after refusing layouts that could overwrite user data.

    Every artifact is written under ``output.directory`` with a fixed name; the input must not
    be one of them (or contain the output folder), and the output folder must be a folder.
    """
    out = Path(cfg.output.directory).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"output.directory {str(out)!r} is a file: choose a folder")
    if cfg.input.source != "synthetic":
        src = Path(cfg.input.source).absolute()
        if src == out or out in src.parents and src.relative_to(out).parts[0] in ARTIFACTS:
            raise InputError(f"input {str(src)!r} lies where the pipeline writes its outputs: "
                             "choose another output.directory")
        if src in out.parents:
            raise InputError(f"output.directory {str(out)!r} is inside the input "
                             f"{str(src)!r}: choose a folder outside it")
    return out


def input_kind(cfg: Config) -> str:
    """``intensity`` or ``classes`` for the configured input (``auto`` looks at its values)."""
    from .io import open_source
    from .io.store import _detect_kind

    if cfg.input.kind in ("intensity", "classes"):
        return cfg.input.kind
    if cfg.input.kind != "auto":
        raise InputError(f"input.kind {cfg.input.kind!r} is unknown: use auto, intensity or "
                         "classes")
    src = open_source(cfg.input.source)
    src = src.steps[0] if hasattr(src, "steps") else src
    return _detect_kind(src.read(0, min(src.shape[0], 8)))


def _write_table(ds, out: Path) -> None:
    """bubbles.nc and bubbles.csv, each written to a temporary name then renamed."""
    tmp = out / ".bubbles.nc.partial"
    ds.to_netcdf(tmp)
    tmp_csv = out / ".bubbles.csv.partial"
    _flat_frame(ds).to_csv(tmp_csv)
    tmp_csv.rename(out / "bubbles.csv")
    tmp.rename(out / "bubbles.nc")


def _flat_frame(ds):
    """One row per bubble; vector variables become columns ``name_z``, ``name_y``..."""
    import pandas as pd

    cols = {}
    for name, var in ds.data_vars.items():
        if var.dims == ("bubble",):
            cols[name] = var.values
        elif var.ndim == 2 and var.dims[0] == "bubble":
            for j, c in enumerate(ds[var.dims[1]].values):
                cols[f"{name}_{c}"] = var.values[:, j]
    return pd.DataFrame(cols, index=pd.Index(ds["bubble"].values, name="bubble"))
