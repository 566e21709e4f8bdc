"""Test fixture: a NumPy-backed stand-in of cupy / cupyx.scipy.ndimage (never shipped).

Request the ``cupy_standin`` fixture (import it into a test module) to run redoxflow's
``backend="cupy"`` path on the CPU; see :mod:`tests.gpu_standin.standin` for what the stand-in
checks. Tests that need a real GPU are marked ``gpu`` instead.
"""

from __future__ import annotations

import sys

import pytest

from redoxflow._backend import has_gpu

from .standin import modules

__all__ = ["cupy_standin"]


@pytest.fixture
def cupy_standin(monkeypatch):
    """Install the stand-in ``cupy``/``cupyx`` modules in ``sys.modules`` for one test.

    Yields the stand-in ``cupy`` module. ``has_gpu``'s cache is cleared before and after, so
    neither the stand-in nor its absence leaks into other tests.
    """
    for name, module in modules().items():
        monkeypatch.setitem(sys.modules, name, module)
    has_gpu.cache_clear()
    yield sys.modules["cupy"]
    has_gpu.cache_clear()
