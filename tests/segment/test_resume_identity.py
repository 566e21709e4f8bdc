"""Issue 18, cause 5: a resumed segmentation reuses a finished slab only while the input
chunks it reads are unchanged, so slabs of a replaced input are never mixed in."""

from __future__ import annotations

import numpy as np
import pytest

from redoxflow.errors import InputError
from redoxflow.io import ingest, open_volume
from redoxflow.segment import segment


def _interrupted(tmp_path, tiny_checkpoint, image):
    """Segment ``image`` (stored at raw.zarr) with a NaN in slab 3: slabs 0-2 and 4-5 are
    finished and kept in .classes.zarr.partial."""
    bad = image.copy()
    bad[30, 5, 5] = np.nan
    ingest(bad, tmp_path / "raw.zarr", chunks=(8, 80, 80), voxel_size=5.0, progress=False)
    with pytest.raises(InputError, match="NaN"):
        segment(tmp_path / "raw.zarr", tiny_checkpoint, out=tmp_path / "c.zarr",
                progress=False)
    done = tmp_path / ".c.zarr.partial" / ".done"
    assert {p.name for p in done.iterdir()} == {f"{i}-0-0" for i in range(6) if i != 3}


def test_a_replaced_input_is_segmented_again_not_mixed(tiny_checkpoint, phantom, tmp_path,
                                                       client):
    from redoxflow.synthetic import make_phantom

    _interrupted(tmp_path, tiny_checkpoint, phantom.image.astype(np.float32))
    other = make_phantom(phantom.image.shape, seed=11).image.astype(np.float32)
    ingest(other, tmp_path / "raw.zarr", chunks=(8, 80, 80), voxel_size=5.0, overwrite=True,
           progress=False)  # the same path, other content
    result = segment(tmp_path / "raw.zarr", tiny_checkpoint, out=tmp_path / "c.zarr",
                     progress=False).data.compute()
    fresh = segment(other, tiny_checkpoint, progress=False).compute()
    mixed = segment(phantom.image.astype(np.float32), tiny_checkpoint, progress=False).compute()
    assert (fresh != mixed).sum() > 1000  # the two inputs really segment differently
    np.testing.assert_array_equal(result, fresh)


def test_only_the_slabs_whose_input_changed_are_redone(tiny_checkpoint, phantom, tmp_path,
                                                       client):
    import zarr

    image = phantom.image.astype(np.float32)
    _interrupted(tmp_path, tiny_checkpoint, image)
    partial = tmp_path / ".c.zarr.partial" / "0" / "c"
    stamps = {i: (partial / str(i) / "0" / "0").stat().st_mtime_ns for i in (0, 1, 5)}
    arr = zarr.open_group(str(tmp_path / "raw.zarr"))["0"]
    arr[30] = image[30]  # fix slab 3's chunk (z 24-32) ...
    arr[47] = image[47] + 0.5  # ... and change slab 5's (z 40-48)
    vol = segment(tmp_path / "raw.zarr", tiny_checkpoint, out=tmp_path / "c.zarr",
                  progress=False)
    out = tmp_path / "c.zarr" / "0" / "c"
    assert (out / "0" / "0" / "0").stat().st_mtime_ns == stamps[0]  # unchanged input: kept
    assert (out / "1" / "0" / "0").stat().st_mtime_ns == stamps[1]
    assert (out / "5" / "0" / "0").stat().st_mtime_ns != stamps[5]  # its input changed
    np.testing.assert_array_equal(vol.data.compute(), segment(
        open_volume(tmp_path / "raw.zarr").data.compute(), tiny_checkpoint,
        progress=False).compute())
