"""The fast paths of the local-thickness painter against brute force.

The integer painter (:func:`redoxflow.microstructure.kernels.paint_padded`) keeps the centres
of the distance ridge with a row-vectorised containment test and paints, for a centre with
a neighbour ranking above it, only the crescent of its ball outside that neighbour's ball.
Both are exact for any field of squared radii, not only for distance maps: these tests
paint random fields (many ties, every neighbour direction) and compare with drawing every
ball.
"""

from __future__ import annotations

import numpy as np
import pytest

from redoxflow.microstructure import kernels as K


def brute_paint(r2: np.ndarray) -> np.ndarray:
    """Largest sqrt(r2[c]) over the open balls |x - c|^2 < r2[c] of every voxel c."""
    grid = np.indices(r2.shape).reshape(3, -1).T
    out = np.zeros(r2.size)
    for c in np.argwhere(r2 > 0):
        v = r2[tuple(c)]
        inside = ((grid - c) ** 2).sum(1) < v
        np.maximum(out, np.where(inside, np.sqrt(v), 0), out=out)
    return out.reshape(r2.shape).astype(np.float32)


def painted(r2: np.ndarray, **kwargs) -> np.ndarray:
    padded = K.padded_int32(r2.shape)
    padded[1:-1, 1:-1, 1:-1] = r2
    return K.paint_padded(padded, **kwargs)


def fields():
    rng = np.random.default_rng(3)
    yield "ties", rng.integers(0, 4, (9, 10, 11)).astype(np.int32)  # plateaus of equal radii
    yield "sparse", (rng.integers(0, 30, (12, 9, 10)) * (rng.random((12, 9, 10)) < 0.3)
                     ).astype(np.int32)
    smooth = np.cumsum(np.cumsum(rng.integers(0, 3, (11, 12, 13)), axis=0), axis=2)
    yield "ramps", np.asarray(smooth % 40, np.int32)  # larger radii, every direction
    from scipy import ndimage

    pore = ndimage.gaussian_filter(rng.random((16, 15, 17)), 1.5) > 0.5
    _, ind = ndimage.distance_transform_edt(pore, return_indices=True)
    yield "distance", ((np.indices(pore.shape) - ind) ** 2).sum(0).astype(np.int32)


FIELDS = list(fields())


@pytest.mark.parametrize("name,r2", FIELDS, ids=[n for n, _ in FIELDS])
@pytest.mark.parametrize("threads", [1, 2, 5])
def test_crescent_painting_equals_drawing_every_ball(name, r2, threads):
    assert np.array_equal(painted(r2, threads=threads), brute_paint(r2))


@pytest.mark.parametrize("name,r2", FIELDS, ids=[n for n, _ in FIELDS])
def test_crescent_painting_of_a_window(name, r2):
    """A window of the output (the out-of-core blocks' case): crescents and whole balls
    clipped to it."""
    ref = brute_paint(r2)
    origin, shape = (2, 3, 1), (5, 4, 7)
    got = painted(r2, origin=origin, shape=shape, threads=2)
    assert np.array_equal(got, ref[2:7, 3:7, 1:8])


@pytest.mark.parametrize("slots", [0, 40, 3000])
def test_centres_without_a_crescent_slot_paint_their_whole_ball(slots, monkeypatch):
    """Keys beyond the dense table (huge radii) fall back to whole balls: still exact."""
    monkeypatch.setattr(K, "CRESCENT_SLOTS", slots)
    for _, r2 in FIELDS:
        assert np.array_equal(painted(r2, threads=2), brute_paint(r2))


def test_crescents_replace_most_balls_and_their_pieces_are_fewer():
    """The crescents are in use (not only the whole-ball fallback) and paint fewer rows."""
    r2 = dict(FIELDS)["distance"]
    padded = K.padded_int32(r2.shape)
    padded[1:-1, 1:-1, 1:-1] = r2
    found, higher, keys, bound, span = K._padded_ridge(padded)
    widths = K._widths(padded, (1.0, 1.0, 1.0))
    combo, piece_ptr, pieces = K._crescents(keys, span, bound.shape[1] - 1, widths, 2)
    assert (combo >= 0).mean() > 0.8
    row_ptr, _ = K._row_table(padded.ravel()[found], widths)
    v = padded.ravel()[found]
    whole = (row_ptr[v + 1] - row_ptr[v]).sum()
    used = np.where(combo >= 0, piece_ptr[np.maximum(combo, 0) + 1]
                    - piece_ptr[np.maximum(combo, 0)], row_ptr[v + 1] - row_ptr[v]).sum()
    assert used < whole / 2


@pytest.mark.parametrize("name,r2", FIELDS, ids=[n for n, _ in FIELDS])
def test_row_ridge_equals_the_general_containment_test(name, r2):
    """The row-vectorised integer ridge keeps exactly the centres of the general kernel
    (float squared radii, containment tables by norm)."""
    f = r2.astype(np.float64)
    norms, need = K.containment_tables(float(f.max()), (1.0, 1.0, 1.0))
    general = np.zeros(f.shape, np.bool_)
    K._ridge(f, norms, need, K.NEIGHBOURS, K.PATTERNS, 1.0 + 1e-12, general, 0, f.shape[0])
    for threads in (1, 3):
        assert np.array_equal(K.ridge(r2, (1, 1, 1), threads=threads), general)


# ------------------------------------------------------------ out of core: one distance pass
def _pore(shape=(23, 17, 19), seed=5):
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    return ndimage.gaussian_filter(rng.random(shape), 1.5) > 0.48


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5), (0.642,) * 3])
def test_out_of_core_computes_each_distance_slab_once(spacing, monkeypatch, tmp_path):
    """The out-of-core path writes the squared distances once (the same pass finds the
    halo) and paints from the store: every slab of the distance pass runs once, and the
    result equals the in-memory one on chunkings that do not divide the shape (also
    where the in-memory painter scales the radii as it paints and the blocks afterwards)."""
    import dask.array as da

    from redoxflow import distance
    from redoxflow.microstructure import local_thickness, thickness

    pore = _pore()
    ref = local_thickness(pore, spacing=spacing)
    calls = []
    slab = distance._slab_distance

    def counted(mask, z0, *args):
        calls.append(z0)
        return slab(mask, z0, *args)

    monkeypatch.setattr(distance, "_slab_distance", counted)
    monkeypatch.setattr(thickness, "IN_MEMORY_BYTES", 0)
    for chunks in [(7, 9, 5), (10, 17, 19), (4, 6, 8)]:
        calls.clear()
        lazy = local_thickness(da.from_array(pore, chunks=chunks), spacing=spacing,
                               scratch=tmp_path)
        assert lazy.chunks == da.from_array(pore, chunks=chunks).chunks
        assert np.array_equal(lazy.compute(), ref)
        assert len(calls) > 1 and len(calls) == len(set(calls))  # each slab once
        del lazy
        import gc

        gc.collect()
        assert list(tmp_path.iterdir()) == []  # the temporary store went with the result


def test_out_of_core_store_is_removed_when_the_distance_pass_fails(monkeypatch, tmp_path):
    import dask.array as da

    from redoxflow.errors import InputError
    from redoxflow.microstructure import local_thickness, thickness

    monkeypatch.setattr(thickness, "IN_MEMORY_BYTES", 0)
    with pytest.raises(InputError, match="voxels outside the phase"):
        local_thickness(da.ones((6, 7, 8), dtype=bool, chunks=3), scratch=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_out_of_core_numpy_input_returns_numpy_and_leaves_no_store(monkeypatch, tmp_path):
    from redoxflow.microstructure import local_thickness, thickness

    pore = _pore((12, 13, 11), seed=2)
    ref = local_thickness(pore, radii="integer")
    monkeypatch.setattr(thickness, "IN_MEMORY_BYTES", 0)
    got = local_thickness(pore, radii="integer", scratch=tmp_path, workers=3)
    assert isinstance(got, np.ndarray) and np.array_equal(got, ref)
    import gc

    gc.collect()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name,r2", FIELDS, ids=[n for n, _ in FIELDS])
@pytest.mark.parametrize("threads", [1, 3])
def test_painting_over_the_padded_radii(name, r2, threads):
    """``reuse``: the output is painted over the padded radii' memory once the ridge is
    listed (whole output and a window), still equal to drawing every ball."""
    ref = brute_paint(r2)
    padded = K.padded_int32(r2.shape)
    padded[1:-1, 1:-1, 1:-1] = r2
    got = K.paint_padded(padded, threads=threads, reuse=True)
    assert np.shares_memory(got, padded) and got.flags.c_contiguous
    assert np.array_equal(got, ref)
    padded = K.padded_int32(r2.shape)
    padded[1:-1, 1:-1, 1:-1] = r2
    window = K.paint_padded(padded, origin=(1, 2, 3), shape=(4, 5, 6), threads=threads,
                            reuse=True)
    assert np.array_equal(window, ref[1:5, 2:7, 3:9])


def test_removed_scratch_store_is_an_error_not_zeros(tmp_path, monkeypatch):
    """The out-of-core local thickness reads its temporary distance store lazily: if the
    store is gone before the result is computed (a persist() on a cluster without keeping
    the array, a scratch folder other machines cannot see), the read is a one-line error,
    never zarr's fill value (a silently wrong thickness); the store goes with the array."""
    import gc
    import shutil

    import dask.array as da

    from redoxflow.errors import RedoxflowError
    from redoxflow.microstructure import local_thickness, thickness

    monkeypatch.setattr(thickness, "IN_MEMORY_BYTES", 0)
    mask = np.zeros((12, 10, 9), bool)
    mask[2:10, 1:9, 1:8] = True
    lazy = local_thickness(da.from_array(mask, chunks=(5, 10, 9)), scratch=tmp_path)
    (store,) = list(tmp_path.iterdir())
    assert float(lazy.max().compute()) > 0  # every plane file present, empty planes too
    shutil.rmtree(store)
    with pytest.raises(RedoxflowError, match="temporary distance store .* was removed"):
        lazy.compute()
    again = local_thickness(da.from_array(mask, chunks=(5, 10, 9)), scratch=tmp_path)
    assert len(list(tmp_path.iterdir())) == 1
    del again
    gc.collect()
    assert not list(tmp_path.iterdir())
