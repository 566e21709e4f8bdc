"""Fuzzing the readers and the config loader (issue 18): random bytes, truncated and
mutated real files of every supported format give a volume or a one-line ``InputError``;
never another exception, a hang (pytest-timeout) or memory above a bound (tracemalloc,
which counts numpy's allocations). Derandomized, so CI runs the same examples each time,
within a minute in all."""

from __future__ import annotations

import shutil
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from redoxflow.config import load_config  # noqa: E402
from redoxflow.errors import InputError  # noqa: E402
from redoxflow.io import open_source, open_volume  # noqa: E402

EXAMPLES = 80
MEMORY_BOUND = 64 * 2**20  # the seeds are a few KiB: nothing may allocate 64 MiB
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])
VOLUME = (np.arange(4 * 6 * 8) % 251).astype(np.uint8).reshape(4, 6, 8)
RAW = {"shape": (4, 6, 8), "dtype": "uint8"}


def _vti_ascii(path: Path) -> None:
    values = " ".join(str(v) for v in VOLUME.transpose(2, 1, 0).ravel())
    path.write_text(
        '<VTKFile type="ImageData" byte_order="LittleEndian"><ImageData WholeExtent='
        '"0 3 0 5 0 7" Spacing="1 1 1"><Piece><PointData><DataArray type="UInt8" '
        f'format="ascii">{values}</DataArray></PointData></Piece></ImageData></VTKFile>')


def _vti_zlib(path: Path) -> None:
    import struct
    import zlib

    data = VOLUME.transpose(2, 1, 0).tobytes()
    packed = zlib.compress(data)
    head = struct.pack("<4I", 1, len(data), len(data), len(packed))
    path.write_bytes(
        b'<VTKFile type="ImageData" byte_order="LittleEndian" header_type="UInt32" '
        b'compressor="vtkZLibDataCompressor"><ImageData WholeExtent="0 3 0 5 0 7">'
        b'<Piece><PointData><DataArray type="UInt8" format="appended" offset="0"/>'
        b'</PointData></Piece></ImageData><AppendedData encoding="raw">_' + head + packed
        + b"</AppendedData></VTKFile>")


def _seed(kind: str, folder: Path) -> tuple[Path, dict]:
    """A small valid file of ``kind`` and the reader options it needs."""
    if kind == "tiff":
        import tifffile

        tifffile.imwrite(folder / "v.tif", VOLUME, photometric="minisblack")
        return folder / "v.tif", {}
    if kind == "raw":
        VOLUME.tofile(folder / "v.raw")
        return folder / "v.raw", RAW
    if kind == "npy":
        np.save(folder / "v.npy", VOLUME)
        return folder / "v.npy", {}
    if kind == "npz":
        np.savez_compressed(folder / "v.npz", v=VOLUME)
        return folder / "v.npz", {}
    if kind == "h5":
        import h5py

        with h5py.File(folder / "v.h5", "w") as f:
            f["data"] = VOLUME
        return folder / "v.h5", {}
    if kind == "vti-ascii":
        _vti_ascii(folder / "v.vti")
        return folder / "v.vti", {}
    if kind == "vti-zlib":
        _vti_zlib(folder / "v.vti")
        return folder / "v.vti", {}
    raise ValueError(kind)


FORMATS = ["tiff", "raw", "npy", "npz", "h5", "vti-ascii", "vti-zlib"]


def _read_all(path: Path, options: dict) -> None:
    """Open and read every slice; only InputError may come out, in one line."""
    tracemalloc.start()
    try:
        src = open_source(path, **options)
        src.read(0, src.shape[0]) if np.prod(src.shape) * src.dtype.itemsize < 2**24 \
            else src.read(0, 1)
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND, f"{path.name}: {peak / 2**20:.0f} MiB"


def _mutate(data: bytes, cut: int, flips: list[tuple[int, int]]) -> bytes:
    out = bytearray(data[: max(1, cut % (len(data) + 1))])
    for pos, value in flips:
        if out:
            out[pos % len(out)] = value
    return bytes(out)


MUTATION = st.tuples(st.integers(0, 10**6),
                     st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)),
                              max_size=6))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", FORMATS)
@FUZZ
@given(mutation=MUTATION, whole=st.booleans())
def test_truncated_and_mutated_files(kind, mutation, whole, tmp_path_factory):
    folder = tmp_path_factory.mktemp(kind)
    path, options = _seed(kind, folder)
    data = path.read_bytes()
    cut, flips = mutation
    path.write_bytes(_mutate(data, len(data) if whole else cut, flips))
    _read_all(path, options)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("suffix", [".tif", ".raw", ".npy", ".npz", ".h5", ".vti"])
@FUZZ
@given(data=st.binary(max_size=4096))
def test_random_bytes(suffix, data, tmp_path_factory):
    path = tmp_path_factory.mktemp("bytes") / f"v{suffix}"
    path.write_bytes(data)
    _read_all(path, RAW if suffix == ".raw" else {})


@pytest.fixture(scope="module")
def seed_store(tmp_path_factory):
    import redoxflow as rf

    store = tmp_path_factory.mktemp("seed") / "s.zarr"
    rf.ingest(VOLUME, store, voxel_size=1, chunks=(2, 6, 8), kind="intensity",
              progress=False)
    return store


@pytest.mark.timeout(60)
@FUZZ
@given(which=st.integers(0, 10**6), mutation=MUTATION)
def test_mutated_zarr_stores(seed_store, which, mutation, tmp_path_factory):
    store = tmp_path_factory.mktemp("zarr") / "s.zarr"
    shutil.copytree(seed_store, store)
    files = sorted(p for p in store.rglob("*") if p.is_file())
    target = files[which % len(files)]
    target.write_bytes(_mutate(target.read_bytes(), mutation[0], mutation[1]))
    tracemalloc.start()
    try:
        open_volume(store).data.compute()
        open_source(store).read(0, 4)
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < MEMORY_BOUND


CONFIG = (b"input:\n  source: synthetic\n  shape: [16, 32, 32]\n  voxel_size: 2.5\n"
          b"output:\n  directory: out\n  overwrite: false\nio:\n  compression_level: 3\n"
          b"cluster:\n  workers: 2\n  memory_limit: 2GB\nsegment:\n  overlap: 0.25\n"
          b"label:\n  connectivity: 6\nanalyze:\n  negative_side: high\n")


@pytest.mark.timeout(60)
@FUZZ
@given(data=st.one_of(st.binary(max_size=512),
                      MUTATION.map(lambda m: _mutate(CONFIG, m[0], m[1]))))
def test_config_loader(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("cfg") / "c.yaml"
    path.write_bytes(data)
    try:
        load_config(path, environ={})
    except InputError as exc:
        assert "\n" not in str(exc), str(exc)
