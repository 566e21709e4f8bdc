"""Units that travel with the data: voxel size (z, y, x) in micrometres, and connectivity."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import InputError
from .options import Connectivity, check_choice


def normalize_voxel_size(voxel_size: Any) -> tuple[float, float, float]:
    """Voxel size as (z, y, x) micrometres from a number, a sequence or ``"z,y,x"``.

    Examples
    --------
    >>> normalize_voxel_size(2)
    (2.0, 2.0, 2.0)
    >>> normalize_voxel_size("3,1.5,1.5")
    (3.0, 1.5, 1.5)
    """
    value = voxel_size
    if isinstance(value, str):
        try:
            value = [float(v) for v in value.replace("x", ",").split(",") if v.strip()]
        except ValueError as exc:
            raise InputError(f"voxel size {voxel_size!r} is malformed: give one number or "
                             "three numbers z,y,x in micrometres") from exc
    if np.isscalar(value):
        value = [value] * 3
    try:
        vals = tuple(float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise InputError(f"voxel size {voxel_size!r} is malformed: give one number or three "
                         "numbers z,y,x in micrometres") from exc
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3:
        raise InputError(f"voxel size {voxel_size!r} has {len(vals)} values: give 1 or 3 (z,y,x)")
    if not all(math.isfinite(v) and v > 0 for v in vals):
        raise InputError(f"voxel size {voxel_size!r} must be positive and finite (micrometres)")
    return vals  # type: ignore[return-value]


def structure(connectivity: Connectivity) -> np.ndarray:
    """The 3x3x3 boolean structuring element of a 3D connectivity (scipy ranks 1, 2, 3).

    Examples
    --------
    >>> int(structure(6).sum()), int(structure(18).sum()), int(structure(26).sum())
    (7, 19, 27)
    """
    check_choice(connectivity, Connectivity, "connectivity")
    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    grid = np.indices((3, 3, 3)) - 1
    return np.abs(grid).sum(axis=0) <= rank
