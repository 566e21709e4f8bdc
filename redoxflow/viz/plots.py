"""Matplotlib figures of an analysis: density maps, histograms, orientation, time series."""

from __future__ import annotations

import numpy as np

from ..errors import InputError

PLANES = ("xy", "xz", "zy")  # projections along z, y and x
HISTOGRAMS = (("volume", True, "volume (um^3)"), ("sphericity", False, "sphericity"),
              ("elongation", True, "elongation"), ("flatness", True, "flatness"),
              ("nearest_wall_distance", False, "distance to the nearest wall (um)"),
              ("closest_distance", False, "closest distance (voxel)"))


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def density_maps(density, *, region: str | None = None, cmap: str = "viridis"):
    """Bubble counts projected on the XY, XZ and ZY planes with physical axes and colour bars.

    ``region`` picks negative/positive/cell (default: negative when present, else the
    unmasked projection). ``cmap="jet"`` gives the reference's look.

    Parameters
    ----------
    density : xarray.Dataset
        The ``density`` group of an analysis (``{plane}_count`` with dim ``region``, and
        ``{plane}_unmasked``).
    region : {"negative", "positive", "cell"}, optional
        The region to show.
    cmap : str
        Matplotlib colour map.

    Returns
    -------
    matplotlib.figure.Figure
        Three image panels (xy, xz, zy), each with its colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> from redoxflow.analysis.datasets import density_dataset
    >>> raw = [np.ones((3, 4), int), np.ones((2, 4), int), np.ones((2, 3), int)]
    >>> coords = {d: np.arange(n) * 2.0 for d, n in zip("zyx", (2, 3, 4))}
    >>> fig = density_maps(density_dataset({}, raw, coords, (2.0, 2.0, 2.0)))
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['XY (whole volume)', 'XZ (whole volume)', 'ZY (whole volume)']
    """
    fig, axes = _figure(1, 3, figsize=(15, 4.6), constrained_layout=True)
    for ax, plane in zip(axes, PLANES):
        name = f"{plane}_count"
        if name in density and "region" in density[name].dims:
            regions = list(density["region"].values)
            pick = region or ("negative" if "negative" in regions else regions[0])
            if pick not in regions:
                raise InputError(f"region {pick!r} not in the density maps: {regions}")
            data, label = density[name].sel(region=pick), f"{plane.upper()} ({pick})"
        else:
            data, label = density[f"{plane}_unmasked"], f"{plane.upper()} (whole volume)"
        if "time" in data.dims:  # a series: the mean over its time steps
            data, label = data.mean("time"), f"{label}, mean over time"
        dims = data.dims
        img = data.transpose(dims[0], dims[1]).values
        extent = [float(density[dims[1]].min()), float(density[dims[1]].max()),
                  float(density[dims[0]].max()), float(density[dims[0]].min())]
        im = ax.imshow(img, cmap=cmap, extent=extent, aspect="equal")
        ax.set_xlabel(f"{dims[1]} (um)")
        ax.set_ylabel(f"{dims[0]} (um)")
        ax.set_title(label)
        fig.colorbar(im, ax=ax, label="bubble voxels per column")
    return fig


def histograms(bubbles):
    """Histograms of the per-bubble shape numbers present in the table (log10 where apt).

    Parameters
    ----------
    bubbles : xarray.Dataset
        The bubble table (dim ``bubble``); any of ``volume``, ``sphericity``,
        ``elongation``, ``flatness``, ``nearest_wall_distance``, ``closest_distance``.

    Returns
    -------
    matplotlib.figure.Figure
        One panel per variable present.

    Examples
    --------
    >>> import xarray as xr
    >>> table = xr.Dataset({"volume": ("bubble", [10.0, 20.0, 40.0]),
    ...                     "sphericity": ("bubble", [0.9, 0.8, 0.95])})
    >>> [ax.get_xlabel() for ax in histograms(table).axes]
    ['log10 volume (um^3)', 'sphericity']
    """
    present = [(k, log, lab) for k, log, lab in HISTOGRAMS if k in bubbles]
    if not present:
        raise InputError("the bubble table has none of " + ", ".join(k for k, _, _ in HISTOGRAMS))
    fig, axes = _figure(1, len(present), figsize=(4 * len(present), 3.6), constrained_layout=True)
    for ax, (key, log, label) in zip(np.atleast_1d(axes), present):
        v = bubbles[key].values.astype(float)
        v = v[np.isfinite(v)]
        if log:
            v = np.log10(v[v > 0])
            label = f"log10 {label}"
        ax.hist(v, bins=min(40, max(5, len(v) // 3 or 5)), color="tab:red", alpha=0.8)
        ax.set_xlabel(label)
        ax.set_ylabel("bubbles")
    return fig


def orientation_polar(bubbles):
    """Polar map of the major-axis orientation: angle theta, radius phi (degrees).

    Parameters
    ----------
    bubbles : xarray.Dataset
        The bubble table: ``theta``, ``phi`` (degrees) and ``volume_voxels`` (colour).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import xarray as xr
    >>> table = xr.Dataset({"theta": ("bubble", [10.0, 200.0]), "phi": ("bubble", [30.0, 80.0]),
    ...                     "volume_voxels": ("bubble", [27, 400])})
    >>> orientation_polar(table).axes[0].name
    'polar'
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "theta" not in bubbles or "phi" not in bubbles:
        raise InputError("the bubble table has no theta/phi")
    fig = plt.figure(figsize=(5, 5))
    ax = fig.add_subplot(projection="polar")
    sc = ax.scatter(np.radians(bubbles["theta"].values), bubbles["phi"].values,
                    c=np.log10(np.maximum(bubbles["volume_voxels"].values, 1)), cmap="viridis",
                    s=12)
    ax.set_title("major axis: theta (angle) vs phi (radius, deg)")
    ax.set_xlabel("theta (deg)")
    ax.set_ylabel("phi (deg)", labelpad=28)  # clear of the 180 degree tick label
    fig.colorbar(sc, ax=ax, label="log10 volume (voxels)", shrink=0.7, pad=0.12)
    return fig


def time_series(summary):
    """R_bv, bubble count and blocked membrane fraction versus time (4D results).

    Parameters
    ----------
    summary : xarray.Dataset
        The ``summary`` group of a 4D analysis (dim ``time``).

    Returns
    -------
    matplotlib.figure.Figure
        Three panels.

    Examples
    --------
    >>> import xarray as xr
    >>> summary = xr.Dataset({"bubble_volume_fraction": ("time", [0.10, 0.12]),
    ...                       "n_bubbles_cell": ("time", [5, 6]),
    ...                       "membrane_blocked_fraction": ("time", [0.01, 0.02])},
    ...                      coords={"time": [0, 1]})
    >>> [ax.get_ylabel() for ax in time_series(summary).axes]
    ['R_bv (negative)', 'bubbles', 'blocked membrane fraction']
    """
    if "time" not in summary.dims:
        raise InputError("the summary has no time dim: time series need a 4D analysis")
    keys = [("bubble_volume_fraction", "R_bv (negative)"), ("n_bubbles_cell", "bubbles"),
            ("membrane_blocked_fraction", "blocked membrane fraction")]
    fig, axes = _figure(1, 3, figsize=(14, 3.6), constrained_layout=True)
    t = summary["time"].values
    for ax, (key, label) in zip(axes, keys):
        ax.plot(t, summary[key].values, "o-")
        ax.set_xlabel("time step")
        ax.set_ylabel(label)
    return fig


def tracks_plot(bubbles, *, max_tracks: int = 200):
    """Trajectories (centroid x vs y, coloured by track) of the longest tracks.

    Parameters
    ----------
    bubbles : xarray.Dataset
        The bubble table of a 4D analysis: ``track``, ``time`` and ``centroid``
        (bubble, 3) in micrometres.
    max_tracks : int
        Draw at most this many tracks (the longest).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import xarray as xr
    >>> table = xr.Dataset({"track": ("bubble", [1, 1, 2]), "time": ("bubble", [0, 1, 1]),
    ...                     "centroid": (("bubble", "axis"), [[0, 1, 2], [0, 2, 3], [0, 5, 5]])})
    >>> tracks_plot(table).axes[0].get_title()
    'bubble tracks (2 longest)'
    """
    if "track" not in bubbles:
        raise InputError("the bubble table has no track ids: tracks need a 4D analysis")
    fig, ax = _figure(figsize=(6, 6))
    track = bubbles["track"].values
    ids, counts = np.unique(track, return_counts=True)
    longest = ids[np.argsort(-counts)][:max_tracks]
    c = bubbles["centroid"].values
    for tid in longest:
        sel = np.flatnonzero(track == tid)
        sel = sel[np.argsort(bubbles["time"].values[sel])]
        ax.plot(c[sel, 2], c[sel, 1], "-", lw=1)
    ax.set_xlabel("x (um)")
    ax.set_ylabel("y (um)")
    ax.set_title(f"bubble tracks ({len(longest)} longest)")
    return fig


def microstructure_plots(ds):
    """Fraction profile, pore-size distribution and two-point correlation of each phase.

    Parameters
    ----------
    ds : xarray.Dataset
        What :func:`redoxflow.microstructure.microstructure` returns (any subset of its
        ``fraction_profile``, ``size_distribution``, ``two_point_correlation``).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, redoxflow as rf
    >>> v = (np.random.default_rng(0).random((16, 16, 16)) < 0.4).astype(np.uint8)
    >>> fig = microstructure_plots(rf.microstructure.microstructure(v, phases="pore=0,solid=1"))
    >>> [a.get_xlabel() for a in fig.axes]
    ['depth (um)', 'radius (um)', 'lag (um)']
    """
    panels = [n for n in ("fraction_profile", "size_distribution", "two_point_correlation")
              if n in ds]
    if not panels:
        raise InputError("no fraction profile, size distribution or correlation to plot")
    fig, axes = _figure(1, len(panels), figsize=(5 * len(panels), 4), squeeze=False)
    for ax, name in zip(axes[0], panels):
        var = ds[name]
        x = {"fraction_profile": "depth", "size_distribution": "radius",
             "two_point_correlation": "lag"}[name]
        for phase in ds["phase"].values:
            line = var.sel(phase=phase)
            coord = ds["distance"] if name == "two_point_correlation" else ds[x]
            if "axis" in line.dims:  # the first axis analysed
                line = line.isel(axis=0)
                coord = coord.isel(axis=0) if "axis" in coord.dims else coord
            ax.plot(np.asarray(coord), np.asarray(line), label=str(phase))
        ax.set_xlabel(f"{x} (um)")
        ax.set_ylabel(var.attrs.get("long_name", name))
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def save(fig, path) -> None:
    """Write a figure as PNG and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
        Any figure of this module.
    path : path
        Output ``.png`` file (written directly, not atomically).

    Examples
    --------
    >>> import pathlib, tempfile, xarray as xr
    >>> fig = histograms(xr.Dataset({"sphericity": ("bubble", [0.9, 0.8])}))
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "hist.png"
    >>> save(fig, path)
    >>> path.read_bytes()[:4]
    b'\\x89PNG'
    """
    import matplotlib.pyplot as plt

    fig.savefig(path, dpi=110)
    plt.close(fig)
