"""The client factory starts a real LocalCluster, connects to addresses, writes job scripts."""

from __future__ import annotations

from pathlib import Path

import dask.array as da
import pytest

from redoxflow.cluster import job_script, make_client
from redoxflow.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def test_local_cluster_runs_work():
    with make_client("local", workers=2, memory_limit="1GB", dashboard_address=None) as client:
        assert len(client.scheduler_info()["workers"]) == 2
        assert int(da.ones((100, 100), chunks=10).sum().compute()) == 10000


def test_connect_to_existing_scheduler(local_cluster):
    with make_client(local_cluster.scheduler_address) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6


def test_slurm_job_script_without_scheduler():
    pytest.importorskip("dask_jobqueue")
    script = job_script("slurm", ROOT / "deployment" / "slurm.yaml")
    assert "#SBATCH" in script and "--exclusive" in script


def test_bad_cluster_requests(tmp_path):
    with pytest.raises(InputError, match="unknown"):
        make_client("kubernetes-please")
    with pytest.raises(InputError, match="profile"):
        make_client("slurm")
    with pytest.raises(InputError, match="at least 1"):
        make_client("local", workers=0)
