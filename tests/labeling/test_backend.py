"""backend="cupy" through the NumPy-backed stand-in (tests/gpu_standin), and on a real GPU.

The stand-in runs the whole device path (blocks moved with cupy.asarray, cupyx label, device
first voxels, faces and relabel) and raises on any implicit host/device mix-up, so these
tests fail on the bugs a real GPU would hit; they must equal scipy and the numpy backend.
"""

from __future__ import annotations

import sys

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from redoxflow._backend import has_gpu
from redoxflow.errors import InputError, MissingExtraError
from redoxflow.labeling import chunked, kernels, label
from tests.gpu_standin import cupy_standin  # noqa: F401 - fixture

RANK = {6: 1, 18: 2, 26: 3}
SHAPE = (33, 37, 29)
# one chunk, chunks that do not divide the shape, cubes, thin slabs
CHUNKINGS = [SHAPE, (7, 9, 5), (16, 16, 16), (3, 37, 29)]


def scipy_label(mask, connectivity):
    return ndimage.label(mask, ndimage.generate_binary_structure(3, RANK[connectivity]))


def device_labels(cp, mask, connectivity, chunks, **kw):
    labels, n = label(da.from_array(mask, chunks=chunks), connectivity=connectivity,
                      backend="cupy", **kw)
    assert isinstance(labels._meta, cp.ndarray)
    got = labels.compute()
    assert isinstance(got, cp.ndarray), "backend='cupy' must keep the labels on the device"
    return got.get(), n


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_cupy_backend_equals_numpy_and_scipy(cupy_standin, connectivity, chunks, rng):  # noqa: F811
    for density in (0.2, 0.35, 0.6):
        mask = rng.random(SHAPE) < density
        ref, n_ref = scipy_label(mask, connectivity)
        cpu, n_cpu = label(da.from_array(mask, chunks=chunks), connectivity=connectivity)
        got, n = device_labels(cupy_standin, mask, connectivity, chunks)
        assert n == n_cpu == n_ref
        assert got.dtype == np.uint32
        np.testing.assert_array_equal(got, ref)
        np.testing.assert_array_equal(got, cpu.compute())


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_cupy_backend_on_components_that_cross_every_chunk(cupy_standin, connectivity):  # noqa: F811
    mask = np.zeros((30, 30, 30), bool)
    mask[0] = True
    mask[:, ::3, ::3] = True  # a comb: one component through every chunk
    for i in range(30):
        mask[i, i, (i * 7) % 30] = True  # diagonal corner contacts
    ref, n_ref = scipy_label(mask, connectivity)
    for chunks in [(5, 6, 7), (30, 30, 30), (8, 8, 8)]:
        got, n = device_labels(cupy_standin, mask, connectivity, chunks)
        assert n == n_ref
        np.testing.assert_array_equal(got, ref)


def test_cupy_backend_numpy_in_numpy_out_threshold_and_store(cupy_standin, rng, tmp_path):  # noqa: F811
    grey = rng.random((20, 21, 22)).astype(np.float32)
    ref, n_ref = scipy_label(grey > 0.6, 26)
    labels, n = label(grey, threshold=0.6, backend="cupy")
    assert type(labels) is np.ndarray and n == n_ref
    np.testing.assert_array_equal(labels, ref)
    written, n2 = label(da.from_array(grey > 0.6, chunks=(8, 9, 10)), backend="cupy",
                        out=tmp_path / "l.zarr", voxel_size=2.0)
    assert n2 == n_ref and written.attrs["voxel_size"] == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(written.values, ref)


def test_cupy_backend_empty_full_and_bad_masks(cupy_standin):  # noqa: F811
    for fill in (False, True):
        mask = np.full((9, 10, 11), fill)
        got, n = device_labels(cupy_standin, mask, 26, (4, 5, 6))
        assert n == int(fill)
        np.testing.assert_array_equal(got, mask.astype(np.uint32))
    with pytest.raises(InputError, match="0/1"):
        label(da.from_array(np.full((4, 4, 4), 3, np.uint8), chunks=2), backend="cupy")


def test_a_host_device_mixup_in_the_gpu_path_fails(cupy_standin, monkeypatch):  # noqa: F811
    """The stand-in's reason to exist: the old host-side relabel must not pass silently."""
    monkeypatch.setattr(kernels, "relabel", lambda labels, lut: np.take(lut, labels))
    mask = np.random.default_rng(1).random((10, 10, 10)) < 0.3
    labels, _ = label(da.from_array(mask, chunks=5), backend="cupy")
    with pytest.raises(TypeError, match="Implicit conversion"):
        labels.compute()


def test_backend_is_validated_with_a_one_line_error():
    with pytest.raises(InputError, match=r"^backend='gpu' is not allowed: use one of"):
        label(np.zeros((2, 2, 2), bool), backend="gpu")
    with pytest.raises(InputError, match="backend="):
        chunked.label_dask(da.zeros((2, 2, 2), dtype=bool), backend="cuda")


@pytest.mark.skipif("cupy" in sys.modules or has_gpu(), reason="cupy is installed")
def test_cupy_backend_without_cupy_names_the_extra():
    with pytest.raises(MissingExtraError, match="redoxflow\\[gpu\\]"):
        label(da.zeros((4, 4, 4), dtype=bool, chunks=2), backend="cupy")


@pytest.mark.gpu
@pytest.mark.parametrize("chunks", [(64, 64, 64), (50, 70, 30), (128, 128, 128)])
def test_real_gpu_labels_equal_cpu(chunks):
    import cupy

    mask = np.random.default_rng(3).random((128, 128, 128)) < 0.3
    cpu, n_cpu = label(da.from_array(mask, chunks=chunks))
    gpu, n_gpu = label(da.from_array(mask, chunks=chunks), backend="cupy")
    got = gpu.compute()
    assert isinstance(got, cupy.ndarray) and n_gpu == n_cpu
    np.testing.assert_array_equal(cupy.asnumpy(got), cpu.compute())
