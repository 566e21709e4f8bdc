"""Per-class precision, recall, F1 and IoU from a confusion matrix (chunked when dask)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import InputError


def confusion(prediction: Any, truth: Any, n_classes: int) -> np.ndarray:
    """``n x n`` counts, rows = truth, columns = prediction (numpy or dask inputs)."""
    import dask.array as da

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
    """Per-class metrics as an ``xarray.Dataset`` (NaN where a class is absent from both)."""
    import xarray as xr

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
    """
    from ..io import open_volume
    from .models import VRFB_CLASSES

    if classes is None:
        classes = VRFB_CLASSES
    names = [f"class {i}" for i in range(classes)] if isinstance(classes, int) else list(classes)
    prediction, truth = (open_volume(v) if isinstance(v, str) or hasattr(v, "__fspath__") else v
                         for v in (prediction, truth))
    return scores(confusion(prediction, truth, len(names)), names)


def format_scores(ds) -> str:
    """A plain-text table of :func:`evaluate`'s result."""
    lines = [f"{'class':<12}{'precision':>10}{'recall':>10}{'F1':>10}{'IoU':>10}{'support':>12}"]
    for name in ds["class"].values:
        r = ds.sel({"class": name})
        lines.append(f"{name!s:<12}{float(r.precision):>10.4f}{float(r.recall):>10.4f}"
                     f"{float(r.f1):>10.4f}{float(r.iou):>10.4f}{int(r.support):>12d}")
    lines.append(f"accuracy {ds.attrs['accuracy']:.4f}")
    return "\n".join(lines)
