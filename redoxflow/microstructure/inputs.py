"""Input coercion shared by the metrics: label volumes with phases, and single-phase masks."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np

from ..errors import InputError
from ..io.volume import Volume, as_volume
from .options import parse_phases

__all__ = ["phase_volume", "phase_mask", "resolve_phases"]


def phase_volume(volume: Any, phases: Any, *, ndim=(3,)) -> tuple[Volume, dict[str, int]]:
    """The coerced label volume and its phases (all its values when ``phases`` is None).

    Examples
    --------
    >>> vol, ph = phase_volume(np.array([[[0, 85], [170, 0]]], np.uint8), None)
    >>> ph
    {'0': 0, '85': 85, '170': 170}
    """
    vol = as_volume(volume, what="phase volume", ndim=ndim)
    if vol.data.dtype.kind not in "uib":
        raise InputError(f"phase volume has dtype {vol.data.dtype}: give integer phase "
                         "labels (e.g. uint8 0/85/170) or a boolean mask")
    return vol, resolve_phases(vol.data, phases)


def resolve_phases(data, phases: Any) -> dict[str, int]:
    """``parse_phases`` of ``phases``, or every value present in ``data`` when None.

    Examples
    --------
    >>> resolve_phases(np.zeros((1, 1, 2), bool), None)
    {'0': 0}
    """
    if phases is None:
        values = np.unique(da.unique(da.asarray(data)).compute()).astype(np.int64)
        return {str(int(v)): int(v) for v in values}
    return parse_phases(phases, data.dtype if data.dtype != bool else np.uint8)


def phase_mask(mask: Any, phase: int | None = None, *, what: str = "mask"):
    """(coerced volume, lazy boolean mask): ``mask == phase``, else ``mask != 0``.

    Examples
    --------
    >>> vol, m = phase_mask(np.array([[[0, 85, 170]]], np.uint8), 85)
    >>> m.compute()[0, 0].tolist()
    [False, True, False]
    """
    vol = as_volume(mask, what=what)
    data = vol.data
    if phase is None:
        if data.dtype.kind == "f":
            raise InputError(f"{what} has dtype {data.dtype}: give a boolean mask, or a "
                             "label volume with phase=VALUE")
        return vol, data.astype(bool) if data.dtype != bool else data
    if data.dtype.kind not in "uib" or isinstance(phase, bool) or not isinstance(
            phase, (int, np.integer)):
        raise InputError(f"phase={phase!r} on a {data.dtype} {what}: give an integer "
                         "phase value of an integer label volume")
    return vol, data == phase


def total_volume(shape, spacing) -> float:
    """Physical volume of a box of ``shape`` voxels (cubic micrometres).

    Examples
    --------
    >>> total_volume((2, 3, 4), (1.0, 0.5, 2.0))
    24.0
    """
    return float(np.prod(shape, dtype=np.float64) * np.prod(spacing))
