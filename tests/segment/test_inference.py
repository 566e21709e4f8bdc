"""Chunked inference equals an in-memory loop over the same slices, for every chunking."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import torch

from redoxflow.errors import InputError, StoreExistsError
from redoxflow.segment import load_model, predict_slices, segment
from redoxflow.segment.inference import (
    choose_tile,
    gaussian_window,
    normalization_range,
    normalize,
    stack_context,
    tile_starts,
)


def host_blended(model, images, *, tile, overlap=0.25, batch_size=8):
    """The pre-issue-12 implementation: tiles stacked and blended in numpy on the host, one
    batch at a time (kept here as the reference the device blending must reproduce)."""

    def run(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch))
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            return torch.softmax(model(x).float(), 1)

    n, _, H, W = images.shape
    weight = gaussian_window(tile)
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    jobs = [(i, y, x) for i in range(n) for y in ys for x in xs]
    norm = np.zeros((H, W), np.float32)
    for y in ys:
        for x in xs:
            norm[y:y + tile, x:x + tile] += weight
    acc = None
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0:b0 + batch_size]
        probs = run(np.stack([images[i, :, y:y + tile, x:x + tile] for i, y, x in batch]))
        probs = (probs * torch.from_numpy(weight)).numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1], n, H, W), np.float32)
        for p, (i, y, x) in zip(probs, batch):
            acc[:, i, y:y + tile, x:x + tile] += p
    return acc / norm


def reference(volume, checkpoint, tile, context=0):
    """The bare in-memory loop: every slice at once through predict_slices."""
    model, spec = load_model(checkpoint)
    low, high = normalization_range(volume, spec)
    x = normalize(np.asarray(volume), low, high)
    if context:
        x = np.concatenate([x[:1].repeat(context, 0), x, x[-1:].repeat(context, 0)])
    probs = predict_slices(model, stack_context(x, context), tile=tile, overlap=0.25)
    return probs.astype(np.float16).argmax(0).astype(np.uint8)


@pytest.mark.parametrize("size,tile", [(100, 32), (64, 64), (97, 40)])
def test_tile_starts_cover_every_pixel_with_overlap(size, tile):
    starts = tile_starts(size, tile, 0.25)
    covered = np.zeros(size, int)
    for s in starts:
        covered[s:s + tile] += 1
    assert covered.min() >= 1 and starts[-1] + tile == max(size, tile)
    assert all(b - a <= tile * 0.75 for a, b in zip(starts, starts[1:]))


def test_gaussian_blending_of_a_pointwise_model_equals_one_pass():
    torch.manual_seed(0)
    model = torch.nn.Conv2d(1, 3, 1).eval()  # no spatial context: tiles must blend exactly
    images = np.random.default_rng(0).random((3, 1, 100, 77), dtype=np.float32)
    tiled = predict_slices(model, images, tile=32, overlap=0.5, batch_size=5)
    with torch.inference_mode():
        whole = torch.softmax(model(torch.from_numpy(images)), 1).numpy().transpose(1, 0, 2, 3)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    w = gaussian_window(32)
    assert w.max() == 1 and w.min() >= 1e-3 and w[16, 16] > w[8, 16] > w[8, 8]


@pytest.mark.parametrize("batch_size,overlap", [(8, 0.25), (5, 0.5), (1, 0.0)])
def test_device_blending_reproduces_the_host_blending(tiny_checkpoint, phantom, batch_size,
                                                      overlap):
    model, _ = load_model(tiny_checkpoint)
    model = model.to(memory_format=torch.channels_last)
    x = normalize(phantom.image[:6, :, 3:], 0, 255)[:, None]  # 80 x 77: uneven last tiles
    old = host_blended(model, x, tile=32, overlap=overlap, batch_size=batch_size)
    new = predict_slices(model, x, tile=32, overlap=overlap, batch_size=batch_size)
    assert new.shape == old.shape == (4, 6, 80, 77) and new.dtype == np.float32
    np.testing.assert_allclose(new, old, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(new.astype(np.float16).argmax(0),
                                  old.astype(np.float16).argmax(0))
    assert len(np.unique(new.argmax(0))) >= 3  # a real map, not one class everywhere


def test_resize_mode_returns_native_resolution(tiny_checkpoint, phantom):
    model, _ = load_model(tiny_checkpoint)
    x = normalize(phantom.image[:2], 0, 255)[:, None]
    probs = predict_slices(model, x, tile=64, mode="resize")
    assert probs.shape == (4, 2, 80, 80)
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-4)


@pytest.mark.parametrize("chunks", [(48, 80, 80), (16, 80, 80), (7, 40, 33)])
def test_segment_is_chunking_invariant_and_equals_the_bare_loop(tiny_checkpoint, phantom, chunks):
    expected = reference(phantom.image, tiny_checkpoint, tile=64)
    got = segment(da.from_array(phantom.image, chunks=chunks), tiny_checkpoint,
                  progress=False).compute()
    assert got.dtype == np.uint8 and got.shape == phantom.image.shape
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("slab", [48, 5])
def test_2p5d_context_uses_a_halo_across_slabs(context_checkpoint, phantom, slab):
    expected = reference(phantom.image, context_checkpoint, tile=64, context=1)
    got = segment(phantom.image, context_checkpoint, slab=slab, progress=False).compute()
    np.testing.assert_array_equal(got, expected)


def _count_builds():
    """On a worker: empty the model cache and count every network built from now on (any
    path that builds a model goes through the architecture registry)."""
    from redoxflow.segment import inference, models

    inference._MODELS.clear()
    builder, text = models.ARCHITECTURES["small-unet"]
    builder = getattr(builder, "wrapped", builder)
    builds = []

    def counting(*args, **kwargs):
        import torch

        if torch.get_default_device().type != "meta":  # the weights check allocates nothing
            builds.append(1)
        return builder(*args, **kwargs)

    counting.wrapped, counting.builds = builder, builds
    models.ARCHITECTURES["small-unet"] = (counting, text)


def _builds_and_restore():
    from redoxflow.segment import models

    counting, text = models.ARCHITECTURES["small-unet"]
    models.ARCHITECTURES["small-unet"] = (counting.wrapped, text)
    return len(counting.builds)


def test_distributed_workers_build_the_model_once(tiny_checkpoint, phantom, client):
    expected = reference(phantom.image, tiny_checkpoint, tile=64)
    client.run(_count_builds)
    try:
        got = segment(phantom.image, tiny_checkpoint, slab=4, progress=False).compute()
    finally:
        builds = client.run(_builds_and_restore)
    np.testing.assert_array_equal(got, expected)
    # 12 slab tasks on 2 workers: a model rebuilt per task would count 12 builds
    assert 1 <= sum(builds.values()) <= len(builds) and max(builds.values()) == 1, builds


def test_triplanar_averages_three_axes(tiny_checkpoint, phantom):
    model, spec = load_model(tiny_checkpoint)
    x = normalize(phantom.image, 0, 255)
    total = 0
    for perm in [(0, 1, 2), (1, 0, 2), (2, 0, 1)]:
        v = x.transpose(perm)[:, None]
        tile = choose_tile(v.shape[2:], spec, None)
        p = predict_slices(model, v, tile=tile).astype(np.float16)
        total = total + p.transpose(0, *(int(i) + 1 for i in np.argsort(perm))).astype(np.float32)
    expected = (total / 3).astype(np.float16).argmax(0)
    for chunks in [(48, 80, 80), (10, 80, 80)]:
        got = segment(da.from_array(phantom.image, chunks=chunks), tiny_checkpoint,
                      triplanar=True, progress=False).compute()
        np.testing.assert_array_equal(got, expected)
    z_only = segment(phantom.image, tiny_checkpoint, progress=False).compute()
    assert 0 < (got != z_only).mean() < 0.2


def test_the_quick_test_models_predict_several_classes(tiny_checkpoint, context_checkpoint,
                                                       phantom):
    for ckpt in (tiny_checkpoint, context_checkpoint):
        got = segment(phantom.image, ckpt, progress=False).compute()
        assert set(np.unique(got)) >= {0, 2, 3}  # so the equality tests compare real maps


def test_store_output_with_probabilities_and_resume(tiny_checkpoint, phantom, tmp_path, client):
    from redoxflow.io import ingest, open_volume

    raw = ingest(phantom.image.astype(np.float32), tmp_path / "raw.zarr", chunks=(8, 80, 80),
                 voxel_size=5.0, progress=False)
    bad = raw.data.compute()
    bad[30, 5, 5] = np.nan  # the slab 24..32 fails; earlier slabs finish
    import zarr

    zarr.open_group(str(tmp_path / "raw.zarr"))["0"][30] = bad[30]
    out = tmp_path / "classes.zarr"
    with pytest.raises(InputError, match="NaN"):
        segment(tmp_path / "raw.zarr", tiny_checkpoint, out=out, probabilities=True,
                progress=False)  # the other slabs finish and are kept
    partial = tmp_path / ".classes.zarr.partial"
    assert not out.exists() and partial.is_dir()
    done = {p.name for p in (partial / ".done").iterdir()}
    assert done == {f"{i}-0-0" for i in range(6) if i != 3}
    chunk = partial / "0" / "c" / "0" / "0" / "0"
    stamp = chunk.stat().st_mtime_ns
    zarr.open_group(str(tmp_path / "raw.zarr"))["0"][30] = phantom.image[30]  # fix the input
    vol = segment(tmp_path / "raw.zarr", tiny_checkpoint, out=out, probabilities=True,
                  progress=False)
    assert (out / "0" / "c" / "0" / "0" / "0").stat().st_mtime_ns == stamp  # not recomputed
    assert not partial.exists() and not (out / ".done").exists()
    assert "resume_key" not in zarr.open_group(str(out), mode="r").attrs  # complete: no stale key
    assert tuple(vol.attrs["voxel_size"]) == (5.0, 5.0, 5.0) and vol.attrs["kind"] == "classes"
    fresh = segment(phantom.image.astype(np.float32), tiny_checkpoint, progress=False).compute()
    np.testing.assert_array_equal(vol.data.compute(), fresh)
    probs = zarr.open_group(str(out))["probabilities/0"][:]
    assert probs.shape == (4, 48, 80, 80) and probs.dtype == np.float16
    np.testing.assert_array_equal(probs.argmax(0), fresh)
    with pytest.raises(StoreExistsError, match="already exists"):
        segment(tmp_path / "raw.zarr", tiny_checkpoint, out=out, progress=False)
    assert open_volume(out).shape == phantom.image.shape


def test_sixteen_bit_data_use_percentiles_not_a_fixed_scale(percentile_checkpoint, phantom):
    img16 = phantom.image.astype(np.uint16) * 200 + 1000
    a = segment(img16, percentile_checkpoint, progress=False).compute()
    b = segment(phantom.image, percentile_checkpoint, progress=False).compute()
    assert (a == b).mean() > 0.99  # same picture, other grey scale


def test_bad_input_gives_clear_errors(tiny_checkpoint, phantom):
    vol = phantom.image.astype(np.float32)
    vol[3, 3, 3] = np.inf
    with pytest.raises(InputError, match="nan_policy='fill'"):
        segment(vol, tiny_checkpoint, progress=False).compute()
    filled = segment(vol, tiny_checkpoint, nan_policy="fill", progress=False).compute()
    clean = segment(phantom.image.astype(np.float32), tiny_checkpoint, progress=False).compute()
    assert filled.shape == vol.shape and (filled == clean).mean() > 0.99
    with pytest.raises(InputError, match="smaller than the smallest model input"):
        segment(np.zeros((4, 20, 64), np.uint8), tiny_checkpoint)
    with pytest.raises(InputError, match="tile 128 is larger"):
        segment(phantom.image, tiny_checkpoint, tile=128)
    with pytest.raises(InputError, match="multiple of 32"):
        segment(phantom.image, tiny_checkpoint, tile=50)
    with pytest.raises(InputError, match="but 2 were requested"):
        segment(phantom.image, tiny_checkpoint, classes=2)
    with pytest.raises(InputError, match=r"has 2 dimensions .*expected 3"):
        segment(phantom.image[0], tiny_checkpoint)
    with pytest.raises(InputError, match="does not exist"):
        segment(phantom.image, "no-such-model.pt")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA GPU is visible"):
            segment(phantom.image, tiny_checkpoint, device="cuda")


@pytest.mark.parametrize("option,value", [("mode", "tiles"), ("device", "gpu"),
                                           ("nan_policy", "ignore")])
def test_typed_options_are_checked_up_front_with_one_line(tiny_checkpoint, phantom, option,
                                                          value):
    with pytest.raises(InputError) as info:
        segment(phantom.image, tiny_checkpoint, **{option: value})  # nothing is computed
    assert str(info.value).startswith(f"{option}={value!r} is not allowed: use one of ")
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="mode='tiles' is not allowed"):
        predict_slices(None, np.zeros((1, 1, 32, 32), np.float32), tile=32, mode="tiles")


@pytest.mark.gpu
def test_gpu_segmentation_matches_the_cpu(tiny_checkpoint, phantom):
    cpu = segment(phantom.image, tiny_checkpoint, device="cpu", progress=False).compute()
    gpu = segment(phantom.image, tiny_checkpoint, device="cuda", progress=False).compute()
    assert (cpu == gpu).mean() > 0.999  # bf16 autocast may flip near-ties
