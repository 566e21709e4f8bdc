"""`segment` and `redoxflow segment` take a 4D series: each step segmented, one 4D store."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

import redoxflow as rf
from redoxflow.cli import main


def test_a_series_is_segmented_step_by_step(tmp_path):
    images = np.stack([rf.make_phantom((64, 64, 64), seed=s).image for s in (1, 2)])
    rf.ingest(images, tmp_path / "series.zarr", kind="intensity", voxel_size=5.0,
              progress=False)
    res = CliRunner().invoke(main, ["segment", str(tmp_path / "series.zarr"),
                                    str(tmp_path / "classes.zarr"), "--model", "classical",
                                    "--workers", "1"])
    assert res.exit_code == 0, res.output
    got = rf.open_volume(tmp_path / "classes.zarr")
    assert got.dims == ("t", "z", "y", "x") and got.attrs["kind"] == "classes"
    for t in range(2):  # the same as segmenting the step alone
        alone = rf.segment(images[t], "classical").compute()
        np.testing.assert_array_equal(got.data[t].compute(), alone)
    pyramid = rf.open_volume(tmp_path / "classes.zarr", level=1)  # per step, not across t
    np.testing.assert_array_equal(pyramid.data[1].compute(), got.data[1, ::2, ::2, ::2])
