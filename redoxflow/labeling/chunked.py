"""Exact chunked labeling over dask arrays (dask lives here; kernels are pure)."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np

from .._backend import Backend, blocks_to, get_array_module
from ..common.options import Connectivity, check_choice
from ..errors import InputError
from . import kernels

__all__ = ["check_mask_block", "label_dask", "validate_mask"]


def check_mask_block(block, threshold: float | None = None):
    """A block as a boolean mask on its own backend (``block > threshold`` with a threshold).

    Raises
    ------
    InputError
        When an integer block holds values above 1 (a class volume, not a mask).

    Examples
    --------
    >>> check_mask_block(np.array([0, 1, 1], np.uint8)).tolist()
    [False, True, True]
    >>> check_mask_block(np.array([0.2, 0.9]), threshold=0.5).tolist()
    [False, True]
    """
    xp = get_array_module(block)
    if threshold is not None:
        return block > threshold
    if block.dtype == bool:
        return block
    if block.size and int(block.max()) > 1:
        raise InputError(f"mask holds values up to {int(block.max())}: a mask must be 0/1 or "
                         "boolean; select a class (volume == 1) or pass threshold=")
    return block.astype(xp.bool_)


def validate_mask(mask, connectivity: Connectivity, threshold: float | None) -> None:
    """Check a mask's rank and dtype and the connectivity, before anything is computed.

    Examples
    --------
    >>> validate_mask(np.zeros((2, 2, 2), bool), 26, None)
    >>> validate_mask(np.zeros((2, 2, 2), np.float32), 26, None)
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: mask has float dtype float32: pass threshold= to binarise it, \
or give a boolean/0-1 integer mask
    """
    check_choice(connectivity, Connectivity, "connectivity")
    if mask.ndim != 3:
        raise InputError(f"mask has {mask.ndim} dimensions, expected 3 (z, y, x)")
    kind = np.dtype(mask.dtype).kind
    if kind == "f" and threshold is None:
        raise InputError(f"mask has float dtype {mask.dtype}: pass threshold= to binarise it, "
                         "or give a boolean/0-1 integer mask")
    if kind not in "biuf":
        raise InputError(f"mask dtype {mask.dtype} is not supported: use bool or 0/1 integers")


def _block_pass(block, index: int, origin, shape, connectivity, threshold):
    """Pass 1 of one block: local labels -> (count, first voxels, six faces), all on the host."""
    labels, n = kernels.label_block(check_mask_block(block, threshold), connectivity)
    return n, kernels.first_voxels(labels, n, origin, shape), kernels.faces(labels, index)


def _relabel_pass(block, lut, connectivity, threshold):
    """Pass 2 of one block: label again (deterministic) and map to final ids (same backend)."""
    labels, _ = kernels.label_block(check_mask_block(block, threshold), connectivity)
    return kernels.relabel(labels, lut)


def _boundary_pairs(lower_faces, upper_faces, grid2, connectivity):
    """Touching pairs across one block boundary plane, assembled from the blocks' faces."""
    lower = np.block([[lower_faces[i * grid2[1] + j] for j in range(grid2[1])]
                      for i in range(grid2[0])])
    upper = np.block([[upper_faces[i * grid2[1] + j] for j in range(grid2[1])]
                      for i in range(grid2[0])])
    return kernels.touching_pairs(lower, upper, connectivity)


def label_dask(mask, *, connectivity: Connectivity = 26, threshold: float | None = None,
               backend: Backend = "numpy"):
    """Label a dask array -> (lazy dask array of final ids, number of components).

    The count (pass 1: per-block labels, first voxels and faces; union-find on the driver) is
    computed eagerly; the relabelled array (pass 2) is lazy and has the input's chunks.

    Parameters
    ----------
    mask : dask.array.Array, shape (z, y, x)
        Boolean or 0/1 integer mask (floats need ``threshold``), on any backend.
    connectivity : {6, 18, 26}
        Face, face+edge or full neighbourhood.
    threshold : float, optional
        Binarise as ``mask > threshold`` first.
    backend : {"numpy", "cupy"}
        Where blocks are labelled: ``"cupy"`` moves each block to the GPU
        (``cupyx.scipy.ndimage.label``) and the result's blocks are CuPy arrays.

    Returns
    -------
    labels : dask.array.Array
        uint32 ids (uint64 when the count needs it), blocks on ``backend``.
    n : int

    Examples
    --------
    >>> import dask.array as da
    >>> mask = da.from_array(np.array([[[1, 0, 1, 1]]], bool), chunks=(1, 1, 2))
    >>> labels, n = label_dask(mask, connectivity=6)
    >>> labels.compute().tolist(), n
    ([[[1, 0, 2, 2]]], 2)
    """
    validate_mask(mask, connectivity, threshold)
    check_choice(backend, Backend, "backend")
    mask = blocks_to(mask, backend)
    shape = mask.shape
    grid = mask.numblocks
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in mask.chunks]
    blocks = mask.to_delayed()
    block_index = {idx: i for i, idx in enumerate(np.ndindex(*grid))}
    first_pass = {}
    for idx, i in block_index.items():
        origin = tuple(int(starts[a][idx[a]]) for a in range(3))
        first_pass[idx] = dask.delayed(_block_pass, nout=3, pure=True)(
            blocks[idx], i, origin, shape, connectivity, threshold)
    pair_tasks = []
    for axis in range(3):
        others = [a for a in range(3) if a != axis]
        grid2 = (grid[others[0]], grid[others[1]])
        for k in range(grid[axis] - 1):
            lower, upper = [], []
            for i, j in itertools.product(range(grid2[0]), range(grid2[1])):
                lo = [0, 0, 0]
                lo[axis], lo[others[0]], lo[others[1]] = k, i, j
                hi = list(lo)
                hi[axis] = k + 1
                lower.append(first_pass[tuple(lo)][2][2 * axis + 1])
                upper.append(first_pass[tuple(hi)][2][2 * axis])
            pair_tasks.append(dask.delayed(_boundary_pairs, pure=True)(
                lower, upper, grid2, connectivity))
    order = list(block_index)
    counts, firsts, pairs = dask.compute(
        [first_pass[idx][0] for idx in order], [first_pass[idx][1] for idx in order], pair_tasks)
    all_pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.uint64)
    luts, n = kernels.resolve(counts, firsts, all_pairs)
    dtype = kernels.label_dtype(n)
    meta = get_array_module(backend=backend).empty((0, 0, 0), dtype=dtype)
    out = np.empty(grid, dtype=object)
    for idx, i in block_index.items():
        bshape = tuple(mask.chunks[a][idx[a]] for a in range(3))
        task = dask.delayed(_relabel_pass, pure=True)(blocks[idx], luts[i], connectivity, threshold)
        out[idx] = da.from_delayed(task, shape=bshape, dtype=dtype, meta=meta)
    return da.block(out.tolist()), n
