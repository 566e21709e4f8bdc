"""A real one-node SLURM (slurmctld + slurmd on localhost, ``deployment/slurm-localhost.sh``):
``redoxflow run --cluster slurm`` submits dask workers as batch jobs through dask-jobqueue
and gives the results of the same run without a cluster. Skipped where SLURM is not installed
or its daemons cannot start (``apt-get install -y slurm-wlm munge``; root)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from .test_cluster_processes import assert_same_results, redoxflow_run, start, stop, write_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "deployment" / "slurm-localhost.sh"


def _node_state() -> str:
    """The state of node localhost as ``sinfo`` reports it ('' when slurmctld is not up)."""
    try:
        proc = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%t"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip() if proc.returncode == 0 else ""


@pytest.fixture(scope="module")
def slurm():
    """A single-node SLURM that accepts jobs: the running one, else one started (and stopped
    afterwards) by deployment/slurm-localhost.sh; skips when neither works."""
    missing = [c for c in ("sbatch", "squeue", "sinfo", "slurmctld", "slurmd")
               if shutil.which(c) is None]
    if missing:
        pytest.skip(f"SLURM is not installed ({', '.join(missing)} missing)")
    pytest.importorskip("dask_jobqueue")
    started = False
    if not _node_state().startswith(("idle", "mix", "alloc")):
        proc = subprocess.run(["bash", str(SCRIPT), "start"], capture_output=True, text=True,
                              timeout=120)
        started = True
        if proc.returncode != 0:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=60)
            pytest.skip(f"slurm cannot start here: {(proc.stderr or proc.stdout).strip()}")
    try:
        yield
    finally:
        if started:
            subprocess.run(["bash", str(SCRIPT), "stop"], capture_output=True, timeout=60)


@pytest.mark.slow  # 40-50 s on the loaded 2-core machine
def test_run_on_slurm_through_dask_jobqueue_gives_the_local_results(slurm, tmp_path):
    from redoxflow.config import load_config
    from redoxflow.pipeline import run_pipeline

    out = tmp_path / "slurm"
    proc = start(redoxflow_run(write_config(tmp_path / "slurm.yaml", out), "--cluster", "slurm",
                               "--profile", str(ROOT / "deployment" / "slurm-localhost.yaml"),
                               "--workers", "2"),
                 tmp_path / "slurm.log", cwd=tmp_path)
    try:  # the reference in this process (dask's threads) while SLURM runs
        run_pipeline(load_config(write_config(tmp_path / "ref.yaml", tmp_path / "ref"),
                                 environ={}), progress=False)
        assert proc.wait(timeout=400) == 0, (tmp_path / "slurm.log").read_text()[-3000:]
    finally:
        stop(proc)
    assert_same_results(tmp_path / "ref", out)
    # the work ran in SLURM jobs: their dask workers registered with the run's scheduler
    logs = [p.read_text() for p in (tmp_path / "dask-logs").glob("*.err")]
    assert logs and all("Registered to" in text for text in logs), logs
