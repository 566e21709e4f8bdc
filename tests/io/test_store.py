"""OME-Zarr store: metadata, pyramid, chunking, atomic writes, overwrite rules."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from redoxflow.errors import InputError, StoreExistsError
from redoxflow.io import choose_chunks, ingest, open_volume, pyramid_shapes


def test_ome_metadata_and_coords(tmp_path, rng):
    v = rng.integers(0, 255, (70, 80, 66), dtype=np.uint8)
    out = ingest(v, tmp_path / "v.zarr", voxel_size=(2.0, 1.0, 0.5), chunks=(16, 80, 66),
                 progress=False)
    meta = json.loads((tmp_path / "v.zarr" / "zarr.json").read_text())
    ome = meta["attributes"]["ome"]
    assert ome["version"] == "0.5" and meta["zarr_format"] == 3
    ms = ome["multiscales"][0]
    assert [a["name"] for a in ms["axes"]] == ["z", "y", "x"]
    assert ms["axes"][0]["unit"] == "micrometer"
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == [2.0, 1.0, 0.5]
    assert ms["datasets"][1]["coordinateTransformations"][0]["scale"] == [4.0, 2.0, 1.0]
    assert out.attrs["voxel_size"] == (2.0, 1.0, 0.5)
    np.testing.assert_allclose(out["x"].values[:3], [0, 0.5, 1.0])
    assert out.data.chunksize == (16, 80, 66)
    assert meta["attributes"]["redoxflow"]["config"]["io"]["chunk_mib"] > 0


def test_pyramid_levels_downsample(tmp_path, rng):
    v = rng.integers(0, 255, (64, 64, 64), dtype=np.uint8)
    ingest(v, tmp_path / "i.zarr", voxel_size=1, kind="intensity", progress=False)
    lvl1 = open_volume(tmp_path / "i.zarr", level=1)
    expected = np.rint(v.reshape(32, 2, 32, 2, 32, 2).astype(np.float32).mean(axis=(1, 3, 5)))
    np.testing.assert_array_equal(lvl1.values, expected.astype(np.uint8))
    c = (v % 4).astype(np.uint8)
    ingest(c, tmp_path / "c.zarr", voxel_size=1, progress=False)
    classes1 = open_volume(tmp_path / "c.zarr", level=1)
    assert classes1.attrs["kind"] == "classes"
    np.testing.assert_array_equal(classes1.values, c[::2, ::2, ::2])
    assert pyramid_shapes((64, 64, 64)) == [(64, 64, 64), (32, 32, 32)]


def test_default_chunks_target_size_and_clamping():
    cz, cy, cx = choose_chunks((2000, 2000, 2000), 2, 96)
    assert 64 * 2**20 <= cz * cy * cx * 2 <= 128 * 2**20
    assert choose_chunks((10, 20, 30), 1, 96, chunks=(500, 500, 500)) == (10, 20, 30)
    assert choose_chunks((3, 10, 20, 30), 1, 96)[0] == 1


def test_existing_store_refused_unless_overwrite(tmp_path, rng):
    v = rng.integers(0, 255, (8, 8, 8), dtype=np.uint8)
    ingest(v, tmp_path / "v.zarr", voxel_size=1, progress=False)
    with pytest.raises(StoreExistsError, match="--overwrite"):
        ingest(v, tmp_path / "v.zarr", voxel_size=1, progress=False)
    out = ingest(v + 1, tmp_path / "v.zarr", voxel_size=1, overwrite=True, progress=False)
    np.testing.assert_array_equal(out.values, v + 1)


def test_never_replaces_a_non_store(tmp_path, rng):
    user = tmp_path / "my_data"
    user.mkdir()
    (user / "precious.txt").write_text("keep me")
    with pytest.raises(StoreExistsError, match="not a Zarr store"):
        ingest(np.zeros((4, 4, 4), np.uint8), user, voxel_size=1, overwrite=True, progress=False)
    assert (user / "precious.txt").read_text() == "keep me"


def test_failed_write_leaves_nothing_and_keeps_old_store(tmp_path, rng):
    v = rng.integers(0, 255, (8, 8, 8), dtype=np.uint8)
    ingest(v, tmp_path / "v.zarr", voxel_size=1, progress=False)
    bad = tmp_path / "bad.raw"
    bad.write_bytes(b"\0" * 10)
    with pytest.raises(InputError):
        ingest(bad, tmp_path / "v.zarr", voxel_size=1, overwrite=True, progress=False,
               shape=(8, 8, 8), dtype="uint8")
    np.testing.assert_array_equal(open_volume(tmp_path / "v.zarr").values, v)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.raw", "v.zarr"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_output(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(InputError, match="not writable"):
        ingest(np.zeros((4, 4, 4), np.uint8), ro / "v.zarr", voxel_size=1, progress=False)


def test_unwritable_output_path_under_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot create"):
        ingest(np.zeros((4, 4, 4), np.uint8), tmp_path / "file" / "v.zarr", voxel_size=1,
               progress=False)


def test_open_volume_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_volume(tmp_path / "missing.zarr")
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a Zarr store"):
        open_volume(tmp_path / "plain")


@pytest.mark.parametrize("kind", ["intensity", "classes", "labels"])
def test_pyramid_translations_match_how_each_level_was_made(tmp_path, kind):
    """World position of a level's voxel centre = the centre of the level-0 voxels it
    stands for: the mean of a 2^i cell for intensities, the cell's first voxel otherwise."""
    import zarr

    vol = np.arange(64 * 64 * 64, dtype=np.uint16).reshape(64, 64, 64)
    store = tmp_path / f"{kind}.zarr"
    ingest(vol, store, kind=kind, voxel_size=(3.0, 2.0, 1.0), progress=False)
    group = zarr.open_group(store, mode="r")
    datasets = group.attrs["ome"]["multiscales"][0]["datasets"]
    assert len(datasets) >= 2
    for level, ds in enumerate(datasets):
        scale, shift = (t[t["type"]] for t in ds["coordinateTransformations"])
        f = 2**level
        first = np.array([3.0, 2.0, 1.0]) * (np.arange(f).mean() if kind == "intensity" else 0)
        np.testing.assert_allclose(shift, first)
        np.testing.assert_allclose(scale, np.array([3.0, 2.0, 1.0]) * f)
        if kind != "intensity":  # level voxel (1, 1, 1) is level-0 voxel (f, f, f)
            assert group[str(level)][1, 1, 1] == vol[f, f, f]


def test_stores_validate_as_ome_zarr_images_and_labels(tmp_path):
    """ome-zarr-models validates every kind; ome-zarr-py's reader sees class and label stores
    as labels (napari-ome-zarr then opens them as a Labels layer, with class colours)."""
    import zarr

    models = pytest.importorskip("ome_zarr_models.v05.image_label")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader
    from ome_zarr_models.v05.image import Image

    classes = np.zeros((40, 48, 48), np.uint8)
    classes[:, :, 20:22] = 2
    classes[5:9, 5:9, 5:9] = 1
    ingest(classes.astype(np.float32), tmp_path / "raw.zarr", kind="intensity", voxel_size=2.0,
           progress=False)
    ingest(classes, tmp_path / "classes.zarr", kind="classes", voxel_size=2.0, progress=False)
    ingest(classes.astype(np.uint32), tmp_path / "labels.zarr", kind="labels", voxel_size=2.0,
           progress=False)
    Image.from_zarr(zarr.open_group(tmp_path / "raw.zarr", mode="r"))
    for name in ("classes", "labels"):
        group = zarr.open_group(tmp_path / f"{name}.zarr", mode="r")
        label = models.ImageLabel.from_zarr(group)
        node = next(iter(Reader(parse_url(str(tmp_path / f"{name}.zarr")))()))
        assert "Label" in [type(s).__name__ for s in node.specs]
        if name == "classes":
            colours = {c.label_value: c.rgba for c in label.attributes.ome.image_label.colors}
            assert colours[1] == (230, 25, 25, 255) and colours[0][3] == 0


def test_a_resumed_store_still_writes_every_chunk(tmp_path):
    """Reopened to resume, the arrays keep writing empty chunks: an absent chunk would read
    as damage afterwards."""
    from redoxflow.config import load_config
    from redoxflow.io.readers import check_chunks, chunk_stats
    from redoxflow.io.store import _open_levels

    cfg = load_config(environ={})
    path = tmp_path / "s.zarr"
    _open_levels(path, [(4, 4, 4)], (2, 4, 4), np.uint8, cfg, "key")
    _, arrays = _open_levels(path, [(4, 4, 4)], (2, 4, 4), np.uint8, cfg, "key")  # resumed
    arrays[0][:] = 0
    check_chunks(chunk_stats(arrays[0], path / "0"), "the resumed array")  # absent: raises


def test_an_image_holding_a_runs_labels_is_never_replaced_with_them(tmp_path):
    """After a run, raw.zarr/labels/ holds the only copy of the classes and bubbles."""
    from redoxflow.pipeline import adopt_labels

    volume = np.zeros((4, 8, 8), np.uint8)
    ingest(volume, tmp_path / "raw.zarr", voxel_size=1.0, kind="intensity", progress=False)
    ingest(volume, tmp_path / "classes.zarr", voxel_size=1.0, kind="classes", progress=False)
    assert adopt_labels(tmp_path) == ["classes"]
    with pytest.raises(StoreExistsError, match="holds label images"):
        ingest(volume, tmp_path / "raw.zarr", voxel_size=1.0, kind="intensity",
               overwrite=True, progress=False)
    assert open_volume(tmp_path / "classes.zarr").shape == volume.shape  # still there
    # writing through the run's link replaces the label image it points to; the link stays
    ingest(volume + 1, tmp_path / "classes.zarr", voxel_size=1.0, kind="classes",
           overwrite=True, progress=False)
    assert (tmp_path / "classes.zarr").is_symlink()
    assert int(open_volume(tmp_path / "raw.zarr" / "labels" / "classes").data.max()) == 1
    assert not list(tmp_path.glob(".classes.zarr.*"))
