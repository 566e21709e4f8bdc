"""Exact chunked connected-component labeling (identical to ``scipy.ndimage.label``)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import zarr

from .._backend import Backend, blocks_to, to_numpy
from ..common.options import Connectivity, check_choice
from ..io.store import write_dask
from ..io.volume import as_volume
from .chunked import KEEP_MIB, check_mask_block, label_dask, validate_mask
from .kernels import label_block, label_dtype
from .masks import remove_z_isolated

__all__ = ["label", "label_dask", "remove_z_isolated"]


def label(
    mask: Any,
    *,
    connectivity: Connectivity = 26,
    threshold: float | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    voxel_size: Any = None,
    backend: Backend = "numpy",
    progress: bool = False,
    levels: int | None = 1,
    keep_mib: float = KEEP_MIB,
):
    """Label connected components of a 3D mask, exactly as ``scipy.ndimage.label`` numbers them.

    Each chunk is labelled independently (cc3d on the CPU, ``cupyx.scipy.ndimage.label`` on
    the GPU); components that cross chunk faces, edges or corners are merged by union-find on
    the touching id pairs; the final ids follow the raster order of each component's first
    voxel, whatever the chunking and the backend.

    Parameters
    ----------
    mask : path, zarr array, xarray.DataArray, dask or numpy array, shape (z, y, x)
        Boolean or 0/1 integer mask (floats need ``threshold``), coerced with
        :func:`redoxflow.io.volume.as_volume` (dask keeps its chunks; other inputs get whole
        planes of about 96 MiB).
    connectivity : {6, 18, 26}
        Face, face+edge or full neighbourhood (scipy ranks 1, 2, 3).
    threshold : float, optional
        Binarise as ``mask > threshold`` first.
    out : path, optional
        Write the labels to this OME-Zarr store with the input's chunking.
    overwrite : bool
        Replace an existing ``out`` store.
    voxel_size : float or (z, y, x), optional
        Recorded in the ``out`` store (default: the input's, else 1).
    backend : {"numpy", "cupy"}
        ``"cupy"`` moves each block to the GPU and labels it there (needs the ``gpu`` extra
        and a CUDA device); the labels are identical to the ``"numpy"`` backend's.
    progress : bool
        Show a progress bar while writing ``out``.
    levels : int or None
        Pyramid levels of the ``out`` store. Default 1: none, since a nearest-neighbour
        label pyramid holds only strided copies of level 0 and building it would cost more
        than labelling (``None``: the automatic pyramid of :func:`redoxflow.io.write_dask`).
    keep_mib : float
        Host memory (MiB) for block labels kept between the two passes, when the result is
        computed at once (``out``, or a numpy input): kept blocks are read and labelled once
        (see :func:`redoxflow.labeling.label_dask`); 0 labels every block twice.

    Returns
    -------
    labels : numpy array, dask array or xarray.DataArray
        uint32 ids (uint64 when the count needs it), 0 is background: numpy for a numpy
        input without ``out``; a lazy dask array otherwise (its blocks are CuPy arrays with
        ``backend="cupy"``); the written store, opened lazily, with ``out``.
    n : int
        Number of components.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((1, 3, 3), bool)
    >>> mask[0, 0, 0] = mask[0, 1, 1] = mask[0, 2, 0] = True
    >>> labels, n = label(mask, connectivity=6)
    >>> n, labels[0].tolist()
    (3, [[1, 0, 0], [0, 2, 0], [3, 0, 0]])
    >>> label(mask, connectivity=26)[1]
    1
    >>> import dask.array as da
    >>> lazy, n = label(da.from_array(mask, chunks=(1, 2, 2)), connectivity=26)
    >>> n, lazy.compute()[0].tolist()
    (1, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])
    """
    check_choice(backend, Backend, "backend")
    if isinstance(mask, np.ndarray) and out is None and backend == "numpy":
        validate_mask(mask, connectivity, threshold)
        labels, n = label_block(check_mask_block(mask, threshold), connectivity)
        return labels.astype(label_dtype(n), copy=False), n
    vol = as_volume(mask, what="mask")
    at_once = out is not None or isinstance(mask, np.ndarray)  # a lazy result keeps nothing
    labels, n = label_dask(vol.data, connectivity=connectivity, threshold=threshold,
                           backend=backend, keep_mib=keep_mib if at_once else 0.0)
    if out is None:
        if isinstance(mask, np.ndarray):  # numpy in, numpy out, whatever the backend
            return to_numpy(labels.compute()), n
        return labels, n
    # zarr's test for chunks equal to the fill value costs more than compressing them (a
    # full-block comparison, serialised in zarr's event loop): label chunks are written as
    # they are (an empty one compresses to a few bytes)
    with zarr.config.set({"array.write_empty_chunks": True}):
        written = write_dask(blocks_to(labels, "numpy"), out,
                             voxel_size=voxel_size if voxel_size is not None else vol.voxel_size,
                             kind="labels", overwrite=overwrite, levels=levels,
                             attrs={"n_labels": n, "connectivity": connectivity},
                             progress=progress)
    return written, n
