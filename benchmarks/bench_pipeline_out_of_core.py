"""The whole pipeline on a 2 G-voxel tomogram with workers capped at 4 GB each.

A synthetic VRFB tomogram of 2048x1024x1024 voxels (uint8 grey levels) is built from one
256x1024x1024 phantom (one bubble per 160,000 voxels, a few % gas) mirrored along z (so the
membrane and gaskets stay continuous) and ingested to ``input.zarr`` in a separate process.
Then ``redoxflow run`` runs every stage (ingest -> segment -> analyze -> report; the analysis
labels and measures the bubbles once) on a LocalCluster of 2
single-threaded workers capped at ``--worker-memory``. Reported per stage: wall time,
MVoxel/s; peak RSS of each worker and of the pipeline process; restarted workers.

Segmentation uses ``--model`` (default ``classical``: the built-in U-Net runs at about
0.3 MVoxel/s on these 2 CPU cores, i.e. about 2 hours for 2 G voxels; see bench_segment.py).

    python benchmarks/bench_pipeline_out_of_core.py [--shape 2048,1024,1024] [--model classical]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

from _common import report


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def prepare(shape, base_z: int, store: Path) -> None:
    """Write the mirrored-phantom tomogram (runs in its own process)."""
    import dask.array as da

    import redoxflow as rf

    t0 = time.perf_counter()
    ph = rf.make_phantom((base_z, *shape[1:]), seed=21, fibre_density=0.05,
                         n_bubbles=max(12, base_z * shape[1] * shape[2] // 160_000))
    base = da.from_array(ph.image, chunks=(32, -1, -1))
    del ph
    copies = [base if k % 2 == 0 else base[::-1] for k in range(shape[0] // base_z)]
    rf.ingest(da.concatenate(copies), store, voxel_size=10.0, kind="intensity",
              chunks=(32, *shape[1:]))
    print(f"prepared {store} in {time.perf_counter() - t0:.0f} s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--shape", default="2048,1024,1024")
    ap.add_argument("--base-z", type=int, default=256)
    ap.add_argument("--worker-memory", default="4GB")
    ap.add_argument("--model", default="classical")
    ap.add_argument("--compat", default=None, help="analysis compat mode (utile: the "
                    "reference's definitions); default: the default analysis")
    ap.add_argument("--resume", action="store_true",
                    help="keep finished stages of an earlier run (they are skipped)")
    ap.add_argument("--workdir", default="/tmp/rf-bench-pipeline")
    ap.add_argument("--prepare", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    work = Path(args.workdir)
    source = work / "input.zarr"
    if args.prepare:
        prepare(shape, args.base_z, source)
        return
    if not source.exists():
        work.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, __file__, "--prepare", "--shape", args.shape,
                        "--base-z", str(args.base_z), "--workdir", str(work)], check=True)
    if not args.resume:
        shutil.rmtree(work / "results", ignore_errors=True)

    from redoxflow.cluster import make_client
    from redoxflow.config import load_config
    from redoxflow.pipeline import run_pipeline

    cfg = load_config(None, {
        "input.source": str(source), "input.kind": "intensity",
        "output.directory": str(work / "results"), "output.orbit_frames": 0,
        "io.chunk_mib": 32, "cluster.workers": 2, "cluster.threads_per_worker": 1,
        "cluster.memory_limit": args.worker_memory, "cluster.dashboard_address": None,
        "segment.model": args.model, "analyze.negative_side": "high",
        "analyze.compat": args.compat})
    with make_client(config=cfg.cluster) as client:
        before = set(client.scheduler_info()["workers"])
        t0 = time.perf_counter()
        summary = run_pipeline(cfg, progress=False)
        wall = time.perf_counter() - t0
        rss = client.run(peak_rss)
        after = set(client.scheduler_info()["workers"])
    voxels = int(shape[0]) * shape[1] * shape[2]
    rows = [{"stage": k, "seconds": round(v, 1), "MVoxel_per_s": round(voxels / v / 1e6, 2)}
            for k, v in summary["timings_s"].items() if v > 0]
    rows.append({"stage": "total", "seconds": round(wall, 1),
                 "MVoxel_per_s": round(voxels / wall / 1e6, 2)})
    extra = {"shape": list(shape), "voxels": voxels, "model": args.model,
             "compat": args.compat, "resumed": args.resume,
             "worker_memory_limit": args.worker_memory,
             "worker_peak_rss_gib": {k: round(v / 2**30, 2) for k, v in rss.items()},
             "pipeline_process_peak_rss_gib": round(peak_rss() / 2**30, 2),
             "workers_restarted": len(before ^ after),
             "summary": {k: summary[k] for k in ("n_components", "n_bubbles_cell", "n_bubbles",
                                                   "bubble_volume_fraction",
                                                   "membrane_blocked_fraction", "class_voxels")}}
    print(json.dumps(extra, indent=2))
    report(f"pipeline_out_of_core_{args.model}", rows, extra)


if __name__ == "__main__":
    main()
