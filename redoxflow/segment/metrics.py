"""Per-class precision, recall, F1 and IoU from a confusion matrix (chunked when dask)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import InputError
from ..io.volume import as_volume
from .models import VRFB_CLASSES


def confusion(prediction: Any, truth: Any, n_classes: int) -> np.ndarray:
    """``n x n`` counts, rows = truth, columns = prediction (numpy or dask inputs).

    Examples
    --------
    >>> import numpy as np
    >>> confusion(np.array([0, 1, 1]), np.array([0, 0, 1]), 2)
    array([[1, 1],
           [0, 1]])
    """
    p = prediction.data if hasattr(prediction, "dims") else prediction
    t = truth.data if hasattr(truth, "dims") else truth
    if tuple(p.shape) != tuple(t.shape):
        raise InputError(f"prediction {tuple(p.shape)} and ground truth {tuple(t.shape)} differ "
                         "in shape: compare volumes of the same size")
    lazy = isinstance(p, da.Array) or isinstance(t, da.Array)
    xp = da if lazy else np
    p, t = (da.asarray(p), da.asarray(t)) if lazy else (np.asarray(p), np.asarray(t))
    if lazy:
        t = t.rechunk(p.chunks)
    codes = t.astype(np.int64) * n_classes + p.astype(np.int64)
    counts = xp.bincount(codes.ravel(), minlength=n_classes * n_classes)
    counts = np.asarray(counts.compute() if lazy else counts)
    if counts.size > n_classes * n_classes:
        raise InputError(f"volumes hold class ids >= {n_classes}: pass the right class names")
    return counts.reshape(n_classes, n_classes)


def scores(matrix: np.ndarray, names: Sequence[str]):
    """Per-class metrics as an ``xarray.Dataset`` (NaN where a class is absent from both).

    Parameters
    ----------
    matrix : (n, n) int array
        :func:`confusion` counts (rows truth, columns prediction).
    names : list of str
        The n class names.

    Examples
    --------
    >>> import numpy as np
    >>> ds = scores(np.array([[3, 1], [0, 4]]), ["a", "b"])
    >>> float(ds["precision"].sel({"class": "b"})), ds.attrs["accuracy"]
    (0.8, 0.875)
    """
    tp = np.diag(matrix).astype(float)
    truth, pred = matrix.sum(1).astype(float), matrix.sum(0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision, recall = tp / pred, tp / truth
        f1 = 2 * tp / (truth + pred)
        iou = tp / (truth + pred - tp)
    ds = xr.Dataset({"precision": ("class", precision), "recall": ("class", recall),
                     "f1": ("class", f1), "iou": ("class", iou),
                     "support": ("class", truth.astype(np.int64))},
                    coords={"class": list(names)})
    ds.attrs["accuracy"] = float(tp.sum() / max(matrix.sum(), 1))
    ds["confusion"] = (("class", "predicted"), matrix)
    ds = ds.assign_coords(predicted=list(names))
    return ds


def evaluate(prediction: Any, truth: Any, *, classes: Sequence[str] | int | None = None):
    """Per-class precision, recall, F1 and IoU of a segmentation against ground truth.

    Parameters
    ----------
    prediction, truth : arrays, dask arrays, DataArrays or store paths of the same shape
        Integer class volumes (or slices).
    classes : list of names or int, optional
        Default: the four VRFB classes.

    Returns
    -------
    xarray.Dataset
        ``precision, recall, f1, iou, support`` per class, the confusion matrix, and
        ``attrs["accuracy"]``.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.array([[0, 0, 1, 1]])
    >>> ds = evaluate(np.array([[0, 1, 1, 1]]), truth, classes=["dark", "bright"])
    >>> float(ds["recall"].sel({"class": "dark"})), float(ds["f1"].sel({"class": "bright"}))
    (0.5, 0.8)
    """
    if classes is None:
        classes = VRFB_CLASSES
    names = [f"class {i}" for i in range(classes)] if isinstance(classes, int) else list(classes)
    # stores are opened by the one coercer; in-memory slices and volumes are compared as given
    prediction, truth = (as_volume(v, what=what, ndim=(2, 3)).data
                         if isinstance(v, (str, os.PathLike)) else v
                         for v, what in ((prediction, "prediction"), (truth, "ground truth")))
    return scores(confusion(prediction, truth, len(names)), names)


def format_scores(ds) -> str:
    """A plain-text table of :func:`evaluate`'s result.

    Examples
    --------
    >>> import numpy as np
    >>> print(format_scores(evaluate(np.array([0, 1]), np.array([0, 1]), classes=["a", "b"])))
    class        precision    recall        F1       IoU     support
    a               1.0000    1.0000    1.0000    1.0000           1
    b               1.0000    1.0000    1.0000    1.0000           1
    accuracy 1.0000
    """
    lines = [f"{'class':<12}{'precision':>10}{'recall':>10}{'F1':>10}{'IoU':>10}{'support':>12}"]
    for name in ds["class"].values:
        r = ds.sel({"class": name})
        lines.append(f"{name!s:<12}{float(r.precision):>10.4f}{float(r.recall):>10.4f}"
                     f"{float(r.f1):>10.4f}{float(r.iou):>10.4f}{int(r.support):>12d}")
    lines.append(f"accuracy {ds.attrs['accuracy']:.4f}")
    return "\n".join(lines)
