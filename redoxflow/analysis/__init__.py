"""VRFB bubble analysis: electrode separation, R_bv, density maps, blockage, wall proximity.

Modules by responsibility: :mod:`.masks` (passes 1-2 and the lazy masks), :mod:`.walls`
(contacts and distances), :mod:`.datasets` (xarray outputs and filters), :mod:`.volume`
(one volume, in order), :mod:`.series` (4D), :mod:`.tracking` (linking),
:mod:`.results` (writing). This module resolves the options and calls them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from .. import __version__
from ..common.atomic import is_store
from ..common.options import Compat, NegativeSide, check_choice
from ..common.tables import bubble_frame
from ..config import Config
from ..errors import InputError, StoreExistsError
from .cf import finish, history_line
from .masks import class_volume, halfcell_map
from .results import scratch_dir, write_results
from .series import analyze_series
from .tracking import track
from .volume import analyze_volume
from .watershed import split_touching

__all__ = ["analyze", "bubble_frame", "halfcell_map", "split_touching", "track",
           "write_results"]


def analyze(
    classes: Any,
    *,
    spacing: Any = None,
    negative_side: NegativeSide | None = None,
    compat: Compat | None = None,
    config: Config | None = None,
    out: str | os.PathLike | None = None,
    overwrite: bool = False,
    netcdf: bool = False,
    csv: bool = False,
    table: bool = False,
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
        Its ``analyze`` section supplies the defaults of the options above and the filters
        (default: the built-in defaults).
    out : path, optional
        Directory to write ``results.zarr`` into (plus ``results.nc``/``bubbles.csv`` when
        ``netcdf``/``csv``).
    overwrite : bool
        Replace existing results in ``out``.
    netcdf, csv, table : bool
        Also write ``results.nc`` / ``bubbles.csv`` / ``bubbles.nc`` into ``out`` (the two
        tables hold every labelled component with the filters' ``kept`` and ``removed_by``).
    progress : bool
        Show progress bars.

    Returns
    -------
    xarray.DataTree
        Groups ``summary``, ``bubbles`` (dim ``bubble``), ``density``, ``blockage``; with a
        time dim, also ``tracks``. Provenance (config, version, input checksum) in attrs.

    Examples
    --------
    >>> import numpy as np, redoxflow as rf
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> tree = rf.analyze(v, negative_side="high", spacing=2.0)
    >>> int(tree["summary/n_bubbles"])
    1
    """
    cfg = config or Config()
    compat, negative_side = _resolve(cfg, compat, negative_side)
    _refuse_existing(out, overwrite, netcdf, csv, table)
    arr, sp, description = class_volume(classes, spacing)
    _refuse_input_among_outputs(description, out)
    scratch = scratch_dir(out)
    work = Path(scratch.name) if isinstance(scratch, tempfile.TemporaryDirectory) else scratch
    try:
        run = analyze_series if arr.ndim == 4 else analyze_volume
        tree = run(arr, sp, negative_side=negative_side, compat=compat, acfg=cfg.analyze,
                   scratch=work, progress=progress, backend=cfg.label.backend,
                   connectivity=cfg.label.connectivity)
        tree.attrs.update({
            "redoxflow_version": __version__,
            "config": _as_run(cfg, compat, negative_side, description, out).to_json(),
            "compat": compat or "none", "negative_side": negative_side,
            "input": description, "input_shape": list(arr.shape),
            "spacing": list(sp if not compat else (1.0, 1.0, 1.0)),
            "unit": "voxel" if compat else "micrometer",
            "history": history_line(f"analyze {description}")})
        finish(tree, compat=bool(compat))
        if out is not None:
            write_results(tree, out, overwrite=overwrite, netcdf=netcdf, csv=csv,
                          table=table, labels=work / "labels.zarr")
    finally:  # nothing half-made is left beside the results, whatever happened
        if isinstance(scratch, tempfile.TemporaryDirectory):
            scratch.cleanup()
        else:
            shutil.rmtree(work, ignore_errors=True)
    return tree


def _resolve(cfg: Config, compat, negative_side) -> tuple[str | None, str]:
    """The effective ``compat`` and ``negative_side`` (arguments over the config)."""
    compat = check_choice(compat if compat is not None else cfg.analyze.compat, Compat,
                          "compat", optional=True)
    negative_side = negative_side or cfg.analyze.negative_side
    if negative_side is None:
        warnings.warn("negative_side is not set: assuming 'high' (the half at higher x, the "
                      "reference's right half); set it in the config (analyze.negative_side)",
                      UserWarning, stacklevel=3)
        negative_side = "high"
    return compat, check_choice(negative_side, NegativeSide, "negative_side")


def _as_run(cfg: Config, compat, negative_side, source: str, out) -> Config:
    """The configuration this run used: resolved options, its input and output."""
    from dataclasses import replace

    return replace(cfg, analyze=replace(cfg.analyze, compat=compat, negative_side=negative_side),
                   input=replace(cfg.input, source=source, kind="classes"),
                   output=replace(cfg.output, directory=str(out)) if out is not None
                   else cfg.output)


def _refuse_input_among_outputs(source: str, out) -> None:
    """The input must not be one of the stores the analysis writes (it would be replaced)."""
    if out is None or source == "array":
        return
    src = Path(source).absolute()
    for name in ("results.zarr", "bubble_labels.zarr"):
        if src == (Path(out) / name).absolute():
            raise InputError(f"the input {source} is the analysis output {name}: choose "
                             "another output directory")


def _refuse_existing(out, overwrite: bool, netcdf: bool, csv: bool, table: bool) -> None:
    """Refuse, before any work, to replace results that exist unless ``overwrite``."""
    if out is None:
        return
    for name in ("results.zarr", "bubble_labels.zarr"):  # replaced only if they are stores
        path = Path(out) / name
        if overwrite and path.exists() and not is_store(path):
            raise StoreExistsError(f"{path} exists and is not a Zarr store: refusing to "
                                   "replace it; choose another output directory")
    if overwrite:
        return
    names = (["results.zarr", "bubble_labels.zarr"] + ["results.nc"] * netcdf
             + ["bubbles.csv"] * csv + ["bubbles.nc"] * table)
    for name in names:
        if (Path(out) / name).exists():
            raise StoreExistsError(f"{Path(out) / name} exists: pass overwrite=True "
                                   "(--overwrite) or choose another output directory")
