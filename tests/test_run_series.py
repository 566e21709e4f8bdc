"""`redoxflow run` on a 4D series of class volumes: ingest, analyze (with tracking), report
(segmenting a series: tests/segment/test_series.py)."""

from __future__ import annotations

import json

import numpy as np
import yaml
from click.testing import CliRunner

import redoxflow as rf
from redoxflow.cli import main


def test_run_takes_a_series(tmp_path):
    for t in range(2):
        np.save(tmp_path / f"step_{t}.npy", rf.make_phantom((32, 64, 64), seed=7).classes)
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "input": {"source": str(tmp_path / "step_*.npy"), "voxel_size": 5.0,
                  "kind": "classes"},
        "analyze": {"negative_side": "high"},
        "output": {"directory": str(tmp_path / "out"), "orbit_frames": 0}}))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "c.yaml"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    assert "(per time step)" in res.output
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert len(summary["n_bubbles"]) == 2 and summary["n_bubbles"][0] == summary["n_bubbles"][1]
    import xarray as xr

    results = xr.open_datatree(tmp_path / "out" / "results.zarr", engine="zarr",
                               consolidated=False)
    assert results["summary/n_bubbles"].sizes["time"] == 2 and "tracks" in results.children
    for t in range(2):  # each step's labels are kept (the ids of its rows of the table)
        step = rf.open_volume(tmp_path / "out" / "bubble_labels" / f"t{t:04d}.zarr")
        assert int(step.data.max()) >= summary["n_bubbles_cell"][t]
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Time series" in page and "Time step 1 of 2" in page  # the last step's scenes
    assert "Bubbles by sphericity" in page and "3D scenes: failed" not in page
    res = CliRunner().invoke(main, ["report", str(tmp_path / "out" / "results.zarr"),
                                    "--step", "0", "--out", str(tmp_path / "r0" / "r.html")])
    assert res.exit_code == 0, res.output
    assert "Time step 0 of 2" in (tmp_path / "r0" / "r.html").read_text()
