"""Peak memory of ingesting a large raw volume (default 4 GiB uint16, 2048x1024x1024).

The raw file is written slab by slab, then `redoxflow ingest` runs in a child process whose
peak RSS (ru_maxrss) is reported beside the wall time and throughput. Target: < 1.5 GB.

    python benchmarks/bench_ingest_memory.py [--gib 4] [--workdir /tmp/rf-bench]
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import report


def write_raw(path: Path, shape: tuple[int, int, int]) -> None:
    """A tomogram-like uint16 volume (smooth structure + noise), written 64 slices at a time."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[: shape[1], : shape[2]].astype(np.float32)
    with open(path, "wb") as f:
        for z0 in range(0, shape[0], 64):
            n = min(64, shape[0] - z0)
            base = 20000 + 8000 * np.sin(xx / 37.0 + z0 / 50.0) * np.cos(yy / 23.0)
            slab = base[None] + rng.normal(0, 1500, (n, *shape[1:])).astype(np.float32)
            f.write(slab.astype("<u2").tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--gib", type=float, default=4.0)
    ap.add_argument("--workdir", default="/tmp/rf-bench-ingest")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    nz = int(args.gib * 2**30 / (1024 * 1024 * 2))
    shape = (nz, 1024, 1024)
    raw = work / "volume.raw"
    if not raw.exists() or raw.stat().st_size != np.prod(shape) * 2:
        write_raw(raw, shape)
    store = work / "volume.zarr"
    shutil.rmtree(store, ignore_errors=True)
    cmd = [sys.executable, "-m", "redoxflow.cli", "ingest", str(raw), str(store), "--shape",
           ",".join(map(str, shape)), "--dtype", "uint16", "--voxel-size", "1"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20  # KiB -> GiB
    gib = raw.stat().st_size / 2**30
    rows = [{"input GiB": gib, "shape": "x".join(map(str, shape)), "seconds": wall,
             "MB/s": raw.stat().st_size / 1e6 / wall, "peak RSS GiB": peak,
             "target": "< 1.4 GiB (1.5 GB)"}]
    report("ingest_memory", rows)
    shutil.rmtree(store, ignore_errors=True)


if __name__ == "__main__":
    main()
