"""benchmarks/bench_gpu.py must run end to end (through the stand-in, tiny sizes) in CI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_gpu.py"


def test_bench_gpu_runs_on_the_standin(tmp_path):
    pytest.importorskip("torch")
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--standin", "--size", "40", "--slices", "2",
         "--slice-size", "64", "--batch-size", "4", "--output", str(out)],
        capture_output=True, text=True, timeout=300, cwd=SCRIPT.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["ok"] and result["standin"] and not result["errors"]
    assert len(result["label_checks"]) == 3 and all(c["equal"] for c in result["label_checks"])
    assert len({tuple(c["chunks"]) for c in result["label_checks"]}) == 3
    assert result["regionprops"]["equal"]
    assert result["inference"]["slices_s"] > 0
