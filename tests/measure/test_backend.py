"""regionprops(backend="cupy") through the NumPy-backed stand-in equals the numpy backend."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest

from redoxflow.errors import InputError
from redoxflow.labeling import label
from redoxflow.measure import regionprops
from redoxflow.measure.moments import block_moments
from tests.gpu_standin import cupy_standin  # noqa: F401 - fixture

EXACT = ("volume_voxels", "bbox_min", "bbox_max", "touches_border", "cut_by_fov")


@pytest.fixture(scope="module")
def labels():
    rng = np.random.default_rng(11)
    return label(rng.random((30, 34, 26)) < 0.3)[0]


def test_block_moments_on_the_device_equal_the_host(cupy_standin, labels):  # noqa: F811
    host = block_moments(labels, (3, 5, 7))
    dev = block_moments(cupy_standin.asarray(labels), (3, 5, 7))
    for key, value in host.items():
        assert isinstance(dev[key], cupy_standin.ndarray), key
        got = dev[key].get()
        assert got.dtype == value.dtype, key
        if key in ("ids", "n", "bbmin", "bbmax"):
            np.testing.assert_array_equal(got, value, err_msg=key)
        else:
            np.testing.assert_allclose(got, value, rtol=1e-12, atol=1e-9, err_msg=key)


@pytest.mark.parametrize("chunks", [(30, 34, 26), (7, 9, 5), (16, 16, 16)])
def test_regionprops_cupy_equals_numpy(cupy_standin, labels, chunks):  # noqa: F811
    arr = da.from_array(labels, chunks=chunks)
    cpu = regionprops(arr, spacing=(2.0, 1.0, 1.5))
    gpu = regionprops(arr, spacing=(2.0, 1.0, 1.5), backend="cupy")
    np.testing.assert_array_equal(gpu["bubble"].values, cpu["bubble"].values)
    assert set(gpu.data_vars) == set(cpu.data_vars)
    for name in cpu.data_vars:
        if name in EXACT:
            np.testing.assert_array_equal(gpu[name].values, cpu[name].values, err_msg=name)
        else:
            np.testing.assert_allclose(gpu[name].values, cpu[name].values, rtol=1e-10,
                                       atol=1e-12, equal_nan=True, err_msg=name)


def test_regionprops_cupy_on_device_labels(cupy_standin, labels):  # noqa: F811
    """Labels that are already on the device (label(backend="cupy")) are measured as they are."""
    mask = labels > 0
    dev_labels, n = label(da.from_array(mask, chunks=(10, 12, 13)), backend="cupy")
    assert isinstance(dev_labels._meta, cupy_standin.ndarray)
    gpu = regionprops(dev_labels, backend="cupy", properties="volume")
    cpu = regionprops(labels, properties="volume")
    assert gpu.sizes["bubble"] == n
    np.testing.assert_array_equal(gpu["volume_voxels"].values, cpu["volume_voxels"].values)
    both = regionprops(dev_labels, properties="volume")  # device blocks, numpy backend
    np.testing.assert_array_equal(both["centroid_voxel"].values, cpu["centroid_voxel"].values)


def test_regionprops_backend_is_validated():
    with pytest.raises(InputError, match="backend='cuda' is not allowed"):
        regionprops(np.zeros((3, 3, 3), np.uint32), backend="cuda")


@pytest.mark.gpu
def test_real_gpu_regionprops_equals_numpy(labels):
    arr = da.from_array(labels, chunks=(16, 16, 16))
    cpu = regionprops(arr, properties="volume")
    gpu = regionprops(arr, properties="volume", backend="cupy")
    np.testing.assert_array_equal(gpu["bubble"].values, cpu["bubble"].values)
    for name in EXACT:
        np.testing.assert_array_equal(gpu[name].values, cpu[name].values, err_msg=name)
    np.testing.assert_allclose(gpu["covariance"].values, cpu["covariance"].values, rtol=1e-9,
                               atol=1e-12)
