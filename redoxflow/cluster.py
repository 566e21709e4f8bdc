"""One factory for dask clients: local, existing scheduler, SLURM/PBS (dask-jobqueue), dask-cuda."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from .config import ClusterConfig, load_yaml
from .errors import InputError, require


def default_workers() -> int:
    """One worker per usable core (at least 1).

    Returns
    -------
    int
        The cores this process may run on (its CPU affinity on Linux), else the machine's
        core count.

    Examples
    --------
    >>> default_workers() >= 1
    True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _jobqueue_cluster(kind: str, profile: str | os.PathLike | None):
    if profile is None:
        raise InputError(f"--cluster {kind} needs a profile: pass --profile "
                         f"deployment/{kind}.yaml (see deployment/)")
    jq = require("dask_jobqueue", "hpc")
    settings = load_yaml(profile)
    options = settings.get("jobqueue", settings)
    cls = {"slurm": jq.SLURMCluster, "pbs": jq.PBSCluster}[kind]
    try:
        return cls(**options), settings
    except (TypeError, ValueError) as exc:
        raise InputError(f"profile {str(profile)!r} is not valid for {cls.__name__}: {exc}") from exc


SCHEDULER_FILE_WAIT_S = 60.0  # a batch script may start the scheduler and the run at once


def _scheduler_address(path: Path) -> str | None:
    """The ``address`` in a scheduler file; None while it is missing or half-written."""
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return info.get("address") if isinstance(info, dict) else None


def _scheduler_file_client(path: Path):
    """A client of the scheduler that wrote ``path`` (``dask scheduler --scheduler-file``),
    waiting up to ``SCHEDULER_FILE_WAIT_S`` for the file (distributed would wait forever)."""
    from distributed import Client

    deadline = time.monotonic() + SCHEDULER_FILE_WAIT_S
    while (address := _scheduler_address(path)) is None:
        if time.monotonic() > deadline:
            what = "is not a dask scheduler file (JSON with an address)" if path.is_file() \
                else f"did not appear within {SCHEDULER_FILE_WAIT_S:g} s"
            raise InputError(f"scheduler file {str(path)!r} {what}: start `dask scheduler "
                             f"--scheduler-file {path}` first, or pass its address")
        time.sleep(0.1)
    try:
        return Client(address, timeout="10s")
    except OSError as exc:
        raise InputError(f"cannot reach the dask scheduler of {str(path)!r} at {address}: "
                         f"{exc}") from exc


def _mpi_client(threads_per_worker: int, memory_limit: str | int,
                dashboard_address: str | None, timeout: float = 120):
    """Inside ``mpirun -n N`` (N >= 3): rank 0 schedules, ranks 2.. work (they exit when the
    client closes and never return), rank 1 gets a client once a worker has joined."""
    from distributed import Client

    dask_mpi = require("dask_mpi", "mpi")
    try:
        dask_mpi.initialize(nthreads=threads_per_worker, memory_limit=memory_limit,
                            dashboard=dashboard_address is not None,
                            dashboard_address=dashboard_address or ":0")
    except dask_mpi.WorldTooSmallException as exc:
        raise InputError("--cluster mpi needs at least 3 MPI ranks (scheduler, client, "
                         "workers): start it as mpirun -n 3 redoxflow ...") from exc
    client = Client()
    client.wait_for_workers(1, timeout=timeout)
    return client


def job_script(kind: str, profile: str | os.PathLike) -> str:
    """The batch script dask-jobqueue would submit for a profile (nothing is submitted).

    A dask-jobqueue cluster object is created (it starts a local scheduler briefly) and closed
    again; needs the ``hpc`` extra.

    Parameters
    ----------
    kind : {"slurm", "pbs"}
        The batch system.
    profile : path
        YAML with a ``jobqueue:`` mapping of dask-jobqueue arguments (see ``deployment/``).

    Returns
    -------
    str
        The job script, ``#SBATCH`` / ``#PBS`` directives included.

    Examples
    --------
    >>> script = job_script("slurm", "deployment/slurm.yaml")  # doctest: +SKIP
    >>> script.startswith("#!/usr/bin/env bash"), "#SBATCH -p normal" in script  # doctest: +SKIP
    (True, True)
    """
    cluster, _ = _jobqueue_cluster(kind, profile)
    try:
        return cluster.job_script()
    finally:
        cluster.close()


@contextlib.contextmanager
def _interrupts_ignored():
    """SIGINT ignored while worker processes start: they keep it ignored (an ignored signal
    stays ignored across exec), so Ctrl-C reaches only this process, which closes them."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def make_client(
    cluster: str = "local",
    *,
    workers: int | None = None,
    threads_per_worker: int = 1,
    memory_limit: str | int = "auto",
    profile: str | os.PathLike | None = None,
    dashboard_address: str | None = "127.0.0.1:8787",
    config: ClusterConfig | None = None,
):
    """Start or connect a dask ``distributed.Client``.

    Parameters
    ----------
    cluster : str
        ``"local"`` (a LocalCluster sized to the machine), a scheduler address
        (``tcp://host:8786``), a scheduler file (``dask scheduler --scheduler-file F``: a
        ``.json`` name or an existing file; waited for up to ``SCHEDULER_FILE_WAIT_S``),
        ``"slurm"`` or ``"pbs"`` (dask-jobqueue with ``profile``), ``"cuda"`` (dask-cuda, one
        worker per GPU) or ``"mpi"`` (dask-mpi, inside ``mpirun -n 3`` or more).
    workers : int, optional
        Local workers, or jobs to request on SLURM/PBS (default: one per core / profile's).
    threads_per_worker : int
        Threads per local worker.
    memory_limit : str or int
        Per-worker memory limit (``"4GB"``; ``"auto"`` splits the machine's memory).
    profile : path, optional
        YAML with a ``jobqueue:`` mapping of dask-jobqueue arguments and optional ``scale:``.
    dashboard_address : str or None
        Bound to localhost by default; ``None`` disables the dashboard.
    config : ClusterConfig, optional
        Values to use instead of the keyword arguments (all of them are replaced).

    Returns
    -------
    distributed.Client
        Connected to the new or existing scheduler; close it (or use it as a context
        manager) when done.

    Examples
    --------
    >>> client = make_client("local", workers=2, dashboard_address=None)  # doctest: +SKIP
    >>> len(client.scheduler_info()["workers"])  # doctest: +SKIP
    2
    >>> client.close()  # doctest: +SKIP
    >>> make_client("nowhere")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: cluster 'nowhere' is unknown: use local, slurm, pbs, cuda, mpi ...
    """
    from distributed import Client, LocalCluster

    if config is not None:
        cluster, workers = config.cluster, config.workers
        threads_per_worker, memory_limit = config.threads_per_worker, config.memory_limit
        profile, dashboard_address = config.profile, config.dashboard_address
    if workers is not None and int(workers) < 1:
        raise InputError(f"workers={workers} must be at least 1")
    if cluster == "local":
        with _interrupts_ignored():  # Ctrl-C stops the run, not each worker with a traceback
            lc = LocalCluster(n_workers=int(workers or default_workers()),
                              threads_per_worker=threads_per_worker, memory_limit=memory_limit,
                              dashboard_address=dashboard_address, processes=True,
                              silence_logs=logging.CRITICAL)  # a task's error: one line, ours
        return Client(lc)
    if cluster in ("slurm", "pbs"):
        jc, settings = _jobqueue_cluster(cluster, profile)
        jc.scale(jobs=int(workers or settings.get("scale", {}).get("jobs", 1)))
        return Client(jc)
    if cluster == "cuda":
        dask_cuda = require("dask_cuda", "gpu")
        # one worker per visible GPU; device memory above 80 % spills to host memory
        cc = dask_cuda.LocalCUDACluster(memory_limit=memory_limit, device_memory_limit=0.8,
                                        dashboard_address=dashboard_address)
        return Client(cc)
    if cluster == "mpi":
        return _mpi_client(threads_per_worker, memory_limit, dashboard_address)
    if Path(cluster).suffix == ".json" or Path(cluster).is_file():
        return _scheduler_file_client(Path(cluster))
    if "://" in cluster or ":" in cluster:
        try:
            return Client(cluster, timeout="10s")
        except OSError as exc:
            raise InputError(f"cannot reach the dask scheduler at {cluster!r}: {exc}") from exc
    raise InputError(f"cluster {cluster!r} is unknown: use local, slurm, pbs, cuda, mpi or a "
                     "scheduler address such as tcp://host:8786")


def dashboard_link(client: Any) -> str | None:
    """The dashboard URL of a client, if it has one.

    Parameters
    ----------
    client : distributed.Client
        Any object; one without a working ``dashboard_link`` gives None.

    Returns
    -------
    str or None

    Examples
    --------
    >>> dashboard_link(object()) is None
    True
    """
    try:
        return client.dashboard_link
    except Exception:
        return None
