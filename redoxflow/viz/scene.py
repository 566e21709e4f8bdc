"""Off-screen 3D scenes with pyvista: the cell, bubbles by property, blockage, half-cells."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..common.atomic import atomic_file
from ..errors import InputError, require
from ..io.store import open_volume
from ..io.volume import as_volume

PALETTE = {"electrolyte": (1.0, 1.0, 0.0), "bubble": (1.0, 0.0, 0.0),
           "membrane": (0.0, 0.0, 1.0), "gasket": (0.0, 0.8, 0.0)}
HALF_COLOURS = {1: (1.0, 0.55, 0.0), 3: (0.55, 0.2, 0.9)}  # negative orange, positive purple
MAX_RENDER_VOXELS = 2**24


def _pyvista():
    pv = require("pyvista", "viz")
    pv.OFF_SCREEN = True
    os.environ.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return pv


def render_volume(source: Any, *, max_voxels: int = MAX_RENDER_VOXELS):
    """(numpy volume, spacing, note) at the finest level with at most ``max_voxels`` voxels.

    Stores use their pyramid; arrays are subsampled by powers of two (nearest neighbour), so
    memory stays bounded for any input size. ``note`` says which level is shown. A 4D
    series shows its last time step. Needs no pyvista.

    Parameters
    ----------
    source : store path, numpy, dask or xarray array, shape (z, y, x) or (t, z, y, x)
        What to render.
    max_voxels : int
        At most this many voxels are read.

    Returns
    -------
    volume : ndarray, shape (z', y', x')
        The (subsampled) volume in memory.
    spacing : (float, float, float)
        Its voxel size (z, y, x) in micrometres.
    note : str
        Which level or subsampling is shown, and its shape.

    Examples
    --------
    >>> import numpy as np
    >>> vol, spacing, note = render_volume(np.zeros((64, 64, 64), np.uint8), max_voxels=32**3)
    >>> vol.shape, spacing, note
    ((32, 32, 32), (2.0, 2.0, 2.0), 'subsampled x2 (32x32x32 voxels)')
    """
    if isinstance(source, (str, os.PathLike)):
        top = open_volume(source)
        level = 0
        while np.prod(top.shape) / 8 ** level > max_voxels and level + 1 < top.attrs["n_levels"]:
            level += 1
        vol = open_volume(source, level=level)
        data, spacing, step = vol.data, vol.attrs["voxel_size"], 1
        if data.ndim == 4:  # a series: show its last step
            data = data[-1]
        while np.prod(data.shape) > max_voxels:
            data, step = data[::2, ::2, ::2], step * 2
        spacing = tuple(s * step for s in spacing)
        note = f"pyramid level {level}" + (f", subsampled x{step}" if step > 1 else "")
        return np.asarray(data), spacing, note + f" ({'x'.join(map(str, data.shape))} voxels)"
    vol = as_volume(source, what="volume to render", ndim=(3, 4))
    data, spacing = vol.data, vol.spacing()
    if data.ndim == 4:  # a series: show its last step
        data = data[-1]
    step = 1
    while np.prod(data.shape) > max_voxels:
        data, step = data[::2, ::2, ::2], step * 2
    data = np.asarray(data.compute())
    note = "full resolution" if step == 1 else f"subsampled x{step}"
    return data, tuple(s * step for s in spacing), note + f" ({'x'.join(map(str, data.shape))} voxels)"


def _grid(volume: np.ndarray, spacing: Sequence[float]):
    """A pyvista ImageData with x, y, z = array axes 2, 1, 0 (physical spacing)."""
    pv = _pyvista()
    grid = pv.ImageData(dimensions=volume.shape[::-1], spacing=tuple(spacing)[::-1])
    return grid


def surface(mask: np.ndarray, spacing: Sequence[float], *, decimate: float = 0.0):
    """Closed iso-surface (0.5) of a boolean mask, optionally decimated (fraction removed).

    The mask is padded by one voxel so surfaces cut by the volume's faces are closed.

    Parameters
    ----------
    mask : bool ndarray, shape (z, y, x)
        The object(s) to mesh.
    spacing : (z, y, x) float
        Voxel size; the mesh is in physical coordinates with x, y, z = axes 2, 1, 0.
    decimate : float
        Fraction of triangles to remove (only for meshes above 1000 cells).

    Returns
    -------
    pyvista.PolyData
        Empty (no points) for an empty mask.

    Examples
    --------
    >>> import numpy as np
    >>> cube = np.zeros((8, 8, 8), bool); cube[2:6, 2:6, 2:6] = True
    >>> mesh = surface(cube, (1.0, 1.0, 1.0))
    >>> mesh.n_points > 0, tuple(float(b) for b in mesh.bounds)
    (True, (1.5, 5.5, 1.5, 5.5, 1.5, 5.5))
    >>> surface(np.zeros((4, 4, 4), bool), (1.0, 1.0, 1.0)).n_points
    0
    """
    pv = _pyvista()
    if not mask.any():
        return pv.PolyData()
    grid = _grid(np.pad(mask, 1), spacing)
    grid.origin = tuple(-s for s in tuple(spacing)[::-1])
    grid.point_data["m"] = np.pad(mask, 1).astype(np.float32).ravel(order="C")
    mesh = grid.contour([0.5], scalars="m")
    if decimate > 0 and mesh.n_cells > 1000:
        # vtkDecimatePro: quadric decimation took minutes on noisy 10^5-10^6-cell surfaces
        mesh = mesh.decimate_pro(decimate)
    return mesh


def _plotter(size, title: str):
    pv = _pyvista()
    pl = pv.Plotter(off_screen=True, window_size=list(size))
    pl.set_background("white")
    if title:
        pl.add_text(title, font_size=9, color="black", position="upper_left")
    pl.add_axes(color="black", line_width=2)  # the orientation triad (x, y, z = axes 2, 1, 0)
    return pl


def _scale(pl) -> None:
    """Physical axes on the outer box: the scene's scale bar, in micrometres."""
    pl.show_bounds(location="outer", xtitle="x (um)", ytitle="y (um)", ztitle="z (um)",
                   color="black", font_size=11, ticks="outside")


def scene_cell(classes: Any, *, size=(800, 800), max_voxels: int = MAX_RENDER_VOXELS,
               decimate: float = 0.5):
    """The segmented cell: bubbles red, membrane blue, gaskets green, electrolyte faint yellow
    (the reference's palette), inside a yellow outline of the field of view.

    Parameters
    ----------
    classes : store path, numpy, dask or xarray array, shape (z, y, x)
        Class volume (0 electrolyte, 1 bubble, 2 membrane, 3 gasket).
    size : (int, int)
        Window size in pixels.
    max_voxels : int
        Render at most this many voxels (see :func:`render_volume`).
    decimate : float
        Fraction of each surface's triangles to remove.

    Returns
    -------
    pyvista.Plotter
        Off-screen; pass it to :func:`screenshot` or :func:`orbit`.

    Examples
    --------
    >>> import redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> image = screenshot(scene_cell(phantom.classes, size=(400, 400)))  # doctest: +SKIP
    >>> image.shape  # doctest: +SKIP
    (400, 400, 3)
    """
    vol, sp, note = render_volume(classes, max_voxels=max_voxels)
    pl = _plotter(size, f"segmented cell - {note}")
    for cid, name, opacity in ((0, "electrolyte", 0.04), (3, "gasket", 0.35),
                               (2, "membrane", 0.45), (1, "bubble", 1.0)):
        mesh = surface(vol == cid, sp, decimate=decimate)
        if mesh.n_points:
            pl.add_mesh(mesh, color=PALETTE[name], opacity=opacity, smooth_shading=True,
                        label=name)
    outline = _grid(vol, sp).outline()
    pl.add_mesh(outline, color=PALETTE["electrolyte"], line_width=2)
    pl.add_legend(bcolor=(0.75, 0.75, 0.75), face="rectangle", size=(0.18, 0.15))  # grey:
    _scale(pl)                                                  # the yellow label legible
    pl.camera_position = "iso"
    return pl


def _point_labels(mesh, labels: np.ndarray, spacing) -> np.ndarray:
    """The label each surface point belongs to (max of its 8 neighbouring voxels)."""
    idx = np.asarray(mesh.points)[:, ::-1] / np.asarray(spacing)
    lo = np.clip(np.floor(idx).astype(int), 0, np.asarray(labels.shape) - 1)
    hi = np.clip(lo + 1, 0, np.asarray(labels.shape) - 1)
    out = np.zeros(len(idx), labels.dtype)
    for corner in np.ndindex(2, 2, 2):
        pick = np.where(np.asarray(corner, bool), hi, lo)
        out = np.maximum(out, labels[tuple(pick.T)])
    return out


def scene_property(labels: Any, bubbles, prop: str, *, size=(800, 800), cmap: str = "viridis",
                   log: bool = False, max_voxels: int = MAX_RENDER_VOXELS,
                   classes: Any = None):
    """Bubbles coloured by a per-bubble property, with a colour bar (membrane in grey).

    Parameters
    ----------
    labels : store path, numpy, dask or xarray array, shape (z, y, x)
        Bubble labels whose ids are those of ``bubbles``.
    bubbles : xarray.Dataset
        The bubble table (dim ``bubble``); bubbles not in it are drawn grey.
    prop : str
        A numeric variable of the table (``"sphericity"``, ``"volume"``...).
    size : (int, int)
        Window size in pixels.
    cmap : str
        Colour map.
    log : bool
        Colour by log10 of the property.
    max_voxels : int
        Render at most this many voxels (see :func:`render_volume`).
    classes : optional
        Class volume whose membrane is drawn in grey.

    Returns
    -------
    pyvista.Plotter

    Examples
    --------
    >>> import redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> labels, n = rf.label(phantom.classes == 1)  # doctest: +SKIP
    >>> table = rf.regionprops(labels)  # doctest: +SKIP
    >>> plotter = scene_property(labels, table, "volume", log=True,
    ...                          classes=phantom.classes)  # doctest: +SKIP
    >>> screenshot(plotter).shape  # doctest: +SKIP
    (800, 800, 3)
    """
    valid = [k for k, v in bubbles.data_vars.items() if v.dims == ("bubble",)
             and np.issubdtype(v.dtype, np.number)]
    if prop not in valid:
        raise InputError(f"unknown bubble property {prop!r}; valid: {', '.join(sorted(valid))}")
    vol, sp, note = render_volume(labels, max_voxels=max_voxels)
    pl = _plotter(size, f"bubbles by {prop} - {note}")
    ids = bubbles["bubble"].values.astype(np.int64)
    values = bubbles[prop].values.astype(float)
    if log:
        values = np.log10(np.where(values > 0, values, np.nan))
    lut = np.full(int(max(vol.max(), ids.max(initial=0))) + 1, np.nan)
    lut[ids[ids < len(lut)]] = values[ids < len(lut)]
    mesh = surface(np.isin(vol, ids), sp)
    if mesh.n_points:
        mesh.point_data[prop] = lut[_point_labels(mesh, vol, sp)]
        pl.add_mesh(mesh, scalars=prop, cmap=cmap, nan_color="lightgrey", smooth_shading=True,
                    scalar_bar_args={"title": f"log10 {prop}" if log else prop,
                                     "color": "black", "vertical": True, "position_x": 0.86,
                                     "position_y": 0.25, "height": 0.5, "width": 0.08,
                                     "n_labels": 5, "fmt": "%.3g", "title_font_size": 14,
                                     "label_font_size": 12})  # clear of the axes and title
    if classes is not None:
        cvol, csp, _ = render_volume(classes, max_voxels=max_voxels)
        mem = surface(cvol == 2, csp, decimate=0.5)
        if mem.n_points:
            pl.add_mesh(mem, color="grey", opacity=0.25)
    _scale(pl)
    pl.camera_position = "iso"
    return pl


def scene_blockage(classes: Any, labels: Any, blocking_ids: Sequence[int], *, size=(800, 800),
                   max_voxels: int = MAX_RENDER_VOXELS):
    """The membrane (blue) with the bubbles that block it (red); other bubbles hidden.

    Parameters
    ----------
    classes : store path, numpy, dask or xarray array, shape (z, y, x)
        Class volume (the membrane is class 2).
    labels : store path, numpy, dask or xarray array, shape (z, y, x)
        Bubble labels.
    blocking_ids : sequence of int
        The labels to draw (e.g. ``tree["blockage/contact_bubble"]`` of an analysis).
    size : (int, int)
        Window size in pixels.
    max_voxels : int
        Render at most this many voxels (see :func:`render_volume`).

    Returns
    -------
    pyvista.Plotter
        Viewed from the membrane's normal.

    Examples
    --------
    >>> import redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> plotter = scene_blockage(phantom.classes, phantom.instances, [1, 2])  # doctest: +SKIP
    >>> screenshot(plotter).shape  # doctest: +SKIP
    (800, 800, 3)
    """
    cvol, csp, note = render_volume(classes, max_voxels=max_voxels)
    lvol, lsp, _ = render_volume(labels, max_voxels=max_voxels)
    pl = _plotter(size, f"membrane-blocking bubbles ({len(blocking_ids)}) - {note}")
    mem = surface(cvol == 2, csp, decimate=0.5)
    if mem.n_points:
        pl.add_mesh(mem, color=PALETTE["membrane"], opacity=0.6, label="membrane")
    blk = surface(np.isin(lvol, np.asarray(blocking_ids, dtype=lvol.dtype)), lsp)
    if blk.n_points:
        pl.add_mesh(blk, color=PALETTE["bubble"], smooth_shading=True, label="blocking bubbles")
    _scale(pl)
    pl.camera_position = "yz"
    return pl


def scene_halfcells(halfcells: Any, *, size=(800, 800), max_voxels: int = MAX_RENDER_VOXELS):
    """Negative (orange) and positive (purple) half-cells around the membrane band (blue).

    Parameters
    ----------
    halfcells : store path, numpy, dask or xarray array, shape (z, y, x)
        Half-cell codes (1 negative, 2 membrane band, 3 positive), as
        :func:`redoxflow.analysis.halfcell_map` gives.
    size : (int, int)
        Window size in pixels.
    max_voxels : int
        Render at most this many voxels (see :func:`render_volume`).

    Returns
    -------
    pyvista.Plotter

    Examples
    --------
    >>> import redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> codes = rf.analysis.halfcell_map(phantom.classes, negative_side="high")
    >>> screenshot(scene_halfcells(codes)).shape  # doctest: +SKIP
    (800, 800, 3)
    """
    vol, sp, note = render_volume(halfcells, max_voxels=max_voxels)
    pl = _plotter(size, f"half-cells - {note}")
    for code, name, colour in ((1, "negative", HALF_COLOURS[1]), (2, "membrane", PALETTE["membrane"]),
                               (3, "positive", HALF_COLOURS[3])):
        mesh = surface(vol == code, sp, decimate=0.5)
        if mesh.n_points:
            pl.add_mesh(mesh, color=colour, opacity=0.5 if code != 2 else 0.9, label=name)
    pl.add_legend(bcolor="white", face="rectangle", size=(0.18, 0.12))
    _scale(pl)
    pl.camera_position = "iso"
    return pl


def screenshot(plotter, path: str | os.PathLike | None = None) -> np.ndarray:
    """Render the scene; write a PNG when ``path`` is given; returns the (h, w, 3) image.

    The plotter is closed afterwards.

    Parameters
    ----------
    plotter : pyvista.Plotter
        A scene of this module.
    path : path, optional
        PNG file to write.

    Returns
    -------
    uint8 ndarray, shape (h, w, 3)

    Examples
    --------
    >>> import pathlib, tempfile, redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> png = pathlib.Path(tempfile.mkdtemp()) / "cell.png"
    >>> screenshot(scene_cell(phantom.classes, size=(400, 300)), png).shape  # doctest: +SKIP
    (300, 400, 3)
    """
    img = plotter.screenshot(str(path) if path else None, return_img=True)
    plotter.close()
    return img


#: the largest orbit GIF the report embeds (bytes): 1 MiB, about 1.4 MB of base64 in the page
ORBIT_MAX_BYTES = 2**20
#: the narrowest orbit frame before frames are dropped to fit the cap (pixels)
ORBIT_MIN_WIDTH = 480


def orbit(plotter, path: str | os.PathLike, *, frames: int = 36, duration: float = 3.0,
          elevation: float = 20.0, max_bytes: int | None = ORBIT_MAX_BYTES) -> Path:
    """Write an orbit animation of a scene (GIF, or MP4 with imageio-ffmpeg).

    The camera is raised by ``elevation`` and turned once around; the plotter is closed
    afterwards and the file written atomically. A GIF larger than ``max_bytes`` is shrunk
    until it fits: frames scaled down to 480 pixels wide, then every other frame dropped
    down to 12 (see :func:`_capped_gif`).

    Parameters
    ----------
    plotter : pyvista.Plotter
        A scene of this module.
    path : path
        ``.gif`` or ``.mp4`` file.
    frames : int
        Frames per turn (at least 2).
    duration : float
        Seconds per turn.
    elevation : float
        Camera elevation in degrees.
    max_bytes : int or None
        Size cap of a GIF (default :data:`ORBIT_MAX_BYTES`, 1 MiB); None: no cap.

    Returns
    -------
    pathlib.Path
        ``path``.

    Examples
    --------
    >>> import pathlib, tempfile, redoxflow as rf
    >>> phantom = rf.make_phantom((16, 32, 32))
    >>> gif = pathlib.Path(tempfile.mkdtemp()) / "cell.gif"
    >>> orbit(scene_cell(phantom.classes, size=(200, 200)), gif, frames=4).name  # doctest: +SKIP
    'cell.gif'
    """
    import imageio.v3 as iio

    if frames < 2:
        raise InputError(f"frames={frames}: an orbit needs at least 2 frames")
    path = Path(path)
    plotter.camera.Elevation(elevation)
    images = []
    for _ in range(frames):
        plotter.render()
        images.append(plotter.screenshot(return_img=True))
        plotter.camera.Azimuth(360.0 / frames)
    plotter.close()
    if path.suffix.lower() not in (".gif", ".mp4"):
        raise InputError(f"{path.name}: orbit writes .gif or .mp4")
    with atomic_file(path) as part:
        if path.suffix.lower() == ".gif":
            part.write_bytes(_capped_gif(np.stack(images), duration, max_bytes))
        else:
            try:
                iio.imwrite(part, np.stack(images), fps=frames / duration)
            except Exception as exc:  # imageio raises plain errors when no ffmpeg plugin exists
                raise InputError(f"cannot write MP4 ({exc}); install imageio-ffmpeg or use "
                                 ".gif") from exc
    return path


def _capped_gif(images: np.ndarray, duration: float, max_bytes: int | None) -> bytes:
    """GIF bytes of ``images`` (n, h, w, 3), shrunk until at most ``max_bytes``.

    A GIF's size goes with frames x pixels: frames are first scaled down to no less than
    ``ORBIT_MIN_WIDTH`` pixels (readable labels), then every other frame is dropped down to
    12 (a smooth enough turn), then both go on down to 64 pixels and 2 frames; what still
    does not fit is refused.
    """
    import imageio.v3 as iio

    while True:
        data = iio.imwrite("<bytes>", images, extension=".gif",
                           duration=duration * 1000 / len(images), loop=0)
        if max_bytes is None or len(data) <= max_bytes:
            return data
        n, w = len(images), images.shape[2]
        factor = max(np.sqrt(0.9 * max_bytes / len(data)), 0.5)  # the estimated fit
        if w > ORBIT_MIN_WIDTH:
            images = _resized(images, max(factor, ORBIT_MIN_WIDTH / w))
        elif n > 12:
            images = images[::2]
        elif w * factor >= 64:
            images = _resized(images, factor)
        elif n > 2:
            images = images[::2]
        else:
            raise InputError(f"an orbit GIF does not fit in {max_bytes} bytes: pass a "
                             "larger max_bytes")


def _resized(images: np.ndarray, factor: float) -> np.ndarray:
    """Frames scaled by ``factor`` (anti-aliased)."""
    from skimage.transform import resize

    n, h, w, c = images.shape
    size = (n, max(1, round(h * factor)), max(1, round(w * factor)), c)
    return (resize(images, size, order=1, anti_aliasing=True, preserve_range=True)
            + 0.5).astype(np.uint8)
