"""Exact chunked distance transforms against scipy on several chunkings."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage

from redoxflow.distance import distance_to, distance_transform, min_distance_per_label

SPACINGS = [(1.0, 1.0, 1.0), (2.5, 1.0, 0.7)]
CHUNKS = [(23, 31, 37), (5, 31, 37), (7, 9, 11)]  # one chunk; slabs; blocks that do not divide


def _walls(rng, shape=(23, 31, 37)):
    w = np.zeros(shape, bool)
    w[:, :, 18:20] = True                      # a membrane-like sheet
    w[:, :2, :] = True                         # a gasket-like slab
    w &= rng.random(shape) < 0.9               # with holes
    w[3, 25, 5] = True                         # and an isolated voxel
    return w


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("chunks", CHUNKS)
def test_distance_to_equals_scipy(rng, spacing, chunks):
    walls = _walls(rng)
    ref = ndimage.distance_transform_edt(~walls, sampling=spacing)
    for slab in (31 * 37, 3 * 31 * 37, 10**9):  # one plane per slab, three, the whole volume
        got = distance_to(da.from_array(walls, chunks=chunks), spacing=spacing,
                          slab_voxels=slab).compute()
        np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)


def test_distance_transform_follows_scipy_convention(rng):
    pore = rng.random((17, 19, 21)) < 0.6
    got = distance_transform(da.from_array(pore, chunks=(4, 7, 8)), spacing=(1, 2, 3),
                             slab_voxels=400).compute()
    np.testing.assert_allclose(got, ndimage.distance_transform_edt(pore, sampling=(1, 2, 3)),
                               rtol=1e-12)
    assert (got[~pore] == 0).all()


def test_empty_features_give_inf():
    got = distance_to(np.zeros((4, 5, 6), bool)).compute()
    assert np.isinf(got).all()


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("chunks", CHUNKS)
def test_min_distance_per_label_equals_brute_force(rng, spacing, chunks):
    walls = _walls(rng)
    gasket = np.zeros_like(walls)
    gasket[:, -1, :] = True
    labels, n = ndimage.label((rng.random(walls.shape) < 0.05) & ~walls & ~gasket)
    pts = np.array([[0, 0, 0], [22, 30, 36], [11, 15, 3]])
    ids, dist, at = min_distance_per_label(
        da.from_array(labels.astype(np.uint32), chunks=chunks),
        [da.from_array(walls, chunks=chunks), gasket], spacing=spacing, points=pts,
        slab_voxels=2 * 31 * 37)
    np.testing.assert_array_equal(ids, np.arange(1, n + 1))
    for k, feature in enumerate([walls, gasket]):
        field = ndimage.distance_transform_edt(~feature, sampling=spacing)
        ref = ndimage.minimum(field, labels, index=np.arange(1, n + 1))
        np.testing.assert_allclose(dist[:, k], ref, rtol=1e-12)
        np.testing.assert_allclose(at[:, k], field[tuple(pts.T)], rtol=1e-12)


@pytest.mark.parametrize("chunks", [(23, 31, 37), (7, 9, 11)])
def test_min_distance_per_label_sparse_ids_and_empty_feature(rng, chunks):
    """Ids far apart (the dense per-slab index does not apply) and a feature with no voxel."""
    walls = _walls(rng)
    labels, n = ndimage.label((rng.random(walls.shape) < 0.05) & ~walls)
    ids = np.r_[0, rng.choice(2**40, n, replace=False) + 1].astype(np.uint64)
    sparse = ids[labels]
    got_ids, dist, _ = min_distance_per_label(
        da.from_array(sparse, chunks=chunks), [walls, np.zeros_like(walls)],
        spacing=(2.0, 1.0, 0.5), slab_voxels=3 * 31 * 37)
    np.testing.assert_array_equal(got_ids, np.sort(ids[1:]))
    field = ndimage.distance_transform_edt(~walls, sampling=(2.0, 1.0, 0.5))
    ref = ndimage.minimum(field, labels, index=np.arange(1, n + 1))
    np.testing.assert_allclose(dist[:, 0], ref[np.argsort(ids[1:])], rtol=1e-12)
    assert np.isinf(dist[:, 1]).all()


def test_min_distance_per_label_takes_uint64_labels(rng):
    """The labeler's dtype beyond 2**32 - 1 components (numba turned the id range into
    floats for uint64)."""
    walls = _walls(rng)
    labels, n = ndimage.label((rng.random(walls.shape) < 0.05) & ~walls)
    ids, dist, _ = min_distance_per_label(labels.astype(np.uint64), [walls])
    field = ndimage.distance_transform_edt(~walls)
    np.testing.assert_array_equal(ids, np.arange(1, n + 1))
    np.testing.assert_allclose(dist[:, 0], ndimage.minimum(field, labels, np.arange(1, n + 1)))


def test_integer_distances_refuse_what_they_cannot_hold():
    from redoxflow.distance import distance_to
    from redoxflow.errors import InputError

    mask = np.zeros((1, 1, 40), bool)
    mask[0, 0, 2] = True
    d2 = distance_to(mask, squared=True, dtype=np.int32).compute()
    assert d2.dtype == np.int32 and d2[0, 0].tolist() == [(x - 2) ** 2 for x in range(40)]
    with pytest.raises(InputError, match="room for 1521"):  # 39^2 does not fit in uint8
        distance_to(mask, squared=True, dtype=np.uint8)
    with pytest.raises(InputError, match="whole-number"):
        distance_to(mask, squared=True, spacing=0.5, dtype=np.int32)
