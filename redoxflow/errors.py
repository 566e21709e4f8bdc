"""Error hierarchy.

Every user-facing error subclasses :class:`RedoxflowError`; its message names the bad value
and the fix in one line. The CLI prints such errors without a traceback and exits with 2.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class RedoxflowError(Exception):
    """Base class of every error caused by user input or environment.

    Catch it to handle every redoxflow error at once (the CLI does, printing the one-line
    message and exiting with status 2).

    Examples
    --------
    >>> from redoxflow.errors import InputError, RedoxflowError
    >>> try:
    ...     raise InputError("voxel size -1 must be positive")
    ... except RedoxflowError as exc:
    ...     print(exc)
    voxel size -1 must be positive
    """


class InputError(RedoxflowError, ValueError):
    """Bad input data or arguments (wrong shape, dtype, value, file type...).

    Also a ``ValueError``, so generic callers that catch ``ValueError`` keep working.

    Examples
    --------
    >>> import numpy as np, redoxflow as rf
    >>> try:
    ...     rf.as_volume(np.zeros((5, 6)))
    ... except ValueError as exc:
    ...     print(type(exc).__name__, exc)
    InputError volume has 2 dimensions (shape (5, 6)): expected 3
    """


class StoreExistsError(RedoxflowError, FileExistsError):
    """The output store already exists and overwriting was not requested.

    Also a ``FileExistsError``.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> from redoxflow.common.atomic import atomic_file
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> _ = target.write_text("a\\n")
    >>> try:
    ...     with atomic_file(target, overwrite=False) as tmp:
    ...         pass
    ... except FileExistsError as exc:
    ...     print(type(exc).__name__)
    StoreExistsError
    """


class MissingExtraError(RedoxflowError, ImportError):
    """An optional dependency is missing; the message names the pip extra.

    Also an ``ImportError``; raised by :func:`require`.

    Examples
    --------
    >>> try:
    ...     require("no_such_module_xyz", "viz")
    ... except ImportError as exc:
    ...     print(type(exc).__name__, str(exc).split(": ")[0])
    MissingExtraError no_such_module_xyz is not installed
    """


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise :class:`MissingExtraError` naming the extra.

    Parameters
    ----------
    module : str
        Importable module name, e.g. ``"pyvista"``.
    extra : str
        The ``redoxflow`` pip extra that provides it, e.g. ``"viz"``.

    Returns
    -------
    module
        The imported module.

    Raises
    ------
    MissingExtraError
        When the module cannot be imported.

    Examples
    --------
    >>> require("json", "viz").__name__
    'json'
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module} is not installed: install it with `pip install 'redoxflow[{extra}]'` "
            f"({exc})"
        ) from exc
