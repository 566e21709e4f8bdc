"""Volume I/O: lazy readers for many formats and the OME-Zarr 0.5 store."""

from .readers import SeriesSource, VolumeSource, natural_key, open_source
from .store import (
    atomic_store,
    choose_chunks,
    ingest,
    normalize_voxel_size,
    open_volume,
    pyramid_shapes,
    read_metadata,
    write_dask,
)

__all__ = [
    "SeriesSource",
    "VolumeSource",
    "atomic_store",
    "choose_chunks",
    "ingest",
    "natural_key",
    "normalize_voxel_size",
    "open_source",
    "open_volume",
    "pyramid_shapes",
    "read_metadata",
    "write_dask",
]
