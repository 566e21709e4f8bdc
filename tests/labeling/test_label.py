"""Chunked labeling must equal scipy.ndimage.label value for value, for every chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import zarr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import ndimage

from redoxflow.errors import InputError
from redoxflow.io import open_volume
from redoxflow.labeling import chunked, kernels, label, label_dask
from redoxflow.labeling.kernels import label_dtype, resolve

RANK = {6: 1, 18: 2, 26: 3}


def scipy_label(mask, connectivity):
    return ndimage.label(mask, ndimage.generate_binary_structure(3, RANK[connectivity]))


def check(mask, connectivity, chunks):
    """The lazy result (every block labelled twice) and the result of a run that keeps about
    half of the blocks' labels between the passes (kept and relabelled blocks side by side)
    both equal scipy."""
    ref, n_ref = scipy_label(mask, connectivity)
    labels, n = label(da.from_array(mask, chunks=chunks), connectivity=connectivity)
    got = labels.compute()
    assert n == n_ref
    assert got.dtype == np.uint32
    np.testing.assert_array_equal(got, ref)
    half = 4 * mask.size / 2 / 2**20
    kept, n = label_dask(da.from_array(mask, chunks=chunks), connectivity=connectivity,
                         keep_mib=half)
    assert n == n_ref
    np.testing.assert_array_equal(kept.compute(), ref)


def spiral(shape):
    """A one-voxel-thick square spiral in every z-plane, joined through the planes' corners."""
    m = np.zeros(shape, bool)
    for z in range(0, shape[0], 2):
        y0, x0, y1, x1 = 0, 0, shape[1] - 1, shape[2] - 1
        while y0 <= y1 and x0 <= x1:
            m[z, y0, x0:x1 + 1] = True
            m[z, y0:y1 + 1, x1] = True
            m[z, y1, x0:x1 + 1] = True
            m[z, y0 + 2:y1 + 1, x0] = True
            y0, x0, y1, x1 = y0 + 2, x0 + 2, y1 - 2, x1 - 2
        if z + 1 < shape[0]:
            m[z + 1, (z * 3) % shape[1], (z * 5) % shape[2]] = True
    return m


def comb(shape):
    """Teeth along x joined by a spine at z=0: one component that crosses every chunk."""
    m = np.zeros(shape, bool)
    m[0, :, :] = True
    m[:, ::3, ::3] = True
    return m


def diagonal_corners(shape):
    """Isolated voxels touching only at corners, along the main diagonal and across chunks."""
    m = np.zeros(shape, bool)
    for i in range(min(shape)):
        m[i, i, i] = True
    return m


CHUNKINGS = [(7, 9, 5), (16, 16, 16), (40, 40, 40), (3, 50, 50), (50, 2, 50)]


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("chunks", CHUNKINGS)
def test_random_volumes_equal_scipy(connectivity, chunks, rng):
    for density in (0.2, 0.35, 0.6):
        mask = rng.random((33, 37, 29)) < density
        check(mask, connectivity, chunks)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
@pytest.mark.parametrize("make", [spiral, comb, diagonal_corners])
@pytest.mark.parametrize("chunks", [(5, 6, 7), (8, 8, 8), (30, 30, 30)])
def test_adversarial_shapes(connectivity, make, chunks):
    check(make((30, 30, 30)), connectivity, chunks)


def test_corner_only_contact_across_eight_blocks():
    mask = np.zeros((4, 4, 4), bool)
    mask[1, 1, 1] = mask[2, 2, 2] = True  # they touch at a corner across all three block faces
    for conn, expected in ((6, 2), (18, 2), (26, 1)):
        labels, n = label(da.from_array(mask, chunks=2), connectivity=conn)
        assert n == expected
        check(mask, conn, 2)


@pytest.mark.parametrize("fill", [False, True])
def test_empty_and_full(fill):
    mask = np.full((20, 21, 22), fill)
    labels, n = label(da.from_array(mask, chunks=(6, 7, 8)))
    assert n == int(fill)
    np.testing.assert_array_equal(labels.compute(), mask.astype(np.uint32))


def test_single_voxel_and_single_chunk():
    mask = np.zeros((9, 9, 9), bool)
    mask[8, 8, 8] = True
    check(mask, 26, (4, 4, 4))
    check(mask, 26, (9, 9, 9))


def test_numpy_input_and_int_mask(rng):
    mask = (rng.random((20, 20, 20)) < 0.3).astype(np.uint8)
    labels, n = label(mask, connectivity=6)
    ref, n_ref = scipy_label(mask, 6)
    assert isinstance(labels, np.ndarray) and n == n_ref
    np.testing.assert_array_equal(labels, ref)


def test_threshold_for_float_masks(rng):
    grey = rng.random((15, 16, 17)).astype(np.float32)
    labels, n = label(da.from_array(grey, chunks=6), threshold=0.7)
    ref, n_ref = scipy_label(grey > 0.7, 26)
    assert n == n_ref
    np.testing.assert_array_equal(labels.compute(), ref)


def test_bad_inputs(rng):
    with pytest.raises(InputError, match="float"):
        label(da.from_array(rng.random((8, 8, 8)), chunks=4))
    with pytest.raises(InputError, match="connectivity"):
        label(np.zeros((4, 4, 4), bool), connectivity=8)
    with pytest.raises(InputError, match="3"):
        label(np.zeros((4, 4), bool))
    with pytest.raises(InputError, match="0/1"):
        label(da.from_array(np.full((4, 4, 4), 3, np.uint8), chunks=2))[0].compute()


def test_uint64_when_the_count_needs_it():
    assert label_dtype(10) == np.uint32
    assert label_dtype(2**32 + 5) == np.uint64


def test_resolve_orders_components_by_first_voxel():
    # two blocks; block 1's only label is first in raster order; a pair joins block0:2 and 1:1
    pairs = np.array([[(0 << 32) | 2, (1 << 32) | 1]], dtype=np.uint64)
    luts, n = resolve([2, 1], [np.array([50, 90]), np.array([10])], pairs)
    assert n == 2
    assert luts[0].tolist() == [0, 2, 1] and luts[1].tolist() == [0, 1]


def test_on_local_cluster_and_zarr_output(client, tmp_path, rng):
    mask = rng.random((40, 50, 30)) < 0.3
    ref, n_ref = scipy_label(mask, 26)
    labels, n = label(da.from_array(mask, chunks=(16, 17, 13)), out=tmp_path / "labels.zarr",
                      voxel_size=2.0)
    assert n == n_ref
    assert labels.data.chunksize == (16, 17, 13)
    assert labels.attrs["kind"] == "labels" and labels.attrs["voxel_size"] == (2.0, 2.0, 2.0)
    np.testing.assert_array_equal(labels.values, ref)
    # label the written store itself (a path input)
    again, n2 = label(tmp_path / "labels.zarr", threshold=0)
    assert n2 == n_ref


@pytest.mark.parametrize("keep_mib, plan", [(0.0, None), (0.05, int), (1.0, "raw")])
def test_kept_labels_equal_scipy_and_are_used_once(keep_mib, plan, rng):
    """Nothing kept, every block kept compressed (sparse blobs compress well: 0.05 MiB is
    less than the raw labels' 0.11 MiB), every block kept as it is."""
    mask = ndimage.gaussian_filter(rng.random((30, 31, 32)), 1.5) > 0.6
    ref, n_ref = scipy_label(mask, 26)
    darr = da.from_array(mask, chunks=(8, 9, 10))
    got_plan = chunked._keep_plan(darr, keep_mib)
    assert got_plan == plan if not isinstance(plan, type) else isinstance(got_plan, plan)
    labels, n = label_dask(darr, keep_mib=keep_mib)
    assert n == n_ref
    np.testing.assert_array_equal(labels.compute(), ref)
    if plan is not None:  # pass 2 relabelled the kept labels in place: a second use must fail
        with pytest.raises(RuntimeError, match="computed once"):
            labels.compute()
    else:
        np.testing.assert_array_equal(labels.compute(), ref)


def test_blocks_that_do_not_compress_to_their_share_are_labelled_again(rng):
    """Blocks of isolated voxels (one id each: LZ4 halves them at best) miss their share of
    the budget, sparse blocks fit it: both kinds of pass 2 side by side."""
    z, y, x = np.indices((32, 30, 30))
    mask = (z + y + x) % 2 == 0
    mask[16:] = rng.random((16, 30, 30)) < 0.01
    ref, n_ref = scipy_label(mask, 6)
    darr = da.from_array(mask, chunks=(8, 15, 15))
    share = chunked._keep_plan(darr, 0.05)
    assert isinstance(share, int)
    kept = [chunked._Kept.packed(kernels.label_block(b, 6)[0], share) is not None
            for b in (mask[:8, :15, :15], mask[24:, :15, :15])]
    assert kept == [False, True]
    labels, n = label_dask(darr, connectivity=6, keep_mib=0.05)
    assert n == n_ref
    np.testing.assert_array_equal(labels.compute(), ref)


def test_a_lazy_result_keeps_nothing_and_computes_twice(rng):
    """label() of a dask mask without ``out`` returns a lazy result: whatever keep_mib says,
    nothing is kept, so it can be computed again (uint8 0/1 mask, 18-connectivity)."""
    mask = (rng.random((25, 26, 27)) < 0.3).astype(np.uint8)
    ref, n_ref = scipy_label(mask, 18)
    labels, n = label(da.from_array(mask, chunks=7), connectivity=18, keep_mib=100.0)
    assert n == n_ref
    for _ in range(2):
        np.testing.assert_array_equal(labels.compute(), ref)


def test_store_output_levels_and_kept_labels(tmp_path, rng):
    mask = rng.random((64, 64, 72)) < 0.3
    ref, n_ref = scipy_label(mask, 26)
    for keep in (0.0, 0.2, 100.0):  # none, some, all blocks kept
        out, n = label(da.from_array(mask, chunks=(16, 20, 36)), out=tmp_path / "l.zarr",
                       overwrite=True, keep_mib=keep)
        assert n == n_ref and out.attrs["n_levels"] == 1 and out.dtype == np.uint32
        np.testing.assert_array_equal(out.values, ref)
    compressors = zarr.open_array(str(tmp_path / "l.zarr" / "0"), mode="r").compressors
    assert [(c.cname.value, c.shuffle.value) for c in compressors] == [("lz4", "noshuffle")]
    out, _ = label(da.from_array(mask, chunks=(16, 20, 36)), out=tmp_path / "p.zarr",
                   levels=None)
    assert out.attrs["n_levels"] == 2  # the automatic pyramid, on request
    np.testing.assert_array_equal(open_volume(tmp_path / "p.zarr", level=1).values,
                                  ref[::2, ::2, ::2])


def test_first_voxels_of_any_numbering(rng):
    """The compiled scan finds each label's smallest raster index, whatever the order."""
    labels = rng.integers(0, 40, (9, 10, 11)).astype(np.uint32)
    labels[labels == 17] = 0  # a missing id is renumbered below so every id 1..n occurs
    ids = np.unique(labels[labels > 0])
    dense = np.searchsorted(ids, labels).astype(np.uint32) + 1
    dense[labels == 0] = 0
    n = len(ids)
    flat = dense.ravel()
    expected = [int(np.flatnonzero(flat == k)[0]) for k in range(1, n + 1)]
    got = kernels.first_voxels(dense, n, (0, 0, 0), dense.shape)
    assert got.tolist() == expected
    shifted = kernels.first_voxels(dense, n, (2, 0, 3), (20, 10, 20))
    z, y, x = np.unravel_index(expected, dense.shape)
    assert shifted.tolist() == np.ravel_multi_index((z + 2, y, x + 3), (20, 10, 20)).tolist()
    assert kernels.first_voxels(np.zeros((2, 2, 2), np.uint32), 0, (0, 0, 0), (2, 2, 2)).size == 0


def _pairs_reference(lower, upper, connectivity):
    """Every touching pair, one numpy comparison per in-plane offset (the former kernel)."""
    U, V = lower.shape
    found = [np.zeros((0, 2), np.uint64)]
    for du, dv in kernels.plane_offsets(connectivity):
        a = lower[max(0, -du):U - max(0, du), max(0, -dv):V - max(0, dv)]
        b = upper[max(0, du):U - max(0, -du), max(0, dv):V - max(0, -dv)]
        hit = (a != 0) & (b != 0)
        found.append(np.stack([a[hit], b[hit]], axis=1).astype(np.uint64))
    return np.unique(np.concatenate(found), axis=0)


@pytest.mark.parametrize("connectivity", [6, 18, 26])
def test_touching_pairs_equal_a_plain_reference(connectivity, rng):
    for shape, ids in (((13, 17), 5), ((1, 9), 3), ((8, 1), 4), ((30, 30), 200)):
        lower = rng.integers(0, ids, shape).astype(np.uint64) * (rng.random(shape) < 0.6)
        upper = (rng.integers(0, ids, shape).astype(np.uint64) | np.uint64(1 << 40)) \
            * (rng.random(shape) < 0.6)
        got = kernels.touching_pairs(lower, upper, connectivity)
        np.testing.assert_array_equal(got, _pairs_reference(lower, upper, connectivity))


def test_relabel_in_place_and_out_of_range():
    labels = np.array([[[3, 0, 1], [2, 2, 0]]], np.uint32)
    lut = np.array([0, 9, 8, 7], np.uint32)
    np.testing.assert_array_equal(kernels.relabel(labels, lut), [[[7, 0, 9], [8, 8, 0]]])
    assert kernels.relabel(labels, lut.astype(np.uint64)).dtype == np.uint64
    same = kernels.relabel(labels, lut, out=labels)
    assert same is labels and labels.tolist() == [[[7, 0, 9], [8, 8, 0]]]
    strided = np.zeros((3, 4), np.uint32)[:, ::2]
    kernels.relabel(np.array([[1, 2], [3, 0], [0, 1]], np.uint32), lut, out=strided)
    assert strided.tolist() == [[9, 8], [7, 0], [0, 9]]
    with pytest.raises(ValueError, match="outside the lookup table"):
        kernels.relabel(np.array([4], np.uint32), lut)


@settings(max_examples=40, deadline=None)
@given(mask=arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12), st.integers(1, 12))),
       chunk=st.tuples(st.integers(1, 6), st.integers(1, 6), st.integers(1, 6)),
       connectivity=st.sampled_from([6, 18, 26]))
def test_hypothesis_any_mask_any_chunking(mask, chunk, connectivity):
    check(mask, connectivity, chunk)


@pytest.mark.parametrize("shape", [(1, 1, 3), (1, 3, 1), (3, 1, 1), (3, 1, 5), (1, 1, 1)])
def test_thin_blocks_label_like_scipy(shape, rng):
    """cc3d fails on blocks with a length-1 axis at 26-connectivity; the kernel pads them."""
    from redoxflow._backend import label_kernel

    kernel = label_kernel("numpy")
    for _ in range(20):
        mask = rng.random(shape) < 0.5
        for conn, rank in ((6, 1), (18, 2), (26, 3)):
            labels, n = kernel(mask, conn)
            ref, k = ndimage.label(mask, ndimage.generate_binary_structure(3, rank))
            assert n == k
            np.testing.assert_array_equal(labels, ref)
