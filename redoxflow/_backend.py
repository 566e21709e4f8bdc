"""The one backend switch between NumPy (CPU) and CuPy (GPU).

Every import of ``cupy`` or ``cupyx`` in redoxflow goes through this module, lazily, so that
``import redoxflow`` never needs a GPU (segmentation runs on torch devices and does not use
cupy). Callers ask it for:

- the array module of a backend or of an array (:func:`get_array_module`, :func:`backend_of`),
- moving arrays between host and device (:func:`to_backend`, :func:`to_numpy`) and the blocks
  of a dask array (:func:`blocks_to`),
- the connected-component kernel of a backend (:func:`label_kernel`: cc3d on the CPU,
  ``cupyx.scipy.ndimage.label`` on the GPU),
- a per-group minimum/maximum that works on both backends (:func:`group_min_max`), and
- whether a GPU is usable (:func:`has_gpu`).

cuCIM is not used: the GPU path needs only CuPy's array routines and ``cupyx.scipy.ndimage``.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import cc3d
import numpy as np

from .common.options import Backend, check_choice
from .common.units import structure
from .errors import InputError, require

__all__ = ["Backend", "backend_of", "blocks_to", "get_array_module", "group_min_max",
           "has_gpu", "label_kernel", "to_backend", "to_numpy"]


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when cupy imports and a CUDA device is usable (cached; ``has_gpu.cache_clear()``).

    Examples
    --------
    >>> isinstance(has_gpu(), bool)
    True
    """
    try:
        cupy = importlib.import_module("cupy")
        return bool(cupy.cuda.is_available())
    except Exception:  # ImportError, CUDA driver errors
        return False


def backend_of(x: Any) -> Backend:
    """Name the backend an array lives on (``"cupy"`` for CuPy arrays, else ``"numpy"``).

    Examples
    --------
    >>> backend_of(np.zeros(3))
    'numpy'
    """
    module = type(x).__module__.split(".")[0]
    return "cupy" if module == "cupy" else "numpy"


def get_array_module(x: Any = None, backend: Backend | None = None):
    """Return ``numpy`` or ``cupy`` for an explicit backend name, else for an array.

    Parameters
    ----------
    x : array, optional
        An array; its backend is used when ``backend`` is not given.
    backend : {"numpy", "cupy"}, optional
        Explicit backend. ``"cupy"`` needs the ``gpu`` extra and a usable CUDA device.

    Examples
    --------
    >>> get_array_module(np.zeros(3)) is np
    True
    >>> get_array_module(backend="numpy") is np
    True
    """
    name = backend or (backend_of(x) if x is not None else "numpy")
    check_choice(name, Backend, "backend")
    if name == "numpy":
        return np
    cupy = require("cupy", "gpu")
    if not has_gpu():
        raise InputError("backend='cupy' was requested but no CUDA device is usable; "
                         "use backend='numpy'")
    return cupy


def to_numpy(x: Any) -> np.ndarray:
    """Copy a CuPy array to host memory; NumPy arrays (and array-likes) pass through.

    Examples
    --------
    >>> to_numpy(np.arange(3))
    array([0, 1, 2])
    """
    return x.get() if backend_of(x) == "cupy" else np.asarray(x)


def to_backend(x: Any, backend: Backend):
    """``x`` on ``backend``: host -> device with ``cupy.asarray``, device -> host with ``.get()``.

    Arrays already on ``backend`` are returned as they are (no copy).

    Examples
    --------
    >>> a = np.arange(3)
    >>> to_backend(a, "numpy") is a
    True
    """
    if backend_of(x) == backend:
        return x
    if backend == "numpy":
        return to_numpy(x)
    return get_array_module(backend="cupy").asarray(x)


def blocks_to(array: Any, backend: Backend):
    """A dask array whose blocks live on ``backend`` (lazy; unchanged if they already do).

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.zeros((4, 4), chunks=2)
    >>> blocks_to(x, "numpy") is x
    True
    """
    check_choice(backend, Backend, "backend")
    if backend_of(array._meta) == backend:
        return array
    xp = get_array_module(backend=backend)
    meta = xp.empty((0,) * array.ndim, dtype=array.dtype)
    return array.map_blocks(to_backend, backend, dtype=array.dtype, meta=meta)


def label_kernel(backend: Backend):
    """Connected-component kernel ``f(mask, connectivity) -> (labels, n)`` of a backend.

    CPU: cc3d; GPU: ``cupyx.scipy.ndimage.label`` on the device. Both number the components
    in raster order of their first voxel (as ``scipy.ndimage.label``) and return uint32
    labels on the mask's backend.

    Examples
    --------
    >>> labels, n = label_kernel("numpy")(np.array([[[1, 0, 1]]], bool), 26)
    >>> labels.tolist(), n
    ([[[1, 0, 2]]], 2)
    """
    check_choice(backend, Backend, "backend")
    return _label_cc3d if backend == "numpy" else _label_cupy


def group_min_max(groups: Any, values: Any, k: int, span: int):
    """Per-group minimum and maximum of integer ``values`` in ``[0, span)``, on either backend.

    ``groups`` holds ids ``0 .. k-1`` and every group must be non-empty. On NumPy this is
    ``np.minimum.at`` / ``np.maximum.at``; on CuPy (no ``ufunc.at`` for min/max, and scattered
    writes to one index have no defined winner) it sorts the unique keys
    ``group * span + value`` and reads each group's first and last key.

    Returns
    -------
    (lo, hi) : int64 arrays of length ``k`` on the inputs' backend

    Examples
    --------
    >>> lo, hi = group_min_max(np.array([1, 0, 1, 1]), np.array([5, 2, 3, 7]), 2, 10)
    >>> lo.tolist(), hi.tolist()
    ([2, 3], [2, 7])
    """
    xp = get_array_module(groups)
    if xp is np:
        lo = np.full(k, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(k, -1, dtype=np.int64)
        np.minimum.at(lo, groups, values)
        np.maximum.at(hi, groups, values)
        return lo, hi
    key = xp.sort(groups.astype(xp.int64) * span + values.astype(xp.int64))
    base = xp.arange(k, dtype=xp.int64) * span
    first = xp.searchsorted(key, base, side="left")
    last = xp.searchsorted(key, base + span, side="left") - 1
    return key[first] - base, key[last] - base


def _label_cc3d(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    # cc3d (26-connectivity) under-sizes its union-find on blocks with a length-1 axis and
    # raises "maximum length exception" (e.g. a 1x1x3 block T F T). A background layer
    # appended after such an axis changes neither the components nor their raster order.
    thin = [(0, 1 if n == 1 else 0) for n in mask.shape]
    padded = np.pad(mask, thin) if any(p for _, p in thin) else mask
    labels, n = cc3d.connected_components(
        np.ascontiguousarray(padded), connectivity=connectivity, return_N=True,
        out_dtype=np.uint32
    )
    if padded is not mask:
        labels = np.ascontiguousarray(labels[tuple(slice(0, n_) for n_ in mask.shape)])
    return labels, int(n)


def _label_cupy(mask, connectivity: int):
    """``cupyx.scipy.ndimage.label``: roots are each component's smallest raster index and
    labels are assigned in sorted root order, so the numbering is scipy's (int32 indices:
    blocks must hold fewer than 2**31 voxels)."""
    cupy = get_array_module(backend="cupy")
    if mask.size >= 2**31:
        raise InputError(f"a block of {mask.size} voxels is too large for the GPU kernel "
                         "(int32 indices): use chunks of fewer than 2**31 voxels")
    cndi = importlib.import_module("cupyx.scipy.ndimage")
    labels, n = cndi.label(mask, structure=structure(connectivity))
    return labels.astype(cupy.uint32, copy=False), int(n)
