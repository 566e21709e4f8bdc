"""Label and measure a volume much larger than a dask worker's memory limit.

A synthetic binary volume (default 2048^3 uint8 = 8 GiB on disk when uncompressed, smooth
interlocking blobs that cross every chunk) is written to a Zarr store; then a LocalCluster
with 2 workers capped at ``--worker-memory`` (default 1 GiB: the volume is 8x one worker's
limit) labels it into a second store and reduces the per-bubble moments (volume, centroid,
bbox, inertia, orientation). Reported: wall time per stage, MVoxel/s, each worker's peak RSS
and whether any worker was restarted (killed for memory).

    python benchmarks/bench_out_of_core.py [--size 2048] [--chunk 256] [--worker-memory 1GiB]
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

import numpy as np
from _common import report


def blobs(block_info=None):
    """One chunk of the synthetic mask, computed from global coordinates (deterministic)."""
    (z0, z1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
    z = np.arange(z0, z1, dtype=np.float32)[:, None, None]
    y = np.arange(y0, y1, dtype=np.float32)[None, :, None]
    x = np.arange(x0, x1, dtype=np.float32)[None, None, :]
    field = np.sin(z / 9.0) + np.sin(y / 11.0 + z / 23.0) + np.sin(x / 7.0 - y / 31.0)
    return (field > 1.3).astype(np.uint8)


def peak_rss() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--chunk", type=int, default=256)
    ap.add_argument("--worker-memory", default="1GiB")
    ap.add_argument("--workdir", default="/tmp/rf-bench-ooc")
    args = ap.parse_args()

    import dask.array as da
    from distributed import Client, LocalCluster

    import redoxflow as rf
    from redoxflow.io.store import write_dask
    from redoxflow.measure import MOMENT_PROPERTIES

    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    n, c = args.size, args.chunk
    voxels = n ** 3
    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=args.worker_memory,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        before = set(client.scheduler_info()["workers"])
        t0 = time.perf_counter()
        mask = da.map_blocks(blobs, chunks=((c,) * (n // c),) * 3, dtype=np.uint8)
        write_dask(mask, work / "mask.zarr", kind="classes", levels=1)
        t_write = time.perf_counter() - t0
        t0 = time.perf_counter()
        labels, count = rf.label(str(work / "mask.zarr"), out=work / "labels.zarr")
        t_label = time.perf_counter() - t0
        t0 = time.perf_counter()
        table = rf.regionprops(str(work / "labels.zarr"), properties=list(MOMENT_PROPERTIES))
        t_measure = time.perf_counter() - t0
        rss = client.run(peak_rss)
        after = set(client.scheduler_info()["workers"])
    disk = sum(f.stat().st_size for f in work.rglob("*") if f.is_file())
    rows = [{"stage": s, "seconds": round(t, 1), "MVoxel_per_s": round(voxels / t / 1e6, 1)}
            for s, t in (("write mask", t_write), ("label", t_label), ("measure", t_measure))]
    extra = {"shape": [n] * 3, "chunk": c, "voxels": voxels,
             "uncompressed_gib": voxels / 2**30, "on_disk_gib": round(disk / 2**30, 2),
             "worker_memory_limit": args.worker_memory, "components": int(count),
             "bubbles_measured": int(table.sizes["bubble"]),
             "worker_peak_rss_gib": {k: round(v / 2**30, 2) for k, v in rss.items()},
             "workers_restarted": len(before ^ after)}
    print(extra)
    report("out_of_core", rows, extra)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
