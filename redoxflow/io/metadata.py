"""OME-Zarr 0.5 metadata: the ``ome`` block we write and the fields we read back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import InputError

SPATIAL = ("z", "y", "x")


def ome_metadata(name: str, ndim: int, voxel_size: Sequence[float], n_levels: int) -> dict:
    """OME-Zarr 0.5 ``ome`` attribute block for a (t?, z, y, x) pyramid."""
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in SPATIAL]
    if ndim == 4:
        axes.insert(0, {"name": "t", "type": "time"})
    datasets = []
    for level in range(n_levels):
        f = 2**level
        scale = [float(v) * f for v in voxel_size]
        shift = [float(v) * (f - 1) / 2 for v in voxel_size]
        if ndim == 4:
            scale, shift = [1.0, *scale], [0.0, *shift]
        datasets.append({"path": str(level), "coordinateTransformations": [
            {"type": "scale", "scale": scale}, {"type": "translation", "translation": shift}]})
    return {"version": "0.5", "multiscales": [{"name": name, "axes": axes, "datasets": datasets}]}


def read_metadata(group: Any) -> dict[str, Any]:
    """Voxel size, datasets and the redoxflow block of an OME-Zarr group."""
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
