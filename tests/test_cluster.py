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


def test_scheduler_file_is_waited_for_and_needs_no_json_suffix(local_cluster, tmp_path):
    import json
    import threading

    path = tmp_path / "scheduler.json"  # what `dask scheduler --scheduler-file` writes
    # the scheduler's address, as that file holds it (Client.write_scheduler_file dumps the
    # whole scheduler_info, which a shared cluster's earlier tests can make unserialisable)
    info = json.dumps({"type": "Scheduler", "address": local_cluster.scheduler_address})
    threading.Timer(0.5, path.write_text, [info]).start()
    with make_client(str(path)) as client:  # the file appears while the run waits
        assert client.submit(sum, [1, 2, 3]).result() == 6
    path.rename(tmp_path / "sched")
    with make_client(str(tmp_path / "sched")) as client:  # any existing file
        assert client.submit(sum, [1, 2]).result() == 3


def test_a_bad_scheduler_file_is_a_one_line_error_not_a_hang(tmp_path, monkeypatch):
    import redoxflow.cluster

    monkeypatch.setattr(redoxflow.cluster, "SCHEDULER_FILE_WAIT_S", 0.3)
    with pytest.raises(InputError, match="did not appear within 0.3 s: start `dask scheduler"):
        make_client(str(tmp_path / "scheduler.json"))
    (tmp_path / "other.json").write_text("{}")
    with pytest.raises(InputError, match="not a dask scheduler file"):
        make_client(str(tmp_path / "other.json"))
    (tmp_path / "gone.json").write_text('{"address": "tcp://127.0.0.1:9"}')
    with pytest.raises(InputError, match="cannot reach the dask scheduler"):
        make_client(str(tmp_path / "gone.json"))


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


def test_pbs_job_script_without_scheduler():
    pytest.importorskip("dask_jobqueue")
    script = job_script("pbs", ROOT / "deployment" / "pbs.yaml")
    assert "#PBS" in script and "dask" in script


@pytest.mark.parametrize("name", ["demo", "laptop", "hpc-slurm", "gpu", "utile-compat"])
def test_every_shipped_config_loads(name):
    import yaml

    from redoxflow.config import load_config

    path = ROOT / "configs" / f"{name}.yaml"
    cfg = load_config(path, environ={})
    assert cfg.cluster.dashboard_address.startswith("127.0.0.1")  # never exposed by default
    for section, values in yaml.safe_load(path.read_text()).items():  # every key is read
        for key, value in values.items():
            assert getattr(getattr(cfg, section), key) == value, f"{section}.{key}"


def test_dashboard_stays_on_localhost_by_default():
    from redoxflow.config import load_config

    with make_client("local", workers=1, memory_limit="1GB",
                     dashboard_address=load_config(environ={}).cluster.dashboard_address) as c:
        assert "127.0.0.1" in c.dashboard_link


def test_dashboard_serves_the_real_status_page():
    """The address the CLI prints answers with dask's dashboard (bokeh is in the hpc extra
    that `make` installs), not "Dask needs bokeh>=3.1.0"."""
    import urllib.request

    pytest.importorskip("bokeh")
    with make_client("local", workers=1, memory_limit="1GB",
                     dashboard_address="127.0.0.1:0") as client:
        url = client.dashboard_link
        assert url and url.endswith("/status")
        with urllib.request.urlopen(url, timeout=30) as page:
            body = page.read().decode()
    assert page.status == 200 and "bokeh" in body.lower() and "needs bokeh" not in body


def test_pipeline_refuses_paths_that_would_overwrite_user_data(tmp_path):
    from redoxflow.config import load_config
    from redoxflow.pipeline import check_paths

    out = tmp_path / "results"
    for source, directory in [(out / "raw.zarr", out), (tmp_path, out), (out, out)]:
        cfg = load_config(environ={}, overrides={"input.source": str(source),
                                                 "output.directory": str(directory)})
        with pytest.raises(InputError, match="choose"):
            check_paths(cfg)
    (tmp_path / "file").write_text("x")
    cfg = load_config(environ={}, overrides={"output.directory": str(tmp_path / "file")})
    with pytest.raises(InputError, match="is a file"):
        check_paths(cfg)
    ok = load_config(environ={}, overrides={"input.source": str(tmp_path / "scan.tif"),
                                            "output.directory": str(out)})
    assert check_paths(ok) == out
