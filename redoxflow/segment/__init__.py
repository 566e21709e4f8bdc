"""Segmentation: U-Net families, chunked inference, training, evaluation, a classical baseline.

``redoxflow.segment`` is both this package and a function: ``redoxflow.segment(volume, model)``
calls :func:`redoxflow.segment.inference.segment` (the module is made callable below), while
``redoxflow.segment.models`` and friends stay importable.
"""

from __future__ import annotations

import sys
import types

from .classical import classical_segment
from .inference import predict_slices, segment
from .metrics import evaluate, format_scores
from .models import (
    ARCHITECTURES,
    VRFB_CLASSES,
    ModelSpec,
    build_model,
    builtin_checkpoint,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from .training import TrainResult, train

__all__ = ["ARCHITECTURES", "VRFB_CLASSES", "ModelSpec", "TrainResult", "build_model",
           "builtin_checkpoint", "classical_segment", "evaluate", "format_scores", "load_model",
           "predict_slices", "read_checkpoint", "save_checkpoint", "segment", "train"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return segment(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
