"""Provenance: digests of bytes and chunking-independent checksums of volumes."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np


def digest(data: bytes, size: int = 12) -> str:
    """Hex blake2b digest of some bytes (``size`` bytes long).

    Examples
    --------
    >>> digest(b"abc", size=4)
    '63906248'
    """
    return hashlib.blake2b(data, digest_size=size).hexdigest()


def slice_digests(block: np.ndarray) -> list[str]:
    """One digest per z-slice of a (z, y, x) block.

    Parameters
    ----------
    block : ndarray, shape (z, y, x)
        A slab of whole slices.

    Returns
    -------
    list of str, length z
        32-character hex blake2b digests, in z order.

    Examples
    --------
    >>> import numpy as np
    >>> d = slice_digests(np.zeros((2, 3, 4), np.uint8))
    >>> len(d), len(d[0]), d[0] == d[1]
    (2, 32, True)
    """
    return [digest(np.ascontiguousarray(s).tobytes(), 16) for s in block]


def combine_digests(parts) -> str:
    """One digest of digest lists (slices of a volume, or the steps of a series).

    Examples
    --------
    >>> combine_digests([["a", "b"], "c"]) == combine_digests(["a", "b", "c"])
    True
    """
    flat = [d for p in parts for d in (p if isinstance(p, list) else [p])]
    return digest("".join(flat).encode(), 16)


def volume_checksum(arr: Any):
    """A lazy (dask delayed) blake2b digest of a volume that does not depend on its chunking.

    Slabs of whole (y, x) slices (at most ~64 MiB each) give one digest per slice; the
    slice digests, in z order, are hashed together.

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.arange(1000, dtype="u2").reshape(10, 10, 10)
    >>> volume_checksum(x.rechunk(3)).compute() == volume_checksum(x.rechunk(7)).compute()
    True
    """
    import dask

    slice_bytes = int(np.prod(arr.shape[1:])) * arr.dtype.itemsize
    slab = max(1, min(arr.shape[0], (64 << 20) // max(slice_bytes, 1)))
    blocks = arr.rechunk((slab, -1, -1)).to_delayed().ravel()
    return dask.delayed(combine_digests)([dask.delayed(slice_digests)(b) for b in blocks])
