"""Exports for Fiji, ParaView and Dragonfly: TIFF and VTI volumes, PLY/STL/VTP bubble meshes.

Volumes stream one chunk row of planes at a time (never the whole volume in memory); meshes
are built bubble by bubble on their bounding-box crops, each bubble's triangles carrying its
id (and, for VTP, its row of the bubble table as cell data).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..common.atomic import atomic_file
from ..common.options import check_choice
from ..errors import InputError
from ..io.volume import as_volume
from ..measure import regionprops
from .scene import _pyvista, surface

Format = Literal["tiff", "vti", "ply", "stl", "vtp"]
SUFFIXES = {".tif": "tiff", ".tiff": "tiff", ".vti": "vti", ".ply": "ply", ".stl": "stl",
            ".vtp": "vtp"}
_VTK_NAMES = {"u1": "UInt8", "i1": "Int8", "u2": "UInt16", "i2": "Int16", "u4": "UInt32",
              "i4": "Int32", "u8": "UInt64", "i8": "Int64", "f4": "Float32", "f8": "Float64"}


def export(store: Any, out: str | os.PathLike, *, format: Format | None = None,
           table: Any = None, overwrite: bool = False) -> Path:
    """Write a volume as TIFF or VTI, or the bubbles of a label volume as one mesh.

    Parameters
    ----------
    store : path, xarray, dask or numpy array, shape (z, y, x)
        Any volume (classes, labels, grey levels) for ``tiff``/``vti``; bubble labels for
        the meshes.
    out : path
        The file; its suffix names the format unless ``format`` is given.
    format : {"tiff", "vti", "ply", "stl", "vtp"}, optional
        TIFF (ImageJ hyperstack with micrometre spacing; BigTIFF above 4 GiB), VTK image data
        (x, y, z in ParaView = array axes 2, 1, 0, physical spacing), or a surface mesh of
        every bubble (marching cubes at 0.5 on each bubble's crop, in micrometres).
    table : xarray.Dataset, path of a results store or bubbles.nc, optional
        Per-bubble properties attached to the VTP cells (numeric columns of dim ``bubble``).
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> import tempfile, pathlib, numpy as np, tifffile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> labels = np.zeros((6, 8, 8), np.uint16); labels[1:4, 1:4, 1:4] = 1
    >>> tifffile.imread(export(labels, folder / "l.tif")).shape
    (6, 8, 8)
    >>> import pyvista as pv
    >>> mesh = pv.read(export(labels, folder / "b.vtp"))
    >>> mesh.n_cells > 0, sorted(set(mesh.cell_data["bubble"].tolist()))
    (True, [1])
    """
    out = Path(out)
    fmt = format or SUFFIXES.get(out.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format of {out.name!r}: use a .tif, .vti, .ply, "
                         ".stl or .vtp name, or format=")
    check_choice(fmt, Format, "format")
    vol = as_volume(store, what="export's volume")
    spacing = vol.spacing(None)
    with atomic_file(out, overwrite=overwrite) as part:
        if fmt == "tiff":
            _write_tiff(vol.data, spacing, part)
        elif fmt == "vti":
            _write_vti(vol.data, spacing, part)
        else:
            _meshes(vol.data, spacing, _table(table)).save(str(part.with_suffix(f".{fmt}")))
            part.with_suffix(f".{fmt}").replace(part)
    return out


def _planes(data):
    """The volume as numpy slabs of whole planes (a chunk row each), in order."""
    step = int(data.chunks[0][0]) if hasattr(data, "chunks") else 16
    for z0 in range(0, data.shape[0], step):
        block = data[z0:z0 + step]
        yield np.asarray(block.compute() if hasattr(block, "compute") else block)


def _write_tiff(data, spacing, path: Path) -> None:
    import tifffile

    z, y, x = (float(v) for v in spacing)
    big = data.nbytes >= 2**32 - 2**25
    kwargs = (dict(bigtiff=True, resolution=(1e4 / x, 1e4 / y), resolutionunit="CENTIMETER",
                   description=f'{{"voxel_size_um": [{z}, {y}, {x}]}}') if big else
              dict(imagej=True, resolution=(1 / x, 1 / y),
                   metadata={"spacing": z, "unit": "um", "axes": "ZYX"}))
    pages = (plane for slab in _planes(data) for plane in slab)
    tifffile.imwrite(path, pages, shape=data.shape, dtype=data.dtype, photometric="minisblack",
                     **kwargs)


def _write_vti(data, spacing, path: Path) -> None:
    """VTK XML image data, raw appended, written plane slab by plane slab."""
    dtype = np.dtype(data.dtype).newbyteorder("<")
    if dtype.str[1:] not in _VTK_NAMES:
        raise InputError(f"dtype {data.dtype} has no VTK equivalent: cast the volume first")
    nz, ny, nx = data.shape
    sz, sy, sx = spacing
    head = (f'<?xml version="1.0"?>\n<VTKFile type="ImageData" version="1.0" '
            f'byte_order="LittleEndian" header_type="UInt64">\n'
            f'<ImageData WholeExtent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}" Origin="0 0 0" '
            f'Spacing="{sx} {sy} {sz}" redoxflow_axes="xyz">\n'
            f'<Piece Extent="0 {nx - 1} 0 {ny - 1} 0 {nz - 1}"><PointData Scalars="values">'
            f'<DataArray type="{_VTK_NAMES[dtype.str[1:]]}" Name="values" format="appended" '
            f'offset="0"/></PointData><CellData/></Piece>\n</ImageData>\n'
            f'<AppendedData encoding="raw">\n_')
    with open(path, "wb") as f:
        f.write(head.encode())
        f.write(np.uint64(data.size * dtype.itemsize).tobytes())
        for slab in _planes(data):
            f.write(np.ascontiguousarray(slab, dtype=dtype).tobytes())
        f.write(b"\n</AppendedData>\n</VTKFile>\n")


def _table(table: Any):
    if table is None or hasattr(table, "data_vars"):
        return table
    import xarray as xr

    path = Path(table)
    if path.suffix == ".zarr":
        return xr.open_datatree(path, engine="zarr", consolidated=False)["bubbles"].to_dataset()
    return xr.load_dataset(path)


def _meshes(labels, spacing, table):
    """One PolyData of every bubble's surface, cell data ``bubble`` (+ the table's columns)."""
    pv = _pyvista()
    props = regionprops(labels, spacing=spacing, properties=["bbox"])
    ids = props["bubble"].values
    lo, hi = props["bbox_min"].values, props["bbox_max"].values
    parts = []
    for i, bubble in enumerate(ids):
        crop = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo[i], hi[i]))
        block = labels[crop]
        mask = np.asarray(block.compute() if hasattr(block, "compute") else block) == bubble
        mesh = surface(mask, spacing)
        mesh.translate([float(lo[i][2 - a]) * spacing[2 - a] for a in range(3)], inplace=True)
        mesh.cell_data["bubble"] = np.full(mesh.n_cells, int(bubble), np.int64)
        parts.append(mesh)
    if not parts:
        raise InputError("the label volume holds no bubble: nothing to mesh")
    merged = pv.merge(parts) if len(parts) > 1 else parts[0]
    if table is not None:
        rows = {int(b): k for k, b in enumerate(table["bubble"].values)}
        where = np.array([rows.get(int(b), -1) for b in merged.cell_data["bubble"]])
        for name, var in table.data_vars.items():
            if var.dims == ("bubble",) and var.dtype.kind in "biuf":
                values = np.where(where >= 0, var.values[np.maximum(where, 0)], np.nan)
                merged.cell_data[name] = values.astype(float)
    return merged
