"""split_touching: bubbles cut by the field of view are not merged, and the labels do not
depend on the chunking (blocks with a halo, out of core)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import redoxflow.analysis.watershed as ws
from redoxflow.analysis import split_touching


def voronoi_foam(shape=(48, 48, 48), cell=16.0, channel=2.5, seed=0):
    """A dry foam whose films are thinner than a voxel: the gas is everything but the
    liquid channels where three cells meet; the true bubbles are the Voronoi cells (seeds
    also outside the field of view, so the edge cuts cells and channels)."""
    from scipy.spatial import cKDTree

    rng = np.random.default_rng(seed)
    axes = [np.arange(-cell, s + cell, cell) for s in shape]
    seeds = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    seeds = seeds + rng.uniform(-cell / 4, cell / 4, seeds.shape)
    d, i = cKDTree(seeds).query(np.indices(shape).reshape(3, -1).T, k=3)
    mask = ~((d[:, 2] - d[:, 0]) < channel).reshape(shape)
    return mask, i[:, 0].reshape(shape)


def merged(labels, truth, mask) -> int:
    """Labels holding at least half of two or more true bubbles."""
    pairs = np.stack([labels[mask], truth[mask]], 1)
    uniq, counts = np.unique(pairs, axis=0, return_counts=True)
    share = counts / np.bincount(truth[mask])[uniq[:, 1]]
    return int((np.bincount(uniq[share >= 0.5, 0]) >= 2).sum())


@pytest.fixture(scope="module")
def foam():
    return voronoi_foam()


@pytest.fixture(scope="module")
def fine():
    """Smaller cells, split with h = 1: the chunking cases (halo 28 > any bubble)."""
    mask, _ = voronoi_foam(cell=12.0, channel=2.0)
    return mask, split_touching(mask, h=1.0)


def test_cells_cut_by_the_field_of_view_are_not_merged(foam):
    mask, truth = foam
    labels, n = split_touching(mask)
    old, n_old = split_touching(mask, h_edge=2.0)  # one dynamic for all maxima
    assert n > n_old
    assert merged(labels, truth, mask) <= merged(old, truth, mask) // 2
    assert merged(truth, labels, mask) <= 1  # no cell split in two
    assert ((labels > 0) == mask).all()


@pytest.mark.parametrize("chunks", [(48, 48, 48), (17, 23, 29), (30, 20, 26)])
def test_labels_do_not_depend_on_the_chunking(fine, chunks):
    mask, (reference, n) = fine
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the halo is large enough: no warning
        labels, n_chunked = split_touching(mask, h=1.0, chunks=chunks, halo=28)
    assert n_chunked == n
    np.testing.assert_array_equal(labels, reference)


def test_dask_input_gives_a_lazy_result(fine):
    import dask.array as da

    mask, (reference, n) = fine
    lazy, n_lazy = split_touching(da.from_array(mask, chunks=(20, 31, 48)), h=1.0, halo=28)
    assert isinstance(lazy, da.Array) and n_lazy == n
    np.testing.assert_array_equal(lazy.compute(), reference)


def test_store_input_and_raster_order(tmp_path, fine):
    import redoxflow as rf

    mask, _ = fine
    rf.ingest(mask.astype(np.uint8), tmp_path / "m.zarr", kind="classes", voxel_size=2.0)
    labels, n = split_touching(str(tmp_path / "m.zarr"), h=1.0, halo=28)
    labels = labels.compute()
    ids, first = np.unique(labels, return_index=True)
    assert ids.tolist() == list(range(n + 1))
    assert (np.diff(first[1:]) > 0).all()  # ids follow the raster order of first voxels


def test_larger_than_one_window_is_split_in_blocks(monkeypatch, fine):
    mask, (reference, n) = fine
    monkeypatch.setattr(ws, "MAX_VOXELS", 30**3)  # a numpy input above the limit
    monkeypatch.setattr(ws, "BLOCK_VOXELS", 30**3)
    labels, n_blocks = split_touching(mask, h=1.0, halo=28)
    assert n_blocks == n
    np.testing.assert_array_equal(labels, reference)


def test_small_halo_is_reported(foam):
    mask, _ = foam
    with pytest.warns(RuntimeWarning, match="halo"):
        split_touching(mask, chunks=(16, 16, 16), halo=2)


def test_anisotropic_spacing_and_errors():
    z, y, x = np.ogrid[:12, :24, :40]
    # two balls in micrometres, voxels twice as long along z
    mask = ((((z - 6) * 2) ** 2 + (y - 12) ** 2 + (x - 10) ** 2 <= 64)
            | (((z - 6) * 2) ** 2 + (y - 12) ** 2 + (x - 25) ** 2 <= 64))
    labels, n = split_touching(mask, spacing=(2.0, 1.0, 1.0))
    assert n == 2 and labels[6, 12, 10] != labels[6, 12, 25]
    assert split_touching(np.zeros((4, 4, 4), bool))[1] == 0
    with pytest.raises(ValueError, match="connectivity"):
        split_touching(mask, connectivity=4)
    with pytest.raises(ValueError, match="dimensions"):
        split_touching(np.zeros((4, 4), bool))


@pytest.mark.realdata
def test_foam_bubbles_at_the_edge_are_split(shared_data):
    import tifffile
    from skimage.filters import threshold_otsu

    raw = tifffile.imread(sorted((shared_data / "foam_4d").glob("Raw_*.tiff"))[0])
    mask = raw < threshold_otsu(raw)
    _, n = split_touching(mask)
    _, n_old = split_touching(mask, h_edge=2.0)
    # FoamQuant finds ~615 here; one dynamic for all maxima gave ~500 (edge bubbles merged)
    assert n_old < 520 and 570 <= n <= 640
