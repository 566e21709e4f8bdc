"""Lazy volume readers: each gives shape, dtype and slabs of z-slices, never the whole volume.

A :class:`VolumeSource` reads ``read(z0, z1) -> ndarray[z1 - z0, ...]`` (for a 4D series the
first axis is time and ``read`` returns one time step's z-slab via ``read(z0, z1, t=...)``).
``open_source(path, **options)`` picks the reader from the path.
"""

from __future__ import annotations

import base64
import glob as globmod
import os
import re
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import is_store
from ..common.provenance import digest
from ..errors import InputError
from .metadata import SPATIAL, read_metadata

SLICE_SUFFIXES = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp"}
TIFF_SUFFIXES = {".tif", ".tiff"}
#: the attribute (group, array or redoxflow block) by which a store declares that its absent
#: chunks hold the fill value (stores of other writers that skip empty chunks)
FILL_DECLARATION = ("missing_chunks", "fill")


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``im2`` before ``im10``.

    Parameters
    ----------
    name : str
        A file name.

    Returns
    -------
    list
        Runs of digits as ints, the text between them lower-cased.

    Examples
    --------
    >>> sorted(["im10.tif", "im2.tif", "IM1.tif"], key=natural_key)
    ['IM1.tif', 'im2.tif', 'im10.tif']
    >>> natural_key("im10.tif")
    ['im', 10, '.tif']
    """
    return [int(tok) if tok.isdigit() else tok.lower() for tok in re.split(r"(\d+)", name)]


@dataclass
class VolumeSource:
    """A 3D volume that can be read in z-slabs.

    Attributes
    ----------
    shape : tuple of int
        (z, y, x).
    dtype : numpy.dtype
    reader : callable
        ``reader(z0, z1) -> ndarray`` of shape ``(z1 - z0, y, x)``.
    description : str
        Human-readable origin (for provenance).
    voxel_size : tuple of float or None
        Voxel size in micrometres when the file records one.

    Examples
    --------
    >>> import numpy as np
    >>> src = open_source(np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6))
    >>> src.shape, src.dtype, src.description
    ((4, 5, 6), dtype('uint8'), 'in-memory array')
    >>> src.read(1, 3).shape
    (2, 5, 6)
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    reader: Any
    description: str
    voxel_size: tuple[float, float, float] | None = None

    def read(self, z0: int, z1: int) -> np.ndarray:
        """Slices ``z0:z1`` as an ndarray of shape ``(z1 - z0, y, x)``, checked.

        Raises :class:`~redoxflow.errors.InputError` when the reader returns another shape
        or dtype (e.g. a slice of a folder that does not match the first).
        """
        try:
            out = np.asarray(self.reader(z0, z1))
        except InputError:
            raise
        except Exception as exc:  # each format's library raises its own types
            raise InputError(f"cannot read slices {z0}-{z1} of {self.description}: corrupt or "
                             f"truncated data ({type(exc).__name__})") from exc
        if out.shape != (z1 - z0, *self.shape[1:]) or out.dtype != self.dtype:
            raise InputError(f"{self.description}: slices {z0}-{z1} have shape {out.shape} "
                             f"dtype {out.dtype}, expected {self.shape[1:]} {self.dtype}; "
                             "all slices must match")
        return out


@dataclass
class SeriesSource:
    """A 4D series (t, z, y, x) of equally shaped volumes.

    Attributes
    ----------
    steps : list of VolumeSource
        One source per time step, all of the same shape and dtype.
    shape : tuple of int
        (t, z, y, x).
    dtype, description, voxel_size
        Those of the first step.

    Examples
    --------
    >>> import numpy as np
    >>> s = SeriesSource([open_source(np.zeros((4, 5, 6), np.uint8)) for _ in range(3)])
    >>> s.shape, s.dtype
    ((3, 4, 5, 6), dtype('uint8'))
    >>> s.steps[0].read(0, 2).shape
    (2, 5, 6)
    """

    steps: list[VolumeSource]

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.steps), *self.steps[0].shape)

    @property
    def dtype(self) -> np.dtype:
        return self.steps[0].dtype

    @property
    def description(self) -> str:
        return f"series of {len(self.steps)} volumes starting with {self.steps[0].description}"

    @property
    def voxel_size(self):
        return self.steps[0].voxel_size


def _check_volume_shape(shape: Sequence[int], what: str) -> tuple[int, int, int]:
    if len(shape) != 3:
        hint = " (a 2D image: pass a folder or stack of slices)" if len(shape) == 2 else ""
        raise InputError(f"{what} has shape {tuple(shape)}, expected a 3D volume (z, y, x){hint}")
    if min(shape) == 0:
        raise InputError(f"{what} is empty (shape {tuple(shape)})")
    if min(shape) < 0:
        raise InputError(f"{what} has shape {tuple(shape)}: sizes must be positive")
    return tuple(int(s) for s in shape)  # type: ignore[return-value]


def memory_bound() -> int:
    """Bytes a reader may allocate from sizes a file declares: a quarter of this machine's
    memory (the whole-file formats, VTI and npz, are decoded at once).

    Examples
    --------
    >>> memory_bound() > 2**20
    True
    """
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not Linux
        total = 16 * 2**30
    return int(total) // 4


def _check_declared(nbytes: int, what: str) -> None:
    """Refuse a declared size beyond :func:`memory_bound` before allocating it."""
    if nbytes > memory_bound():
        raise InputError(f"{what} declares {nbytes / 2**30:.3g} GiB of data, more than this "
                         f"machine can decode at once ({memory_bound() / 2**30:.3g} GiB): "
                         "the file is damaged, or convert it to TIFF slices or HDF5")


def _from_array(arr: Any, description: str, voxel_size=None) -> VolumeSource:
    shape = _check_volume_shape(arr.shape, description)
    return VolumeSource(shape, np.dtype(arr.dtype), lambda z0, z1: arr[z0:z1], description,
                        voxel_size)


# --- individual formats -------------------------------------------------------------------

def read_slice(path: Path) -> np.ndarray:
    """Read one 2D image (TIFF with tifffile, other formats with imageio).

    Parameters
    ----------
    path : pathlib.Path
        A ``.tif``/``.tiff``, ``.png``, ``.jpg``/``.jpeg`` or ``.bmp`` file.

    Returns
    -------
    ndarray, shape (y, x)
        The image as stored (colour images keep their channel axis).

    Raises
    ------
    InputError
        When the file is corrupt or truncated.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "im1.tif"
    >>> tifffile.imwrite(path, np.zeros((8, 9), np.uint16))
    >>> read_slice(path).shape
    (8, 9)
    """
    try:
        if path.suffix.lower() in TIFF_SUFFIXES:
            import tifffile

            return tifffile.imread(path)
        import imageio.v3 as iio

        return iio.imread(path)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read slice {str(path)!r}: corrupt or truncated image "
                         f"({type(exc).__name__})") from exc


def read_slice_folder(folder: Path) -> VolumeSource:
    """Folder of 2D slices in natural name order (``im2`` before ``im10``).

    Every TIFF header is checked up front (shape and dtype must match the first slice);
    pixels are read when a slab is read.

    Parameters
    ----------
    folder : pathlib.Path
        Holds ``.tif``, ``.tiff``, ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp`` slices (other
        files are ignored).

    Returns
    -------
    VolumeSource
        Shape (number of slices, y, x).

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile, tifffile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for i in (1, 2, 10):
    ...     tifffile.imwrite(folder / f"im{i}.tif", np.full((8, 8), i, np.uint8))
    >>> src = read_slice_folder(folder)
    >>> src.shape, src.read(0, 3)[:, 0, 0].tolist()
    ((3, 8, 8), [1, 2, 10])
    """
    files = sorted((p for p in folder.iterdir() if p.suffix.lower() in SLICE_SUFFIXES),
                   key=lambda p: natural_key(p.name))
    if not files:
        raise InputError(f"folder {str(folder)!r} holds no image slices "
                         f"({', '.join(sorted(SLICE_SUFFIXES))})")
    first = read_slice(files[0])
    if first.ndim != 2:
        raise InputError(f"slice {str(files[0])!r} has shape {first.shape}; a slice folder needs "
                         "2D images")
    _check_slice_headers(files, first)

    def reader(z0: int, z1: int) -> np.ndarray:
        slab = [read_slice(f) for f in files[z0:z1]]
        for f, s in zip(files[z0:z1], slab):
            if s.shape != first.shape or s.dtype != first.dtype:
                raise InputError(f"slice {f.name} has shape {s.shape} dtype {s.dtype} but "
                                 f"{files[0].name} has {first.shape} {first.dtype}: all slices "
                                 "must match")
        return np.stack(slab)

    return VolumeSource((len(files), *first.shape), first.dtype, reader,
                        f"slice folder {folder} ({len(files)} slices)")


def _check_slice_headers(files: list[Path], first: np.ndarray) -> None:
    """Check every TIFF slice's shape/dtype from its header before any data is written."""
    import tifffile

    for f in files:
        if f.suffix.lower() not in TIFF_SUFFIXES:
            continue
        try:
            with tifffile.TiffFile(f) as tif:
                page = tif.pages[0]
                shape, dtype = tuple(page.shape), np.dtype(page.dtype)
        except Exception as exc:
            raise InputError(f"cannot read slice {str(f)!r}: corrupt or truncated TIFF "
                             f"({type(exc).__name__})") from exc
        if shape != first.shape or dtype != first.dtype:
            raise InputError(f"slice {f.name} has shape {shape} dtype {dtype} but the first "
                             f"slice has {first.shape} {first.dtype}: all slices must match")


def read_tiff_stack(path: Path) -> VolumeSource:
    """Multi-page TIFF or BigTIFF; pages are read on demand.

    Parameters
    ----------
    path : pathlib.Path
        A ``.tif``/``.tiff`` file whose first series is 3D (z, y, x).

    Returns
    -------
    VolumeSource

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile, tifffile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "stack.tif"
    >>> tifffile.imwrite(path, np.zeros((4, 8, 8), np.uint16), photometric="minisblack")
    >>> src = read_tiff_stack(path)
    >>> src.shape, src.dtype, src.read(0, 2).shape
    ((4, 8, 8), dtype('uint16'), (2, 8, 8))
    """
    import tifffile

    try:
        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        shape, dtype = tuple(series.shape), np.dtype(series.dtype)
        n_pages = len(series.pages)
        voxel = _tiff_voxel_size(tif)
    except Exception as exc:
        raise InputError(f"cannot read TIFF {str(path)!r}: corrupt or truncated file "
                         f"({type(exc).__name__}: {exc})".splitlines()[0]) from exc
    shape = _check_volume_shape(shape, f"TIFF {path}")

    def reader(z0: int, z1: int) -> np.ndarray:
        try:
            if n_pages == shape[0]:
                return tif.asarray(key=range(z0, z1)).reshape(z1 - z0, *shape[1:])
            return series.asarray()[z0:z1]
        except Exception as exc:
            raise InputError(f"cannot read pages {z0}-{z1} of TIFF {str(path)!r}: corrupt or "
                             f"truncated file ({type(exc).__name__})") from exc

    return VolumeSource(shape, dtype, reader, f"TIFF {path}", voxel)


#: micrometres per unit of the length units TIFF and ImageJ metadata use
_UNITS_UM = {"nm": 1e-3, "nanometer": 1e-3, "um": 1.0, "\u00b5m": 1.0, "\u03bcm": 1.0,
             "micron": 1.0,
             "micrometer": 1.0, "mm": 1e3, "millimeter": 1e3, "cm": 1e4, "centimeter": 1e4}


def _tiff_voxel_size(tif) -> tuple[float, float, float] | None:
    """(z, y, x) micrometres from ImageJ metadata (unit, spacing) or a centimetre
    ResolutionUnit; None when the file does not say (DPI of a scanner means nothing)."""
    page = tif.pages[0]
    tags = page.tags
    if "XResolution" not in tags or "YResolution" not in tags:
        return None
    ij = tif.imagej_metadata or {}
    unit = str(ij.get("unit", "")).strip().lower().replace("\\u00b5", "\u00b5")
    if unit in _UNITS_UM:
        per_unit = _UNITS_UM[unit]
    elif tags.get("ResolutionUnit") is not None and int(tags["ResolutionUnit"].value) == 3:
        per_unit = 1e4  # pixels per centimetre
    else:
        return None
    num, den = tags["XResolution"].value
    x = per_unit * den / num if num else None
    num, den = tags["YResolution"].value
    y = per_unit * den / num if num else None
    if not x or not y:
        return None
    z = float(ij["spacing"]) * per_unit if "spacing" in ij else x
    return (z, y, x)


def read_hdf5(path: Path, dataset: str | None) -> VolumeSource:
    """Dataset of an HDF5 file (``file.h5:/group/data`` or ``dataset=``).

    Parameters
    ----------
    path : pathlib.Path
        The HDF5 file (kept open for lazy reads).
    dataset : str or None
        Path of a 3D dataset inside the file; None picks the only 3D dataset.

    Returns
    -------
    VolumeSource

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile, h5py
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "scan.h5"
    >>> with h5py.File(path, "w") as f:
    ...     f["/scan/data"] = np.zeros((4, 8, 8), np.float32)
    >>> read_hdf5(path, None).shape
    (4, 8, 8)
    >>> open_source(f"{path}:/scan/data").dtype.name
    'float32'
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"cannot open HDF5 file {str(path)!r}: {exc}") from exc
    if dataset is None:
        names: list[str] = []
        f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.ndim == 3 else None)
        if len(names) != 1:
            raise InputError(f"HDF5 file {str(path)!r} holds {len(names)} 3D datasets "
                             f"({', '.join(names[:5])}): name one as FILE.h5:/path/to/dataset")
        dataset = names[0]
    if dataset not in f:
        raise InputError(f"HDF5 file {str(path)!r} has no dataset {dataset!r}")
    return _from_array(f[dataset], f"HDF5 {path}:{dataset}", _hdf5_voxel_size(f[dataset]))


def _hdf5_voxel_size(dset) -> tuple[float, ...] | None:
    """(z, y, x) micrometres from the dataset's ``voxel_size`` / ``element_size_um`` /
    ``spacing`` attribute (one number or three), else None."""
    for key in ("voxel_size", "element_size_um", "spacing"):
        if key in dset.attrs:
            value = np.atleast_1d(np.asarray(dset.attrs[key], float))
            if value.size in (1, 3) and np.all(value > 0):
                return tuple(float(v) for v in np.broadcast_to(value, 3))
    return None


def read_raw(path: Path, shape: Sequence[int] | None, dtype: str | None,
             byte_order: str = "little", offset: int = 0) -> VolumeSource:
    """Headerless binary volume in C order; ``shape`` (z, y, x) and ``dtype`` are required.

    Parameters
    ----------
    path : pathlib.Path
        The raw file; its size must be exactly ``offset + prod(shape) * itemsize``.
    shape : (z, y, x) int
        Volume shape.
    dtype : str
        Numpy dtype name (``"uint16"``, ``"float32"``...).
    byte_order : {"little", "big"}
        Byte order in the file (``"<"``/``">"`` also accepted).
    offset : int
        Bytes to skip at the start (a header).

    Returns
    -------
    VolumeSource
        In native byte order; slabs are read with plain file reads (no memory map).

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.raw"
    >>> np.arange(4 * 8 * 8, dtype=">u2").tofile(path)
    >>> src = read_raw(path, (4, 8, 8), "uint16", byte_order="big")
    >>> src.shape, int(src.read(1, 2)[0, 0, 0])
    ((4, 8, 8), 64)
    """
    if shape is None or dtype is None:
        raise InputError(f"raw file {str(path)!r} needs shape and dtype "
                         "(e.g. --shape 512,512,512 --dtype uint16)")
    order = {"little": "<", "big": ">", "<": "<", ">": ">"}.get(byte_order)
    if order is None:
        raise InputError(f"byte order {byte_order!r} is unknown: use 'little' or 'big'")
    try:
        dt = np.dtype(dtype).newbyteorder(order)
    except TypeError as exc:
        raise InputError(f"--dtype {dtype!r} is not a numpy dtype: use e.g. uint8, uint16, "
                         "float32") from exc
    if dt.itemsize == 0 or dt.hasobject:
        raise InputError(f"--dtype {dtype!r} is not a numeric dtype: use e.g. uint16")
    if offset < 0:
        raise InputError(f"offset {offset} must not be negative")
    shape = _check_volume_shape(shape, f"raw file {path}")
    expected = int(np.prod(shape)) * dt.itemsize + offset
    actual = path.stat().st_size
    if actual != expected:
        raise InputError(f"raw file {str(path)!r} has {actual} bytes but shape {shape} x "
                         f"{dt.name} needs {expected}: check --shape/--dtype")
    native = dt.newbyteorder("=")
    plane = int(np.prod(shape[1:]))

    def reader(z0: int, z1: int) -> np.ndarray:
        # plain reads, not a memmap: mapped pages would count towards the resident memory
        slab = np.fromfile(path, dtype=dt, count=(z1 - z0) * plane,
                           offset=offset + z0 * plane * dt.itemsize)
        return slab.reshape(z1 - z0, *shape[1:]).astype(native, copy=False)

    return VolumeSource(shape, native, reader,
                        f"raw {path}")


def read_numpy(path: Path, key: str | None) -> VolumeSource:
    """``.npy`` (memory-mapped) or a key of an ``.npz`` archive.

    Parameters
    ----------
    path : pathlib.Path
        A ``.npy`` or ``.npz`` file.
    key : str or None
        Array name inside an ``.npz`` (None: its only array).

    Returns
    -------
    VolumeSource

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> np.save(folder / "v.npy", np.zeros((4, 8, 8), np.int16))
    >>> read_numpy(folder / "v.npy", None).shape
    (4, 8, 8)
    >>> np.savez(folder / "v.npz", a=np.zeros((4, 8, 8)), b=np.ones((2, 2, 2)))
    >>> read_numpy(folder / "v.npz", "b").shape
    (2, 2, 2)
    """
    try:
        if path.suffix.lower() == ".npy":
            return _from_array(np.load(path, mmap_mode="r"), f"npy {path}")
        with np.load(path) as archive:
            keys = list(archive.keys())
            if key is None:
                if len(keys) != 1:
                    raise InputError(f"npz {str(path)!r} holds arrays {keys}: pick one with "
                                     "--key (key= in Python)")
                key = keys[0]
            if key not in keys:
                raise InputError(f"npz {str(path)!r} has no array {key!r}; it holds {keys}")
            _check_npz_member(path, key)
            return _from_array(archive[key], f"npz {path}:{key}")
    except InputError:
        raise
    except Exception as exc:  # zipfile, zlib and numpy's format errors
        raise InputError(f"cannot read {str(path)!r}: corrupt or truncated numpy file "
                         f"({type(exc).__name__})") from exc


def _check_npz_member(path: Path, key: str) -> None:
    """Bound an npz array by the sizes it declares (header and zip entry) before loading."""
    import zipfile

    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(f"{key}.npy")
        with zf.open(info) as member:
            fmt = np.lib.format
            read = (fmt.read_array_header_1_0 if fmt.read_magic(member) == (1, 0)
                    else fmt.read_array_header_2_0)
            shape, _, dtype = read(member)
    nbytes = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
    _check_declared(max(nbytes, info.file_size), f"npz {str(path)!r}:{key}")
    if nbytes > info.file_size:
        raise InputError(f"npz {str(path)!r}:{key} declares {nbytes} bytes but holds "
                         f"{info.file_size}: the file is corrupt or truncated")


def read_vti(path: Path) -> VolumeSource:
    """VTK XML ImageData (``.vti``): raw or zlib, inline or appended, binary or base64.

    Axis 0 of the result is VTK's x (the fastest index in the file), matching how the
    reference project writes volumes (``transpose(2, 1, 0)`` with ``SetDimensions(vol.shape)``).
    ASCII arrays are read too. The whole file is decoded when opened.

    Parameters
    ----------
    path : pathlib.Path
        The ``.vti`` file (its first point-data array is read).

    Returns
    -------
    VolumeSource
        Shape (nx, ny, nz) of the VTK extent.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "v.vti"
    >>> _ = path.write_text(
    ...     '<VTKFile type="ImageData"><ImageData WholeExtent="0 2 0 1 0 0"><Piece>'
    ...     '<PointData><DataArray type="UInt8" format="ascii">0 1 2 3 4 5</DataArray>'
    ...     '</PointData></Piece></ImageData></VTKFile>')
    >>> src = read_vti(path)
    >>> src.shape, src.read(0, 3)[:, :, 0].tolist()
    ((3, 2, 1), [[0, 3], [1, 4], [2, 5]])
    """
    text = path.read_bytes()
    head, sep, tail = text.partition(b"<AppendedData")
    try:
        root = ET.fromstring(head + (b"</VTKFile>" if sep else b""))
    except ET.ParseError as exc:
        raise InputError(f"cannot parse VTI {str(path)!r}: {exc}") from exc
    image = root.find("ImageData")
    array = root.find(".//PointData/DataArray")
    if image is None or array is None:
        raise InputError(f"VTI {str(path)!r} has no ImageData point array")
    try:
        ext = [int(v) for v in image.get("WholeExtent", "").split()]
        dims = (ext[1] - ext[0] + 1, ext[3] - ext[2] + 1, ext[5] - ext[4] + 1)
    except (ValueError, IndexError):
        ext, dims = [], (0, 0, 0)
    if min(dims) < 1:
        raise InputError(f"VTI {str(path)!r} has WholeExtent {image.get('WholeExtent')!r}: "
                         "expected six integers x0 x1 y0 y1 z0 z1 with x1 >= x0 etc.")
    components = int(array.get("NumberOfComponents", "1"))
    if components != 1:
        raise InputError(f"VTI {str(path)!r} holds {components} components per voxel (vectors or "
                         "colours): give a scalar volume, e.g. one component saved alone")
    n = int(np.prod(dims, dtype=object))
    dtype = np.dtype(_VTK_TYPES[array.get("type")])
    _check_declared(n * components * dtype.itemsize, f"VTI {str(path)!r}")
    spacing = [float(v) for v in image.get("Spacing", "").split()]  # VTK x, y, z = our 0, 1, 2
    voxel = tuple(spacing) if len(spacing) == 3 and min(spacing) > 0 else None
    # redoxflow's own exports keep VTK's x, y, z = array axes 2, 1, 0 (ParaView's view)
    natural = image.get("redoxflow_axes") == "xyz"
    order = (0, 1, 2) if natural else (2, 1, 0)
    if natural and voxel is not None:
        voxel = voxel[::-1]
    dtype = np.dtype(_VTK_TYPES[array.get("type")]).newbyteorder(
        "<" if root.get("byte_order", "LittleEndian") == "LittleEndian" else ">")
    header = np.dtype(_VTK_TYPES[root.get("header_type", "UInt32")]).newbyteorder(dtype.byteorder)
    compressed = root.get("compressor") is not None
    fmt = array.get("format")
    if fmt == "appended":
        encoding = re.search(rb'encoding="(\w+)"', tail)
        payload = tail.partition(b">")[2].lstrip().lstrip(b"_")
        payload = payload[: payload.rfind(b"</AppendedData")].rstrip()
        payload = payload[int(array.get("offset", "0")):]
        b64 = encoding is not None and encoding.group(1) == b"base64"
    elif fmt in ("binary", "ascii"):
        payload, b64 = (array.text or "").strip().encode(), fmt == "binary"
        if fmt == "ascii":
            values = payload.split()
            if len(values) < n:
                raise InputError(f"VTI {str(path)!r} is truncated: {len(values)} of {n} values")
            flat = np.array(values[:n], dtype=dtype)
            return _from_array(flat.reshape(dims[::-1]).transpose(order), f"VTI {path}", voxel)
    else:
        raise InputError(f"VTI {str(path)!r}: unsupported data format {fmt!r}")
    flat = _decode_vtk_blocks(payload, b64, compressed, header, dtype, n * components)
    if flat.size < n:
        raise InputError(f"VTI {str(path)!r} is truncated: {flat.size} of {n} values")
    vol = flat[:n].astype(dtype.newbyteorder("="), copy=False).reshape(dims[::-1]).transpose(order)
    return _from_array(np.ascontiguousarray(vol), f"VTI {path}", voxel)


_VTK_TYPES = {"Int8": "i1", "UInt8": "u1", "Int16": "i2", "UInt16": "u2", "Int32": "i4",
              "UInt32": "u4", "Int64": "i8", "UInt64": "u8", "Float32": "f4", "Float64": "f8"}


def _decode_vtk_blocks(payload: bytes, b64: bool, compressed: bool, header: np.dtype,
                       dtype: np.dtype, count: int) -> np.ndarray:
    """Decode one VTK data array of ``count`` values; the sizes its header declares must
    add up to exactly that, and no zlib block may inflate beyond its declared size (a zlib
    bomb is refused before it is decompressed)."""
    hsize, expected = header.itemsize, count * dtype.itemsize
    try:
        if not compressed:
            raw = base64.b64decode(payload) if b64 else payload
            nbytes = int(np.frombuffer(raw[:hsize], header)[0])
            if nbytes != expected:
                raise InputError(f"VTI data declares {nbytes} bytes, the extent needs {expected}")
            return np.frombuffer(raw[hsize:hsize + nbytes], dtype)
        # compressed: header [nblocks, blocksize, lastsize, csize_1..n], encoded on its own
        def take(nbytes: int, pos: int) -> tuple[bytes, int]:
            if not b64:
                return payload[pos:pos + nbytes], pos + nbytes
            nchars = -(-nbytes // 3) * 4
            return base64.b64decode(payload[pos:pos + nchars])[:nbytes], pos + nchars

        first, _ = take(hsize, 0)
        nblocks = int(np.frombuffer(first, header)[0])
        if not 0 < nblocks <= len(payload):
            raise InputError(f"VTI data declares {nblocks} compressed blocks")
        head, pos = take(hsize * (3 + nblocks), 0)
        fields = np.frombuffer(head, header).astype(object)
        block, last, sizes = int(fields[1]), int(fields[2]) or int(fields[1]), fields[3:]
        if block * (nblocks - 1) + last != expected:
            raise InputError(f"VTI data declares {block * (nblocks - 1) + last} bytes, the "
                             f"extent needs {expected}")
        body = base64.b64decode(payload[pos:]) if b64 else payload[pos:]
        out, start = bytearray(), 0
        for i, size in enumerate(sizes):
            inflate = zlib.decompressobj()
            want = last if i == nblocks - 1 else block
            part = inflate.decompress(body[start:start + int(size)], want)
            if len(part) != want or inflate.unconsumed_tail:
                raise InputError(f"VTI block {i} does not inflate to its declared {want} bytes")
            out += part
            start += int(size)
        return np.frombuffer(bytes(out), dtype)
    except InputError as exc:
        raise InputError(f"{exc}: the file is corrupt or truncated") from exc
    except (zlib.error, ValueError, IndexError, TypeError, OverflowError) as exc:
        raise InputError(f"VTI data is corrupt or truncated ({type(exc).__name__}: {exc})") from exc


def read_zarr(path: Path) -> VolumeSource:
    """An existing Zarr array, or level 0 of an OME-Zarr / redoxflow store.

    Parameters
    ----------
    path : pathlib.Path
        A 3D Zarr array, or an OME-Zarr group (its voxel size is kept).

    Returns
    -------
    VolumeSource

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile, redoxflow as rf
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "a.zarr"
    >>> _ = rf.ingest(np.zeros((8, 16, 16), np.uint8), store, voxel_size=2.0, progress=False)
    >>> src = read_zarr(store)
    >>> src.shape, src.voxel_size
    ((8, 16, 16), (2.0, 2.0, 2.0))
    """
    if _is_array_node(path):
        node, voxel = open_store_array(path)[0], None
    else:
        node, voxel, _, _ = open_ome_array(path)
        voxel = tuple(voxel)
    if node.ndim == 4:
        raise InputError(f"Zarr {str(path)!r} is 4D: it is already a series; open it with "
                         "open_volume() instead of ingesting it")
    return _from_array(node, f"zarr {path}", voxel)


def _is_array_node(path: Path) -> bool:
    """A bare Zarr array folder (v3 ``node_type: array`` or v2 ``.zarray``)."""
    import json

    meta = path / "zarr.json"
    if meta.is_file():
        try:
            return json.loads(meta.read_text()).get("node_type") == "array"
        except (OSError, ValueError, AttributeError):
            return False
    return (path / ".zarray").is_file()


# --- Zarr stores, checked ------------------------------------------------------------------

def chunk_stats(array, folder: str | os.PathLike) -> dict[tuple[int, ...], tuple[int, int] | None]:
    """Size and modification time of every chunk file of a Zarr array, None when absent.

    One listing of the array's folder (no chunk is read): the store's identity for
    resuming, and the check for missing chunks.

    Parameters
    ----------
    array : zarr.Array
        The array (its metadata names the chunk files).
    folder : path
        The array's folder.

    Returns
    -------
    dict
        Chunk grid coordinates -> ``(bytes, mtime_ns)``, or None for an absent chunk.

    Examples
    --------
    >>> import tempfile, zarr
    >>> folder = tempfile.mkdtemp() + "/a.zarr"
    >>> z = zarr.create_array(store=folder, shape=(4, 4), chunks=(2, 4), dtype="u1")
    >>> z[:2] = 1
    >>> {k: v is not None for k, v in chunk_stats(z, folder).items()}
    {(0, 0): True, (1, 0): False}
    """
    folder = Path(folder)
    outer = tuple(array.shards or array.chunks)
    grid = tuple(-(-int(s) // int(c)) for s, c in zip(array.shape, outer))
    present: dict[str, tuple[int, int]] = {}
    for root, _, files in os.walk(folder):
        for name in files:
            full = Path(root) / name
            st = full.stat()
            present[full.relative_to(folder).as_posix()] = (st.st_size, st.st_mtime_ns)
    return {coords: present.get(array.metadata.encode_chunk_key(coords))
            for coords in np.ndindex(*grid)}


def _declares_fill(*attr_dicts: dict) -> bool:
    key, value = FILL_DECLARATION
    return any(isinstance(a, dict) and a.get(key) == value for a in attr_dicts)


def check_chunks(stats: dict, where: str, *declarations: dict) -> None:
    """Refuse absent chunks (they would read as zeros) unless the store declares a fill.

    Parameters
    ----------
    stats : dict
        :func:`chunk_stats` of the array.
    where : str
        The array, for the message.
    *declarations : dict
        Attribute dicts that may hold ``"missing_chunks": "fill"``.

    Examples
    --------
    >>> check_chunks({(0,): (8, 1), (1,): None}, "'a.zarr/0'")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: chunk (1,) of 'a.zarr/0' is missing (1 of 2 chunks): ...
    >>> check_chunks({(0,): (8, 1), (1,): None}, "a", {"missing_chunks": "fill"})
    """
    missing = [c for c, st in stats.items() if st is None]
    if missing and not _declares_fill(*declarations):
        key, value = FILL_DECLARATION
        raise InputError(f"chunk {missing[0]} of {where} is missing ({len(missing)} of "
                         f"{len(stats)} chunks): the store is damaged or incomplete and would "
                         "read as zeros there; write it again, or, if absent chunks mean the "
                         f"fill value, add the attribute \"{key}\": \"{value}\" to its zarr.json")


def stats_digest(stats: dict, *extra: Any) -> str:
    """One digest of chunk stats (and anything else that identifies the input).

    Examples
    --------
    >>> stats_digest({(0,): (8, 1)}) == stats_digest({(0,): (8, 2)})
    False
    """
    return digest(repr((sorted(stats.items()), extra)).encode())


class CheckedArray:
    """A Zarr array whose read errors (garbled or truncated chunks) are one-line
    :class:`~redoxflow.errors.InputError` naming the region and the store.

    Examples
    --------
    >>> import tempfile, zarr
    >>> z = zarr.create_array(store=tempfile.mkdtemp(), shape=(4,), chunks=(2,), dtype="u1")
    >>> CheckedArray(z, "a")[1:3].tolist()
    [0, 0]
    """

    def __init__(self, array, where: str):
        self.array, self.where = array, where
        self.shape, self.dtype, self.ndim = array.shape, array.dtype, array.ndim

    def __getitem__(self, key):
        try:
            return self.array[key]
        except Exception as exc:  # numcodecs, zarr and OS errors of a damaged chunk
            region = ", ".join(f"{k.start}:{k.stop}" if isinstance(k, slice) else str(k)
                               for k in (key if isinstance(key, tuple) else (key,)))
            raise InputError(f"cannot read [{region}] of {self.where}: a chunk is corrupt or "
                             f"truncated ({type(exc).__name__}); write the store again") from exc


def open_store_array(path: str | os.PathLike):
    """Open a bare Zarr array (not an OME group) checked: (dask array, attrs, stats).

    Absent chunks are an error unless declared (:func:`check_chunks`); read errors are
    one-line errors (:class:`CheckedArray`).

    Examples
    --------
    >>> import tempfile, zarr, numpy as np
    >>> folder = tempfile.mkdtemp() + "/a.zarr"
    >>> zarr.create_array(store=folder, shape=(4, 4), chunks=(2, 4), dtype="u1")[:] = 1
    >>> open_store_array(folder)[0].sum().compute()
    np.uint64(16)
    """
    import zarr

    path = Path(path)
    try:
        arr = zarr.open_array(store=str(path), mode="r")
    except Exception as exc:  # zarr raises many types for bad metadata
        raise InputError(f"cannot open Zarr array {str(path)!r}: its metadata is invalid or "
                         f"unreadable ({type(exc).__name__}); write it again") from exc
    stats = chunk_stats(arr, path)
    attrs = dict(arr.attrs)
    check_chunks(stats, repr(str(path)), attrs)
    return _checked_dask(arr, path, stats), attrs, stats


def _checked_dask(arr, path: Path, stats: dict):
    import dask.array as da

    name = f"zarr-{stats_digest(stats, str(path.resolve()), arr.metadata.to_dict())}"
    return da.from_array(CheckedArray(arr, repr(str(path))), chunks=arr.chunks, name=name,
                         meta=np.empty((0,) * arr.ndim, arr.dtype), asarray=True)


def level0_stats(store: str | os.PathLike) -> dict | None:
    """:func:`chunk_stats` of a store's level 0 in its stored axis order; None when the
    store's axes are not (t,) z, y, x (a transposed store has no z-slab identity).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, redoxflow as rf
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "a.zarr"
    >>> _ = rf.ingest(np.ones((8, 4, 4), np.uint8), store, voxel_size=1, chunks=(4, 4, 4),
    ...               progress=False)
    >>> sorted(level0_stats(store))
    [(0, 0, 0), (1, 0, 0)]
    """
    path = Path(store)
    group = _open_group(path)
    meta = read_metadata(group)
    if list(meta["axes"])[-3:] != list(SPATIAL):
        return None
    return chunk_stats(group[str(meta["datasets"][0])], path / str(meta["datasets"][0]))


def _open_group(path: Path):
    """The OME-Zarr group at ``path``, or a one-line error saying what it is instead."""
    import zarr

    try:
        node = zarr.open(store=str(path), mode="r")
    except Exception as exc:  # zarr/json raise many types for damaged metadata
        raise InputError(f"cannot open Zarr store {str(path)!r}: its zarr.json is invalid, "
                         f"unreadable or missing ({type(exc).__name__}); write it again") from exc
    if isinstance(node, zarr.Array):
        parent = " (pass the store that holds it, " + repr(str(path.parent)) + ")" \
            if is_store(path.parent) else ""
        raise InputError(f"{str(path)!r} is a Zarr array, not an OME-Zarr store{parent}: "
                         "ingest it with `redoxflow ingest` or open it with as_volume()")
    return node


def _axes_order(names: list[str], where: str) -> list[int]:
    """Permutation that puts a store's spatial axes in (z, y, x) order."""
    spatial, lead = list(names[-3:]), list(names[:-3])
    if sorted(spatial) != sorted(SPATIAL) or lead not in ([], ["t"]):
        raise InputError(f"{where} has axes {names}: expected z, y, x (in any order), "
                         "optionally after t")
    return list(range(len(lead))) + [len(lead) + spatial.index(a) for a in SPATIAL]


def open_ome_array(store: str | os.PathLike, level: int = 0):
    """One level of an OME-Zarr store, checked: (dask data in (t,) z, y, x order, scale,
    translation, metadata).

    Absent chunks are an error unless declared (:func:`check_chunks`), read errors of
    damaged chunks one-line errors (:class:`CheckedArray`), damaged metadata and paths
    pointing nowhere one-line errors; axes stored in another order are transposed.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib, redoxflow as rf
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "a.zarr"
    >>> _ = rf.ingest(np.ones((8, 4, 4), np.uint8), store, voxel_size=2, progress=False)
    >>> data, scale, shift, meta = open_ome_array(store)
    >>> data.shape, scale, meta["datasets"]
    ((8, 4, 4), [2.0, 2.0, 2.0], ['0'])
    """
    path = Path(store)
    where = repr(str(path))
    if not path.exists():
        raise InputError(f"store {where} does not exist: check the path")
    if not is_store(path):
        if (path / "results.zarr").exists():
            raise InputError(f"{where} is a results folder, not a store: pass "
                             f"{str(path / 'results.zarr')!r} or one of its stores")
        raise InputError(f"{where} is not a Zarr store: ingest it with `redoxflow ingest`")
    group = _open_group(path)
    meta = read_metadata(group)
    if not 0 <= level < len(meta["datasets"]):
        raise InputError(f"level {level} does not exist: the store has levels "
                         f"0-{len(meta['datasets']) - 1}")
    dataset = str(meta["datasets"][level])
    try:
        arr = group[dataset]
    except Exception as exc:  # KeyError, or damaged array metadata
        raise InputError(f"store {where}: its multiscales dataset {dataset!r} is missing or "
                         f"unreadable ({type(exc).__name__}); write the store again") from exc
    if not hasattr(arr, "shape") or arr.ndim not in (3, 4):
        raise InputError(f"store {where}: dataset {dataset!r} is not a 3D or 4D array")
    order = _axes_order(list(meta["axes"]), f"store {where}")
    try:
        ct = meta["multiscales"]["datasets"][level]["coordinateTransformations"]
        scale = [float(v) for v in next(c["scale"] for c in ct if c["type"] == "scale")]
        shift = [float(v) for v in next((c["translation"] for c in ct
                                         if c["type"] == "translation"), [0.0] * arr.ndim)]
        if len(scale) != arr.ndim or len(shift) != arr.ndim:
            raise ValueError("one scale per axis")
    except (KeyError, TypeError, ValueError, StopIteration) as exc:
        raise InputError(f"store {where} has malformed OME coordinateTransformations at "
                         f"level {level}: write the store again") from exc
    scale, shift = [scale[i] for i in order][-3:], [shift[i] for i in order][-3:]
    rf = meta["redoxflow"]
    stats = chunk_stats(arr, path / dataset)
    check_chunks(stats, f"array {dataset!r} of store {where}", dict(group.attrs),
                 dict(arr.attrs), rf)
    data = _checked_dask(arr, path / dataset, stats)
    if order != sorted(order):
        data = data.transpose(order)
    return data, scale, shift, meta


# --- dispatch ------------------------------------------------------------------------------

def open_source(source: Any, *, dataset: str | None = None, key: str | None = None,
                shape: Sequence[int] | None = None, dtype: str | None = None,
                byte_order: str = "little", offset: int = 0) -> VolumeSource | SeriesSource:
    """Open any supported input lazily.

    Parameters
    ----------
    source : path, str, list of paths, glob pattern, or numpy array
        A file, a folder of slices, a Zarr store, ``FILE.h5:/dataset``; a list or glob of
        volumes gives a 4D series (t, z, y, x).
    dataset, key : str, optional
        HDF5 dataset path / npz array name.
    shape, dtype, byte_order, offset :
        Layout of a raw binary file (see :func:`read_raw`).

    Returns
    -------
    VolumeSource or SeriesSource
        A series for a list or a glob pattern, else one volume.

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> open_source(np.zeros((4, 5, 6), np.uint8)).shape
    (4, 5, 6)
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> for t in range(3):
    ...     np.save(folder / f"t{t}.npy", np.zeros((4, 5, 6), np.uint8))
    >>> open_source(str(folder / "t*.npy")).shape
    (3, 4, 5, 6)
    >>> open_source(folder / "missing.tif")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: input '.../missing.tif' does not exist: check the path
    """
    opts = dict(dataset=dataset, key=key, shape=shape, dtype=dtype, byte_order=byte_order,
                offset=offset)
    if isinstance(source, np.ndarray):
        return _from_array(source, "in-memory array")
    if isinstance(source, (list, tuple)):
        return _series([Path(s) for s in source], opts)
    text = os.fspath(source)
    if any(ch in text for ch in "*?[") and not Path(text).exists():
        matches = sorted(globmod.glob(text), key=natural_key)
        if not matches:
            raise InputError(f"pattern {text!r} matches no files")
        return _series([Path(m) for m in matches], opts)
    return _open_path(text, opts)


def _series(paths: list[Path], opts: dict[str, Any]) -> SeriesSource:
    if not paths:
        raise InputError("a 4D series needs at least one volume")
    steps = [_open_path(os.fspath(p), opts) for p in paths]
    for p, s in zip(paths, steps):
        if s.shape != steps[0].shape or s.dtype != steps[0].dtype:
            raise InputError(f"time step {p.name} has shape {s.shape} {s.dtype} but the first "
                             f"has {steps[0].shape} {steps[0].dtype}: all steps must match")
    return SeriesSource(steps)  # type: ignore[arg-type]


def _open_path(text: str, opts: dict[str, Any]) -> VolumeSource:
    try:
        return _open_path_unchecked(text, opts)
    except InputError:
        raise
    except Exception as exc:  # each format's library raises its own types on damaged files
        raise InputError(f"cannot read {text!r}: corrupt, truncated or not the format its "
                         f"name says ({type(exc).__name__})") from exc


def _open_path_unchecked(text: str, opts: dict[str, Any]) -> VolumeSource:
    dataset = opts["dataset"]
    h5 = re.match(r"^(.*\.(?:h5|hdf5|hdf|nxs)):(/.*)$", text, flags=re.IGNORECASE)
    if h5:
        text, dataset = h5.group(1), h5.group(2)
    path = Path(text)
    if not path.exists():
        raise InputError(f"input {text!r} does not exist: check the path")
    suffix = path.suffix.lower()
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zarray").exists() or (path / ".zgroup").exists():
            return read_zarr(path)
        return read_slice_folder(path)
    if suffix in TIFF_SUFFIXES:
        return read_tiff_stack(path)
    if suffix in {".h5", ".hdf5", ".hdf", ".nxs"}:
        return read_hdf5(path, dataset)
    if suffix in {".npy", ".npz"}:
        return read_numpy(path, opts["key"])
    if suffix == ".vti":
        return read_vti(path)
    if suffix in {".raw", ".bin", ".dat", ".vol"} or opts["shape"] is not None:
        return read_raw(path, opts["shape"], opts["dtype"], opts["byte_order"], opts["offset"])
    raise InputError(f"unknown file type {suffix or '(none)'!r} for {text!r}: use a slice folder, "
                     ".tif/.tiff, .h5, .raw (with --shape/--dtype), .npy/.npz, .vti or a Zarr store")
