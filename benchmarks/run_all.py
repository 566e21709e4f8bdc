"""The benchmark suite: every per-stage script in one run, then one markdown table.

Runs, each in its own process (so peak memory is per stage):
  bench_label.py      labeling vs scipy.ndimage.label, cc3d, dask-image; regionprops vs skimage
  bench_analyze.py    the VRFB analysis vs the reference's published time and memory
  bench_segment.py    slices/s per architecture; dask pipeline vs a bare loop
  bench_scaling.py    strong scaling from 1 to N workers
GPU rows appear where the scripts find a GPU. Each script writes results/suite_NAME.json (the
stand-alone runs' results/NAME.json stay untouched); the summary goes to results/suite.json
and results/suite.md.

    python benchmarks/run_all.py [--quick]      (--quick: smaller inputs, about 10 minutes)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def stages(quick: bool) -> list[tuple[str, list[str]]]:
    return [
        # 256^3 keeps dask-image (about 100x slower than the others) in the same run
        ("bench_label.py", ["--size", "192" if quick else "256", "--chunk", "64"]),
        ("bench_analyze.py", ["--volume", "5f6c17f" if quick else "62c63bc"]),
        ("bench_segment.py", ["--slices", "16" if quick else "64"]),
        ("bench_scaling.py", ["--size", "192" if quick else "256"]),
    ]


def table(rows: list[dict]) -> list[str]:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])
                                       for k in keys) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    runs = []
    for script, options in stages(args.quick):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(HERE / script), *options], cwd=HERE,
                              env={**os.environ, "RF_BENCH_PREFIX": "suite_"})
        runs.append({"script": script, "options": " ".join(options), "exit": proc.returncode,
                     "seconds": round(time.perf_counter() - t0, 1)})
        print(runs[-1], flush=True)
    sections = ["# redoxflow benchmark suite", "", *table(runs), ""]
    collected = {"runs": runs}
    for name in ("label", f"analyze_{'5f6c17f' if args.quick else '62c63bc'}",
                 "segment_architectures", "segment_pipeline", "scaling"):
        path = RESULTS / f"suite_{name}.json"
        if path.exists():
            data = json.loads(path.read_text())
            collected[name] = data
            sections += [f"## {name}", "", *table(data["rows"]), ""]
    (RESULTS / "suite.json").write_text(json.dumps(collected, indent=2))
    (RESULTS / "suite.md").write_text("\n".join(sections))
    print("\n".join(sections))
    print(f"wrote {RESULTS / 'suite.md'}")
    sys.exit(max(r["exit"] for r in runs))


if __name__ == "__main__":
    main()
