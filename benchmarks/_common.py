"""Helpers shared by the benchmark scripts: timing, tables, JSON output."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def timed(fn, *args, **kwargs):
    """(seconds, result) of one call."""
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t0, out


def best_of(repeats: int, fn, *args, **kwargs):
    """(fastest seconds, result) over ``repeats`` calls (the first call warms caches up)."""
    runs = [timed(fn, *args, **kwargs) for _ in range(repeats)]
    return min(r[0] for r in runs), runs[-1][1]


def machine() -> dict:
    return {"python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine()}


def report(name: str, rows: list[dict], extra: dict | None = None) -> Path:
    """Print a markdown table and write ``results/NAME.json`` (``results/suite_NAME.json``
    under ``run_all.py``, which sets ``RF_BENCH_PREFIX``)."""
    name = os.environ.get("RF_BENCH_PREFIX", "") + name
    keys = list(rows[0])
    print("| " + " | ".join(keys) + " |")
    print("|" + "---|" * len(keys))
    for r in rows:
        print("| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k])
                                for k in keys) + " |")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"rows": rows, "machine": machine(), **(extra or {})}, indent=2))
    print(f"wrote {path}")
    return path
