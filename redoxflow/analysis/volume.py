"""The analysis of one class volume: the passes of :mod:`.masks`, labeling, measuring,
:mod:`.walls` and the :mod:`.datasets`, in order."""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np

from ..common.options import Backend, Connectivity, NegativeSide
from ..errors import InputError
from ..io.store import write_dask
from ..labeling import label
from ..measure import regionprops
from . import separation as sep
from .datasets import FILTERS, blockage_dataset, density_dataset, filter_table, summary_dataset
from .masks import CLASS_IDS, HALF_NAMES, counts_and_density, masks, row_maps
from .walls import add_wall_columns, centroid_voxels, flags, wall_contacts
from .watershed import split_touching

UTILE_MC = dict(mc_level=0.0, mc_pad=False, ddof=1, degenerate=0.0, flat_zeroes_both=True,
                canonical=False)


class _Phases:
    """Wall time per phase, recorded in the result's attrs."""

    def __init__(self):
        self.times: dict[str, float] = {}
        self._t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        self.times[name] = round(now - self._t, 3)
        self._t = now


def analyze_volume(arr, spacing, *, negative_side: NegativeSide, compat: str | None, acfg,
                   scratch: Path, progress: bool = False, backend: Backend = "numpy",
                   connectivity: Connectivity = 26):
    """Analyse one class volume (dask array (z, y, x)) -> ``xarray.DataTree``.

    In order: row maps (pass 1), masks, counts and density (pass 2), labeling of the
    cleaned bubbles, regionprops, half-cells, wall contacts and distances, filters, and the
    output datasets. :func:`redoxflow.analyze` resolves the options and calls this.

    Parameters
    ----------
    arr : dask.array.Array, shape (z, y, x)
        Integer class ids (0 electrolyte, 1 bubble, 2 membrane, 3 gasket, 5 removed half).
    spacing : (z, y, x) float
        Voxel size in micrometres (ignored in compat mode: voxel units).
    negative_side : {"low", "high"}
        Which half along x is the negative electrode.
    compat : {"utile"} or None
        The reference's definitions.
    acfg : redoxflow.config.AnalyzeConfig
        Filters and options.
    scratch : pathlib.Path
        Folder for the intermediate label store (``labels.zarr``).
    progress : bool
        Show progress bars.
    backend : {"numpy", "cupy"}
        Where the bubbles are labelled and their moments measured.
    connectivity : {6, 18, 26}
        Of the bubble components (compat mode: always 26, the reference's).

    Returns
    -------
    xarray.DataTree
        Groups ``summary``, ``bubbles`` (kept), ``components`` (every labelled component,
        with ``kept`` and ``removed_by``), ``density``, ``blockage``; attrs ``timings_s``,
        ``input_checksum`` and ``class_voxels`` (voxels per class id, from pass 1).

    Examples
    --------
    >>> import numpy as np, pathlib, tempfile
    >>> from redoxflow.analysis.masks import class_volume
    >>> from redoxflow.config import AnalyzeConfig
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> arr, sp, _ = class_volume(v, 2.0)
    >>> tree = analyze_volume(arr, sp, negative_side="high", compat=None,
    ...                       acfg=AnalyzeConfig(), scratch=pathlib.Path(tempfile.mkdtemp()))
    >>> int(tree["summary/n_bubbles"]), sorted(tree.children)
    (1, ['blockage', 'bubbles', 'components', 'density', 'summary'])
    """
    import xarray as xr

    phase = _Phases()
    spacing = (1.0, 1.0, 1.0) if compat else tuple(spacing)
    maps = row_maps(arr)
    has_membrane = _check_classes(maps, arr.shape, compat)
    phase("row_maps")
    lazy = masks(arr, maps, compat, negative_side, acfg.clean_z_isolated)
    raw, counts = counts_and_density(arr, maps, compat, negative_side, acfg.clean_z_isolated)
    phase("counts_density")
    labels, n_components = _label_bubbles(lazy["bubbles"], spacing, acfg, scratch, progress,
                                          backend, 26 if compat else connectivity)
    phase("label")
    table = regionprops(labels, spacing=spacing, backend=backend,
                        **(UTILE_MC if compat else {}))
    phase("regionprops")
    half = _halves(table, maps, negative_side, compat, has_membrane)
    side_lut = np.zeros(n_components + 1, np.uint8)
    side_lut[table["bubble"].values.astype(np.int64)] = half
    wall_masks = {"membrane": lazy["membrane"], "gasket": lazy["gasket"]}
    walls = wall_contacts(wall_masks, labels, side_lut, spacing,
                          points=None if compat else centroid_voxels(table, arr.shape))
    phase("walls")
    table["half"] = ("bubble", half, flags(HALF_NAMES))
    table = add_wall_columns(table, walls, spacing, arr.shape, compat)
    phase("distances")
    measured = table
    table, removed_by = filter_table(measured, compat, acfg)
    measured = measured.assign(
        kept=("bubble", removed_by == 0, {"long_name": "kept by the filters"}),
        removed_by=("bubble", removed_by, {"long_name": "the filter that removed the "
                                                        "component", **flags(FILTERS)}))
    if compat:
        table["utile_label"] = ("bubble", np.arange(1, table.sizes["bubble"] + 1),
                                {"note": "the reference's renumbered label"})
    contacts = walls["membrane"][0]
    summary = summary_dataset(counts, table, contacts, maps, spacing, compat, n_components,
                              measured.sizes["bubble"], has_membrane)
    coords = {d: (np.arange(n) * s) for d, n, s in zip("zyx", arr.shape, spacing)}
    density = density_dataset(counts if not compat else {}, raw, coords, spacing)
    if compat:
        density.attrs["note"] = "compat: only the reference's unmasked projections"
    tree = xr.DataTree.from_dict({
        "summary": summary, "bubbles": table, "components": measured, "density": density,
        "blockage": blockage_dataset(contacts, maps, coords, spacing, has_membrane)})
    tree.attrs["timings_s"] = json.dumps(phase.times)
    tree.attrs["connectivity"] = 26 if compat else connectivity
    tree.attrs["input_checksum"] = "blake2b:" + maps["checksum"]
    tree.attrs["class_voxels"] = [int(c) for c in maps["counts"]]  # voxels per class id
    return tree


def _check_classes(maps, shape, compat) -> bool:
    """Refuse unknown class ids and (in compat) a missing membrane; True if there is one."""
    unexpected = [i for i, c in enumerate(maps["counts"]) if c and i not in CLASS_IDS]
    if unexpected or len(maps["counts"]) > 6:
        found = [i for i, c in enumerate(maps["counts"]) if c]
        raise InputError(f"class volume holds ids {found}; expected 0 electrolyte, 1 bubble, "
                         "2 membrane, 3 gasket (5 = a removed half): map your classes first")
    has_membrane = bool(maps["present"].any())
    if not has_membrane:
        if compat:
            raise InputError("no membrane (class 2) in the volume: compat='utile' needs one to "
                             "separate the electrodes (the reference crashes here); run the "
                             "default mode for membrane-independent results")
        warnings.warn("no membrane (class 2) in the volume: half-cell, blockage and membrane "
                      "distance outputs are NaN", RuntimeWarning, stacklevel=4)
    sep.check_sheet(maps["first"], maps["last"], maps["present"], shape[2])
    return has_membrane


def _label_bubbles(bubbles, spacing, acfg, scratch: Path, progress: bool, backend: Backend,
                   connectivity: Connectivity):
    """Label the cleaned bubbles into ``scratch/labels.zarr`` -> (dask labels, count).

    Exact chunked labeling, or (``split_touching``) the watershed split, block by block with
    a halo (never the whole mask in memory).
    """
    import dask.array as da

    store = scratch / "labels.zarr"
    if acfg.split_touching:
        split, n = split_touching(bubbles, spacing=spacing,
                                  min_distance=acfg.split_min_distance, h=acfg.split_h)
        if not hasattr(split, "dask"):
            split = da.from_array(split, chunks=bubbles.chunks)
        written = write_dask(split, store, voxel_size=spacing, kind="labels", overwrite=True,
                             levels=1)
    else:
        written, n = label(bubbles, connectivity=connectivity, out=store, voxel_size=spacing,
                           overwrite=True, progress=progress, backend=backend)
    return written.data, n


def _halves(table, maps, negative_side, compat, has_membrane) -> np.ndarray:
    """Half-cell code of every bubble (1 negative, 2 membrane band, 3 positive, 0 none)."""
    n = table.sizes["bubble"]
    if compat:
        sides = np.full(n, sep.HIGH if negative_side == "high" else sep.LOW, np.uint8)
    elif has_membrane:
        sides = sep.side_of_points(table["centroid_voxel"].values, maps["band_low"],
                                   maps["band_high"])
    else:
        sides = np.zeros(n, np.uint8)
    neg_code = sep.HIGH if negative_side == "high" else sep.LOW
    pos_code = sep.LOW if negative_side == "high" else sep.HIGH
    return np.select([sides == neg_code, sides == pos_code, sides == sep.MEMBRANE],
                     [1, 3, 2], 0).astype(np.int8)
