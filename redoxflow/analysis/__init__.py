"""VRFB bubble analysis: electrode separation, R_bv, density maps, blockage, wall proximity."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Literal

from ..errors import InputError
from .core import bubble_frame, halfcell_map, write_results
from .tracking import track
from .watershed import split_touching

__all__ = ["analyze", "bubble_frame", "halfcell_map", "split_touching", "track",
           "write_results"]


def analyze(
    classes: Any,
    *,
    spacing: Any = None,
    negative_side: Literal["low", "high"] | None = None,
    compat: Literal["utile"] | None = None,
    config: Any = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    netcdf: bool = False,
    csv: bool = False,
    progress: bool = False,
):
    """Analyse a class volume (0 electrolyte, 1 bubble, 2 membrane, 3 gasket).

    Parameters
    ----------
    classes : numpy, dask, xarray.DataArray or store path, shape (z, y, x) or (t, z, y, x)
        The membrane is a sheet across x (its normal along axis 2).
    spacing : float or (z, y, x), optional
        Voxel size in micrometres (default: the input's ``voxel_size``, else 1).
    negative_side : {"low", "high"}, optional
        Which half along x is the negative electrode; "high" (the reference's right half)
        is assumed, with a warning, when neither this nor the config sets it.
    compat : {"utile"}, optional
        Reproduce the reference project's definitions exactly (voxel units, its row-wise
        separation, ratio, 60-voxel minimum, level-0 marching cubes, N-1 covariance, unsigned
        orientation, centroid distances to array faces, unmasked density projections).
    config : redoxflow.Config, optional
        Its ``analyze`` section supplies the defaults of the options above and the filters.
    out : path, optional
        Directory to write ``results.zarr`` into (plus ``results.nc``/``bubbles.csv`` when
        ``netcdf``/``csv``).

    Returns
    -------
    xarray.DataTree
        Groups ``summary``, ``bubbles`` (dim ``bubble``), ``density``, ``blockage``; with a
        time dim, also ``tracks``. Provenance (config, version, input checksum) in attrs.
    """
    from .. import __version__
    from ..config import load_config
    from .core import analyze_volume, open_classes, scratch_dir

    cfg = config or load_config()
    acfg = cfg.analyze
    compat = compat if compat is not None else acfg.compat
    if compat not in (None, "utile"):
        raise InputError(f"compat={compat!r} is not known: use 'utile' or leave it unset")
    negative_side = negative_side or acfg.negative_side
    if negative_side is None:
        warnings.warn("negative_side is not set: assuming 'high' (the half at higher x, the "
                      "reference's right half); set it in the config (analyze.negative_side)",
                      UserWarning, stacklevel=2)
        negative_side = "high"
    if negative_side not in ("low", "high"):
        raise InputError(f"negative_side={negative_side!r}: use 'low' or 'high'")
    if out is not None and not overwrite and (Path(out) / "results.zarr").exists():
        from ..errors import StoreExistsError

        raise StoreExistsError(f"{Path(out) / 'results.zarr'} exists: pass overwrite=True "
                               "(--overwrite) or choose another output directory")
    arr, sp, description = open_classes(classes, spacing)
    scratch = scratch_dir(out)
    temporary = isinstance(scratch, tempfile.TemporaryDirectory)
    work = Path(scratch.name) if temporary else scratch
    try:
        if arr.ndim == 4:
            from .tracking import analyze_series

            tree = analyze_series(arr, sp, negative_side=negative_side, compat=compat,
                                  acfg=acfg, scratch=work, progress=progress)
        else:
            tree = analyze_volume(arr, sp, negative_side=negative_side, compat=compat,
                                  acfg=acfg, scratch=work, progress=progress)
        tree.attrs.update({
            "redoxflow_version": __version__, "config": cfg.to_json(),
            "compat": compat or "none", "negative_side": negative_side,
            "input": description, "input_shape": list(arr.shape),
            "spacing": list(sp if not compat else (1.0, 1.0, 1.0)),
            "unit": "voxel" if compat else "micrometer"})
        if out is not None:
            write_results(tree, out, overwrite=overwrite, netcdf=netcdf, csv=csv)
    finally:
        if temporary:
            scratch.cleanup()
        else:  # nothing half-made is left beside the results, whatever happened
            shutil.rmtree(work, ignore_errors=True)
    return tree
