"""dask-mpi under a real ``mpirun`` (the ``mpi`` extra: mpi4py with MPICH from PyPI wheels):
``mpirun -n 3 redoxflow run --cluster mpi`` (scheduler on rank 0, the pipeline on rank 1, a
worker on rank 2) gives the results of the same run without MPI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_cluster_processes import assert_same_results, redoxflow_run, start, stop, write_config


def mpirun() -> str | None:
    """The ``mpirun`` next to this interpreter (the ``mpich`` wheel's), else on PATH."""
    here = Path(sys.executable).parent
    return shutil.which("mpirun", path=str(here)) or shutil.which("mpirun")


@pytest.mark.skipif(mpirun() is None, reason="no mpirun (pip install 'redoxflow[mpi]')")
def test_mpirun_three_ranks_runs_the_pipeline_through_dask_mpi(tmp_path):
    pytest.importorskip("dask_mpi")
    pytest.importorskip("mpi4py")
    from redoxflow.config import load_config
    from redoxflow.pipeline import run_pipeline

    out = tmp_path / "mpi"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = start([mpirun(), "-n", "3", *redoxflow_run(write_config(tmp_path / "mpi.yaml", out),
                                                      "--cluster", "mpi")],
                 tmp_path / "mpi.log", env=env, cwd=tmp_path)
    try:  # the reference in this process (dask's threads) while MPI runs
        run_pipeline(load_config(write_config(tmp_path / "ref.yaml", tmp_path / "ref"), environ={}),
                     progress=False)
        assert proc.wait(timeout=300) == 0, (tmp_path / "mpi.log").read_text()[-3000:]
    finally:
        stop(proc)
    log = (tmp_path / "mpi.log").read_text()
    assert "dask: 1 workers" in log  # rank 2, the only worker
    assert_same_results(tmp_path / "ref", out)


def test_mpi_cluster_outside_mpirun_is_a_one_line_error(tmp_path):
    pytest.importorskip("dask_mpi")
    pytest.importorskip("mpi4py")
    config = write_config(tmp_path / "one.yaml", tmp_path / "out", cluster="mpi")
    proc = subprocess.run(redoxflow_run(config), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert [line for line in proc.stderr.splitlines() if "mpirun -n 3" in line] == [
        line for line in proc.stderr.splitlines() if line.strip()]
    assert not (tmp_path / "out").exists()
