"""The one backend switch between NumPy (CPU) and CuPy (GPU).

Nothing else in redoxflow imports cupy or cucim: ask this module for the array module of an
array, for the labeling kernel of a backend, and whether a GPU is usable.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

import numpy as np

from .errors import InputError, require

Backend = Literal["numpy", "cupy"]


@functools.lru_cache(maxsize=1)
def has_gpu() -> bool:
    """True when cupy imports and a CUDA device is usable."""
    try:
        import cupy

        return bool(cupy.cuda.is_available())
    except Exception:  # ImportError, CUDA driver errors
        return False


def backend_of(x: Any) -> Backend:
    """Name the backend an array lives on (``"cupy"`` for CuPy arrays, else ``"numpy"``)."""
    module = type(x).__module__.split(".")[0]
    return "cupy" if module == "cupy" else "numpy"


def get_array_module(x: Any = None, backend: Backend | None = None):
    """Return ``numpy`` or ``cupy`` for an array or an explicit backend name."""
    name = backend or (backend_of(x) if x is not None else "numpy")
    if name == "numpy":
        return np
    if name == "cupy":
        cupy = require("cupy", "gpu")
        if not has_gpu():
            raise InputError("backend='cupy' was requested but no CUDA device is usable; "
                             "use backend='numpy'")
        return cupy
    raise InputError(f"unknown backend {name!r}: use 'numpy' or 'cupy'")


def to_numpy(x: Any) -> np.ndarray:
    """Copy a CuPy array to host memory; NumPy arrays pass through."""
    return x.get() if backend_of(x) == "cupy" else np.asarray(x)


def label_kernel(backend: Backend):
    """Connected-component kernel ``f(mask, connectivity) -> (labels, n)`` of a backend.

    CPU: cc3d (labels numbered in raster order). GPU: cupyx.scipy.ndimage.label.
    Labels are uint32 on both backends.
    """
    if backend == "numpy":
        return _label_cc3d
    return _label_cupy


def _label_cc3d(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    import cc3d

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
    cupy = get_array_module(backend="cupy")
    from cupyx.scipy import ndimage as cndi

    structure = cupy.asarray(_structure(connectivity))
    labels, n = cndi.label(mask, structure=structure)
    return labels.astype(cupy.uint32, copy=False), int(n)


def _structure(connectivity: int) -> np.ndarray:
    from scipy import ndimage

    rank = {6: 1, 18: 2, 26: 3}[connectivity]
    return ndimage.generate_binary_structure(3, rank)
