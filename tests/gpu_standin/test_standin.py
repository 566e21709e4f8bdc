"""The stand-in must fail where real CuPy fails, or it would let GPU-path bugs through."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import ndimage

from redoxflow import _backend
from redoxflow.errors import InputError
from tests.gpu_standin import cupy_standin  # noqa: F401 - fixture


def test_device_array_looks_like_cupy_and_gets_to_numpy(cupy_standin):  # noqa: F811
    cp = cupy_standin
    d = cp.asarray(np.arange(6).reshape(2, 3))
    assert type(d).__module__.startswith("cupy") and isinstance(d, cp.ndarray)
    assert _backend.backend_of(d) == "cupy"
    host = d.get()
    assert type(host) is np.ndarray and host.tolist() == [[0, 1, 2], [3, 4, 5]]
    assert type(cp.asnumpy(d)) is np.ndarray
    assert _backend.to_numpy(d).tolist() == host.tolist()
    assert cp.uint32 is np.uint32 and cp.cuda.is_available()


def test_implicit_host_conversion_raises_like_cupy(cupy_standin):  # noqa: F811
    d = cupy_standin.asarray(np.arange(4))
    with pytest.raises(TypeError, match="Implicit conversion"):
        np.asarray(d)
    with pytest.raises(TypeError, match="Implicit conversion"):
        d.__array__()
    with pytest.raises(TypeError):
        np.arange(10)[d]  # a host array indexed by device indices
    host = np.zeros(4, np.int64)
    with pytest.raises(TypeError):
        host[:] = d


def test_mixing_host_and_device_raises(cupy_standin):  # noqa: F811
    cp = cupy_standin
    d, h = cp.asarray(np.arange(4)), np.arange(4)
    for bad in (lambda: d + h, lambda: h + d, lambda: d == h, lambda: np.add(d, h),
                lambda: cp.concatenate([d, h]), lambda: cp.take(h, d),
                lambda: np.minimum.at(d, [0], 1)):
        with pytest.raises(TypeError):
            bad()
    assert not hasattr(cp.minimum, "at")


def test_device_ops_used_by_the_gpu_path(cupy_standin):  # noqa: F811
    cp = cupy_standin
    d = cp.asarray(np.array([[0, 3, 3], [5, 0, 3]], np.int32))
    assert isinstance(d.max(), cp.ndarray) and int(d.max()) == 5  # 0-d device result
    assert bool((d > 4).any()) and (d > 1).astype(cp.bool_).dtype == bool
    lut = cp.asarray(np.array([0, 0, 0, 7, 0, 9], np.uint32))
    assert cp.take(lut, d).get().tolist() == [[0, 7, 7], [9, 0, 7]]
    assert lut[d].get().tolist() == [[0, 7, 7], [9, 0, 7]]
    ids, inv = cp.unique(d.ravel(), return_inverse=True)
    assert isinstance(ids, cp.ndarray) and ids.get().tolist() == [0, 3, 5]
    assert np.flatnonzero(d).get().tolist() == [1, 2, 3, 5]  # dispatched to the stand-in
    z, x = cp.unravel_index(cp.flatnonzero(d.ravel()), d.shape)
    assert isinstance(z, cp.ndarray) and z.get().tolist() == [0, 0, 1, 1]
    m = cp.empty((2, 3))
    m[:, 0] = cp.asarray(np.array([1.0, 2.0]))
    assert m[:, 0].get().tolist() == [1.0, 2.0]


def test_ndimage_label_wants_device_input(cupy_standin):  # noqa: F811
    import cupyx.scipy.ndimage as cndi

    mask = np.random.default_rng(0).random((6, 7, 8)) < 0.4
    with pytest.raises(TypeError, match="cupy.ndarray"):
        cndi.label(mask)
    labels, n = cndi.label(cupy_standin.asarray(mask), structure=np.ones((3, 3, 3), bool))
    ref, n_ref = ndimage.label(mask, np.ones((3, 3, 3), bool))
    assert labels.dtype == np.int32 and n == n_ref
    np.testing.assert_array_equal(labels.get(), ref)


def test_backend_sees_the_standin_and_forgets_it(cupy_standin):  # noqa: F811
    assert _backend.has_gpu()
    assert _backend.get_array_module(backend="cupy") is cupy_standin
    with pytest.raises(InputError, match="backend='gpu' is not allowed"):
        _backend.get_array_module(backend="gpu")


def test_group_min_max_device_path_equals_numpy(cupy_standin, rng):  # noqa: F811
    groups = rng.integers(0, 40, 5000)
    groups[:40] = np.arange(40)  # every group non-empty
    values = rng.integers(0, 97, 5000)
    lo, hi = _backend.group_min_max(groups, values, 40, 97)
    dlo, dhi = _backend.group_min_max(cupy_standin.asarray(groups), cupy_standin.asarray(values),
                                      40, 97)
    assert isinstance(dlo, cupy_standin.ndarray)
    np.testing.assert_array_equal(dlo.get(), lo)
    np.testing.assert_array_equal(dhi.get(), hi)


def test_no_standin_outside_the_fixture():
    module = sys.modules.get("cupy")
    assert module is None or not getattr(module, "__standin__", False)
