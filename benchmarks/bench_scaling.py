"""Strong scaling: the same labeling + measuring + segmentation work on 1..N dask workers.

A fixed blob volume (default 256^3, 64^3 chunks) is labelled store-to-store and its moments
reduced, and a 16x512x512 phantom is segmented with the built-in model, on LocalClusters of
1, 2, ... N single-threaded workers (N = cores). Reported: seconds and speed-up over 1 worker.

    python benchmarks/bench_scaling.py [--size 256] [--max-workers N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from _common import report
from bench_label import blobs


def run(workers: int, mask, image_store: Path, work: Path) -> dict:
    import dask.array as da
    from distributed import Client, LocalCluster

    import redoxflow as rf
    from redoxflow.segment import segment

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster):
        t0 = time.perf_counter()
        labels, _ = rf.label(da.from_array(mask, chunks=64), out=work / f"l{workers}.zarr")
        t1 = time.perf_counter()
        rf.regionprops(labels, properties=["volume", "centroid", "inertia"])
        t2 = time.perf_counter()
        segment(image_store, "builtin", out=work / f"s{workers}.zarr", progress=False, slab=2)
        t3 = time.perf_counter()
    return {"label": t1 - t0, "measure": t2 - t1, "segment": t3 - t2}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--max-workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    import redoxflow as rf

    mask = blobs(args.size)
    work = Path(tempfile.mkdtemp(prefix="rf-bench-scaling-"))
    rows = []
    try:
        ph = rf.make_phantom((16, 512, 512), seed=2)
        rf.ingest(ph.image, work / "raw.zarr", chunks=(2, 512, 512), voxel_size=1.0,
                  progress=False)
        base = None
        for n in range(1, args.max_workers + 1):
            t = run(n, mask, work / "raw.zarr", work)
            base = base or t
            for stage, seconds in t.items():
                rows.append({"stage": stage, "workers": n, "seconds": round(seconds, 2),
                             "speedup": round(base[stage] / seconds, 2)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report("scaling", rows, {"size": args.size, "phantom": [16, 512, 512]})


if __name__ == "__main__":
    main()
