"""Exports read back by the clients users open them with (tifffile/Fiji's format, VTK)."""

from __future__ import annotations

import numpy as np
import pytest

import redoxflow as rf

pv = pytest.importorskip("pyvista")


@pytest.fixture()
def stores(tmp_path):
    ph = rf.make_phantom((20, 48, 56), seed=4, n_bubbles=6)
    rf.ingest(ph.classes, tmp_path / "classes.zarr", kind="classes", voxel_size=(3, 2, 1),
              chunks=(7, 48, 56), progress=False)
    labels, n = rf.label(ph.classes == 1, out=tmp_path / "labels.zarr", voxel_size=(3, 2, 1))
    return ph, tmp_path, n


def test_volumes_round_trip_through_tiff_and_vti(stores):
    import tifffile

    from redoxflow.io import open_source

    ph, tmp, _ = stores
    for name in ("c.tif", "c.vti"):
        rf.viz.export(tmp / "classes.zarr", tmp / name)
        src = open_source(tmp / name)
        np.testing.assert_array_equal(src.read(0, src.shape[0]), ph.classes)
        np.testing.assert_allclose(src.voxel_size, (3, 2, 1))
    with tifffile.TiffFile(tmp / "c.tif") as tif:  # what Fiji reads: an ImageJ hyperstack
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 3
    grid = pv.read(tmp / "c.vti")  # ParaView: x, y, z = array axes 2, 1, 0
    assert grid.dimensions == (56, 48, 20) and np.allclose(grid.spacing, (1, 2, 3))
    assert np.array_equal(grid.point_data["values"].reshape(20, 48, 56), ph.classes)


def test_bubble_meshes_carry_ids_and_properties(stores):
    from click.testing import CliRunner

    from redoxflow.cli import main

    _, tmp, n = stores
    table = rf.regionprops(str(tmp / "labels.zarr"))
    table.to_netcdf(tmp / "bubbles.nc")
    res = CliRunner().invoke(main, ["export", str(tmp / "labels.zarr"), str(tmp / "b.vtp"),
                                    "--table", str(tmp / "bubbles.nc")])
    assert res.exit_code == 0, res.output
    mesh = pv.read(tmp / "b.vtp")
    assert sorted(set(mesh.cell_data["bubble"].tolist())) == list(range(1, n + 1))
    first = mesh.cell_data["bubble"] == 1
    assert np.allclose(mesh.cell_data["volume"][first], float(table["volume"][0]))
    lo = np.asarray(table["bbox_min"][0]) * (3, 2, 1)  # physical position of bubble 1
    sub = mesh.extract_cells(np.flatnonzero(first))
    assert np.all(np.asarray(sub.bounds)[::2] >= lo[::-1] - 0.5 * np.array((1, 2, 3)) - 1e-9)
    for fmt in ("stl", "ply"):
        rf.viz.export(tmp / "labels.zarr", tmp / f"b.{fmt}")
        assert pv.read(tmp / f"b.{fmt}").n_cells == mesh.n_cells
    again = CliRunner().invoke(main, ["export", str(tmp / "labels.zarr"), str(tmp / "b.vtp")])
    assert again.exit_code == 2 and "--overwrite" in again.output
