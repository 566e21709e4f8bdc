"""Training recipe pieces, checkpoints, resume and early stopping; metrics and the baseline."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import tifffile
import torch
import xarray as xr
from scipy import ndimage

from redoxflow.errors import InputError, StoreExistsError
from redoxflow.io import ingest
from redoxflow.segment import classical_segment, evaluate, format_scores, load_model, train
from redoxflow.segment.classical import ORDER, classify, otsu_thresholds
from redoxflow.segment.training import augment, focal_loss, read_volumes, split_validation


def test_focal_loss_is_cross_entropy_at_gamma_zero_and_down_weights_easy_pixels():
    torch.manual_seed(0)
    logits, target = torch.randn(2, 4, 8, 8), torch.randint(0, 4, (2, 8, 8))
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert torch.allclose(focal_loss(logits, target, gamma=0), ce)
    assert focal_loss(logits, target, gamma=2) < ce
    alpha = torch.tensor([0.0, 1.0, 1.0, 1.0])
    assert focal_loss(logits, torch.zeros_like(target), gamma=2, alpha=alpha) == 0


def test_augmentation_moves_image_and_mask_together(rng):
    image = rng.random((3, 16, 16)).astype(np.float32)
    mask = (image[1] > 0.5).astype(np.int64)
    for _ in range(8):
        a, m = augment(image, mask, rng, rotate90=True)
        np.testing.assert_array_equal(m, (a[1] > 0.5))


def test_validation_split_holds_out_slices_or_rows():
    pairs = [(np.zeros((1, 8, 8)), np.full((8, 8), i)) for i in range(10)]
    train_p, val_p = split_validation(pairs, 0.2)
    assert len(train_p) == 8 and [int(m[0, 0]) for _, m in val_p] == [8, 9]
    train_p, val_p = split_validation(pairs[:1], 0.25)  # one annotated slice: split its rows
    assert train_p[0][1].shape == (6, 8) and val_p[0][1].shape == (2, 8)
    with pytest.raises(InputError, match="between 0 and 1"):
        split_validation(pairs, 1.5)


def test_train_checkpoints_resumes_and_stops_early(tmp_path, phantom):
    img, msk = phantom.image[:12], phantom.classes[:12]
    kw = dict(options={"width": 4, "depth": 2}, tile=32, batch_size=2, steps_per_epoch=3,
              progress=False, seed=5)
    straight = train(img, msk, out=tmp_path / "a", epochs=3, **kw)
    assert len(straight.history) == 3 and straight.checkpoint.is_file()
    first = train(img, msk, out=tmp_path / "b", epochs=2, **kw)
    assert len(first.history) == 2
    with pytest.raises(StoreExistsError, match="resume=True"):
        train(img, msk, out=tmp_path / "b", epochs=3, **kw)
    resumed = train(img, msk, out=tmp_path / "b", epochs=3, resume=True, **kw)
    assert [h["epoch"] for h in resumed.history] == [1, 2, 3]
    assert resumed.history[-1]["loss"] == pytest.approx(straight.history[-1]["loss"], rel=1e-4)
    model, spec = load_model(resumed.checkpoint)
    assert spec.training["recipe"]["optimizer"] == "Adam" and spec.input_size == 32
    assert set(spec.training["val_f1"]) == set(spec.classes)
    stalled = train(img, msk, out=tmp_path / "c", epochs=10, lr=0.0, early_stopping=2, **kw)
    assert stalled.stopped_early and len(stalled.history) == 3
    for folder in ("a", "b", "c"):  # atomic writes: no temporary file is left behind
        assert sorted(p.name for p in (tmp_path / folder).iterdir()) == [
            "best.pt", "training-state.pt"]


def test_read_volumes_takes_arrays_stores_and_files(tmp_path, phantom):
    vol = phantom.image[:3]
    tifffile.imwrite(tmp_path / "slice.tif", vol[0])
    tifffile.imwrite(tmp_path / "stack.tif", vol)
    ingest(vol, tmp_path / "v.zarr", voxel_size=1.0, progress=False)
    items = [vol, vol[0], da.from_array(vol, chunks=(1, 40, 40)),
             xr.DataArray(vol, dims=("z", "y", "x")), tmp_path / "slice.tif",
             str(tmp_path / "stack.tif"), tmp_path / "v.zarr"]
    got = read_volumes(items, "images")
    expected = [vol, vol[:1], vol, vol, vol[:1], vol, vol]
    assert [g.shape for g in got] == [e.shape for e in expected]
    for g, e in zip(got, expected):
        assert isinstance(g, np.ndarray)
        np.testing.assert_array_equal(g, e)
    with pytest.raises(InputError, match="masks"):
        read_volumes(np.zeros((2, 2, 2, 2)), "masks")


def test_train_rejects_bad_pairs(tmp_path, phantom):
    with pytest.raises(InputError, match="mask holds value 255"):
        train(phantom.image[:4], phantom.classes[:4] * 85, out=tmp_path, epochs=1)
    with pytest.raises(InputError, match="differ in shape"):
        train(phantom.image[:4], phantom.classes[:3], out=tmp_path, epochs=1)
    with pytest.raises(InputError, match="nothing to resume"):
        train(phantom.image[:4], phantom.classes[:4], out=tmp_path / "new", resume=True)


def test_evaluate_matches_hand_counts_for_numpy_and_dask():
    truth = np.array([[0, 0, 1, 1, 2, 2, 3, 3]], np.uint8)
    pred = np.array([[0, 1, 1, 1, 2, 0, 3, 3]], np.uint8)
    ds = evaluate(pred, truth)
    assert ds["precision"].sel({"class": "bubble"}) == pytest.approx(2 / 3)
    assert ds["recall"].sel({"class": "membrane"}) == pytest.approx(0.5)
    assert ds["f1"].sel({"class": "gasket"}) == 1.0
    assert ds["iou"].sel({"class": "electrolyte"}) == pytest.approx(1 / 3)
    assert ds.attrs["accuracy"] == pytest.approx(6 / 8)
    lazy = evaluate(da.from_array(pred, chunks=(1, 3)), da.from_array(truth, chunks=(1, 5)))
    np.testing.assert_array_equal(lazy["confusion"], ds["confusion"])
    assert "membrane" in format_scores(ds)
    with pytest.raises(InputError, match="differ in shape"):
        evaluate(pred[:, :4], truth)


def _classify_block(block, thresholds, sigma=1.0):
    """The reference: scipy's filters on one block with a halo of 6."""
    smooth = ndimage.gaussian_filter(block.astype(np.float32), sigma)
    classes = ORDER[np.digitize(smooth, thresholds)]
    ball = ndimage.generate_binary_structure(3, 1)
    for c in (1, 2, 3):
        mask = classes == c
        classes[mask & ~ndimage.binary_opening(mask, ball)] = 0
    return classes


def _classical_by_halo(volume, chunks, thresholds):
    vol = da.from_array(volume, chunks=chunks)
    return vol.map_overlap(_classify_block, depth=6, boundary="reflect", dtype=np.uint8,
                           thresholds=thresholds).compute()


@pytest.fixture(scope="module")
def phantom_thresholds(phantom):
    return otsu_thresholds(phantom.image)


@pytest.mark.parametrize("chunks", [(48, 80, 80), (16, 80, 80), (7, 33, 40)])
def test_classical_equals_scipy_on_halo_blocks(phantom, phantom_thresholds,
                                                                  chunks):
    expected = _classical_by_halo(phantom.image, (48, 80, 80), phantom_thresholds)
    np.testing.assert_array_equal(
        _classical_by_halo(phantom.image, chunks, phantom_thresholds), expected)
    got = classify(da.from_array(phantom.image, chunks=chunks), phantom_thresholds)
    assert got.chunks == da.from_array(phantom.image, chunks=chunks).chunks
    np.testing.assert_array_equal(got.compute(), expected)


def test_classical_opening_at_the_faces_equals_the_halo_implementation():
    # blobs of every phase plus noise: many specks, on the faces and across chunk borders
    rng = np.random.default_rng(4)
    blobs = rng.integers(0, 5, (7, 10, 9)).repeat(3, 0).repeat(3, 1).repeat(3, 2)[:20, :30, :26]
    grey = (blobs * 50 + rng.normal(0, 30, blobs.shape)).astype(np.float32)
    thresholds = np.array([25.0, 75.0, 125.0, 175.0])
    expected = _classify_block(np.pad(grey, 6, mode="symmetric"), thresholds, 0.7)[
        6:-6, 6:-6, 6:-6]
    assert len(np.unique(expected)) == 4
    # the faces matter here: an opening with an empty outside gives another result
    assert (_classify_block(grey, thresholds, 0.7) != expected).sum() > 20
    for chunks in [(20, 30, 26), (7, 11, 9)]:
        got = classify(da.from_array(grey, chunks=chunks), thresholds, 0.7).compute()
        np.testing.assert_array_equal(got, expected)


def test_classical_baseline_is_chunk_exact_and_finds_the_phases(phantom):
    whole = classical_segment(phantom.image).compute()
    for chunks in [(7, 33, 40)]:  # (the core's chunkings are checked above)
        np.testing.assert_array_equal(
            classical_segment(da.from_array(phantom.image, chunks=chunks)).compute(), whole)
    f1 = evaluate(whole, phantom.classes)["f1"]
    assert float(f1.sel({"class": "membrane"})) > 0.7
    assert float(f1.sel({"class": "gasket"})) > 0.85
    assert float(f1.sel({"class": "bubble"})) > 0.7
