"""Every reader round-trips against numpy; every bad input gives a one-line InputError."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from redoxflow.errors import InputError
from redoxflow.io import ingest, natural_key, open_source


@pytest.fixture
def vol(rng):
    return rng.integers(0, 60000, (9, 12, 10), dtype=np.uint16)


def roundtrip(source, expected, tmp_path, **opts):
    out = ingest(source, tmp_path / "out.zarr", voxel_size=1.5, progress=False, **opts)
    np.testing.assert_array_equal(out.values, expected)
    return out


def test_natural_sort():
    names = ["im10.tif", "im2.tif", "im1.tif"]
    assert sorted(names, key=natural_key) == ["im1.tif", "im2.tif", "im10.tif"]


def test_slice_folder_natural_order(vol, tmp_path):
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, plane in enumerate(vol):
        tifffile.imwrite(folder / f"slice_{i}.tif", plane)  # slice_10 would sort after slice_9
    roundtrip(folder, vol, tmp_path)


def test_png_slice_folder(tmp_path, rng):
    import imageio.v3 as iio

    v = rng.integers(0, 255, (4, 8, 9), dtype=np.uint8)
    folder = tmp_path / "png"
    folder.mkdir()
    for i, plane in enumerate(v):
        iio.imwrite(folder / f"p{i:03d}.png", plane)
    roundtrip(folder, v, tmp_path)


@pytest.mark.parametrize("bigtiff", [False, True])
def test_multipage_tiff(vol, tmp_path, bigtiff):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, vol, bigtiff=bigtiff)
    roundtrip(path, vol, tmp_path)


def test_hdf5(vol, tmp_path):
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("entry/data", data=vol)
        f.create_dataset("entry/other", data=vol[:, :, :2])
    roundtrip(f"{path}:/entry/data", vol, tmp_path)
    with pytest.raises(InputError, match="name one"):
        open_source(path)


@pytest.mark.parametrize("order", ["little", "big"])
def test_raw(vol, tmp_path, order):
    path = tmp_path / "scan.raw"
    vol.astype(vol.dtype.newbyteorder("<" if order == "little" else ">")).tofile(path)
    roundtrip(path, vol, tmp_path, shape=vol.shape, dtype="uint16", byte_order=order)


def test_npy_npz(vol, tmp_path):
    np.save(tmp_path / "a.npy", vol)
    np.savez_compressed(tmp_path / "b.npz", volume=vol)
    roundtrip(tmp_path / "a.npy", vol, tmp_path)
    (tmp_path / "out.zarr").rename(tmp_path / "first.zarr")
    roundtrip(tmp_path / "b.npz", vol, tmp_path, key="volume")


def test_existing_zarr_array(vol, tmp_path):
    import zarr

    arr = zarr.create_array(store=str(tmp_path / "plain.zarr"), shape=vol.shape, dtype=vol.dtype,
                            chunks=(4, 4, 4))
    arr[:] = vol
    roundtrip(tmp_path / "plain.zarr", vol, tmp_path)


def test_vti_written_like_the_reference(tmp_path, rng):
    """Write a .vti with appended base64 zlib blocks the way VTK does and read it back."""
    import base64
    import zlib

    vol = rng.integers(0, 4, (5, 6, 7), dtype=np.uint8)
    raw = vol.transpose(2, 1, 0).ravel().tobytes()  # the reference's layout
    block = 64
    blocks = [raw[i:i + block] for i in range(0, len(raw), block)]
    comp = [zlib.compress(b) for b in blocks]
    header = np.array([len(blocks), block, len(blocks[-1]), *map(len, comp)], np.uint32)
    payload = base64.b64encode(header.tobytes()) + base64.b64encode(b"".join(comp))
    d = vol.shape
    xml = (f'<?xml version="1.0"?>\n<VTKFile type="ImageData" version="0.1" '
           f'byte_order="LittleEndian" header_type="UInt32" compressor="vtkZLibDataCompressor">\n'
           f'<ImageData WholeExtent="0 {d[0]-1} 0 {d[1]-1} 0 {d[2]-1}" Origin="0 0 0" '
           f'Spacing="1 1 1"><Piece Extent="0 {d[0]-1} 0 {d[1]-1} 0 {d[2]-1}"><PointData>'
           f'<DataArray type="UInt8" Name="s" format="appended" offset="0"/></PointData>'
           f'</Piece></ImageData>\n<AppendedData encoding="base64">\n_').encode()
    (tmp_path / "v.vti").write_bytes(xml + payload + b"\n</AppendedData></VTKFile>\n")
    roundtrip(tmp_path / "v.vti", vol, tmp_path)


@pytest.mark.realdata
def test_reference_vti_equals_its_npz(shared_data, tmp_path):
    seg = shared_data / "utile_redox_segmentations"
    src = open_source(seg / "volume_5f6c17f_2023-12-12.vti")
    ref = np.load(seg / "volume_5f6c17f_2023-12-12_classes_uint8.npz")["volume"]
    np.testing.assert_array_equal(src.read(0, 20), ref[:20])
    np.testing.assert_array_equal(src.read(200, 243), ref[200:])


def test_4d_series_list_and_glob(vol, tmp_path):
    for t in range(3):
        np.save(tmp_path / f"step_{t}.npy", vol + t)
    out = ingest(str(tmp_path / "step_*.npy"), tmp_path / "s.zarr", voxel_size=2.0,
                 progress=False)
    assert out.dims == ("t", "z", "y", "x") and out.shape == (3, *vol.shape)
    np.testing.assert_array_equal(out.values[2], vol + 2)
    out2 = ingest([tmp_path / "step_0.npy", tmp_path / "step_1.npy"], tmp_path / "s2.zarr",
                  voxel_size=2.0, progress=False)
    assert out2.shape[0] == 2


# --- bad inputs -------------------------------------------------------------------------

def test_missing_path(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        open_source(tmp_path / "nope.tif")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image slices"):
        open_source(tmp_path / "empty")


def test_mixed_slice_shapes_and_dtypes(tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    tifffile.imwrite(folder / "a1.tif", np.zeros((4, 4), np.uint8))
    tifffile.imwrite(folder / "a2.tif", np.zeros((4, 5), np.uint8))
    with pytest.raises(InputError, match="must match"):
        open_source(folder)
    (folder / "a2.tif").unlink()
    tifffile.imwrite(folder / "a2.tif", np.zeros((4, 4), np.uint16))
    with pytest.raises(InputError, match="must match"):
        open_source(folder)


def test_2d_image_where_a_volume_is_expected(tmp_path):
    tifffile.imwrite(tmp_path / "one.tif", np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError, match="2D"):
        open_source(tmp_path / "one.tif")


def test_corrupt_and_truncated_tiff(vol, tmp_path):
    (tmp_path / "junk.tif").write_bytes(b"this is not a tiff at all")
    with pytest.raises(InputError, match="corrupt"):
        open_source(tmp_path / "junk.tif")
    tifffile.imwrite(tmp_path / "full.tif", vol)
    data = (tmp_path / "full.tif").read_bytes()
    (tmp_path / "cut.tif").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt|truncated"):
        ingest(tmp_path / "cut.tif", tmp_path / "o.zarr", voxel_size=1, progress=False)
    assert not (tmp_path / "o.zarr").exists()
    assert not list(tmp_path.glob(".o.zarr*"))  # nothing half-written left behind


def test_raw_size_mismatch(vol, tmp_path):
    vol.tofile(tmp_path / "v.raw")
    with pytest.raises(InputError, match="bytes"):
        open_source(tmp_path / "v.raw", shape=(9, 12, 11), dtype="uint16")
    with pytest.raises(InputError, match="shape and dtype"):
        open_source(tmp_path / "v.raw")


def test_unknown_file_type(tmp_path):
    (tmp_path / "notes.docx").write_bytes(b"x")
    with pytest.raises(InputError, match="unknown file type"):
        open_source(tmp_path / "notes.docx")


@pytest.mark.parametrize("bad", [0, -1, "abc", (1, 2), float("nan"), "1,0,1"])
def test_bad_voxel_size(vol, tmp_path, bad):
    with pytest.raises(InputError, match="voxel size"):
        ingest(vol, tmp_path / "v.zarr", voxel_size=bad, progress=False)
    assert not (tmp_path / "v.zarr").exists()


def test_series_with_different_shapes(vol, tmp_path):
    np.save(tmp_path / "t0.npy", vol)
    np.save(tmp_path / "t1.npy", vol[:, :5])
    with pytest.raises(InputError, match="all steps must match"):
        open_source([tmp_path / "t0.npy", tmp_path / "t1.npy"])


def test_voxel_size_is_read_from_file_metadata_or_required(tmp_path):
    """TIFF (ImageJ unit + spacing), HDF5 attributes and VTI Spacing give the voxel size;
    without any, ingest refuses instead of assuming 1 micrometre."""
    vol = np.arange(4 * 6 * 8, dtype=np.uint16).reshape(4, 6, 8)
    tifffile.imwrite(tmp_path / "ij.tif", vol, imagej=True, resolution=(1 / 0.5, 1 / 0.25),
                     metadata={"unit": "um", "spacing": 2.0})
    with h5py.File(tmp_path / "scan.h5", "w") as f:
        f["data"] = vol
        f["data"].attrs["element_size_um"] = [3.0, 2.0, 1.0]
    (tmp_path / "v.vti").write_text(
        '<VTKFile type="ImageData"><ImageData WholeExtent="0 1 0 1 0 1" Spacing="4 5 6">'
        '<Piece><PointData><DataArray type="UInt8" format="ascii">0 1 2 3 4 5 6 7</DataArray>'
        '</PointData></Piece></ImageData></VTKFile>')
    expected = {"ij.tif": (2.0, 0.25, 0.5), "scan.h5": (3.0, 2.0, 1.0), "v.vti": (4.0, 5.0, 6.0)}
    for name, voxel in expected.items():
        store = ingest(tmp_path / name, tmp_path / f"{name}.zarr", progress=False)
        np.testing.assert_allclose(store.attrs["voxel_size"], voxel)
    tifffile.imwrite(tmp_path / "plain.tif", vol, photometric="minisblack")
    with pytest.raises(InputError, match="voxel size of .* is unknown.*1 to work in voxels"):
        ingest(tmp_path / "plain.tif", tmp_path / "plain.zarr", progress=False)
    assert not (tmp_path / "plain.zarr").exists()
    store = ingest(tmp_path / "plain.tif", tmp_path / "plain.zarr", voxel_size=1, progress=False)
    assert tuple(store.attrs["voxel_size"]) == (1.0, 1.0, 1.0)
