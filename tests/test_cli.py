"""CLI: help, ingest, info, label, measure, demo, and one-line errors with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from redoxflow.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_module_entry_point_has_every_command():
    for command in ("analyze", "report", "segment", "train", "evaluate", "label", "measure"):
        res = subprocess.run([sys.executable, "-m", "redoxflow.cli", command, "--help"],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (command, res.stderr)
        assert "Usage:" in res.stdout


def test_help_lists_commands():
    res = run("--help")
    assert res.exit_code == 0
    for cmd in ("ingest", "info", "demo", "run", "label", "measure"):
        assert cmd in res.output


def test_ingest_info_label_measure(tmp_path, phantom):
    np.save(tmp_path / "classes.npy", phantom.classes)
    res = run("ingest", tmp_path / "classes.npy", tmp_path / "c.zarr", "--voxel-size", "5")
    assert res.exit_code == 0, res.output
    assert "kind classes" in res.output
    res = run("info", tmp_path / "c.zarr")
    assert res.exit_code == 0 and "(5.0, 5.0, 5.0)" in res.output
    assert "0 electrolyte, 1 bubble, 2 membrane, 3 gasket" in res.output
    res = run("label", tmp_path / "c.zarr", tmp_path / "l.zarr")
    assert res.exit_code == 0, res.output
    res = run("measure", tmp_path / "l.zarr", tmp_path / "b.csv", "--properties", "volume")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "b.csv").read_text().startswith("bubble,volume_voxels")
    res = run("measure", tmp_path / "l.zarr", tmp_path / "b.csv", "--properties", "volume")
    assert res.exit_code == 2 and "--overwrite" in res.output
    res = run("measure", tmp_path / "l.zarr", tmp_path / "b.csv", "--overwrite")
    assert res.exit_code == 0 and "sphericity" in (tmp_path / "b.csv").read_text()


def test_user_errors_are_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "redoxflow.cli", "ingest",
                           str(tmp_path / "missing.tif"), str(tmp_path / "o.zarr")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    res = run("ingest", tmp_path / "v.npy", tmp_path / "o.zarr", "--voxel-size", "-3")
    assert res.exit_code == 2 and "voxel size" in res.output
    assert not (tmp_path / "o.zarr").exists()


def test_existing_output_refused(tmp_path):
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    assert run("ingest", tmp_path / "v.npy", tmp_path / "o.zarr", "--voxel-size", "1").exit_code == 0
    res = run("ingest", tmp_path / "v.npy", tmp_path / "o.zarr", "--voxel-size", "1")
    assert res.exit_code == 2 and "--overwrite" in res.output


def test_demo_end_to_end_and_resume(tmp_path):
    out = tmp_path / "demo"
    res = run("demo", "--output", out, "--shape", "32,64,64", "--workers", "2")
    assert res.exit_code == 0, res.output
    assert "Results are in" in res.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["n_bubbles_cell"] > 0
    assert (out / "bubble_labels.zarr").exists() and (out / "bubbles.csv").exists()
    _one_count_per_quantity(out, res.output, summary)
    # a second run finds every artifact complete and gives the same summary
    assert "[4/5] analyze: done" in res.output  # one named line per stage
    res = run("demo", "--output", out, "--shape", "32,64,64", "--workers", "2")
    assert res.exit_code == 0
    again = json.loads((out / "summary.json").read_text())
    assert again["n_bubbles"] == summary["n_bubbles"]
    assert "analyze: skipped: results.zarr is complete" in res.output  # says why
    assert set(again["stages"].values()) <= {"not needed"} | {
        f"skipped: {name} is complete" for name in ("raw.zarr", "classes.zarr",
                                                     "segmentation_scores.json", "results.zarr",
                                                     "report.html")}


def _one_count_per_quantity(out, stdout, summary):
    """Every output of a run reports the same number for the same count."""
    import re

    import pandas as pd
    import xarray as xr

    tree = xr.open_datatree(out / "results.zarr", engine="zarr", consolidated=False)
    s = {k: int(tree["summary"][k]) for k in ("n_components", "n_bubbles_cell", "n_bubbles")}
    assert {k: summary[k] for k in s} == s
    printed = re.search(r"(\d+) bubble components labelled, (\d+) kept in the cell, (\d+) "
                        r"kept in the negative electrode", stdout)
    assert printed and tuple(map(int, printed.groups())) == (
        s["n_components"], s["n_bubbles_cell"], s["n_bubbles"])
    csv = pd.read_csv(out / "bubbles.csv")
    nc = xr.load_dataset(out / "bubbles.nc")
    for kept, half, name in ((csv["kept"].values, csv["half"].values, "csv"),
                             (nc["kept"].values, np.array(nc["half"].attrs["flag_meanings"]
                                                          .split())[nc["half"].values], "nc")):
        assert (len(kept), int(kept.sum()), int((kept & (half == "negative")).sum())) == (
            s["n_components"], s["n_bubbles_cell"], s["n_bubbles"]), name
    assert tree["bubbles"].sizes["bubble"] == s["n_bubbles_cell"]
    page = (out / "report.html").read_text()
    assert f"Bubbles kept in the cell ({s['n_bubbles_cell']};" in page
    for key, value in s.items():
        assert re.search(rf"<td>{key}</td><td>{value}</td>", page), key


def test_run_dry_run_prints_slurm_job_script(tmp_path):
    import pathlib

    import pytest

    pytest.importorskip("dask_jobqueue")

    root = pathlib.Path(__file__).resolve().parents[1]
    res = CliRunner().invoke(main, ["run", str(root / "configs" / "hpc-slurm.yaml"),
                                    "--dry-run", "--profile",
                                    str(root / "deployment" / "slurm.yaml")])
    assert res.exit_code == 0, res.output
    assert "#SBATCH" in res.output


def test_help_lists_commands_in_pipeline_order_and_every_option_is_explained():
    import click

    from redoxflow.cli import PipelineOrder

    res = CliRunner().invoke(main, ["--help"])
    listed = [line.split()[0] for line in res.output.split("Commands")[1].splitlines()[1:]
              if line.startswith("  ") and not line.startswith("   ")]
    assert listed == [n for n in PipelineOrder.ORDER if n in main.commands]
    assert "..." not in res.output.split("Commands")[1]  # first sentences in full
    bare = [f"{name} --{p.name}" for name, cmd in main.commands.items() for p in cmd.params
            if isinstance(p, click.Option) and not p.help and p.name != "help"]
    assert not bare, bare


def test_demo_overwrite_clears_only_its_own_outputs(tmp_path):
    """Issue 18: `demo --overwrite` removed any folder holding a summary.json."""
    from redoxflow.pipeline import clear_outputs

    p = tmp_path / "p"
    (p / "data").mkdir(parents=True)
    (p / "summary.json").write_text("{}")
    (p / "data" / "scan.raw").write_text("x")
    (p / "raw.zarr").mkdir()
    (p / "raw.zarr" / "mine.txt").write_text("not a store")
    res = run("demo", "--output", p, "--overwrite", "--shape", "16,32,32")
    assert res.exit_code == 2 and "not a Zarr store" in res.output
    assert (p / "raw.zarr" / "mine.txt").exists() and (p / "summary.json").exists()
    (p / "raw.zarr" / "mine.txt").unlink()
    (p / "raw.zarr").rmdir()
    (p / "figures").mkdir()
    (p / "figures" / "density.png").write_bytes(b"png")
    (p / "figures" / "my_plot.png").write_bytes(b"mine")
    live, dead = p / ".redoxflow-scratch-live", p / ".redoxflow-scratch-dead"
    for folder, pid in ((live, os.getpid()), (dead, 2**22 + 12345)):  # a pid no one holds
        folder.mkdir()
        (folder / "owner.pid").write_text(str(pid))
    assert sorted(clear_outputs(p)) == [".redoxflow-scratch-dead", "figures/density.png",
                                        "summary.json"]
    assert live.exists()  # a running analysis keeps its scratch
    assert (p / "data" / "scan.raw").read_text() == "x"
    assert (p / "figures" / "my_plot.png").exists()


def test_run_refuses_the_results_of_another_configuration(tmp_path):
    """Issue 18: a changed input or option no longer reuses finished stages silently;
    output.overwrite (run --overwrite) starts again."""
    import yaml

    from redoxflow.config import load_config
    from redoxflow.errors import InputError
    from redoxflow.pipeline import Run, _check_same_run

    out = tmp_path / "out"
    out.mkdir()
    first = load_config(None, {"output.directory": str(out), "analyze.negative_side": "high"},
                        environ={})
    _check_same_run(Run(first, out))
    assert json.loads((out / "run.json").read_text())["analyze"]["negative_side"] == "high"
    _check_same_run(Run(first, out))  # the same configuration resumes
    other = load_config(None, {"output.directory": str(out), "analyze.negative_side": "low"},
                        environ={})
    with pytest.raises(InputError, match="analyze.negative_side changed.*--overwrite"):
        _check_same_run(Run(other, out))
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "output": {"directory": str(out)}, "analyze": {"negative_side": "low"},
        "input": {"shape": [16, 32, 32]}, "segment": {"model": "skip"}}))
    res = run("run", tmp_path / "c.yaml", "--workers", "1")
    assert res.exit_code == 2 and "another configuration" in res.output
    res = run("run", tmp_path / "c.yaml", "--workers", "1", "--overwrite")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "run.json").read_text())["analyze"]["negative_side"] == "low"


def test_warnings_are_one_line_notes_and_info_is_readable(tmp_path, phantom):
    from redoxflow.io import ingest

    ingest(phantom.classes, tmp_path / "c.zarr", kind="classes", voxel_size=2.0, progress=False)
    res = run("analyze", tmp_path / "c.zarr", tmp_path / "out")  # no --negative-side: warns
    assert res.exit_code == 0, res.output
    notes = [line for line in res.output.splitlines() if line.startswith("note: ")]
    assert notes and "negative" in notes[0] and "warnings.warn" not in res.output
    ingest(phantom.image, tmp_path / "grey.zarr", kind="intensity", voxel_size=2.0,
           progress=False)
    res = run("label", tmp_path / "grey.zarr", tmp_path / "l.zarr")
    assert res.exit_code == 2 and "segment it first" in res.output
    info = run("info", tmp_path / "c.zarr").output
    assert "1 bubble" in info and "2 membrane" in info
    assert "0.0 MiB" not in info and ("KiB" in info or "MiB" in info)
