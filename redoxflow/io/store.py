"""OME-Zarr 0.5 (Zarr v3) volume store: streaming ingest, pyramid, metadata, ``open_volume``.

A store is a Zarr v3 group ``NAME.zarr/`` with arrays ``0, 1, ...`` (the pyramid, each level
half the previous along z, y, x), OME ``multiscales`` metadata (voxel size in micrometres) and a
``redoxflow`` attribute block (kind, source, config, version). Stores are written under a
temporary sibling name and renamed into place when complete, so a reader never sees a
half-written store under the final name.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..common.atomic import atomic_store
from ..common.options import Kind, check_choice
from ..common.units import normalize_voxel_size
from ..config import Config
from ..errors import InputError
from .metadata import SPATIAL, image_label, ome_metadata
from .readers import (  # noqa: F401  (the checked Zarr openers are part of this API)
    FILL_DECLARATION,
    CheckedArray,
    SeriesSource,
    VolumeSource,
    check_chunks,
    chunk_stats,
    level0_stats,
    open_ome_array,
    open_source,
    open_store_array,
    stats_digest,
)

MIN_LEVEL_SIZE = 32
#: our arrays store every chunk, even one equal to the fill value: an absent chunk file is
#: then damage, which :func:`open_volume` reports instead of reading it as zeros
EVERY_CHUNK = {"write_empty_chunks": True}


# --- small pure helpers ------------------------------------------------------------------

def choose_chunks(shape: Sequence[int], itemsize: int, target_mib: float = 96.0,
                  chunks: Sequence[int] | None = None) -> tuple[int, ...]:
    """Chunk shape for slice-block work: whole (y, x) planes, as many z-slices as fit the target.

    Planes too large for 16 slices are split in y and x. Requested chunks are clamped to the
    shape (a chunk larger than the volume is not an error). A leading time axis gets chunk 1.

    Parameters
    ----------
    shape : (z, y, x) or (t, z, y, x) int
        Array shape.
    itemsize : int
        Bytes per voxel.
    target_mib : float
        Target chunk size in MiB.
    chunks : (z, y, x) int, optional
        Requested chunk shape (only clamped to ``shape``).

    Returns
    -------
    tuple of int
        One chunk size per axis of ``shape``.

    Examples
    --------
    >>> choose_chunks((512, 2048, 2048), 2)
    (24, 1024, 2048)
    >>> choose_chunks((8, 16, 16), 1, chunks=(4, 100, 100))
    (4, 16, 16)
    >>> choose_chunks((3, 8, 16, 16), 1)
    (1, 8, 16, 16)
    """
    spatial = tuple(int(s) for s in shape[-3:])
    lead = (1,) * (len(shape) - 3)
    if chunks is not None:
        chunks = tuple(int(c) for c in chunks)
        if len(chunks) == len(shape) - 3 + 3 and len(shape) == 4:
            chunks = chunks[1:]
        if len(chunks) != 3 or min(chunks) <= 0:
            raise InputError(f"chunks {chunks} must be three positive integers (z, y, x)")
        return lead + tuple(min(c, s) for c, s in zip(chunks, spatial))
    target = max(target_mib, 0.001) * 2**20 / itemsize
    cy, cx = spatial[1], spatial[2]
    while cy * cx * min(16, spatial[0]) > target and max(cy, cx) > 64:
        if cy >= cx:
            cy = -(-cy // 2)
        else:
            cx = -(-cx // 2)
    cz = int(max(1, min(spatial[0], target // (cy * cx))))
    return lead + (cz, cy, cx)


def pyramid_shapes(shape: Sequence[int], levels: int | None = None) -> list[tuple[int, ...]]:
    """Shapes of the pyramid levels (each halves z, y, x; stop before a side drops below 32).

    Parameters
    ----------
    shape : (z, y, x) or (t, z, y, x) int
        Level-0 shape (a leading time axis is kept).
    levels : int, optional
        At most this many levels; default: until a side would drop below 32, at most 5.

    Returns
    -------
    list of tuple of int
        Level 0 first.

    Examples
    --------
    >>> pyramid_shapes((256, 256, 256))
    [(256, 256, 256), (128, 128, 128), (64, 64, 64), (32, 32, 32)]
    >>> pyramid_shapes((40, 64, 64))
    [(40, 64, 64)]
    >>> pyramid_shapes((2, 512, 512, 512), 2)
    [(2, 512, 512, 512), (2, 256, 256, 256)]
    """
    shapes = [tuple(int(s) for s in shape)]
    while levels is None or len(shapes) < levels:
        nxt = shapes[-1][:-3] + tuple(s // 2 for s in shapes[-1][-3:])
        if min(nxt[-3:]) < MIN_LEVEL_SIZE or (levels is None and len(shapes) >= 5):
            break
        shapes.append(nxt)
    return shapes


def downsample2(block: np.ndarray, kind: str) -> np.ndarray:
    """Halve the last three axes: mean for intensities, nearest (stride) for classes/labels.

    Odd sizes drop their last slice; integer means are rounded to the nearest integer.

    Parameters
    ----------
    block : ndarray, shape (..., z, y, x)
        A block of whole 2x2x2 cells.
    kind : {"intensity", "classes", "labels"}
        ``intensity`` averages each 2x2x2 cell; anything else keeps its first voxel.

    Returns
    -------
    ndarray, shape (..., z // 2, y // 2, x // 2)
        Same dtype as ``block``.

    Examples
    --------
    >>> import numpy as np
    >>> b = np.arange(8, dtype=np.uint8).reshape(2, 2, 2)
    >>> downsample2(b, "intensity").tolist(), downsample2(b, "classes").tolist()
    ([[[4]]], [[[0]]])
    """
    nz, ny, nx = (s // 2 for s in block.shape[-3:])
    if kind != "intensity":
        return block[..., : 2 * nz : 2, : 2 * ny : 2, : 2 * nx : 2]
    b = block[..., : 2 * nz, : 2 * ny, : 2 * nx].astype(np.float32)
    b = b.reshape(*block.shape[:-3], nz, 2, ny, 2, nx, 2).mean(axis=(-5, -3, -1))
    if np.issubdtype(block.dtype, np.integer):
        b = np.rint(b)
    return b.astype(block.dtype)


# --- writing -----------------------------------------------------------------------------

def _codecs(level: int, kind: str = "intensity"):
    """Chunk compressors: zstd at ``level``, none for level 0. Label stores use blosc-lz4
    without shuffle instead: on bubble labels it writes uint32 chunks about 1.5x as fast as
    zstd-1 (the labeling stage's largest cost after cc3d) at 80x compression instead of 280x
    (``benchmarks/bench_label.py --store``, results/label_store.md)."""
    from zarr.codecs import BloscCodec, ZstdCodec

    if level <= 0:
        return None
    if kind == "labels":
        return [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")]
    return [ZstdCodec(level=level)]


def detect_kind(sample: np.ndarray) -> str:
    """``"classes"`` for integer data whose values are all below 16, else ``"intensity"``.

    Parameters
    ----------
    sample : ndarray
        A sample of the volume (e.g. its first chunk row of slices).

    Returns
    -------
    {"classes", "intensity"}

    Examples
    --------
    >>> import numpy as np
    >>> detect_kind(np.array([0, 1, 3], np.uint8)), detect_kind(np.array([0, 200], np.uint8))
    ('classes', 'intensity')
    >>> detect_kind(np.zeros(3, np.float32))
    'intensity'
    """
    if np.issubdtype(sample.dtype, np.integer) and sample.size and int(sample.max()) < 16:
        return "classes"
    return "intensity"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="slice", disable=not enabled, leave=False)


def ingest(
    source: Any,
    store: str | os.PathLike,
    *,
    voxel_size: Any = None,
    chunks: Sequence[int] | None = None,
    kind: Kind = "auto",
    overwrite: bool = False,
    levels: int | None = None,
    config: Any = None,
    progress: bool = True,
    **reader_options: Any,
):
    """Stream a volume (or 4D series) into an OME-Zarr 0.5 store with a multiscale pyramid.

    Memory stays bounded by a few chunks: slabs of whole chunk rows are read, written and
    downsampled one at a time.

    Parameters
    ----------
    source : path, list of paths, glob, numpy, dask or xarray array, shape (z, y, x) or (t, z, y, x)
        Any input :func:`redoxflow.io.open_source` reads, or an array (a 4D array or a list
        of volumes gives a time series).
    store : path
        Output ``.zarr`` directory; refused if it exists unless ``overwrite=True``.
    voxel_size : float or (z, y, x), optional
        Micrometres. Defaults to the size recorded in the source (TIFF resolution with an
        ImageJ unit or centimetres, HDF5 ``voxel_size``/``element_size_um`` attributes, VTI
        ``Spacing``, OME-Zarr scale); refused when there is none (pass 1 to work in voxels).
    chunks : (z, y, x), optional
        Chunk shape; default whole planes and about ``config.io.chunk_mib`` MiB per chunk.
        Clamped to the volume shape.
    kind : {"auto", "intensity", "classes", "labels"}
        Pyramid downsampling: mean for intensity, nearest for classes and labels. ``auto``
        picks ``classes`` for integer volumes with values below 16.
    overwrite : bool
        Replace an existing store (only if it is a Zarr store).
    levels : int, optional
        Number of pyramid levels (default: until a side would drop below 32, at most 5).
    config : redoxflow.config.Config, optional
        Store settings (``io`` section), stored in the attrs; default: the built-in defaults
        (``Config()``; the environment is not read).
    progress : bool
        Show a progress bar of slices written.
    **reader_options
        ``dataset=``, ``key=``, ``shape=``, ``dtype=``, ``byte_order=``, ``offset=``.

    Returns
    -------
    xarray.DataArray
        The written store, opened lazily (see :func:`open_volume`).

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "scan.zarr"
    >>> vol = ingest(np.zeros((8, 16, 16), np.uint16), store, voxel_size=(2.0, 1.0, 1.0),
    ...              progress=False)
    >>> vol.dims, vol.shape, vol.attrs["voxel_size"], vol.attrs["kind"]
    (('z', 'y', 'x'), (8, 16, 16), (2.0, 1.0, 1.0), 'classes')
    >>> ingest(np.zeros((8, 16, 16), np.uint16), store, voxel_size=1.0,
    ...        progress=False)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.StoreExistsError: output '.../scan.zarr' already exists: ...
    """
    cfg = config or Config()
    check_choice(kind, Kind, "kind")
    src = _as_source(source, reader_options)
    vsize = normalize_voxel_size(voxel_size) if voxel_size is not None else src.voxel_size
    if vsize is None:  # every physical result would silently be in voxels
        what = getattr(src, "description", "the series")
        raise InputError(f"the voxel size of {what} is unknown (no TIFF, HDF5, "
                         "VTI or OME metadata): pass voxel_size= (--voxel-size, or "
                         "input.voxel_size in the config) in micrometres; 1 to work in voxels")
    if isinstance(source, (str, os.PathLike)):
        check_not_inside(store, source)
    steps = src.steps if isinstance(src, SeriesSource) else [src]
    shape, dtype = src.shape, np.dtype(src.dtype)
    chunk_shape = choose_chunks(shape, dtype.itemsize, cfg.io.chunk_mib, chunks)
    if kind == "auto":
        kind = detect_kind(steps[0].read(0, min(chunk_shape[-3], shape[-3])))
    shapes = pyramid_shapes(shape, levels if levels is not None else cfg.io.pyramid_levels)
    with atomic_store(store, overwrite=overwrite) as tmp:
        group, arrays = _create_levels(tmp, shapes, chunk_shape, dtype, cfg)
        total = len(steps) * shape[-3]
        with _progress(total, f"ingest {Path(store).name}", progress) as bar:
            for t, step in enumerate(steps):
                index = (t,) if len(shape) == 4 else ()
                cz = chunk_shape[-3]
                for z0 in range(0, shape[-3], cz):
                    z1 = min(z0 + cz, shape[-3])
                    arrays[0][index + (slice(z0, z1),)] = step.read(z0, z1)
                    bar.update(z1 - z0)
                for level in range(1, len(shapes)):
                    _downsample_level(arrays[level - 1], arrays[level], index, kind)
        _write_attrs(group, store, shape, vsize, len(shapes), kind, src.description, cfg, {})
    return open_volume(store)


def _create_levels(tmp: Path, shapes, chunk_shape, dtype, cfg, kind: str = "intensity"):
    """Create the Zarr group and one empty array per pyramid level."""
    import zarr

    group = zarr.open_group(store=str(tmp), mode="w", zarr_format=3)
    dims = (["t"] if len(shapes[0]) == 4 else []) + list(SPATIAL)
    arrays = []
    for level, lshape in enumerate(shapes):
        lchunks = chunk_shape if level == 0 else choose_chunks(lshape, dtype.itemsize,
                                                               cfg.io.chunk_mib)
        arrays.append(group.create_array(
            str(level), shape=lshape, chunks=lchunks, dtype=dtype, fill_value=0,
            compressors=_codecs(cfg.io.compression_level, kind), dimension_names=dims,
            config=EVERY_CHUNK))
    return group, arrays


def _write_attrs(group, store, shape, vsize, n_levels, kind, description, cfg, extra) -> None:
    """OME multiscales + the redoxflow block (written last: the store is then complete)."""
    ome = ome_metadata(Path(store).name, len(shape), vsize, n_levels, kind)
    if kind in ("classes", "labels"):
        ome["image-label"] = image_label(kind)
    group.attrs.update({
        "ome": ome,
        "redoxflow": {"kind": kind, "source": description, "version": __version__,
                      "config": cfg.to_dict(), "complete": True, **extra},
    })


def write_dask(
    array: Any,
    store: str | os.PathLike,
    *,
    voxel_size: Any = None,
    kind: Kind = "intensity",
    overwrite: bool = False,
    levels: int | None = None,
    attrs: dict[str, Any] | None = None,
    config: Any = None,
    progress: bool = False,
    resume_key: str | None = None,
    companions: dict[str, Any] | None = None,
    description: str = "dask array",
    block_keys: dict[tuple[int, ...], str] | None = None,
):
    """Write a dask array (z, y, x) to an OME-Zarr store with its own chunking, in parallel.

    Each dask task writes exactly its own Zarr chunk (chunks are made regular first); the
    pyramid is built afterwards from level 0. The store appears under its name only when
    complete.

    With ``resume_key`` (a string naming the input and parameters), the write is resumable:
    every finished block leaves a marker in ``.NAME.partial/``, and a rerun with the same key
    skips the marked blocks (a different key starts again).

    ``companions`` maps names to dask arrays written alongside, block by block, as
    ``NAME/0`` inside the store (e.g. probabilities ``(c, z, y, x)`` with one chunk along
    ``c`` and the same z blocks).

    Parameters
    ----------
    array : dask.array.Array, shape (z, y, x)
        The data; its largest chunk along each axis becomes the store's chunk.
    store : path
        Output ``.zarr`` directory.
    voxel_size : float or (z, y, x), optional
        Micrometres (default 1).
    kind : {"intensity", "classes", "labels"}
        Pyramid downsampling: mean for intensity, nearest for classes and labels.
    overwrite : bool
        Replace an existing store (only if it is a Zarr store).
    levels : int, optional
        Number of pyramid levels (default: ``config.io.pyramid_levels``, else automatic).
    attrs : dict, optional
        Extra keys of the store's ``redoxflow`` attr block.
    config : redoxflow.config.Config, optional
        Store settings (``io`` section); default: the built-in defaults (the environment
        is not read).
    progress : bool
        Show a progress bar of blocks written.
    resume_key : str, optional
        Make the write resumable (see above).
    companions : dict of str to dask.array.Array, optional
        Arrays written alongside (see above).
    description : str
        Recorded as the store's ``source``.
    block_keys : dict, optional
        With ``resume_key``: a key per block index (e.g. the identity of the input chunks
        the block reads); a finished block is skipped only when its marker holds the same
        key, so blocks of a changed input are written again.

    Returns
    -------
    xarray.DataArray
        The written store, opened lazily.

    Examples
    --------
    >>> import dask.array as da, numpy as np, tempfile, pathlib
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "labels.zarr"
    >>> x = da.ones((8, 16, 16), dtype=np.uint32, chunks=(4, 16, 16))
    >>> out = write_dask(x, store, voxel_size=(2, 1, 1), kind="labels")
    >>> out.data.chunksize, out.attrs["voxel_size"], out.attrs["kind"]
    ((4, 16, 16), (2.0, 1.0, 1.0), 'labels')
    >>> int(out.sum())
    2048
    """
    cfg = config or Config()
    vsize = normalize_voxel_size(voxel_size) if voxel_size is not None else (1.0, 1.0, 1.0)
    chunk_shape = tuple(max(c) for c in array.chunks)
    array = array.rechunk(chunk_shape)
    shapes = pyramid_shapes(array.shape, levels if levels is not None else cfg.io.pyramid_levels)
    with atomic_store(store, overwrite=overwrite, resume=resume_key is not None) as tmp:
        group, arrays = _open_levels(tmp, shapes, chunk_shape, np.dtype(array.dtype), cfg,
                                     resume_key, kind)
        done = tmp / ".done" if resume_key is not None else None
        extra = {name: a.rechunk(tuple(max(c) for c in a.chunks))
                 for name, a in (companions or {}).items()}
        targets = [_companion_array(tmp / name, a, cfg) for name, a in extra.items()]
        store_blocks([array, *extra.values()], [arrays[0], *targets], done, progress,
                     f"write {Path(store).name}", block_keys)
        for level in range(1, len(shapes)):  # each time step of a series on its own
            for index in np.ndindex(*array.shape[:-3]):
                _downsample_level(arrays[level - 1], arrays[level], index, kind)
        _write_attrs(group, store, array.shape, vsize, len(shapes), kind, description, cfg,
                     attrs or {})
        if done is not None:  # complete: the resume bookkeeping goes
            shutil.rmtree(done, ignore_errors=True)
            group.attrs.pop("resume_key", None)
    return open_volume(store)


def _open_levels(tmp: Path, shapes, chunk_shape, dtype, cfg, resume_key: str | None,
                 kind: str = "intensity"):
    """Reuse a partial store written with the same ``resume_key``, else create a fresh one."""
    import zarr

    if resume_key is not None and tmp.exists():
        try:
            group = zarr.open_group(store=str(tmp), mode="r+")
            # reopened arrays get zarr's default config: ask again for every chunk written
            arrays = [group[str(i)].with_config(EVERY_CHUNK) for i in range(len(shapes))]
            if (group.attrs.get("resume_key") == resume_key
                    and arrays[0].shape == tuple(shapes[0])
                    and arrays[0].chunks == tuple(chunk_shape)):
                return group, arrays
        except (KeyError, FileNotFoundError, ValueError):
            pass
        shutil.rmtree(tmp)
    group, arrays = _create_levels(tmp, shapes, chunk_shape, dtype, cfg, kind)
    if resume_key is not None:
        group.attrs["resume_key"] = resume_key
    return group, arrays


def _companion_array(path: Path, array, cfg):
    """The array ``0`` of a companion group (reused when a resumed write left it)."""
    import zarr

    group = zarr.open_group(store=str(path), mode="a", zarr_format=3)
    chunks = tuple(max(c) for c in array.chunks)
    if "0" in group and group["0"].shape == array.shape and group["0"].chunks == chunks:
        return group["0"].with_config(EVERY_CHUNK)  # (reopened: zarr's default config)
    dims = ("c", *SPATIAL) if array.ndim == 4 else SPATIAL
    return group.create_array("0", shape=array.shape, chunks=chunks, dtype=array.dtype,
                              fill_value=0, overwrite=True, dimension_names=dims,
                              compressors=_codecs(cfg.io.compression_level),
                              config=EVERY_CHUNK)


def _write_block(values, targets, regions, marker: Path | None, key: str = "") -> None:
    for value, target, region in zip(values, targets, regions):
        target[region] = value
    if marker is not None:  # after the data: an interrupted block is simply written again
        marker.write_text(key)


def _finished(marker: Path | None, key: str) -> bool:
    """A block's marker exists and names the same input (an old or other key: redo)."""
    if marker is None or not marker.is_file():
        return False
    try:
        return marker.read_text() == key
    except (OSError, UnicodeDecodeError):
        return False


def store_blocks(arrays: list, targets: list, done: Path | None, progress: bool = False,
                 desc: str = "write", block_keys: dict | None = None) -> int:
    """Store dask arrays into Zarr arrays block by block, one task per block index.

    All ``arrays`` must share the block grid of the first one along their leading spatial
    axes (e.g. classes ``(z, y, x)`` and probabilities ``(c, z, y, x)`` with one class
    chunk), and each block must cover whole chunks of its target. Blocks with a marker file
    in ``done`` are skipped, so an interrupted write resumes. On a distributed client a
    block that fails does not stop the others: they finish (and are kept), then the first
    error is raised.

    Parameters
    ----------
    arrays : list of dask.array.Array
        The data, ``(z, y, x)`` or with extra leading axes of one chunk.
    targets : list of zarr.Array
        One target per array, of the same shape.
    done : pathlib.Path or None
        Folder of the per-block markers (None: no markers, nothing skipped).
    progress : bool
        Show a progress bar.
    desc : str
        Label of the progress bar.
    block_keys : dict, optional
        Block index -> key written into its marker; a marker holding another key does not
        count as finished (default: every key is ``""``).

    Returns
    -------
    int
        The number of blocks written (skipped blocks not counted).

    Examples
    --------
    >>> import dask.array as da, numpy as np, tempfile, pathlib, zarr
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> z = zarr.create_array(store=str(root / "a.zarr"), shape=(8, 16, 16),
    ...                       chunks=(4, 16, 16), dtype="u1")
    >>> x = da.ones((8, 16, 16), np.uint8, chunks=(4, 16, 16))
    >>> store_blocks([x], [z], root / "done"), int(z[:].sum())
    (2, 2048)
    >>> store_blocks([x], [z], root / "done")  # every block has its marker
    0
    """
    import dask

    if done is not None:
        done.mkdir(parents=True, exist_ok=True)
    # unoptimised when several arrays share upstream blocks, so those are computed once
    grids = [a.to_delayed(optimize_graph=len(arrays) == 1).ravel() for a in arrays]
    offsets = [[np.cumsum((0,) + c[:-1]) for c in a.chunks] for a in arrays]
    tasks = []
    for flat, index in enumerate(np.ndindex(*arrays[0].numblocks)):
        marker = done / "-".join(map(str, index)) if done is not None else None
        key = (block_keys or {}).get(index, "")
        if _finished(marker, key):
            continue
        regions = []
        for a, off in zip(arrays, offsets):
            idx = (0,) * (a.ndim - len(index)) + index
            regions.append(tuple(slice(int(o[i]), int(o[i]) + c[i])
                                 for o, c, i in zip(off, a.chunks, idx)))
        values = [g[flat] for g in grids]
        tasks.append(dask.delayed(_write_block, pure=False)(values, targets, regions, marker,
                                                             key))
    if tasks:
        _compute_with_progress(tasks, progress, desc, finish_all=done is not None)
    return len(tasks)


def _compute_with_progress(collection, progress: bool, desc: str, finish_all: bool = False):
    """Compute on the active dask client (or threads), with a progress bar when asked.

    ``finish_all`` (a list of tasks on a distributed client): every task that can finish
    does, and the first error is raised afterwards.
    """
    import dask

    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is None or dask.config.get("scheduler", None) not in (None, "dask.distributed"):
        if not progress:
            return dask.compute(collection)[0]
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return dask.compute(collection)[0]
    from distributed import progress as dprogress
    from distributed import wait

    futures = client.compute(collection)
    if progress:
        dprogress(futures)
    if finish_all:
        wait(futures)
        errors = [f.exception() for f in futures if f.status == "error"]
        if errors:
            for f in futures:  # let the scheduler forget the failed keys: a rerun recomputes
                f.release()
            raise errors[0]
    return client.gather(futures)


def _downsample_level(src_arr, dst_arr, index: tuple[int, ...], kind: str,
                      sub_slices: int = 16) -> None:
    """Fill one pyramid level from the previous one, a chunk row of the target at a time.

    Each target chunk row is assembled from sub-slabs of ``sub_slices`` target slices, so the
    source read and the float temporaries stay a few chunks in size.
    """
    cz = dst_arr.chunks[-3]
    nz = dst_arr.shape[-3]
    for z0 in range(0, nz, cz):
        z1 = min(z0 + cz, nz)
        out = np.empty((z1 - z0, *dst_arr.shape[-2:]), dtype=dst_arr.dtype)
        for s0 in range(z0, z1, sub_slices):
            s1 = min(s0 + sub_slices, z1)
            out[s0 - z0:s1 - z0] = downsample2(src_arr[index + (slice(2 * s0, 2 * s1),)], kind)
        dst_arr[index + (slice(z0, z1),)] = out


def _as_source(source: Any, options: dict[str, Any]) -> VolumeSource | SeriesSource:
    if isinstance(source, (VolumeSource, SeriesSource)):
        return source
    if hasattr(source, "dask") or type(source).__module__.startswith("xarray"):
        arr = source.data if hasattr(source, "dims") else source
        voxel = source.attrs.get("voxel_size") if hasattr(source, "attrs") else None
        if arr.ndim == 4:
            return SeriesSource([_dask_source(arr[t], f"array step {t}", voxel)
                                 for t in range(arr.shape[0])])
        return _dask_source(arr, "dask array", voxel)
    if isinstance(source, np.ndarray) and source.ndim == 4:
        return SeriesSource([open_source(source[t]) for t in range(source.shape[0])])  # type: ignore[misc]
    return open_source(source, **options)


def _dask_source(arr: Any, description: str, voxel) -> VolumeSource:
    if arr.ndim != 3:
        raise InputError(f"{description} has shape {arr.shape}, expected a 3D volume (z, y, x)")

    def reader(z0: int, z1: int) -> np.ndarray:
        slab = arr[z0:z1]
        return np.asarray(slab.compute() if hasattr(slab, "compute") else slab)

    return VolumeSource(tuple(arr.shape), np.dtype(arr.dtype), reader, description,
                        tuple(voxel) if voxel is not None else None)


def check_not_inside(out: str | os.PathLike, source: str | os.PathLike,
                     what: str = "output") -> None:
    """Refuse an output that is the input, or lies inside it (links and ``..`` resolved).

    Parameters
    ----------
    out, source : path
        The output and the input path.
    what : str
        What the caller calls the output, for the message.

    Examples
    --------
    >>> check_not_inside("/data/out.zarr", "/data/in.zarr")
    >>> check_not_inside("/data/x/../in.zarr", "/data/in.zarr")
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: output '/data/x/../in.zarr' is the input '/data/in.zarr' itself: choose another output path
    """
    out_r, src_r = Path(out).resolve(), Path(source).resolve()
    if out_r == src_r:
        raise InputError(f"{what} {str(out)!r} is the input {str(source)!r} itself: choose "
                         "another output path")
    if src_r in out_r.parents:
        raise InputError(f"{what} {str(out)!r} lies inside the input {str(source)!r} and "
                         "would add to it: choose an output path outside the input")


# --- reading -----------------------------------------------------------------------------

def open_volume(store: str | os.PathLike, *, level: int = 0):
    """Open a redoxflow / OME-Zarr store as a lazy, dask-backed ``xarray.DataArray``.

    Parameters
    ----------
    store : path
        An OME-Zarr group written by :func:`ingest` (or any OME-Zarr 0.5 image).
    level : int
        Pyramid level (0 = full resolution).

    Returns
    -------
    xarray.DataArray
        dims ``(z, y, x)`` or ``(t, z, y, x)``; coords in micrometres (voxel centres);
        attrs ``voxel_size`` (of this level), ``unit``, ``kind``, ``level``, ``n_levels``,
        ``source``, ``config``, ``store``.

    Examples
    --------
    >>> import numpy as np, tempfile, pathlib
    >>> store = pathlib.Path(tempfile.mkdtemp()) / "scan.zarr"
    >>> _ = ingest(np.zeros((64, 64, 64), np.float32), store, voxel_size=2.0, progress=False)
    >>> vol = open_volume(store, level=1)
    >>> vol.shape, vol.attrs["voxel_size"], vol.attrs["n_levels"]
    ((32, 32, 32), (4.0, 4.0, 4.0), 2)
    >>> float(vol["x"][0])  # the centre of the first level-1 voxel
    1.0
    """
    import xarray as xr

    path = Path(store)
    data, scale, shift, meta = open_ome_array(path, level)
    rf = meta["redoxflow"]
    dims = ("t", *SPATIAL) if data.ndim == 4 else SPATIAL
    coords = {d: shift[i] + scale[i] * np.arange(data.shape[-3 + i])
              for i, d in enumerate(SPATIAL)}
    if data.ndim == 4:
        coords["t"] = np.arange(data.shape[0])
    attrs = {"voxel_size": tuple(scale), "unit": "micrometer",
             "kind": rf.get("kind", "intensity"), "level": level,
             "n_levels": len(meta["datasets"]), "source": rf.get("source", ""),
             "config": rf.get("config", {}), "store": str(path.absolute())}
    out = xr.DataArray(data, dims=dims, coords=coords, attrs=attrs, name=path.stem)
    for d in SPATIAL:
        out[d].attrs["units"] = "micrometer"
    return out
