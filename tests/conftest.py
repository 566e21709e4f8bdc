"""Shared fixtures: a real dask LocalCluster, shared-data paths, GPU skipping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"

try:  # torch's compiler stack (triton) segfaults when first imported after VTK's libraries;
    import torch._dynamo  # noqa: F401  (a test session loads both: import it first)
except ImportError:
    pass


def pytest_collection_modifyitems(config, items):
    from redoxflow._backend import has_gpu

    if has_gpu():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def local_cluster():
    """A real two-worker LocalCluster (processes), started once per session."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit="2GB") as cluster:
        yield cluster


@pytest.fixture
def client(local_cluster):
    """A client of the shared cluster; closed after the test so other tests use threads."""
    from distributed import Client

    with Client(local_cluster) as c:
        yield c


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared/data is absent")
    return SHARED


@pytest.fixture(scope="session")
def phantom():
    from redoxflow.synthetic import make_phantom

    return make_phantom((48, 80, 80), seed=3)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
