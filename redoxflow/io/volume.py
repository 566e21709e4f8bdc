"""The one input coercer: every public entry point turns its input into a :class:`Volume`.

Accepted: a store path (an OME-Zarr store written by redoxflow or any OME-Zarr 0.5 image),
a zarr array, an ``xarray.DataArray`` (its ``voxel_size`` attr is kept), a dask array or a
numpy array. Dask inputs keep their chunks; everything else gets :data:`DEFAULT_CHUNK_MIB`
chunks of whole (y, x) planes (:func:`redoxflow.io.store.choose_chunks`), the chunking of
the stores that :func:`redoxflow.ingest` writes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..common.units import normalize_voxel_size
from ..errors import InputError
from .readers import level0_stats, open_store_array
from .store import choose_chunks, open_volume

DEFAULT_CHUNK_MIB = 96.0


@dataclass(frozen=True)
class Volume:
    """A coerced input: lazy data, its voxel size and a name that identifies it.

    Attributes
    ----------
    data : dask.array.Array
        Shape ``(z, y, x)`` or ``(t, z, y, x)``.
    voxel_size : (float, float, float) or None
        Micrometres (z, y, x) when the input records it, else None.
    identity : str
        The store's absolute path, else the dask graph name (a content hash for numpy).
    attrs : dict
        The attrs of an xarray input or store (``kind``, ``source``, ...), else empty.
    chunk_stats : dict or None
        For a store input: ``(bytes, mtime_ns)`` of each level-0 chunk file by chunk grid
        position (:func:`redoxflow.io.store.chunk_stats`), the store's identity when a write
        resumes; None for other inputs (their dask name hashes their content).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> v = as_volume(xr.DataArray(np.zeros((4, 5, 6), np.uint8), dims=("z", "y", "x"),
    ...                            attrs={"voxel_size": (2.0, 1.0, 1.0)}))
    >>> v.data.shape, v.voxel_size, v.spacing()
    ((4, 5, 6), (2.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    >>> as_volume(np.zeros((4, 5, 6))).spacing(), v.spacing(3)
    ((1.0, 1.0, 1.0), (3.0, 3.0, 3.0))
    """

    data: Any
    voxel_size: tuple[float, float, float] | None
    identity: str
    attrs: dict = field(default_factory=dict)
    chunk_stats: dict | None = field(default=None, repr=False, compare=False)

    def spacing(self, override: Any = None) -> tuple[float, float, float]:
        """``override`` if given, else the recorded voxel size, else 1 micrometre.

        Parameters
        ----------
        override : float or (z, y, x), optional
            A voxel size given by the caller.

        Returns
        -------
        (float, float, float)
            (z, y, x) micrometres.
        """
        value = override if override is not None else self.voxel_size
        return normalize_voxel_size(1.0 if value is None else value)


def as_volume(x: Any, *, what: str = "volume", ndim: Sequence[int] = (3,),
              chunks: Sequence[int] | None = None) -> Volume:
    """Coerce any supported input into a :class:`Volume` (nothing is read yet).

    Parameters
    ----------
    x : path, zarr array, xarray.DataArray, dask or numpy array
        The input.
    what : str
        What the caller calls it, for error messages (``"mask"``, ``"class volume"``).
    ndim : sequence of int
        The accepted numbers of dimensions.
    chunks : (z, y, x), optional
        Chunks for inputs that have none (numpy, zarr); default whole planes of about
        :data:`DEFAULT_CHUNK_MIB` MiB.

    Returns
    -------
    Volume

    Examples
    --------
    >>> import numpy as np
    >>> v = as_volume(np.zeros((4, 5, 6), np.uint8))
    >>> v.data.shape, v.voxel_size
    ((4, 5, 6), None)
    >>> as_volume(np.zeros((5, 6)))
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: volume has 2 dimensions (shape (5, 6)): expected 3
    """
    import dask.array as da

    identity, stats = None, None
    if isinstance(x, (str, os.PathLike)):
        identity = str(Path(x).absolute())
        if _is_array_store(x):
            x, _, stats = open_store_array(x)
        else:
            x, stats = open_volume(x), level0_stats(x)
    attrs = dict(x.attrs) if hasattr(x, "attrs") and hasattr(x, "dims") else {}
    voxel = attrs.get("voxel_size")
    data = x.data if hasattr(x, "dims") and hasattr(x, "data") else x
    if not hasattr(data, "ndim") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    if data.ndim not in tuple(ndim):
        expected = " or ".join(str(n) for n in ndim)
        raise InputError(f"{what} has {data.ndim} dimensions (shape {tuple(data.shape)}): "
                         f"expected {expected}")
    if not isinstance(data, da.Array):
        if type(data).__module__.startswith("zarr") and chunks is None:
            data = da.from_zarr(data)
        elif data.ndim < 3:  # single images: one chunk
            data = da.from_array(data, chunks=data.shape)
        else:
            itemsize = np.dtype(data.dtype).itemsize
            data = da.from_array(data, chunks=choose_chunks(data.shape, itemsize,
                                                            DEFAULT_CHUNK_MIB, chunks))
    elif chunks is not None:
        data = data.rechunk(choose_chunks(data.shape, 1, chunks=chunks))
    voxel_size = normalize_voxel_size(voxel) if voxel is not None else None
    return Volume(data, voxel_size, identity or data.name, attrs, stats)


def _is_array_store(path) -> bool:
    """A bare Zarr array (v3 ``node_type: array`` or v2 ``.zarray``), not an OME group."""
    path = Path(path)
    meta = path / "zarr.json"
    if meta.is_file():
        try:
            return json.loads(meta.read_text()).get("node_type") == "array"
        except (OSError, ValueError):
            return False
    return (path / ".zarray").is_file()

