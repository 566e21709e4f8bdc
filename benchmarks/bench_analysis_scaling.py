"""The default analysis against compat mode and one cc3d call, from 34 M to 537 M voxels.

Issue 13's targets, measured in one run: the default analysis within 1.5x of compat mode and
within 12x of one single-threaded ``cc3d.connected_components`` call on its bubble mask, with
time growing linearly in the voxels (the fitted exponent). The volumes are the real VRFB scan
volume_62c63bc (or the built-in phantom when the shared data is absent) mirrored along z to
each size, ingested once into Zarr (not timed). Each analysis runs in its own child process
(threads scheduler, 2 workers); CPU seconds are the child's user + system time spent in
``rf.analyze`` (not its imports). Above ``--cc3d-limit`` the volume never sits in memory and the cc3d
time is scaled linearly from the largest size measured (marked ``cc3d_measured: false``).

    python benchmarks/bench_analysis_scaling.py [--sizes 34,127,537] [--workdir /tmp/rf-scaling]
    python benchmarks/bench_analysis_scaling.py --sizes 537,8590 --modes default \
        --name analysis_8g    # 8.6 G voxels (as many as 2048^3: 13,819 planes of 740x840)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "utile_redox_segmentations"

CHILD = r"""
import json, resource, sys, time
import dask
import redoxflow as rf
store, compat = sys.argv[1], sys.argv[2]
dask.config.set(scheduler="threads", num_workers=2)
u0 = resource.getrusage(resource.RUSAGE_SELF)  # the imports are not the analysis's
t0 = time.perf_counter()
tree = rf.analyze(store, compat=None if compat == "default" else compat, negative_side="high")
wall = time.perf_counter() - t0
u = resource.getrusage(resource.RUSAGE_SELF)
s = tree["summary"]
print(json.dumps({"wall_s": wall, "cpu_s": u.ru_utime + u.ru_stime - u0.ru_utime - u0.ru_stime,
                  "peak_rss_gb": u.ru_maxrss / 2**20, "n_bubbles": int(s["n_bubbles"]),
                  "n_components": int(s["n_components"]),
                  "phases": json.loads(tree.attrs["timings_s"])}))
"""


def base_volume() -> tuple[np.ndarray, str]:
    """The real class volume 62c63bc, else the phantom's classes."""
    found = sorted(DATA.glob("volume_62c63bc*_classes_uint8.npz"))
    if found:
        return np.load(found[0])["volume"], "volume_62c63bc"
    import redoxflow as rf

    return rf.make_phantom((96, 512, 512), seed=0).classes, "phantom 96x512x512"


def mirrored(base: np.ndarray, nz: int):
    """``base`` repeated along z with every other copy mirrored, cut to ``nz`` slices (a
    lazy dask array: the largest volumes never sit in memory)."""
    import dask.array as da

    reps = -(-nz // base.shape[0])
    copies = [da.from_array(base if i % 2 == 0 else base[::-1].copy(), chunks=(64, -1, -1))
              for i in range(min(reps, 2))]
    return da.concatenate([copies[i % 2] for i in range(reps)])[:nz]


def cc3d_seconds(classes: np.ndarray) -> float:
    import cc3d

    mask = classes == 1
    t0 = time.perf_counter()
    cc3d.connected_components(mask, connectivity=26, out_dtype=np.uint32)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="34,127,537", help="target sizes in M voxels")
    ap.add_argument("--workdir", default="/tmp/rf-scaling")
    ap.add_argument("--name", default="analysis_scaling", help="results file name")
    ap.add_argument("--modes", default="utile,default", help="analyses to run per size")
    ap.add_argument("--cc3d-limit", type=float, default=2200,
                    help="largest size (M voxels) for the in-memory cc3d call")
    args = ap.parse_args()
    import redoxflow as rf

    base, name = base_volume()
    plane = base.shape[1] * base.shape[2]
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for target in (float(s) for s in args.sizes.split(",")):
        nz = max(1, round(target * 1e6 / plane))
        classes = mirrored(base, nz)
        store = work / f"classes_{nz}.zarr"
        if not store.exists():
            rf.ingest(classes, store, kind="classes", voxel_size=1.0, progress=False)
        # one in-memory cc3d call needs ~5 bytes per voxel: above the limit it is scaled
        # linearly from the largest size measured
        in_memory = nz * plane <= args.cc3d_limit * 1e6
        if in_memory:
            t_cc3d = cc3d_seconds(classes.compute())
            per_voxel = t_cc3d / (nz * plane)
        else:
            t_cc3d = per_voxel * nz * plane
        del classes
        row = {"voxels_M": round(nz * plane / 1e6, 1), "cc3d_s": round(t_cc3d, 2),
               "cc3d_measured": in_memory}
        for mode in args.modes.split(","):
            out = subprocess.run([sys.executable, "-c", CHILD, str(store), mode],
                                 capture_output=True, text=True)
            if out.returncode:
                sys.exit(f"{mode} analysis of {store} failed:\n{out.stderr[-3000:]}")
            r = json.loads(out.stdout.strip().splitlines()[-1])
            key = "compat" if mode == "utile" else "default"
            row.update({f"{key}_wall_s": round(r["wall_s"], 1), f"{key}_cpu_s": round(r["cpu_s"], 1),
                        f"{key}_rss_gb": round(r["peak_rss_gb"], 2)})
            row[f"{key}_phases"] = r["phases"]
        if "compat_cpu_s" in row and "default_cpu_s" in row:
            row["default_vs_compat_cpu"] = round(row["default_cpu_s"] / row["compat_cpu_s"], 2)
            row["default_vs_compat_wall"] = round(row["default_wall_s"] / row["compat_wall_s"],
                                                  2)
        if "default_cpu_s" in row:
            row["default_cpu_vs_cc3d"] = round(row["default_cpu_s"] / t_cc3d, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    extra = {"volume": name, "targets": {"default_vs_compat": 1.5, "default_vs_cc3d": 12}}
    if len(rows) > 1:
        for key in ("compat", "default"):
            have = [r for r in rows if f"{key}_cpu_s" in r]
            if len(have) > 1:
                extra[f"{key}_cpu_exponent"] = round(float(np.polyfit(
                    np.log([r["voxels_M"] for r in have]),
                    np.log([r[f"{key}_cpu_s"] for r in have]), 1)[0]), 2)
    table = [{k: val for k, val in r.items() if not k.endswith("phases")} for r in rows]
    report(args.name, table, {**extra, "phases": [
        {"voxels_M": r["voxels_M"], "compat": r.get("compat_phases"),
         "default": r.get("default_phases")} for r in rows]})
    print(json.dumps(extra))


if __name__ == "__main__":
    main()
