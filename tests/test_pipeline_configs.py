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


def _demo_run(tmp_path, **overrides):
    from redoxflow.config import load_config
    from redoxflow.pipeline import run_pipeline

    cfg = load_config(ROOT / "configs" / "demo.yaml", environ={}, overrides={
        "output.directory": str(tmp_path / "out"), "input.shape": [40, 64, 64],
        "output.orbit_frames": 0, "output.report": False, **overrides})
    return tmp_path / "out", run_pipeline(cfg, progress=True)


@pytest.fixture(scope="module")
def demo_out(tmp_path_factory):
    """The demo config on a small cell (the shipped U-Net, on dask's local threads)."""
    pytest.importorskip("torch")
    return _demo_run(tmp_path_factory.mktemp("demo"))[0]


def test_demo_labels_are_ome_zarr_labels_of_the_image(demo_out):
    """classes.zarr and bubble_labels.zarr live under raw.zarr/labels/ (moved, not copied)
    and open under their old names; ome-zarr-models validates the image with its labels and
    ome-zarr-py's Reader (napari-ome-zarr's) finds both as Label nodes with their colours."""
    import zarr

    labels = pytest.importorskip("ome_zarr_models.v05.image_label")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.labels import Labels

    from redoxflow.io import open_volume

    raw = demo_out / "raw.zarr"
    for name, store in (("classes", "classes.zarr"), ("bubbles", "bubble_labels.zarr")):
        link = demo_out / store
        assert link.is_symlink() and link.resolve() == (raw / "labels" / name).resolve()
        assert open_volume(link).shape == open_volume(raw).shape
        group = zarr.open_group(raw / "labels" / name, mode="r")
        meta = labels.ImageLabel.from_zarr(group).attributes.ome.image_label
        assert meta.source.image == "../../"
    Image.from_zarr(zarr.open_group(raw, mode="r"))
    listed = Labels.from_zarr(zarr.open_group(raw / "labels", mode="r"))
    assert list(listed.attributes.ome.labels) == ["classes", "bubbles"]
    nodes = list(Reader(parse_url(str(raw)))())
    found = {Path(n.zarr.path.rstrip("/")).name: n for n in nodes
             if any(isinstance(s, Label) for s in n.specs)}
    assert set(found) == {"classes", "bubbles"}
    colours = found["classes"].metadata["color"]
    assert colours[1] == pytest.approx([230 / 255, 25 / 255, 25 / 255, 1.0])
    assert colours[0][3] == 0 and found["bubbles"].metadata["color"][0][3] == 0


def test_every_demo_output_opens_in_its_client(demo_out):
    """Each OME-Zarr store validates with ome-zarr-models, the tables and results open with
    netCDF4 and xarray, and every variable carries units or is dimensionless by CF."""
    import xarray as xr
    import zarr

    netCDF4 = pytest.importorskip("netCDF4")
    pytest.importorskip("ome_zarr_models")
    from ome_zarr_models.v05.image import Image
    from ome_zarr_models.v05.image_label import ImageLabel

    stores = sorted(p for p in demo_out.rglob("*.zarr") if p.is_dir() and not p.is_symlink())
    assert {p.name for p in stores} >= {"raw.zarr", "results.zarr"}
    for store in stores:
        if store.name == "results.zarr":
            tree = xr.open_datatree(store, engine="zarr", consolidated=False)
            assert "summary" in tree.children
            continue
        group = zarr.open_group(store, mode="r")
        model = ImageLabel if "image-label" in group.attrs["ome"] else Image
        model.from_zarr(group)
    for name in ("raw.zarr/labels/classes", "raw.zarr/labels/bubbles"):
        ImageLabel.from_zarr(zarr.open_group(demo_out / name, mode="r"))
    for table in ("bubbles.nc",):
        with netCDF4.Dataset(demo_out / table) as nc:
            assert nc.dimensions and nc.variables
        ds = xr.open_dataset(demo_out / table)
        for name, var in ds.data_vars.items():
            assert "long_name" in var.attrs, name
    assert (demo_out / "bubbles.csv").stat().st_size > 0


def test_rerun_says_which_stages_were_skipped(demo_out, tmp_path, capfd):
    """One named line per stage, no unnamed dask bars, and a rerun says what it skipped."""
    import shutil

    shutil.copytree(demo_out, tmp_path / "out", symlinks=True)
    capfd.readouterr()
    _, summary = _demo_run(tmp_path)
    err = capfd.readouterr().err
    assert summary["stages"]["segment"] == "skipped: classes.zarr is complete"
    assert "[2/5] segment: skipped: classes.zarr is complete" in err
    assert "skipped as complete: ingest, segment, score, analyze" in err
    assert "Completed |" not in err  # dask's unnamed ProgressBar


def test_stage_lines_are_named_and_count_the_work(tmp_path, capfd):
    """A fresh run prints one closing line per stage it ran, with its steps."""
    _, summary = _demo_run(tmp_path, **{"segment.model": "skip", "input.shape": [32, 48, 48]})
    err = capfd.readouterr().err.replace("\r", "\n")
    closing = [line for line in err.splitlines() if " done in " in line]
    assert [line.split(":")[0] for line in dict.fromkeys(closing)] == [
        "[1/5] ingest", "[2/5] segment", "[4/5] analyze"]
    analyze = next(line for line in closing if line.startswith("[4/5] analyze"))
    assert int(analyze.split("(")[-1].split()[0]) > 10  # the analysis' dask tasks counted
    assert "[3/5] score: not needed" in err and "Completed |" not in err
    assert summary["stages"]["analyze"] == "done"


def test_stage_bar_counts_tasks_on_a_distributed_client(client):
    """On a cluster (what `redoxflow run` uses) the bar counts the scheduler's tasks."""
    import dask.array as da

    from redoxflow.pipeline import StageBar

    with StageBar("[1/1] sum", enabled=False) as bar:
        da.ones((64, 64), chunks=8).sum().compute()
    assert bar.tasks[0] >= 64 and bar.tasks[1] == bar.tasks[0]
    with StageBar("[1/1] again", enabled=False) as bar:  # counts since the stage began
        (da.ones((16, 16), chunks=8) + 1).sum().compute()
    assert 4 <= bar.tasks[1] < 64
