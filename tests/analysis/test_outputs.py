"""What the analysis writes: CF attributes read back from NetCDF, the recorded config, and
never touching what is not ours."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import redoxflow as rf

UDUNITS = {"1", "micrometer", "micrometer^2", "micrometer^3", "mm^3", "degree"}


def check_cf(ds: xr.Dataset, where: str) -> list[str]:
    """Problems with units, long_name and flag attributes of one dataset."""
    problems = []
    for name, var in ds.variables.items():
        attrs = var.attrs
        if "long_name" not in attrs:
            problems.append(f"{where}/{name}: no long_name")
        is_flag = var.dtype.kind in "bOUS" or "flag_values" in attrs or \
            attrs.get("dtype") == "bool"
        if "units" in attrs and attrs["units"] not in UDUNITS:
            problems.append(f"{where}/{name}: units {attrs['units']!r} not UDUNITS")
        if is_flag and "units" in attrs:
            problems.append(f"{where}/{name}: a flag with units")
        if not is_flag and var.dtype.kind in "iuf" and "units" not in attrs \
                and name not in ds.dims:
            problems.append(f"{where}/{name}: numeric without units")
        if "flag_values" in attrs:
            values = np.atleast_1d(attrs["flag_values"])
            if len(values) != len(str(attrs.get("flag_meanings", "")).split()):
                problems.append(f"{where}/{name}: flag_values and flag_meanings differ")
        if name in ("z", "y", "x") and var.ndim == 1 and attrs.get("axis") != name.upper():
            problems.append(f"{where}/{name}: no axis attribute")
    return problems


@pytest.mark.parametrize("compat", [None, "utile"])
def test_results_are_cf_clean(tmp_path, compat):
    phantom = rf.make_phantom((24, 64, 64), seed=3, n_bubbles=12)
    rf.analyze(phantom.classes, negative_side="high", spacing=phantom.voxel_size, out=tmp_path,
               netcdf=True, table=True, compat=compat)
    tree = xr.open_datatree(tmp_path / "results.nc", engine="h5netcdf")
    assert tree.attrs["Conventions"] == "CF-1.10"
    assert "redoxflow" in tree.attrs["history"] and "analyze" in tree.attrs["history"]
    problems = []
    for node in tree.subtree:
        problems += check_cf(node.to_dataset(), node.path)
    problems += check_cf(xr.load_dataset(tmp_path / "bubbles.nc"), "bubbles.nc")
    assert not problems, "\n".join(problems)
    summary = tree["summary"].to_dataset()
    expected = "1" if compat else "micrometer^3"
    assert summary["bubble_volume"].attrs["units"] == expected
    assert summary["n_bubbles"].attrs["units"] == "1"


def test_the_checker_sees_problems():
    bad = xr.Dataset({"a": ("x", [1.0], {"units": "voxel"}), "b": ("x", [True], {"units": "m"})},
                     coords={"x": [0.0]})
    found = "\n".join(check_cf(bad, "bad"))
    assert "not UDUNITS" in found and "flag with units" in found and "no long_name" in found
    assert "no axis" in found


def test_the_recorded_config_is_the_runs(tmp_path):
    import json

    phantom = rf.make_phantom((16, 48, 48), seed=1, n_bubbles=4)
    rf.ingest(phantom.classes, tmp_path / "c.zarr", kind="classes", voxel_size=2.0,
              progress=False)
    tree = rf.analyze(str(tmp_path / "c.zarr"), negative_side="low", out=tmp_path / "out")
    recorded = json.loads(tree.attrs["config"])
    assert recorded["input"]["source"].endswith("c.zarr") and recorded["input"]["kind"] == "classes"
    assert recorded["analyze"]["negative_side"] == "low"
    assert recorded["output"]["directory"] == str(tmp_path / "out")


def test_analyze_never_touches_a_users_folders(tmp_path):
    """Issue 18: a user's OUT/.scratch survives, two runs into one OUT do not share scratch
    space, and the input is never one of the outputs."""
    from redoxflow.errors import InputError

    phantom = rf.make_phantom((16, 48, 48), seed=2, n_bubbles=4)
    out = tmp_path / "out"
    (out / ".scratch").mkdir(parents=True)
    (out / ".scratch" / "notes.txt").write_text("mine")
    rf.analyze(phantom.classes, negative_side="high", out=out)
    assert (out / ".scratch" / "notes.txt").read_text() == "mine"
    assert not [p for p in out.iterdir() if p.name.startswith(".redoxflow-scratch")]
    rf.ingest(phantom.classes, out / "bubble_labels.zarr", kind="classes", voxel_size=1.0,
              progress=False, overwrite=True)
    with pytest.raises(InputError, match="is the analysis output bubble_labels.zarr"):
        rf.analyze(str(out / "bubble_labels.zarr"), negative_side="high", out=out,
                   overwrite=True)
    assert (out / "bubble_labels.zarr").exists()
