"""Volume I/O: lazy readers for many formats, the OME-Zarr 0.5 store and the input coercer."""

from ..common.atomic import atomic_store
from ..common.units import normalize_voxel_size
from .metadata import read_metadata
from .readers import SeriesSource, VolumeSource, natural_key, open_source
from .store import (
    choose_chunks,
    detect_kind,
    ingest,
    open_volume,
    pyramid_shapes,
    write_dask,
)
from .volume import DEFAULT_CHUNK_MIB, Volume, as_volume

__all__ = [
    "DEFAULT_CHUNK_MIB",
    "SeriesSource",
    "Volume",
    "VolumeSource",
    "as_volume",
    "atomic_store",
    "choose_chunks",
    "detect_kind",
    "ingest",
    "natural_key",
    "normalize_voxel_size",
    "open_source",
    "open_volume",
    "pyramid_shapes",
    "read_metadata",
    "write_dask",
]
