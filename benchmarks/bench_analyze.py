"""The full bubble analysis of a real VRFB volume (default: volume_62c63bc, 648x740x840).

The class volume is ingested once into a Zarr store (not timed); then each mode (compat="utile"
and the default) runs in its own child process, whose wall time and peak RSS (ru_maxrss) are
reported beside the reference figures of ../shared/docs/utile_redox_reference.md (per-bubble
analysis + blockage time, and peak RSS). Each mode runs with two chunkings to show that the
numbers do not depend on the chunking. Targets: < 60 s and < 3 GB per mode.

    python benchmarks/bench_analyze.py [--volume 62c63bc] [--workdir /tmp/rf-bench-analyze]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "utile_redox_segmentations"
REFERENCE = {  # ratio, kept bubbles, blocked voxels, analysis + blockage seconds, peak GB
    "5f6c17f": (8.3689e-05, 11, 2305, 10.2 + 4.8, 1.4),
    "9a70210": (0.370099, 37, 58358, 101 + 21.4, 3.8),
    "62c63bc": (0.0238292, 224, 81264, 1752 + 112, 8.9),
}

CHILD = r"""
import json, resource, sys, time, warnings
import dask
import redoxflow as rf
store, compat, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
classes = rf.open_volume(store)
classes = classes.chunk({"z": chunk, "y": 4 * chunk, "x": 4 * chunk})
dask.config.set(scheduler="threads", num_workers=2)
t0 = time.perf_counter()
tree = rf.analyze(classes, compat=None if compat == "default" else compat, negative_side="high")
wall = time.perf_counter() - t0
s = tree["summary"]
print(json.dumps({"wall_s": wall, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
                  "ratio": float(s["bubble_electrolyte_ratio"]), "fraction": float(s["bubble_volume_fraction"]),
                  "n_bubbles": int(s["n_bubbles"]), "n_components": int(s["n_components"]),
                  "blocked": int(s["membrane_blocked_voxels"]), "phases": json.loads(tree.attrs["timings_s"])}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--volume", default="62c63bc", choices=sorted(REFERENCE))
    ap.add_argument("--workdir", default="/tmp/rf-bench-analyze")
    ap.add_argument("--chunks", default="64,100", help="z chunk sizes to compare (y, x = 4z)")
    args = ap.parse_args()
    sources = sorted(DATA.glob(f"volume_{args.volume}*_classes_uint8.npz"))
    if not sources:
        sys.exit(f"{DATA} has no volume {args.volume}: the shared data is needed")
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    store = work / f"{args.volume}.zarr"
    if not store.exists():
        import numpy as np

        import redoxflow as rf

        rf.ingest(np.load(sources[0])["volume"], store, kind="classes", voxel_size=1.0)
    ref = REFERENCE[args.volume]
    rows = []
    for compat in ("utile", "default"):
        for chunk in (int(c) for c in args.chunks.split(",")):
            out = subprocess.run([sys.executable, "-c", CHILD, str(store), compat, str(chunk)],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows.append({"mode": compat, "chunks": f"{chunk}x{4 * chunk}x{4 * chunk}",
                         "wall_s": round(r["wall_s"], 1), "peak_rss_gb": round(r["peak_rss_gb"], 2),
                         "ratio": r["ratio"], "R_bv": r["fraction"],
                         "kept/components": f"{r['n_bubbles']}/{r['n_components']}",
                         "blocked_voxels": r["blocked"],
                         "speedup_vs_reference": round(ref[3] / r["wall_s"], 1),
                         "phases": r["phases"]})
            print(rows[-1], flush=True)
    rows.append({"mode": "reference (UTILE-Redox)", "chunks": "in memory", "wall_s": ref[3],
                 "peak_rss_gb": ref[4], "ratio": ref[0], "R_bv": ref[0] / (1 + ref[0]),
                 "kept/components": f"{ref[1]}/-", "blocked_voxels": ref[2],
                 "speedup_vs_reference": 1.0, "phases": {}})
    report(f"analyze_{args.volume}", rows, {"volume": args.volume})


if __name__ == "__main__":
    main()
