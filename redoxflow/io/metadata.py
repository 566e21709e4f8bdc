"""OME-Zarr 0.5 metadata: the ``ome`` block we write and the fields we read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError

SPATIAL = ("z", "y", "x")
#: the class ids of a segmentation and their names
CLASS_NAMES = {0: "electrolyte", 1: "bubble", 2: "membrane", 3: "gasket", 5: "removed half"}
#: their colours in viewers (electrolyte transparent, so the classes overlay the image)
CLASS_RGBA = {0: [0, 0, 0, 0], 1: [230, 25, 25, 255], 2: [30, 80, 230, 255],
              3: [20, 170, 60, 255], 5: [128, 128, 128, 255]}


def image_label(kind: str, source_image: str | None = None) -> dict:
    """The OME-Zarr 0.5 ``image-label`` block of a class or label store.

    Viewers (napari-ome-zarr, ome-zarr-py, neuroglancer) then show it as labels: class
    stores with a named colour per class, label stores with their ids.

    Parameters
    ----------
    kind : {"classes", "labels"}
    source_image : str, optional
        Relative path of the image the labels belong to.

    Examples
    --------
    >>> meta = image_label("classes")
    >>> meta["colors"][1], meta["properties"][1]
    ({'label-value': 1, 'rgba': [230, 25, 25, 255]}, {'label-value': 1, 'class': 'bubble'})
    >>> image_label("labels", "../../")
    {'version': '0.5', 'colors': [{'label-value': 0, 'rgba': [0, 0, 0, 0]}], 'source': {'image': '../../'}}
    """
    meta: dict[str, Any] = {"version": "0.5"}
    if kind == "classes":
        meta["colors"] = [{"label-value": v, "rgba": c} for v, c in CLASS_RGBA.items()]
        meta["properties"] = [{"label-value": v, "class": n} for v, n in CLASS_NAMES.items()]
    else:  # bubble ids: background transparent; viewers give each id its own colour
        meta["colors"] = [{"label-value": 0, "rgba": [0, 0, 0, 0]}]
    if source_image is not None:
        meta["source"] = {"image": source_image}
    return meta


def labels_group(names: Sequence[str]) -> dict:
    """The ``ome`` block of an image's ``labels`` group, listing its label images.

    Examples
    --------
    >>> labels_group(["classes", "bubbles"])
    {'version': '0.5', 'labels': ['classes', 'bubbles']}
    """
    return {"version": "0.5", "labels": list(names)}


def ome_metadata(name: str, ndim: int, voxel_size: Sequence[float], n_levels: int,
                 kind: str = "intensity") -> dict:
    """OME-Zarr 0.5 ``ome`` attribute block for a (t?, z, y, x) pyramid.

    Level ``i`` is scaled by ``2**i`` with the translation of how it was made (see
    :func:`redoxflow.io.store.downsample2`): an intensity level averages 2x2x2 cells, so its
    voxel centre sits half a cell further (``(2**i - 1) / 2`` level-0 voxels); a class or
    label level keeps every ``2**i``-th voxel, so its centres coincide with level 0's
    (no translation).

    Parameters
    ----------
    name : str
        Name of the multiscale image (the store's file name).
    ndim : {3, 4}
        3 for (z, y, x), 4 for (t, z, y, x).
    voxel_size : (z, y, x) float
        Level-0 voxel size in micrometres.
    n_levels : int
        Number of pyramid levels (datasets ``"0"``, ``"1"``, ...).
    kind : {"intensity", "classes", "labels"}
        How the levels were made (mean or stride).

    Returns
    -------
    dict
        ``{"version": "0.5", "multiscales": [{"name", "axes", "datasets"}]}``.

    Examples
    --------
    >>> meta = ome_metadata("a.zarr", 3, (2.0, 1.0, 1.0), 2)
    >>> [a["name"] for a in meta["multiscales"][0]["axes"]]
    ['z', 'y', 'x']
    >>> meta["multiscales"][0]["datasets"][1]["coordinateTransformations"]
    [{'type': 'scale', 'scale': [4.0, 2.0, 2.0]}, {'type': 'translation', 'translation': [1.0, 0.5, 0.5]}]
    >>> ome_metadata("c.zarr", 3, (2.0, 1.0, 1.0), 2, "labels")["multiscales"][0][
    ...     "datasets"][1]["coordinateTransformations"][1]
    {'type': 'translation', 'translation': [0.0, 0.0, 0.0]}
    """
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in SPATIAL]
    if ndim == 4:
        axes.insert(0, {"name": "t", "type": "time"})
    datasets = []
    for level in range(n_levels):
        f = 2**level
        scale = [float(v) * f for v in voxel_size]
        shift = [float(v) * (f - 1) / 2 if kind == "intensity" else 0.0 for v in voxel_size]
        if ndim == 4:
            scale, shift = [1.0, *scale], [0.0, *shift]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": scale}, {"type": "translation", "translation": shift}]})
    return {"version": "0.5", "multiscales": [{"name": name, "axes": axes, "datasets": datasets}]}


def read_metadata(group: Any) -> dict[str, Any]:
    """Voxel size, datasets and the redoxflow block of an OME-Zarr group.

    Parameters
    ----------
    group : zarr.Group
        An OME-Zarr group (its attrs hold ``ome`` or, for older writers, ``multiscales``).

    Returns
    -------
    dict
        ``datasets`` (array paths, finest first), ``voxel_size`` (level 0, (z, y, x)
        micrometres), ``axes`` (names), ``redoxflow`` (our attr block, or ``{}``) and
        ``multiscales`` (the raw first multiscale entry).

    Raises
    ------
    InputError
        When the group has no multiscales metadata (or is an interrupted write).

    Examples
    --------
    >>> import numpy as np, tempfile, zarr, redoxflow as rf
    >>> store = tempfile.mkdtemp() + "/a.zarr"
    >>> _ = rf.ingest(np.zeros((8, 16, 16), np.uint8), store, voxel_size=2.0, progress=False)
    >>> meta = read_metadata(zarr.open_group(store, mode="r"))
    >>> meta["datasets"], meta["voxel_size"], meta["redoxflow"]["kind"]
    (['0'], [2.0, 2.0, 2.0], 'classes')
    """
    attrs = dict(group.attrs)
    ome = attrs.get("ome", attrs)
    try:
        ms = ome["multiscales"][0]
        datasets = [d["path"] for d in ms["datasets"]]
        scale0 = ms["datasets"][0]["coordinateTransformations"][0]["scale"][-3:]
        axes = [a["name"] for a in ms["axes"]]
    except (KeyError, IndexError, TypeError) as exc:
        if "resume_key" in attrs:
            raise InputError("this Zarr store is an unfinished write (interrupted): run the "
                             "command that writes it again to complete it") from exc
        raise InputError("Zarr group has no OME multiscales metadata: ingest it with "
                         "`redoxflow ingest` first") from exc
    return {"datasets": datasets, "voxel_size": [float(v) for v in scale0], "axes": axes,
            "redoxflow": attrs.get("redoxflow", {}), "multiscales": ms}
