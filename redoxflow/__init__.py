"""redoxflow: exact, out-of-core bubble analysis of X-ray tomograms of flow batteries.

The top level imports nothing heavy (no torch, cupy or distributed): the public functions
and the subpackages load on first use, so ``import redoxflow as rf; rf.analysis.track``
works.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "ingest": "redoxflow.io",
    "open_volume": "redoxflow.io",
    "open_source": "redoxflow.io",
    "as_volume": "redoxflow.io",
    "load_config": "redoxflow.config",
    "Config": "redoxflow.config",
    "make_client": "redoxflow.cluster",
    "make_phantom": "redoxflow.synthetic",
    "make_phantom_series": "redoxflow.synthetic",
    "label": "redoxflow.labeling",
    "regionprops": "redoxflow.measure",
    "analyze": "redoxflow.analysis",
    "track": "redoxflow.analysis",
    "segment": "redoxflow.segment",
    "train": "redoxflow.segment",
    "evaluate": "redoxflow.segment",
    "report": "redoxflow.viz",
    "export": "redoxflow.viz",
    "run_pipeline": "redoxflow.pipeline",
}
_SUBPACKAGES = ("analysis", "common", "distance", "io", "labeling", "measure", "microstructure",
                "segment", "viz",
                "cluster", "config", "pipeline", "synthetic", "errors")

__all__ = ["__version__", *_LAZY, *_SUBPACKAGES]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"redoxflow.{name}")
    raise AttributeError(f"module 'redoxflow' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)

