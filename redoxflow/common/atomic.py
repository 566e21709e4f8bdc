"""The one atomic writer: an output appears under its name only when it is complete.

:func:`atomic_store` (folders such as Zarr stores) and :func:`atomic_file` (tables, reports,
checkpoints, pictures) both yield a temporary sibling path, rename it into place when the
``with`` block succeeds and remove it when it fails. An existing output is refused unless
``overwrite``; a disk-full error becomes a one-line :class:`~redoxflow.errors.InputError`.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..errors import InputError, StoreExistsError

NO_SPACE = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)  # disk full, file-size limit, quota
HOST = socket.gethostname().split(".")[0].replace("-", "_")


def _tmp_name(dest: Path, suffix: str = "") -> Path:
    """``.NAME.partial-HOST-PID-XXXXXXXX``: who made it, so a later run can remove it once
    that process is gone (a SIGKILL leaves it behind)."""
    return dest.parent / f".{dest.name}.partial-{HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale(dest: str | os.PathLike) -> list[Path]:
    """Remove temporary siblings of ``dest`` left by a process of this host that is gone.

    Only names this module makes (``.NAME.partial-HOST-PID-XXXXXXXX[.suffix]``) are
    touched; a live process's are kept.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / f".a.zarr.partial-{HOST}-999999999-0123abcd").mkdir()
    >>> [p.name.split("-")[0] for p in remove_stale(root / "a.zarr")]
    ['.a.zarr.partial']
    """
    dest = Path(dest).absolute()
    removed = []
    if not dest.parent.is_dir():
        return removed
    pattern = re.compile(re.escape(f".{dest.name}.partial-{HOST}-") + r"(\d+)-[0-9a-f]{8}")
    for sibling in dest.parent.glob(f".{glob.escape(dest.name)}.partial-{HOST}-*"):
        match = pattern.match(sibling.name)
        if match and not _alive(int(match.group(1))):
            _remove(sibling)
            removed.append(sibling)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            path.unlink()


def is_store(path: str | os.PathLike) -> bool:
    """True when ``path`` is a Zarr (v2 or v3) store folder.

    Examples
    --------
    >>> is_store("/nonexistent.zarr")
    False
    """
    path = Path(path)
    return path.is_dir() and ((path / "zarr.json").exists() or (path / ".zgroup").exists()
                              or (path / ".zarray").exists())


def _prepare(dest: Path, overwrite: bool, replaceable, kind: str) -> Path:
    """Refuse an existing output (or one that is not ours to replace); make its folder."""
    if dest.is_symlink() and not dest.exists():
        raise InputError(f"output {str(dest)!r} is a link to {os.readlink(dest)!r}, which does "
                         "not exist: remove the link or choose another path")
    if dest.exists():
        if not overwrite:
            raise StoreExistsError(f"output {str(dest)!r} already exists: choose another path or "
                                   "pass --overwrite")
        if not replaceable(dest):
            raise StoreExistsError(f"output {str(dest)!r} exists and is not a {kind}: refusing "
                                   "to replace it; choose another path")
    parent = check_writable(dest.parent)
    remove_stale(dest)
    return parent


def check_writable(folder: str | os.PathLike, *, create: bool = True) -> Path:
    """Make ``folder`` (with its parents) and prove it writable by creating and removing a
    probe in it: permission bits say nothing to root, on a read-only mount or in /proc.
    With ``create=False`` nothing is made: the nearest existing folder is probed.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> check_writable(pathlib.Path(tempfile.mkdtemp()) / "a" / "b").is_dir()
    True
    >>> check_writable("/proc/redoxflow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: cannot create output folder '/proc/redoxflow': ...
    """
    folder = Path(folder)
    if not create:
        existing = next(p for p in (folder.absolute(), *folder.absolute().parents)
                        if p.exists())
        if existing.is_dir():
            check_writable(existing)
        return folder
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create output folder {str(folder)!r}: {exc.strerror}; "
                         "choose a writable location") from exc
    probe = folder / f".redoxflow-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        raise InputError(f"output folder {str(folder)!r} is not writable ({exc.strerror}): "
                         "choose a writable location") from exc
    return folder


def _not_writable(exc: BaseException, dest: Path) -> None:
    if isinstance(exc, OSError) and exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        raise InputError(f"cannot write {str(dest)!r} ({exc.strerror}): choose a writable "
                         "location; the input is untouched") from exc


def _no_space(exc: BaseException, dest: Path) -> None:
    if isinstance(exc, OSError) and exc.errno in NO_SPACE:
        raise InputError(f"no space to write {str(dest)!r} ({exc.strerror}): free space or "
                         "choose another output location; the input is untouched") from exc


@contextlib.contextmanager
def atomic_store(store: str | os.PathLike, *, overwrite: bool = False,
                 resume: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling folder; rename it to ``store`` only if the block succeeds.

    Parameters
    ----------
    store : path
        The final folder (a Zarr store).
    overwrite : bool
        Replace an existing store; a path that exists but is not a Zarr store is never
        replaced.
    resume : bool
        Keep the temporary folder (then named ``.NAME.partial``) when the block fails, so
        a rerun can pick it up.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_store(root / "a.zarr") as tmp:
    ...     tmp.mkdir()
    ...     _ = (tmp / "zarr.json").write_text("{}")
    >>> is_store(root / "a.zarr")
    True
    """
    dest = Path(store).absolute()
    if dest.is_symlink() and is_store(dest):  # a run's link to its label image: replace that
        dest = dest.resolve()
    parent = _prepare(dest, overwrite, is_store, "Zarr store")
    _refuse_holding_labels(dest)
    tmp = parent / f".{dest.name}.partial" if resume else _tmp_name(dest)
    try:
        yield tmp
        _swap_in(tmp, dest)
    except BaseException as exc:
        if not resume:
            shutil.rmtree(tmp, ignore_errors=True)
        _no_space(exc, dest)
        _not_writable(exc, dest)
        raise


def _refuse_holding_labels(dest: Path) -> None:
    """An image store whose ``labels/`` hold label images (a run's classes and bubbles) is
    never replaced with them: they may be the only copy."""
    labels = dest / "labels"
    if (labels / "zarr.json").is_file() and any(p.is_dir() for p in labels.iterdir()):
        raise StoreExistsError(f"output {str(dest)!r} holds label images under labels/ (a "
                               "run's classes and bubbles): move them out, or remove the store "
                               "yourself, before writing it again")


def _swap_in(tmp: Path, dest: Path) -> None:
    """Rename ``tmp`` to ``dest``, an existing ``dest`` moved aside first and then removed."""
    old = None
    if dest.exists():
        old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
        dest.rename(old)
    try:
        tmp.rename(dest)
    except OSError:
        if old is not None:  # put the previous output back
            old.rename(dest)
        raise
    if old is not None:
        if old.is_symlink():
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)


def move_store(source: str | os.PathLike, store: str | os.PathLike, *,
               overwrite: bool = False) -> Path:
    """Move a complete store (e.g. from a scratch folder) to ``store``, with the rules of
    :func:`atomic_store`: an existing store is replaced only with ``overwrite``, a path that
    is not a Zarr store never.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "s.zarr").mkdir(); _ = (root / "s.zarr" / "zarr.json").write_text("{}")
    >>> move_store(root / "s.zarr", root / "out" / "t.zarr").name
    't.zarr'
    """
    dest = Path(store).absolute()
    _prepare(dest, overwrite, is_store, "Zarr store")
    _swap_in(Path(source), dest)
    return dest


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary sibling file name; move it onto ``path`` only if the block succeeds.

    The temporary name keeps the suffix (``.report.html.partial-1a2b.html``) so writers that
    pick a format from the suffix still work. A folder is never replaced.

    Parameters
    ----------
    path : path
        The final file.
    overwrite : bool
        Replace an existing file (default: callers that own the name, such as a pipeline
        stage, overwrite; user-facing commands pass their ``--overwrite`` flag).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_file(target) as tmp:
    ...     _ = tmp.write_text("a,b\\n")
    >>> target.read_text()
    'a,b\\n'
    """
    dest = Path(path).absolute()
    _prepare(dest, overwrite, lambda p: p.is_file(), "file")
    tmp = _tmp_name(dest, dest.suffix)
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException as exc:
        _remove(tmp)
        _no_space(exc, dest)
        _not_writable(exc, dest)
        raise


def check_file_output(path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """The checks of :func:`atomic_file` up front, before a long computation: an existing
    file is refused without ``overwrite``, a folder or dangling link always; the folder is
    made.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> check_file_output(pathlib.Path(tempfile.mkdtemp()) / "new" / "t.csv").parent.is_dir()
    True
    """
    dest = Path(path).absolute()
    _prepare(dest, overwrite, lambda p: p.is_file(), "file")
    return dest


def write_netcdf(data, path: str | os.PathLike, *, overwrite: bool = True,
                 **kwargs) -> Path:
    """Write an xarray Dataset or DataTree as NetCDF-4 through :func:`atomic_file`.

    The file is encoded in memory first and written with plain file I/O: HDF5 itself
    crashes the process (SIGSEGV) when a write fails on a full disk, where this gives the
    one-line error of :func:`atomic_file` and leaves nothing behind.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataTree
        What to write.
    path : path
        The ``.nc`` file.
    overwrite : bool
        Replace an existing file.
    **kwargs
        Passed to ``to_netcdf`` (``encoding=``...).

    Examples
    --------
    >>> import tempfile, pathlib, xarray as xr
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "t.nc"
    >>> write_netcdf(xr.Dataset({"a": ("x", [1, 2])}), path).name
    't.nc'
    >>> xr.open_dataset(path, engine="h5netcdf")["a"].values.tolist()
    [1, 2]
    """
    payload = data.to_netcdf(engine="h5netcdf", **kwargs)
    with atomic_file(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(payload)
    return Path(path)
