"""Error hierarchy.

Every user-facing error subclasses :class:`RedoxflowError`; its message names the bad value
and the fix in one line. The CLI prints such errors without a traceback and exits with 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class RedoxflowError(Exception):
    """Base class of every error caused by user input or environment."""


class InputError(RedoxflowError, ValueError):
    """Bad input data or arguments (wrong shape, dtype, value, file type...)."""


class StoreExistsError(RedoxflowError, FileExistsError):
    """The output store already exists and overwriting was not requested."""


class MissingExtraError(RedoxflowError, ImportError):
    """An optional dependency is missing; the message names the pip extra."""


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"pyvista"``.
    extra : str
        The ``redoxflow`` pip extra that provides it, e.g. ``"viz"``.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: install it with `pip install 'redoxflow[{extra}]'` "
            f"({exc})"
        ) from exc
