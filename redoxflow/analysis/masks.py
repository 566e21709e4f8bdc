"""The class volume's first two passes and the lazy masks of the VRFB analysis.

1. :func:`row_maps`: per image row the first/last membrane voxel along x and the membrane
   band, per (z, x) line the gasket bounds, the class counts and the input checksum;
2. :func:`masks`: half-cells, cell region, cleaned bubbles, electrolyte and walls as lazy dask
   expressions of the class volume and those maps; :func:`counts_and_density` counts and
   projects them in one pass.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..common.options import NegativeSide, check_choice
from ..common.provenance import volume_checksum
from ..errors import InputError
from ..io.metadata import CLASS_NAMES
from ..io.volume import as_volume
from ..labeling import remove_z_isolated
from . import separation as sep
from .passes import (
    CELL,
    HIGH_SIDE,
    LOW_SIDE,
    N_QUANTITIES,
    OUT_OF_RANGE,
    UNMASKED,
    block_region_counts,
    block_row_maps,
)

CLASS_IDS = CLASS_NAMES
HALF_NAMES = ["outside", "negative", "membrane", "positive"]


def class_volume(classes: Any, spacing: Any = None):
    """(dask array, spacing, description) of a class volume from any supported input.

    Parameters
    ----------
    classes : numpy, dask, xarray.DataArray or store path, shape (z, y, x) or (t, z, y, x)
        Integer class ids.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).

    Returns
    -------
    arr : dask.array.Array
        The classes, lazily.
    spacing : (float, float, float)
        (z, y, x) micrometres.
    description : str
        The store's path, or ``"array"``.

    Examples
    --------
    >>> import numpy as np
    >>> arr, sp, what = class_volume(np.zeros((4, 4, 4), np.uint8), 2.0)
    >>> arr.shape, sp, what
    ((4, 4, 4), (2.0, 2.0, 2.0), 'array')
    """
    vol = as_volume(classes, what="class volume", ndim=(3, 4))
    if np.dtype(vol.data.dtype).kind not in "iu":
        raise InputError(f"class volume has dtype {vol.data.dtype}: expected integer class ids "
                         "(0 electrolyte, 1 bubble, 2 membrane, 3 gasket)")
    description = vol.attrs.get("store", "array")
    return vol.data, vol.spacing(spacing), description


def row_maps(arr) -> dict[str, Any]:
    """Pass 1: class counts, the volume's checksum, the membrane extent and band of every
    (z, y) row (filled where missing) and the gasket bounds of every (z, x) line.

    One dask computation over the class volume.

    Parameters
    ----------
    arr : dask.array.Array, shape (z, y, x)
        Integer class ids.

    Returns
    -------
    dict
        ``counts`` (voxels per class id, at least 6), ``checksum`` (hex digest),
        ``first``/``last``/``count``/``xsum`` (membrane voxels per (z, y) row: first and
        last x, number, sum of x), ``present`` (bool (z, y): the row has membrane),
        ``band_low``/``band_high`` (float (z, y): the membrane band, filled from the nearest
        row where missing) and ``gasket_low``/``gasket_high`` ((z, x): the inner gasket
        faces along y, -1 / y where there is none).

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> arr, spacing, _ = class_volume(v)
    >>> maps = row_maps(arr)
    >>> maps["counts"].tolist(), bool(maps["present"].all())
    ([1893, 27, 128, 0, 0, 0], True)
    >>> float(maps["band_low"][0, 0]), float(maps["band_high"][0, 0])
    (7.5, 8.5)
    """
    import dask

    nz, ny, nx = arr.shape
    tasks = [dask.delayed(block_row_maps)(block, y0, x0, ny, nx)
             for block, (_, y0, x0) in _blocks(arr)]
    parts, checksum = dask.compute(tasks, volume_checksum(arr))
    out = {"counts": sum(p["counts"] for p in parts), "checksum": checksum,
           "first": np.full((nz, ny), nx, np.int32), "last": np.full((nz, ny), -1, np.int32),
           "count": np.zeros((nz, ny), np.int32), "xsum": np.zeros((nz, ny), np.int64),
           "gasket_low": np.full((nz, nx), -1, np.int32),
           "gasket_high": np.full((nz, nx), ny, np.int32)}
    for p, (_, (z0, y0, x0)) in zip(parts, _blocks(arr)):
        bz, by = p["first"].shape
        bx = p["gasket_low"].shape[1]
        rows, lines = np.s_[z0:z0 + bz, y0:y0 + by], np.s_[z0:z0 + bz, x0:x0 + bx]
        np.minimum(out["first"][rows], p["first"], out=out["first"][rows])
        np.maximum(out["last"][rows], p["last"], out=out["last"][rows])
        out["count"][rows] += p["count"]
        out["xsum"][rows] += p["xsum"]
        np.maximum(out["gasket_low"][lines], p["gasket_low"], out=out["gasket_low"][lines])
        np.minimum(out["gasket_high"][lines], p["gasket_high"], out=out["gasket_high"][lines])
    if out["counts"][OUT_OF_RANGE]:
        lo, hi = dask.compute(arr.min(), arr.max())
        raise InputError(f"class volume holds values from {lo} to {hi}: class ids must be 0 "
                         "electrolyte, 1 bubble, 2 membrane, 3 gasket (5 a removed half)")
    out["counts"] = np.trim_zeros(out["counts"][:OUT_OF_RANGE], "b")
    out["counts"] = np.pad(out["counts"], (0, max(0, 6 - len(out["counts"]))))
    out["present"] = out["last"] >= 0
    low, high = sep.membrane_band(out["xsum"], out["count"])
    out["band_low"], out["band_high"] = sep.fill_missing(low, high, out["present"])
    return out


def _blocks(arr, trimmed=None):
    """(delayed block, global (z, y, x) offset) of every chunk of a dask array (offsets
    of ``trimmed``'s chunks when given: ``arr`` is it with a halo)."""
    starts = [np.concatenate([[0], np.cumsum(c)[:-1]]).astype(int)
              for c in (arr if trimmed is None else trimmed).chunks]
    for idx, block in np.ndenumerate(arr.to_delayed()):
        yield block, tuple(int(starts[a][i]) for a, i in enumerate(idx))


def _rowmap(m: np.ndarray, arr):
    import dask.array as da

    return da.from_array(m, chunks=arr.chunks[:2])[:, :, None]


def _linemap(m: np.ndarray, arr):
    import dask.array as da

    return da.from_array(m, chunks=(arr.chunks[0], arr.chunks[2]))[:, None, :]


def masks(arr, maps, compat, negative, clean):
    """Lazy boolean masks: regions (name -> mask), bubbles, electrolyte, walls.

    Parameters
    ----------
    arr : dask.array.Array, shape (z, y, x)
        Integer class ids.
    maps : dict
        The row maps of :func:`row_maps`.
    compat : {"utile"} or None
        The reference's row-wise cuts (only the negative region, no gaskets), or the
        membrane band and the gaskets.
    negative : {"low", "high"}
        Which half along x is the negative electrode.
    clean : bool
        Drop bubble voxels without a bubble voxel directly above or below (z +- 1).

    Returns
    -------
    dict
        ``regions`` (name -> bool dask array: ``cell``, ``negative``, ``positive``; compat:
        ``negative``), ``bubbles``, ``electrolyte``, ``membrane``, ``gasket`` (None in
        compat mode); all of shape (z, y, x) (a region may broadcast along an axis).

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> arr, spacing, _ = class_volume(v)
    >>> maps = row_maps(arr)
    >>> lazy = masks(arr, maps, None, "high", True)
    >>> sorted(lazy["regions"]), int(lazy["bubbles"].sum())
    (['cell', 'negative', 'positive'], 27)
    """
    import dask.array as da

    nz, ny, nx = arr.shape
    xs = da.arange(nx, chunks=arr.chunks[2], dtype=np.int32)[None, None, :]
    bubble = arr == 1
    if compat:
        right, left = sep.utile_cuts(maps["first"], maps["last"], maps["present"])
        half = xs >= _rowmap(right, arr) if negative == "high" else xs < _rowmap(left, arr)
        bubble = bubble & half
        cleaned = remove_z_isolated(bubble) if clean else bubble
        electrolyte = ((arr == 0) & half) | (bubble & ~cleaned)
        return {"regions": {"negative": half}, "bubbles": cleaned, "electrolyte": electrolyte,
                "membrane": (arr == 2) & half, "gasket": None}
    ys = da.arange(ny, chunks=arr.chunks[1], dtype=np.int32)[None, :, None]
    inside = (ys > _linemap(maps["gasket_low"], arr)) & (ys < _linemap(maps["gasket_high"], arr))
    cell = inside & (arr != 3) & (arr != 5)
    cleaned = (remove_z_isolated(bubble) if clean else bubble) & cell
    electrolyte = ((arr == 0) | (arr == 1)) & cell & ~cleaned
    regions = {"cell": cell}
    if maps["present"].any():
        low = xs < _rowmap(maps["band_low"], arr)
        high = xs > _rowmap(maps["band_high"], arr)
        regions["negative"], regions["positive"] = (high, low) if negative == "high" else (low, high)
    return {"regions": regions, "bubbles": cleaned, "electrolyte": electrolyte,
            "membrane": arr == 2, "gasket": arr == 3}


def counts_and_density(arr, maps, compat, negative, clean):
    """Pass 2: voxel counts and projections per region, and the unmasked class-1 projections.

    One compiled pass per block (:func:`~.passes.block_region_counts`) counting what the
    lazy masks of :func:`masks` define.

    Parameters
    ----------
    arr : dask.array.Array, shape (z, y, x)
        Integer class ids.
    maps : dict
        The row maps of :func:`row_maps`.
    compat, negative, clean
        As for :func:`masks`.

    Returns
    -------
    raw : list of 3 ndarrays, shapes (y, x), (z, x), (z, y)
        Class-1 voxels per column along z, y and x.
    counts : dict
        Per region of :func:`masks`: ``bubble`` and ``electrolyte`` voxel counts, and the
        ``density`` (bubble) and ``electrode`` (bubble or electrolyte) projections along z,
        y and x.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> arr, spacing, _ = class_volume(v)
    >>> raw, counts = counts_and_density(arr, row_maps(arr), None, "high", True)
    >>> [r.shape for r in raw]
    [(16, 16), (8, 16), (8, 16)]
    >>> int(counts["negative"]["bubble"]), int(counts["negative"]["electrolyte"])
    (27, 869)
    """
    import dask
    import dask.array as da

    nz, ny, nx = arr.shape
    low, high, g_low, g_high, clean_side, regions = _region_rules(maps, (ny, nx), compat,
                                                                  negative)
    rules = dask.delayed((low, high, g_low, g_high), pure=True)
    halo = da.overlap.overlap(arr, depth={0: 1, 1: 0, 2: 0}, boundary=0)
    parts = [dask.delayed(_region_block, nout=3)(block, (z0, y0, x0), nz, rules, clean,
                                                 clean_side)
             for block, (z0, y0, x0) in _blocks(halo, trimmed=arr)]
    # the z projections (a (y, x) tile per block) are summed pairwise per tile as they come
    tiles: dict = {}
    for p, (_, (_, y0, x0)) in zip(parts, _blocks(arr)):
        tiles.setdefault((y0, x0), []).append(p[0])
    pz = dask.delayed(_place)({off: _pairwise_sum(items) for off, items in tiles.items()},
                              (N_QUANTITIES, ny, nx))
    (pz, rest) = dask.compute(pz, [(p[1], p[2]) for p in parts])
    py = np.zeros((N_QUANTITIES, nz, nx), np.int64)
    px = np.zeros((N_QUANTITIES, nz, ny), np.int64)
    for (bpy, bpx), (_, (z0, y0, x0)) in zip(rest, _blocks(arr)):
        bz, bx, by = bpy.shape[1], bpy.shape[2], bpx.shape[2]
        py[:, z0:z0 + bz, x0:x0 + bx] += bpy
        px[:, z0:z0 + bz, y0:y0 + by] += bpx
    projections = [pz, py, px]
    counts = {name: {"bubble": pz[q].sum(), "electrolyte": pz[q + 1].sum() - pz[q].sum(),
                     "density": [p[q] for p in projections],
                     "electrode": [p[q + 1] for p in projections]}
              for name, q in regions.items()}
    return [p[UNMASKED] for p in projections], counts


def _pairwise_sum(items: list):
    """Delayed sum of equal-shape arrays, merged in pairs (few alive at once)."""
    import dask

    while len(items) > 1:
        items = [dask.delayed(np.add)(*items[i:i + 2]) if i + 1 < len(items) else items[i]
                 for i in range(0, len(items), 2)]
    return items[0]


def _place(tiles: dict, shape) -> np.ndarray:
    """The full (quantity, y, x) array from tiles keyed by their (y, x) offsets."""
    out = np.zeros(shape, np.int64)
    for (y0, x0), tile in tiles.items():
        out[:, y0:y0 + tile.shape[1], x0:x0 + tile.shape[2]] = tile
    return out


def _region_block(block, offset, nz, rules, clean, clean_side):
    return block_region_counts(block, *offset, nz, *rules, clean=clean, clean_side=clean_side)


def _region_rules(maps, shape, compat, negative):
    """Side thresholds, cell bounds, compat side and region -> quantity of pass 2."""
    ny, nx = shape
    if compat:
        right, left = sep.utile_cuts(maps["first"], maps["last"], maps["present"])
        inf = np.full(right.shape, np.inf)
        side = HIGH_SIDE if negative == "high" else LOW_SIDE
        low, high = (-inf, right - 0.5) if side == HIGH_SIDE else (left.astype(float), inf)
        nzs = right.shape[0]
        return (low, high, np.full((nzs, nx), -1), np.full((nzs, nx), ny), side,
                {"negative": side})
    regions = {"cell": CELL}
    if maps["present"].any():
        neg, pos = (HIGH_SIDE, LOW_SIDE) if negative == "high" else (LOW_SIDE, HIGH_SIDE)
        regions.update(negative=neg, positive=pos)
    return (maps["band_low"], maps["band_high"], maps["gasket_low"], maps["gasket_high"], 0,
            regions)


def halfcell_map(classes: Any, *, negative_side: NegativeSide = "high", spacing: Any = None):
    """The half-cell of every voxel as a lazy ``xarray.DataArray`` of uint8 codes.

    0 outside the cell (gasket, beyond the gaskets, a removed half), 1 negative electrode,
    2 membrane band, 3 positive electrode; the separation of :func:`redoxflow.analyze`.

    Parameters
    ----------
    classes : numpy, dask, xarray.DataArray or store path, shape (z, y, x)
        Class volume (0 electrolyte, 1 bubble, 2 membrane, 3 gasket).
    negative_side : {"low", "high"}
        Which half along x is the negative electrode.
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's, else 1).

    Returns
    -------
    xarray.DataArray
        uint8 codes, dims (z, y, x), coords in micrometres.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.zeros((2, 6, 9), np.uint8); v[:, :, 4] = 2; v[:, 0] = v[:, -1] = 3
    >>> codes = halfcell_map(v, negative_side="high").values
    >>> codes[0, 2].tolist()
    [3, 3, 3, 3, 2, 1, 1, 1, 1]
    """
    import dask.array as da
    import xarray as xr

    check_choice(negative_side, NegativeSide, "negative_side")
    arr, sp, _ = class_volume(classes, spacing)
    if arr.ndim != 3:
        raise InputError("halfcell_map takes one (z, y, x) volume: select a time step")
    maps = row_maps(arr)
    if not maps["present"].any():
        raise InputError("no membrane (class 2) in the volume: the half-cells are undefined")
    regions = masks(arr, maps, None, negative_side, False)["regions"]
    code = da.where(~regions["cell"], 0,
                    da.where(regions["negative"], 1, da.where(regions["positive"], 3, 2)))
    coords = {d: np.arange(n) * s for d, n, s in zip("zyx", arr.shape, sp)}
    return xr.DataArray(code.astype(np.uint8), dims=("z", "y", "x"), coords=coords,
                        attrs={"flag_values": [0, 1, 2, 3], "voxel_size": list(sp),
                               "flag_meanings": " ".join(HALF_NAMES),
                               "negative_side": negative_side})
