"""A weight-free baseline: multi-Otsu thresholds on a smoothed volume, then morphology.

Grey-level order of the VRFB phases: gas (darkest) < electrolyte < felt < membrane < gasket,
so four multi-Otsu thresholds split the volume into bubble, electrolyte, felt (counted as
electrolyte), membrane and gasket. The histogram counts are square-rooted first, so a rare
phase (few bubbles) still gets its own class. Small specks are removed by an opening.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from scipy import ndimage

from ..errors import InputError

#: multi-Otsu class (dark to bright: gas, electrolyte, felt, membrane, gasket) -> class id
ORDER = np.array([1, 0, 0, 2, 3], np.uint8)
HALO = 6  # Gaussian radius (4 sigma) + erosion + dilation


def otsu_thresholds(volume, *, max_samples: int = 2**22, sigma: float = 1.0) -> np.ndarray:
    """Four multi-Otsu thresholds of the square-rooted histogram of an evenly strided,
    smoothed sample of the volume."""
    from skimage.filters import threshold_multiotsu

    step = max(1, int(np.ceil((volume.size / max_samples) ** (1 / 3))))
    z_idx = np.linspace(0, volume.shape[0] - 1, max(1, min(volume.shape[0], 64))).astype(int)
    planes = [np.asarray(volume[int(z)]) for z in np.unique(z_idx)]
    sample = np.stack([ndimage.gaussian_filter(np.asarray(p, np.float32), sigma)[::step, ::step]
                       for p in planes])
    if not np.isfinite(sample).all():
        raise InputError("the volume holds NaN or infinite values: clean it before segmenting")
    counts, edges = np.histogram(sample, bins=256)
    return threshold_multiotsu(hist=(np.sqrt(counts), (edges[:-1] + edges[1:]) / 2), classes=5)


def classify_block(block: np.ndarray, thresholds: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Smooth, threshold and open one block (pure; the caller adds a halo of ``HALO``)."""
    smooth = ndimage.gaussian_filter(block.astype(np.float32), sigma)
    classes = ORDER[np.digitize(smooth, thresholds)]
    ball = ndimage.generate_binary_structure(3, 1)
    for c in (1, 2, 3):
        mask = classes == c
        classes[mask & ~ndimage.binary_opening(mask, ball)] = 0
    return classes


def classical_segment(volume: Any, *, out: str | os.PathLike | None = None,
                      overwrite: bool = False, progress: bool = True, config: Any = None,
                      sigma: float = 1.0):
    """Segment with :func:`classify_block` over dask blocks (a halo keeps it chunk-exact).

    Returns the written class store when ``out`` is given, else a lazy uint8 dask array.
    """
    from ..io.store import write_dask
    from .inference import _as_volume

    vol, voxel, _ = _as_volume(volume)
    thresholds = otsu_thresholds(vol, sigma=sigma)
    classes = vol.map_overlap(classify_block, depth=HALO, boundary="reflect", dtype=np.uint8,
                              thresholds=thresholds, sigma=sigma)
    if out is None:
        return classes
    return write_dask(classes, out, voxel_size=voxel, kind="classes", overwrite=overwrite,
                      config=config, progress=progress, description="classical (multi-Otsu)",
                      attrs={"model": {"checkpoint": "classical",
                                       "thresholds": [float(t) for t in thresholds]}})
