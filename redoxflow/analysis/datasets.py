"""The analysis' xarray outputs: summary, density maps, blockage, and the table filters."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..measure import filters

UTILE_MIN_VOXELS = 60
FILTERS = ["kept", "min_volume", "degenerate", "solidity", "cut_by_fov", "sphericity_above_one"]


def density_dataset(counts, raw, coords, spacing):
    """The ``density`` group: bubble voxels per column, projected on the xy, xz, zy planes.

    Parameters
    ----------
    counts : dict
        Per region (``cell``, ``negative``, ``positive``) the ``density`` and ``electrode``
        projections of :func:`redoxflow.analysis.masks.counts_and_density` (empty in
        compat mode: only the unmasked maps are kept).
    raw : list of 3 ndarrays, shapes (y, x), (z, x), (z, y)
        Class-1 voxels per column of the whole volume, along z, y and x.
    coords : dict
        ``z``, ``y``, ``x`` coordinates (micrometres).
    spacing : (z, y, x) float
        Voxel size; the column lengths are recorded in the attrs.

    Returns
    -------
    xarray.Dataset
        ``{plane}_count`` and ``{plane}_fraction`` (dims ``(region, ...)``) per region, and
        ``{plane}_unmasked``, for the planes ``xy``, ``xz``, ``zy``.

    Examples
    --------
    >>> import numpy as np
    >>> raw = [np.zeros((3, 4), int), np.zeros((2, 4), int), np.zeros((2, 3), int)]
    >>> coords = {d: np.arange(n) * 2.0 for d, n in zip("zyx", (2, 3, 4))}
    >>> ds = density_dataset({}, raw, coords, (2.0, 2.0, 2.0))
    >>> list(ds.data_vars), ds["zy_unmasked"].dims
    (['xy_unmasked', 'xz_unmasked', 'zy_unmasked'], ('z', 'y'))
    """
    import xarray as xr

    planes = {"xy": ("y", "x"), "xz": ("z", "x"), "zy": ("z", "y")}
    regions = list(counts) if counts else []
    data = {}
    if regions:
        for axis, (plane, dims) in enumerate(planes.items()):
            cnt = np.stack([counts[r]["density"][axis] for r in regions])
            tot = np.stack([counts[r]["electrode"][axis] for r in regions])
            with np.errstate(divide="ignore", invalid="ignore"):
                frac = np.where(tot > 0, cnt / tot, np.nan)
            data[f"{plane}_count"] = (("region",) + dims, cnt,
                                      {"long_name": f"bubble voxels per column ({plane} plane)",
                                       "units": "voxel"})
            data[f"{plane}_fraction"] = (("region",) + dims, frac,
                                         {"long_name": "bubble fraction of the column's "
                                                       "electrode voxels"})
    for axis, (plane, dims) in enumerate(planes.items()):
        data[f"{plane}_unmasked"] = (dims, raw[axis],
                                     {"long_name": "class-1 voxels per column of the whole "
                                                   "volume (the reference's density map)",
                                      "units": "voxel"})
    ds = xr.Dataset({k: xr.Variable(*v) for k, v in data.items()},
                    coords={**coords, **({"region": regions} if regions else {})})
    ds.attrs["column_length_um"] = json.dumps({p: spacing[a] for a, p in enumerate(planes)})
    return ds


def filter_table(ds, compat, acfg):
    """The reference's filters (compat) or the configured ones (default mode).

    Compat mode keeps bubbles of at least 60 voxels and drops sphericity > 1; the default
    mode keeps ``acfg.min_volume_voxels``, drops degenerate (flat or line-like) objects and,
    when configured, low solidity and bubbles cut by the field of view.

    Parameters
    ----------
    ds : xarray.Dataset
        The bubble table (dim ``bubble``), as :func:`redoxflow.regionprops` measures it.
    compat : {"utile"} or None
        The reference's filters, or the configured ones.
    acfg : redoxflow.config.AnalyzeConfig
        The filter settings.

    Returns
    -------
    kept : xarray.Dataset
        The kept rows; each filter records what it removed in ``attrs["filters"]``.
    removed_by : int8 ndarray, shape (bubble,)
        For every row of ``ds``: 0 when kept, else the index in :data:`FILTERS` of the filter
        that removed it.

    Examples
    --------
    >>> import xarray as xr
    >>> from redoxflow.config import AnalyzeConfig
    >>> ds = xr.Dataset({"volume_voxels": ("bubble", [5, 30, 100]),
    ...                  "inertia_eigenvalues": (("bubble", "k"), [[1, 1, 1], [2, 1, 0],
    ...                                                            [3, 2, 1]])},
    ...                 coords={"bubble": [1, 2, 3]})
    >>> kept, removed_by = filter_table(ds, None, AnalyzeConfig(min_volume_voxels=27))
    >>> kept["bubble"].values.tolist(), [FILTERS[i] for i in removed_by]
    ([3], ['min_volume', 'degenerate', 'kept'])
    """
    if compat:
        steps = [lambda d: filters.filter_min_volume(d, UTILE_MIN_VOXELS),
                 filters.filter_sphericity_above_one]
    else:
        steps = [lambda d: filters.filter_min_volume(d, acfg.min_volume_voxels),
                 filters.filter_degenerate]
        if acfg.min_solidity is not None:
            steps.append(lambda d: filters.filter_solidity(d, acfg.min_solidity))
        if acfg.drop_cut_by_fov:
            steps.append(filters.filter_cut_by_fov)
    removed_by = np.zeros(ds.sizes["bubble"], np.int8)
    kept = ds
    for step in steps:
        after = step(kept)
        name = json.loads(after.attrs["filters"])[-1]["filter"]
        gone = np.setdiff1d(kept["bubble"].values, after["bubble"].values)
        removed_by[np.isin(ds["bubble"].values, gone)] = FILTERS.index(name)
        kept = after
    return kept, removed_by


def summary_dataset(counts, table, contacts, maps, spacing, compat, n_components, n_all,
             has_membrane):
    """The ``summary`` group: R_bv, bubble volume and counts, membrane blockage (scalars).

    Parameters
    ----------
    counts : dict
        Per region the ``bubble`` and ``electrolyte`` voxel counts
        (:func:`redoxflow.analysis.masks.counts_and_density`).
    table : xarray.Dataset
        The filtered bubble table with its ``half`` codes (1 negative).
    contacts : dict or None
        The membrane's reduced contacts (:func:`redoxflow.analysis.walls.wall_contacts`).
    maps : dict
        The row maps (:func:`redoxflow.analysis.masks.row_maps`); ``present`` is used.
    spacing : (z, y, x) float
        Voxel size.
    compat : {"utile"} or None
        Compat mode (voxel units, the reference's quantities only).
    n_components, n_all : int
        Components labelled, and measured before the filters.
    has_membrane : bool
        Without a membrane the blockage quantities are NaN.

    Returns
    -------
    xarray.Dataset
        0-d variables, each with a ``long_name``.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> table = xr.Dataset({"half": ("bubble", np.array([1, 3], np.int8))},
    ...                    coords={"bubble": [1, 2]})
    >>> counts = {"negative": {"bubble": 10, "electrolyte": 90}}
    >>> s = summary_dataset(counts, table, None, {"present": np.zeros((2, 2), bool)},
    ...                     (1.0, 1.0, 1.0), None, 2, 2, False)
    >>> float(s["bubble_volume_fraction"]), int(s["n_bubbles"]), int(s["n_bubbles_cell"])
    (0.1, 1, 2)
    """
    import xarray as xr

    voxel = float(np.prod(spacing))
    data: dict[str, Any] = {}

    def fraction(region):
        if region not in counts:
            return np.nan, np.nan, np.nan
        b, e = counts[region]["bubble"], counts[region]["electrolyte"]
        return (b / (b + e) if b + e else np.nan), (b / e if e else np.nan), b

    neg_fraction, neg_ratio, neg_bubble = fraction("negative")
    data["bubble_volume_fraction"] = (neg_fraction, "bubble / (bubble + electrolyte) voxels "
                                      "in the negative electrode (R_bv)")
    data["bubble_electrolyte_ratio"] = (neg_ratio, "bubble / electrolyte voxels in the negative "
                                        "electrode (the reference's 'bubble volume fraction')")
    if not compat:
        data["bubble_volume_fraction_positive"] = (fraction("positive")[0], "R_bv, positive")
        data["bubble_volume_fraction_cell"] = (fraction("cell")[0], "R_bv, whole cell")
    bubble = float(neg_bubble) if not np.isnan(neg_bubble) else np.nan
    data["bubble_volume"] = (bubble * voxel, "bubble volume in the negative electrode "
                             + ("(voxel^3)" if compat else "(micrometer^3)"))
    data["bubble_volume_mm3"] = (bubble * voxel * 1e-9 if not compat else np.nan,
                                 "bubble volume in the negative electrode (mm^3)")
    data["bubble_voxels"] = (bubble, "bubble voxels in the negative electrode")
    neg = table["half"].values == 1
    data["n_bubbles"] = (int(neg.sum()), "bubbles kept in the negative electrode")
    data["n_bubbles_cell"] = (int(table.sizes["bubble"]), "bubbles kept in the whole cell")
    data["n_components"] = (int(n_components), "bubble components labelled")
    data["n_measured"] = (int(n_all), "components before the filters")
    present = maps["present"]
    rows = int(present.sum())
    face = spacing[0] * spacing[1]
    if has_membrane and contacts is not None:
        blocked_rows = int(((contacts["row_map"][1] > 0) & present).sum())
        data["membrane_blocked_voxels"] = (int(contacts["blocked_any"] if compat
                                               else contacts["blocked"][1]),
                                           "membrane voxels with a 6-neighbour bubble voxel"
                                           + ("" if compat else " of the negative electrode"))
        data["membrane_blocked_voxels_positive"] = (int(contacts["blocked"][3]),
                                                    "the same for the positive electrode")
        data["membrane_blocked_fraction"] = (blocked_rows / rows if rows else np.nan,
                                             "fraction of the membrane's projected area "
                                             "(image rows) touched by a negative-side bubble")
        data["membrane_blocked_area"] = (float(contacts["area"][
            np.isin(contacts["ids"], table["bubble"].values[neg])].sum()),
            "contact area of the kept negative-side bubbles (shared voxel faces)")
        data["membrane_facing_area"] = (rows * face, "projected membrane area (rows x face)")
    else:
        for key in ("membrane_blocked_voxels", "membrane_blocked_voxels_positive",
                    "membrane_blocked_fraction", "membrane_blocked_area",
                    "membrane_facing_area"):
            data[key] = (np.nan, "no membrane in the volume")
    ds = xr.Dataset({k: xr.Variable((), v, {"long_name": d}) for k, (v, d) in data.items()})
    return ds


def blockage_dataset(contacts, maps, coords, spacing, has_membrane):
    """The ``blockage`` group: blocked membrane voxels per image row, the membrane band, and
    the contact area of every bubble that touches the membrane.

    Parameters
    ----------
    contacts : dict or None
        The membrane's reduced contacts (:func:`redoxflow.analysis.walls.wall_contacts`);
        None gives zeros.
    maps : dict
        The row maps (:func:`redoxflow.analysis.masks.row_maps`): ``present``,
        ``band_low``, ``band_high`` of shape (z, y).
    coords : dict
        ``z`` and ``y`` coordinates (micrometres).
    spacing : (z, y, x) float
        Voxel size.
    has_membrane : bool
        Recorded in the attrs.

    Returns
    -------
    xarray.Dataset
        ``blocked_voxels`` (half, z, y), ``membrane_present``, ``membrane_low_x``,
        ``membrane_high_x`` (z, y), ``contact_bubble`` and ``contact_area`` (contact).

    Examples
    --------
    >>> import numpy as np
    >>> maps = {"present": np.ones((2, 3), bool), "band_low": np.full((2, 3), 3.5),
    ...         "band_high": np.full((2, 3), 4.5)}
    >>> coords = {"z": np.arange(2.0), "y": np.arange(3.0)}
    >>> ds = blockage_dataset(None, maps, coords, (1.0, 1.0, 2.0), True)
    >>> ds["blocked_voxels"].dims, float(ds["membrane_low_x"][0, 0])
    (('half', 'z', 'y'), 7.0)
    """
    import xarray as xr

    nz, ny = maps["present"].shape
    row_map = contacts["row_map"] if contacts is not None else np.zeros((4, nz, ny), np.int32)
    ds = xr.Dataset(
        {"blocked_voxels": (("half", "z", "y"), row_map[[1, 3]],
                            {"long_name": "blocked membrane voxels per image row",
                             "units": "voxel"}),
         "membrane_present": (("z", "y"), maps["present"]),
         "membrane_low_x": (("z", "y"), maps["band_low"] * spacing[2],
                            {"units": "micrometer", "note": "the membrane band's low face "
                             "(voxel-centre coordinate; filled where the row has no membrane)"}),
         "membrane_high_x": (("z", "y"), maps["band_high"] * spacing[2],
                             {"units": "micrometer", "note": "the band's high face"}),
         "contact_bubble": ("contact", contacts["ids"] if contacts is not None
                            else np.zeros(0, np.uint64)),
         "contact_area": ("contact", contacts["area"] if contacts is not None else np.zeros(0),
                          {"units": "micrometer^2"})},
        coords={"z": coords["z"], "y": coords["y"], "half": ["negative", "positive"]})
    ds.attrs["has_membrane"] = int(has_membrane)
    return ds
