"""A weight-free baseline: multi-Otsu thresholds on a smoothed volume, then morphology.

Grey-level order of the VRFB phases: gas (darkest) < electrolyte < felt < membrane < gasket,
so four multi-Otsu thresholds split the volume into bubble, electrolyte, felt (counted as
electrolyte), membrane and gasket. The histogram counts are square-rooted first, so a rare
phase (few bubbles) still gets its own class. Small specks are removed by an opening.

The chunked work is dask-image's: :func:`dask_image.ndfilters.gaussian_filter` (mirror
boundary) smooths, and :func:`dask_image.ndmorph.binary_opening` opens each class, on a
class volume mirrored by :data:`OPEN_PAD` voxels at the volume's faces (so a phase touching
a face is opened as if it went on, not eroded by an empty outside). The result does not
depend on the chunking.
"""

from __future__ import annotations

import os
from typing import Any

import dask.array as da
import numpy as np
from dask_image import ndfilters, ndmorph
from scipy import ndimage
from skimage.filters import threshold_multiotsu

from ..errors import InputError
from ..io.store import write_dask
from ..io.volume import as_volume

#: multi-Otsu class (dark to bright: gas, electrolyte, felt, membrane, gasket) -> class id
ORDER = np.array([1, 0, 0, 2, 3], np.uint8)
#: the opening's reach (erosion + dilation by the 6-connected ball): mirrored at the faces
OPEN_PAD = 2
BALL = ndimage.generate_binary_structure(3, 1)


def otsu_thresholds(volume, *, max_samples: int = 2**22, sigma: float = 1.0) -> np.ndarray:
    """Four multi-Otsu thresholds of the square-rooted histogram of a smoothed sample.

    Up to 64 evenly spaced z-planes are smoothed in 2D (Gaussian, ``sigma``) and strided so
    that at most about ``max_samples`` voxels are used.

    Parameters
    ----------
    volume : numpy or dask array (z, y, x)
        Grey levels.
    max_samples : int
        Sample size bound.
    sigma : float
        Gaussian smoothing of the sampled planes, in voxels.

    Returns
    -------
    float array of 4 increasing thresholds

    Examples
    --------
    >>> import redoxflow as rf
    >>> t = otsu_thresholds(rf.make_phantom((16, 64, 64), seed=0).image)
    >>> t.shape, bool((t[1:] > t[:-1]).all())
    ((4,), True)
    """
    step = max(1, int(np.ceil((volume.size / max_samples) ** (1 / 3))))
    z_idx = np.linspace(0, volume.shape[0] - 1, max(1, min(volume.shape[0], 64))).astype(int)
    planes = [np.asarray(volume[int(z)]) for z in np.unique(z_idx)]
    sample = np.stack([ndimage.gaussian_filter(np.asarray(p, np.float32), sigma)[::step, ::step]
                       for p in planes])
    if not np.isfinite(sample).all():
        raise InputError("the volume holds NaN or infinite values: clean it before segmenting")
    counts, edges = np.histogram(sample, bins=256)
    return threshold_multiotsu(hist=(np.sqrt(counts), (edges[:-1] + edges[1:]) / 2), classes=5)


def _classify(smooth: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    return ORDER[np.digitize(smooth, thresholds)]


def classify(volume: Any, thresholds: np.ndarray, sigma: float = 1.0) -> da.Array:
    """Smooth, threshold and open a volume, lazily (the chunk-exact core of the baseline).

    Parameters
    ----------
    volume : dask array (z, y, x)
        Grey levels.
    thresholds : array of 4 floats
        :func:`otsu_thresholds`.
    sigma : float
        Gaussian smoothing in voxels.

    Returns
    -------
    dask array (z, y, x) of uint8 class ids, chunked like ``volume``

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> grey = np.zeros((8, 8, 8), np.float32)
    >>> grey[2:7, 2:7, 2:7], grey[0, 0, 0] = 200.0, 200.0  # a block and a one-voxel speck
    >>> out = classify(da.from_array(grey, chunks=4), np.array([10.0, 20.0, 30.0, 40.0]),
    ...                sigma=0.3).compute()
    >>> int(out[4, 4, 4]), int(out[0, 0, 0])
    (3, 0)
    """
    smooth = ndfilters.gaussian_filter(volume.astype(np.float32), sigma, mode="reflect")
    classes = smooth.map_blocks(_classify, thresholds, dtype=np.uint8)
    padded = da.pad(classes, OPEN_PAD, mode="symmetric")
    padded = padded.rechunk(tuple(max(c) for c in padded.chunks))  # no sliver chunks at faces
    specks = None
    for c in (1, 2, 3):
        mask = padded == c
        lone = mask & ~ndmorph.binary_opening(mask, BALL)
        specks = lone if specks is None else specks | lone
    inner = tuple(slice(OPEN_PAD, OPEN_PAD + s) for s in classes.shape)
    return da.where(specks[inner], np.uint8(0), classes).rechunk(volume.chunks)


def classical_segment(volume: Any, *, out: str | os.PathLike | None = None,
                      overwrite: bool = False, progress: bool = True, config: Any = None,
                      sigma: float = 1.0):
    """Segment with multi-Otsu thresholds and an opening, over dask (chunk-exact).

    Parameters
    ----------
    volume : path, xarray.DataArray, dask or numpy array (z, y, x)
        Grey levels, coerced by :func:`redoxflow.io.as_volume`.
    out : path, optional
        Write uint8 classes to this OME-Zarr store.
    overwrite, progress : bool
        Replace an existing ``out``; show a progress bar.
    config : redoxflow.Config, optional
        Store settings for ``out``.
    sigma : float
        Gaussian smoothing in voxels.

    Returns
    -------
    xarray.DataArray or dask.array.Array
        The written class store when ``out`` is given, else a lazy uint8 dask array.

    Examples
    --------
    >>> import redoxflow as rf
    >>> ph = rf.make_phantom((16, 64, 64), seed=0)
    >>> classes = classical_segment(ph.image)
    >>> classes.dtype, classes.shape
    (dtype('uint8'), (16, 64, 64))
    """
    coerced = as_volume(volume, what="classical_segment's volume (z, y, x)")
    thresholds = otsu_thresholds(coerced.data, sigma=sigma)
    classes = classify(coerced.data, thresholds, sigma)
    if out is None:
        return classes
    return write_dask(classes, out, voxel_size=coerced.voxel_size, kind="classes",
                      overwrite=overwrite, config=config, progress=progress,
                      description="classical (multi-Otsu)",
                      attrs={"model": {"checkpoint": "classical",
                                       "thresholds": [float(t) for t in thresholds]}})
