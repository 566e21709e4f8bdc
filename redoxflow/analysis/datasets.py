"""The analysis' xarray outputs: summary, density maps, blockage, and the table filters."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..measure import filters

UTILE_MIN_VOXELS = 60


def density_dataset(counts, raw, coords, spacing):
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
    """The reference's filters (compat) or the configured ones (default mode)."""
    if compat:
        ds = filters.filter_min_volume(ds, UTILE_MIN_VOXELS)
        return filters.filter_sphericity_above_one(ds)
    ds = filters.filter_min_volume(ds, acfg.min_volume_voxels)
    ds = filters.filter_degenerate(ds)
    if acfg.min_solidity is not None:
        ds = filters.filter_solidity(ds, acfg.min_solidity)
    if acfg.drop_cut_by_fov:
        ds = filters.filter_cut_by_fov(ds)
    return ds


def summary_dataset(counts, table, contacts, maps, spacing, compat, n_components, n_all,
             has_membrane):
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
    data["n_components"] = (int(n_components), "26-connected bubble components labelled")
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
