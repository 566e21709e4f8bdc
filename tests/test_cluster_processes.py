"""A dask cluster of separate processes: ``redoxflow run --cluster scheduler.json`` against a
``dask scheduler`` and two ``dask worker`` processes, one of them killed (SIGKILL) while the
analysis runs, gives the same labels and tables as a run on a LocalCluster.

The helpers here (a small synthetic run's config, running the CLI, comparing two output
folders) are also used by ``test_mpi.py`` and ``test_slurm.py``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

SUMMARY_KEYS = ("n_components", "n_bubbles_cell", "n_bubbles", "bubble_volume_negative",
                "class_voxels", "bubble_volume_fraction", "membrane_blocked_fraction")


def write_config(path: Path, out: Path, cluster: str = "local", **cluster_options) -> Path:
    """A small synthetic run (the phantom's exact classes, no report) as a YAML file."""
    path.write_text(json.dumps({  # JSON is YAML
        "input": {"source": "synthetic", "shape": [48, 80, 80], "seed": 3},
        "output": {"directory": str(out), "report": False},
        "cluster": {"cluster": cluster, "dashboard_address": None, **cluster_options},
        "segment": {"model": "skip"},
        "analyze": {"negative_side": "high"}}))
    return path


def start(args: list[str], log: Path, **kwargs) -> subprocess.Popen:
    """A child in its own process group, output to ``log`` (a pipe nobody reads blocks)."""
    with open(log, "w") as sink:
        return subprocess.Popen(args, stdout=sink, stderr=subprocess.STDOUT,
                                start_new_session=True, **kwargs)


def stop(proc: subprocess.Popen) -> None:
    """Kill a child's whole process group (no-op when it is gone) and reap it."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)


def redoxflow_run(config: Path, *options: str) -> list[str]:
    """The command line of ``redoxflow run CONFIG OPTIONS`` with this interpreter."""
    return [sys.executable, "-m", "redoxflow.cli", "run", str(config), *options]


def assert_same_results(expected: Path, actual: Path) -> None:
    """Two run folders hold the same summary numbers, label store and tables."""
    import pandas as pd
    import xarray as xr

    from redoxflow.io import open_volume

    a = json.loads((expected / "summary.json").read_text())
    b = json.loads((actual / "summary.json").read_text())
    assert {k: a[k] for k in SUMMARY_KEYS} == {k: b[k] for k in SUMMARY_KEYS}
    np.testing.assert_array_equal(open_volume(expected / "bubble_labels.zarr").data.compute(),
                                  open_volume(actual / "bubble_labels.zarr").data.compute())
    pd.testing.assert_frame_equal(pd.read_csv(expected / "bubbles.csv"),
                                  pd.read_csv(actual / "bubbles.csv"))
    with xr.open_dataset(expected / "bubbles.nc") as x, xr.open_dataset(actual / "bubbles.nc") as y:
        xr.testing.assert_equal(x.load(), y.load())  # values and coordinates; attrs hold paths
    groups = sorted(p.parent.name for p in (expected / "results.zarr").glob("*/zarr.json"))
    assert groups and groups == sorted(
        p.parent.name for p in (actual / "results.zarr").glob("*/zarr.json"))
    for group in groups:
        with xr.open_zarr(expected / "results.zarr", group=group, consolidated=False) as x, \
                xr.open_zarr(actual / "results.zarr", group=group, consolidated=False) as y:
            xr.testing.assert_equal(x.load(), y.load())


@contextmanager
def dask_processes(folder: Path, n_workers: int = 2):
    """``dask scheduler --scheduler-file`` and ``n_workers`` x ``dask worker`` as separate
    processes on localhost; yields (scheduler file, worker processes). Workers run without a
    nanny, so a killed worker stays dead. Every process is killed on the way out."""
    dask = [sys.executable, "-m", "dask"]
    sched_file = folder / "scheduler.json"
    procs = []
    try:
        procs.append(start([*dask, "scheduler", "--scheduler-file", str(sched_file),
                            "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                           folder / "scheduler.log"))
        workers = [start([*dask, "worker", "--scheduler-file", str(sched_file),
                          "--nthreads", "1", "--no-nanny", "--memory-limit", "1GB",
                          "--no-dashboard", "--name", f"w{i}",
                          "--local-directory", str(folder / f"w{i}")], folder / f"w{i}.log")
                   for i in range(n_workers)]
        procs += workers
        yield sched_file, workers
    finally:
        for proc in procs:
            stop(proc)


def test_a_worker_killed_mid_analysis_on_a_real_cluster_gives_the_local_results(tmp_path):
    from distributed import Client

    ref = start(redoxflow_run(write_config(tmp_path / "ref.yaml", tmp_path / "ref",
                                           workers=2, memory_limit="1GB")),
                tmp_path / "ref.log")  # the LocalCluster reference, meanwhile
    out = tmp_path / "run"
    try:
        with dask_processes(tmp_path) as (sched_file, workers), \
                Client(scheduler_file=str(sched_file), timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
            addresses = {w["name"]: a for a, w in client.scheduler_info()["workers"].items()}
            victim = addresses["w1"]
            run = start(redoxflow_run(write_config(tmp_path / "run.yaml", out), "--cluster",
                                      str(sched_file)), tmp_path / "run.log")
            try:
                # kill w1 while it computes a task of the analysis (the last stage)
                deadline, busy = time.time() + 120, []
                while time.time() < deadline and run.poll() is None and not busy:
                    if "analyze" in (tmp_path / "run.log").read_text():
                        busy = client.processing(workers=[victim]).get(victim, [])
                    time.sleep(0.01)
                assert busy, "w1 never ran a task of the analysis: " + (
                    tmp_path / "run.log").read_text()[-2000:]
                workers[1].send_signal(signal.SIGKILL)
                finished_before_kill = (out / "summary.json").exists()
                assert run.wait(timeout=240) == 0, (tmp_path / "run.log").read_text()[-3000:]
            finally:
                stop(run)
            assert not finished_before_kill
            assert [w["name"] for w in client.scheduler_info()["workers"].values()] == ["w0"]
        assert ref.wait(timeout=240) == 0, (tmp_path / "ref.log").read_text()[-3000:]
    finally:
        stop(ref)
    assert "dask: 2 workers" in (tmp_path / "run.log").read_text()  # it used the cluster
    assert_same_results(tmp_path / "ref", out)
