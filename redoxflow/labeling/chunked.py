"""Exact chunked labeling over dask arrays (dask lives here; kernels are pure)."""

from __future__ import annotations

import itertools

import dask
import dask.array as da
import numpy as np
from dask.sizeof import sizeof
from numcodecs import LZ4

from .._backend import Backend, backend_of, blocks_to, get_array_module
from ..common.options import Connectivity, check_choice
from ..errors import InputError
from . import kernels

__all__ = ["KEEP_MIB", "check_mask_block", "label_dask", "validate_mask"]

#: Default memory budget (MiB) of pass-1 labels kept for pass 2 by :func:`label` with ``out``.
KEEP_MIB = 1024.0


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


def _block_pass(block, index: int, origin, shape, connectivity, threshold, keep):
    """Pass 1 of one block: local labels -> (count, first voxels, six faces, kept or None).

    ``keep``: ``None`` drops the labels (pass 2 labels the block again), ``"raw"`` keeps
    them as they are, an int keeps them LZ4-compressed if they compress to at most that many
    bytes. Everything else is small and on the host.
    """
    labels, n = kernels.label_block(check_mask_block(block, threshold), connectivity)
    kept = None
    if keep == "raw":
        kept = _Kept(labels)
    elif keep:
        kept = _Kept.packed(labels, int(keep))
    return (n, kernels.first_voxels(labels, n, origin, shape), kernels.faces(labels, index),
            kept)


class _Kept:
    """Pass-1 labels of one block (as they are, or LZ4-compressed), handed to pass 2 once:
    pass 2 relabels them in place, so a second use would see final ids: it raises instead."""

    __slots__ = ("labels", "packed_as")

    def __init__(self, labels, packed_as=None):
        self.labels = labels
        self.packed_as = packed_as  # (shape, dtype) of compressed labels

    @classmethod
    def packed(cls, labels: np.ndarray, limit: int):
        """Compressed labels, or None when they take more than ``limit`` bytes."""
        if labels.nbytes > _LZ4_MAX_BYTES:
            return None
        data = _LZ4.encode(np.ascontiguousarray(labels))
        return cls(data, (labels.shape, labels.dtype)) if len(data) <= limit else None

    def take(self):
        labels, self.labels = self.labels, None
        if labels is None:
            raise RuntimeError("the labels kept between the passes were used already: a "
                               "result of label_dask(keep_mib > 0) can be computed once "
                               "(label again, or pass keep_mib=0)")
        if self.packed_as is not None:
            shape, dtype = self.packed_as
            labels = _LZ4.decode(labels, out=np.empty(shape, dtype))
        return labels


_LZ4 = LZ4(acceleration=1)
_LZ4_MAX_BYTES = 0x7E000000  # LZ4's largest input


@sizeof.register(_Kept)
def _sizeof_kept(kept: _Kept) -> int:  # what a distributed worker counts as held memory
    return 64 + (sizeof(kept.labels) if kept.labels is not None else 0)


def _is_kept(kept) -> bool:
    return kept is not None


def _relabel_pass(block, lut, connectivity, threshold):
    """Pass 2 of one block: label again (deterministic) and map to final ids (same backend)."""
    labels, _ = kernels.label_block(check_mask_block(block, threshold), connectivity)
    return _final_ids(labels, lut)


def _relabel_kept(kept: _Kept, lut):
    """Pass 2 of a block whose pass-1 labels were kept: map them to final ids."""
    return _final_ids(kept.take(), lut)


def _final_ids(labels, lut):
    """Final ids of a block's local labels (in place when the dtypes agree on the host)."""
    if backend_of(labels) == "numpy":  # the kernel's ids are 1..n, the table has n + 1 entries
        return kernels.relabel(labels, lut, out=labels if labels.dtype == lut.dtype else None,
                               check=False)
    return kernels.relabel(labels, lut)


def _boundary_pairs(lower_faces, upper_faces, grid2, connectivity):
    """Touching pairs across one block boundary plane, assembled from the blocks' faces."""
    lower = np.block([[lower_faces[i * grid2[1] + j] for j in range(grid2[1])]
                      for i in range(grid2[0])])
    upper = np.block([[upper_faces[i * grid2[1] + j] for j in range(grid2[1])]
                      for i in range(grid2[0])])
    return kernels.touching_pairs(lower, upper, connectivity)


def label_dask(mask, *, connectivity: Connectivity = 26, threshold: float | None = None,
               backend: Backend = "numpy", keep_mib: float = 0.0):
    """Label a dask array -> (lazy dask array of final ids, number of components).

    The count (pass 1: per-block labels, first voxels and faces; union-find on the driver) is
    computed eagerly; the relabelled array (pass 2) is lazy and has the input's chunks.

    Pass 2 labels each block again (cc3d is deterministic), unless its pass-1 labels were
    kept: with ``keep_mib > 0`` pass-1 labels stay in memory (persisted, on the workers of a
    distributed client) until pass 2, which then only maps them to final ids, without
    reading or labelling the block again. They are kept as they are when all of them fit in
    ``keep_mib`` MiB, else LZ4-compressed, for each block whose labels compress to its share
    of ``keep_mib`` (sparse labels, such as bubbles, compress 50-300x).

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
    keep_mib : float
        Host memory (MiB) for pass-1 labels kept until pass 2 (numpy backend; 0: keep none,
        the default). The result then holds the kept labels until it is computed, and can
        be computed only once (pass 2 relabels the kept labels in place).

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
    >>> label_dask(mask, connectivity=6, keep_mib=1)[0].compute().tolist()
    [[[1, 0, 2, 2]]]
    """
    validate_mask(mask, connectivity, threshold)
    check_choice(backend, Backend, "backend")
    mask = blocks_to(mask, backend)
    shape = mask.shape
    grid = mask.numblocks
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]) for c in mask.chunks]
    blocks = mask.to_delayed()
    block_index = {idx: i for i, idx in enumerate(np.ndindex(*grid))}
    plan = _keep_plan(mask, keep_mib if backend == "numpy" else 0.0)
    first_pass = {}
    for idx, i in block_index.items():
        origin = tuple(int(starts[a][idx[a]]) for a in range(3))
        first_pass[idx] = dask.delayed(_block_pass, nout=4, pure=True)(
            blocks[idx], i, origin, shape, connectivity, threshold, plan)
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
    if plan is not None:  # the kept labels stay in memory (on the workers) until pass 2
        persisted = dask.persist(*(first_pass[idx] for idx in order), *pair_tasks)
        first_pass = dict(zip(order, persisted[:len(order)]))
        pair_tasks = list(persisted[len(order):])
    kept_tasks = ([dask.delayed(_is_kept, pure=True)(first_pass[idx][3]) for idx in order]
                  if plan is not None else [])
    counts, firsts, pairs, kept = dask.compute(
        [first_pass[idx][0] for idx in order], [first_pass[idx][1] for idx in order], pair_tasks,
        kept_tasks)
    keep = {idx for idx, k in zip(order, kept) if k}
    all_pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), dtype=np.uint64)
    luts, n = kernels.resolve(counts, firsts, all_pairs)
    dtype = kernels.label_dtype(n)
    meta = get_array_module(backend=backend).empty((0, 0, 0), dtype=dtype)
    out = np.empty(grid, dtype=object)
    for idx, i in block_index.items():
        bshape = tuple(mask.chunks[a][idx[a]] for a in range(3))
        if idx in keep:
            task = dask.delayed(_relabel_kept, pure=True)(first_pass[idx][3], luts[i])
        else:
            task = dask.delayed(_relabel_pass, pure=True)(blocks[idx], luts[i], connectivity,
                                                          threshold)
        out[idx] = da.from_delayed(task, shape=bshape, dtype=dtype, meta=meta)
    return da.block(out.tolist()), n


def _keep_plan(mask, keep_mib: float):
    """What pass 1 keeps of every block: ``None`` (nothing), ``"raw"`` (the labels of all
    blocks fit in ``keep_mib`` MiB as they are) or each block's share of ``keep_mib`` in
    bytes (its labels are kept LZ4-compressed if they fit in it)."""
    budget = keep_mib * 2**20
    blocks = int(np.prod(mask.numblocks))
    if budget <= 0 or blocks == 0:
        return None
    if 4 * mask.size <= budget:  # uint32 labels
        return "raw"
    return max(1, int(budget // blocks))
