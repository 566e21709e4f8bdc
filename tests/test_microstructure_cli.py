"""rf.microstructure at the top level, the `microstructure` command and its report."""

from __future__ import annotations

import re

import numpy as np
import xarray as xr
from click.testing import CliRunner

import redoxflow as rf
from redoxflow.cli import main


def test_top_level_cli_and_report(tmp_path):
    rng = np.random.default_rng(0)
    v = np.where(rng.random((20, 22, 24)) < 0.45, 0, 85).astype(np.uint8)
    v[:, :, 10:12] = 170
    rf.ingest(v, tmp_path / "e.zarr", kind="classes", voxel_size=0.5, progress=False)
    direct = rf.microstructure(v, phases="pore=0,NMC=85,CBD=170", spacing=0.5,
                               metrics=("fractions", "surfaces"))  # the package is callable
    assert callable(rf.microstructure.tortuosity)
    res = CliRunner().invoke(main, ["microstructure", str(tmp_path / "e.zarr"),
                                    str(tmp_path / "out"), "--phases", "pore=0,NMC=85,CBD=170",
                                    "--metrics", "fractions,surfaces,percolation",
                                    "--tortuosity", "z"])
    assert res.exit_code == 0, res.output
    ds = xr.load_dataset(tmp_path / "out" / "microstructure.nc")
    np.testing.assert_allclose(ds["volume_fraction"], direct["volume_fraction"])
    np.testing.assert_allclose(ds["specific_surface_area"], direct["specific_surface_area"])
    assert float(ds["tortuosity_factor"].sel(tortuosity_axis="z")) >= 1
    assert "volume_fraction (1): " in res.output
    again = CliRunner().invoke(main, ["microstructure", str(tmp_path / "e.zarr"),
                                      str(tmp_path / "out"), "--metrics", "fractions"])
    assert again.exit_code == 2 and "--overwrite" in again.output
    res = CliRunner().invoke(main, ["report", str(tmp_path / "out" / "microstructure.nc")])
    assert res.exit_code == 0, res.output
    page = (tmp_path / "out" / "microstructure.html").read_text()
    heads = re.findall(r"<h2>([^<(]*)", page)
    assert heads[:4] == ["Phases", "Interfaces", "Percolation ", "Tortuosity factor"]
    assert "volume fraction (1)" in page and 'src="data:image/png;base64,' in page
