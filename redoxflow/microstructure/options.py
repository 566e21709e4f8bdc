"""Options of the microstructure metrics: ``Literal`` aliases, phases, axes and inlets."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from ..common.options import check_choice, choices
from ..errors import InputError

SurfaceMethod = Literal["face_counting", "marching_cubes"]
AxisName = Literal["z", "y", "x"]
Inlet = Literal["z-", "z+", "y-", "y+", "x-", "x+"]
Radii = Literal["exact", "integer"]
AXES = ("z", "y", "x")

__all__ = ["SurfaceMethod", "AxisName", "Inlet", "Radii", "AXES", "parse_phases",
           "axis_index", "parse_inlet"]


def parse_phases(phases: Any, dtype: Any = None) -> dict[str, int]:
    """Phases as an ordered ``{name: value}`` dict from a mapping or ``"pore=0,NMC=85"``.

    Parameters
    ----------
    phases : mapping, str or sequence of int
        Phase names and their voxel values (a sequence names each value by itself).
    dtype : numpy dtype, optional
        The volume's dtype: values must fit in it.

    Examples
    --------
    >>> parse_phases("pore=0, NMC=85,CBD=170", np.uint8)
    {'pore': 0, 'NMC': 85, 'CBD': 170}
    >>> parse_phases([0, 1])
    {'0': 0, '1': 1}
    >>> parse_phases({"pore": 300}, np.uint8)
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: phase 'pore'=300 does not fit the volume's dtype uint8: give values between 0 and 255
    """
    if isinstance(phases, str):
        pairs = [p.strip() for p in phases.split(",") if p.strip()]
        if not all(re.fullmatch(r"[^=\s]+\s*=\s*-?\d+", p) for p in pairs):
            raise InputError(f"phases={phases!r} is malformed: write name=value pairs, "
                             "e.g. 'pore=0,NMC=85,CBD=170'")
        phases = {k.strip(): int(v) for k, v in (p.split("=") for p in pairs)}
    elif not isinstance(phases, Mapping):
        try:
            phases = {str(int(v)): int(v) for v in phases}
        except (TypeError, ValueError) as exc:
            raise InputError(f"phases={phases!r} is malformed: give a mapping name -> "
                             "integer value, e.g. {'pore': 0, 'solid': 1}") from exc
    out: dict[str, int] = {}
    for name, value in phases.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise InputError(f"phase {name!r}={value!r} is not an integer voxel value: "
                             "give integer values, e.g. {'pore': 0}")
        out[str(name)] = int(value)
    if not out:
        raise InputError("phases is empty: name at least one phase, e.g. {'pore': 0}")
    if len(set(out.values())) != len(out):
        raise InputError(f"phases={out} repeats a value: give each phase its own value")
    if dtype is not None and np.dtype(dtype).kind in "ui":
        info = np.iinfo(dtype)
        for name, value in out.items():
            if not info.min <= value <= info.max:
                raise InputError(f"phase {name!r}={value} does not fit the volume's dtype "
                                 f"{np.dtype(dtype)}: give values between {info.min} and "
                                 f"{info.max}")
    return out


def axis_index(axis: Any) -> int:
    """0, 1 or 2 from ``"z"``, ``"y"``, ``"x"`` or the integer itself.

    Examples
    --------
    >>> axis_index("x"), axis_index(0)
    (2, 0)
    """
    if isinstance(axis, (int, np.integer)) and not isinstance(axis, bool) and 0 <= axis < 3:
        return int(axis)
    return AXES.index(check_choice(axis, AxisName, "axis"))


def parse_inlet(inlet: Any) -> tuple[int, bool]:
    """(axis, at the high end) of an inlet face such as ``"x-"``.

    Examples
    --------
    >>> parse_inlet("x-"), parse_inlet("z+")
    ((2, False), (0, True))
    """
    check_choice(inlet, Inlet, "inlet")
    return AXES.index(inlet[0]), inlet[1] == "+"


def check_method(method: Any) -> str:
    """Validate a surface-area method.

    Examples
    --------
    >>> check_method("face_counting")
    'face_counting'
    """
    return check_choice(method, SurfaceMethod, "method")


ALLOWED_METHODS = choices(SurfaceMethod)
