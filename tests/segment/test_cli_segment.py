"""CLI: segment, train and evaluate, with one-line errors."""

from __future__ import annotations

import numpy as np
import tifffile
from click.testing import CliRunner

from redoxflow.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_segment_then_evaluate_a_store(tmp_path, phantom, tiny_checkpoint):
    from redoxflow.io import ingest

    ingest(phantom.image, tmp_path / "raw.zarr", voxel_size=2.0, progress=False)
    ingest(phantom.classes, tmp_path / "truth.zarr", voxel_size=2.0, progress=False)
    res = run("segment", tmp_path / "raw.zarr", tmp_path / "seg.zarr", "--model", tiny_checkpoint,
              "--workers", "1")
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and (tmp_path / "seg.zarr" / "zarr.json").exists()
    res = run("evaluate", tmp_path / "seg.zarr", tmp_path / "truth.zarr", "--out",
              tmp_path / "scores.nc")
    assert res.exit_code == 0, res.output
    assert "membrane" in res.output and "accuracy" in res.output
    import xarray as xr

    assert xr.load_dataset(tmp_path / "scores.nc")["f1"].sizes["class"] == 4
    res = run("evaluate", tmp_path / "seg.zarr", tmp_path / "truth.zarr", "--out",
              tmp_path / "scores.nc")
    assert res.exit_code == 2 and "--overwrite" in res.output  # never replaced silently
    res = run("segment", tmp_path / "raw.zarr", tmp_path / "seg.zarr", "--model", tiny_checkpoint)
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = run("segment", tmp_path / "raw.zarr", tmp_path / "x.zarr", "--model", "nope.pt")
    assert res.exit_code == 2 and "does not exist" in res.output


def test_train_binary_on_tiff_slices_and_evaluate(tmp_path, phantom):
    image = (phantom.image[10].astype(np.uint16) * 250)
    mask = np.where(phantom.classes[10] == 2, 255, 0).astype(np.uint8)
    tifffile.imwrite(tmp_path / "im.tif", image)
    tifffile.imwrite(tmp_path / "mask.tif", mask)
    res = run("train", "--images", tmp_path / "im.tif", "--masks", tmp_path / "mask.tif",
              "--binary", "--out", tmp_path / "model", "--epochs", "2", "--steps", "2",
              "--tile", "32", "--batch-size", "2")
    assert res.exit_code == 0, res.output
    assert "best checkpoint" in res.output and (tmp_path / "model" / "best.pt").exists()
    res = run("evaluate", tmp_path / "mask.tif", tmp_path / "mask.tif", "--binary")
    assert res.exit_code == 0 and "foreground" in res.output and "1.0000" in res.output
    res = run("train", "--images", tmp_path / "im.tif", "--out", tmp_path / "m2")
    assert res.exit_code == 2 and "--masks" in res.output
