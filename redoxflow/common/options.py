"""``Literal`` aliases of every enumerated option, and the one validator used at load time.

Signatures and the config use these aliases; :func:`check_choice` turns a bad value into a
one-line :class:`~redoxflow.errors.InputError` naming the allowed values.
"""

from __future__ import annotations

import typing
from typing import Any, Literal

from ..errors import InputError

Backend = Literal["numpy", "cupy"]
Device = Literal["auto", "cpu", "cuda"]
Mode = Literal["tile", "resize"]
NanPolicy = Literal["raise", "fill"]
Compat = Literal["utile"]
NegativeSide = Literal["low", "high"]
Connectivity = Literal[6, 18, 26]
Kind = Literal["auto", "intensity", "classes", "labels"]
InputKind = Literal["auto", "intensity", "classes"]


def choices(alias: Any) -> tuple[Any, ...]:
    """The allowed values of a ``Literal`` alias (``Optional`` aliases included).

    Examples
    --------
    >>> choices(Backend)
    ('numpy', 'cupy')
    """
    out: list[Any] = []
    for arg in typing.get_args(alias):
        if typing.get_origin(arg) is Literal:
            out.extend(typing.get_args(arg))
        elif arg is not type(None):
            out.append(arg)
    return tuple(out) if out else typing.get_args(alias)


def check_choice(value: Any, alias: Any, name: str, *, optional: bool = False) -> Any:
    """Return ``value`` if ``alias`` allows it, else raise a one-line ``InputError``.

    Parameters
    ----------
    value : object
        The value given by the user (config, CLI or keyword).
    alias : typing.Literal
        One of the aliases of this module.
    name : str
        The option's name, as the user spells it (``"label.backend"``).
    optional : bool
        Accept ``None`` too.

    Examples
    --------
    >>> check_choice("cupy", Backend, "backend")
    'cupy'
    >>> check_choice("gpu", Backend, "backend")
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: backend='gpu' is not allowed: use one of 'numpy', 'cupy'
    """
    allowed = choices(alias)
    if (optional and value is None) or value in allowed:
        return value
    listed = ", ".join(repr(a) for a in allowed)
    raise InputError(f"{name}={value!r} is not allowed: use one of {listed}"
                     + (" (or leave it unset)" if optional else ""))
