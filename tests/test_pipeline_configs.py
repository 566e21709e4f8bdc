"""The shipped configs drive the whole pipeline (real data where the config needs it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.realdata
def test_utile_compat_config_reproduces_the_reference_ratio(shared_data, tmp_path):
    import xarray as xr

    from redoxflow.config import load_config
    from redoxflow.pipeline import run_pipeline

    cwd = os.getcwd()
    os.chdir(ROOT)  # the config names the shared data relative to the repository
    try:
        cfg = load_config(ROOT / "configs" / "utile-compat.yaml", environ={},
                          overrides={"output.directory": str(tmp_path / "out"),
                                     "output.report": False})
        summary = run_pipeline(cfg, progress=False)
    finally:
        os.chdir(cwd)
    tree = xr.open_datatree(tmp_path / "out" / "results.zarr", engine="zarr",
                            consolidated=False)
    s = tree["summary"]
    assert float(s["bubble_electrolyte_ratio"]) == pytest.approx(8.3689e-05, rel=1e-4)
    assert (int(s["n_bubbles"]), int(s["n_components"])) == (11, 37)
    assert summary["segmentation_f1"] is None  # already segmented: no segment stage
    assert not (tmp_path / "out" / "raw.zarr").exists()
