"""The one input coercer: every kind of input -> dask array + voxel size + identity."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

import redoxflow as rf
from redoxflow.errors import InputError
from redoxflow.io import DEFAULT_CHUNK_MIB, as_volume, choose_chunks


def test_numpy_gets_the_documented_default_chunking():
    x = np.arange(6 * 70 * 80, dtype=np.uint16).reshape(6, 70, 80)
    v = as_volume(x)
    assert v.data.chunksize == choose_chunks(x.shape, 2, DEFAULT_CHUNK_MIB)
    assert v.voxel_size is None and v.spacing() == (1.0, 1.0, 1.0)
    np.testing.assert_array_equal(v.data.compute(), x)
    assert as_volume(x).identity == v.identity != as_volume(x + 1).identity  # content hash


def test_dask_keeps_its_chunks_and_xarray_its_voxel_size():
    d = da.zeros((9, 10, 11), chunks=(4, 5, 6), dtype=np.uint8)
    assert as_volume(d).data.chunks == d.chunks
    a = xr.DataArray(d, dims=("z", "y", "x"), attrs={"voxel_size": (2.0, 1.0, 1.0)})
    v = as_volume(a)
    assert v.voxel_size == (2.0, 1.0, 1.0) and v.spacing(3) == (3.0, 3.0, 3.0)


def test_store_paths_ome_and_bare_arrays(tmp_path):
    x = np.random.default_rng(0).integers(0, 4, (8, 9, 10), dtype=np.uint8)
    rf.ingest(x, tmp_path / "c.zarr", voxel_size=(3, 2, 2), kind="classes", progress=False)
    v = as_volume(tmp_path / "c.zarr")
    assert v.voxel_size == (3.0, 2.0, 2.0) and v.identity == str(tmp_path / "c.zarr")
    np.testing.assert_array_equal(v.data.compute(), x)
    z = zarr.create_array(store=str(tmp_path / "bare.zarr"), shape=x.shape, chunks=(3, 9, 10),
                          dtype=x.dtype)
    z[:] = x
    v = as_volume(tmp_path / "bare.zarr")
    assert v.data.chunks[0] == (3, 3, 2) and v.voxel_size is None
    np.testing.assert_array_equal(v.data.compute(), x)


def test_wrong_dimensions_are_one_line_errors():
    with pytest.raises(InputError, match="mask has 2 dimensions .* expected 3"):
        as_volume(np.zeros((4, 5)), what="mask")
    assert as_volume(np.zeros((4, 5)), ndim=(2, 3)).data.chunks == ((4,), (5,))
    with pytest.raises(InputError, match="does not exist"):
        as_volume("/nonexistent/volume.zarr")
