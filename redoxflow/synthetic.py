"""Synthetic VRFB tomograms with exact ground truth (the demo's and most tests' data).

Geometry, axes (z, y, x) with x the through-plane axis: a wavy membrane sheet around
``x = X/2``, gasket bands at both y edges, carbon-felt fibres in both half-cells, electrolyte,
and ellipsoidal bubbles of varied size and orientation (some touching the membrane, some
touching each other, some cut by the field of view). The grey image adds CT-like blur, ring
artefacts and noise. Everything is a deterministic function of the seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .common.units import normalize_voxel_size
from .errors import InputError

ELECTROLYTE, BUBBLE, MEMBRANE, GASKET = 0, 1, 2, 3
GREY = {"electrolyte": 110.0, "fibre": 150.0, "bubble": 35.0, "membrane": 190.0, "gasket": 225.0}


@dataclass
class Bubble:
    """One ellipsoid of a phantom.

    Attributes
    ----------
    centre : float ndarray, shape (3,)
        Centre (z, y, x) in voxels.
    semi_axes : float ndarray, shape (3,)
        Semi-axes in voxels, along the columns of ``rotation``.
    rotation : float ndarray, shape (3, 3)
        Orthonormal frame of the ellipsoid.
    role : {"free", "membrane", "pair", "cut"}
        Free in an electrode, touching the membrane, one of two touching bubbles, or cut by
        the field of view.

    Examples
    --------
    >>> p = make_phantom((16, 32, 32), seed=0)
    >>> b = p.bubbles[0]
    >>> b.centre.shape, b.semi_axes.shape, b.rotation.shape, b.role
    ((3,), (3,), (3, 3), 'free')
    """

    centre: np.ndarray
    semi_axes: np.ndarray
    rotation: np.ndarray
    role: str  # "free", "membrane", "pair", "cut"


@dataclass
class Phantom:
    """A generated tomogram and its exact ground truth.

    Attributes
    ----------
    image : uint8 (z, y, x)
        Grey levels (gas dark, membrane and gasket bright).
    classes : uint8 (z, y, x)
        0 electrolyte, 1 bubble, 2 membrane, 3 gasket.
    instances : uint32 (z, y, x)
        Ground-truth bubble ids (touching bubbles keep distinct ids), 0 elsewhere.
    membrane_x : float (z, y)
        Membrane mid-surface position along x (voxels).
    membrane_thickness : float
        Membrane thickness along x (voxels).
    gasket_width : int
        Width of each gasket band at the y edges (voxels).
    bubbles : list of Bubble
        Parameters of instance ``i + 1``.
    voxel_size : (z, y, x) micrometres
    seed : int
        The seed it was generated from.
    attrs : dict
        ``negative_side`` (``"high"``) and ``through_plane_axis`` (``"x"``).

    Examples
    --------
    >>> p = make_phantom((16, 32, 32), seed=0)
    >>> p.image.shape, p.image.dtype, p.membrane_x.shape
    ((16, 32, 32), dtype('uint8'), (16, 32))
    >>> sorted(set(p.classes.ravel().tolist()))
    [0, 1, 2, 3]
    """

    image: np.ndarray
    classes: np.ndarray
    instances: np.ndarray
    membrane_x: np.ndarray
    membrane_thickness: float
    gasket_width: int
    bubbles: list[Bubble]
    voxel_size: tuple[float, float, float]
    seed: int
    attrs: dict[str, Any] = field(default_factory=dict)

    def to_xarray(self):
        """The phantom as an ``xarray.Dataset`` (image, classes, instances) with µm coords.

        Returns
        -------
        xarray.Dataset
            Variables ``image``, ``classes``, ``instances`` with dims (z, y, x), coords at
            voxel positions in micrometres, attrs ``voxel_size`` and ``seed``.

        Examples
        --------
        >>> ds = make_phantom((16, 32, 32), voxel_size=2.0).to_xarray()
        >>> list(ds.data_vars), float(ds["x"][1])
        (['image', 'classes', 'instances'], 2.0)
        """
        import xarray as xr

        coords = {d: np.arange(n) * s for d, n, s in zip("zyx", self.image.shape, self.voxel_size)}
        dims = ("z", "y", "x")
        return xr.Dataset({"image": (dims, self.image), "classes": (dims, self.classes),
                           "instances": (dims, self.instances)}, coords=coords,
                          attrs={"voxel_size": list(self.voxel_size), "seed": self.seed})


def _rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def _membrane_surface(shape, rng) -> tuple[np.ndarray, float]:
    Z, Y, X = shape
    zz, yy = np.meshgrid(np.arange(Z), np.arange(Y), indexing="ij")
    amp = 0.03 * X
    phase = rng.uniform(0, 2 * np.pi, 2)
    surf = (X / 2 + amp * np.sin(2 * np.pi * yy / max(Y, 8) + phase[0])
            + 0.5 * amp * np.sin(2 * np.pi * zz / max(Z, 8) + phase[1]))
    return surf, max(2.0, 0.04 * X)


def _paint_ellipsoid(instances: np.ndarray, b: Bubble, value: int) -> None:
    reach = np.ceil(b.semi_axes.max()) + 1
    lo = np.maximum(np.floor(b.centre - reach).astype(int), 0)
    hi = np.minimum(np.ceil(b.centre + reach).astype(int) + 1, instances.shape)
    if np.any(hi <= lo):
        return
    grid = np.stack(np.meshgrid(*[np.arange(a, c) for a, c in zip(lo, hi)], indexing="ij"), -1)
    local = (grid - b.centre) @ b.rotation  # coordinates in the ellipsoid's frame
    inside = ((local / b.semi_axes) ** 2).sum(-1) <= 1.0
    view = instances[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    view[inside & (view == 0)] = value


def _reach(b: Bubble, direction: np.ndarray) -> float:
    """Distance from an (axis-aligned) ellipsoid's centre to its surface along a direction."""
    return float(1 / np.sqrt(((direction / b.semi_axes) ** 2).sum()))


def _place_bubbles(shape, surf, thickness, gasket, rng, n_bubbles) -> list[Bubble]:
    Z, Y, X = shape
    rmax = max(2.5, min(shape) / 10)
    rmin = max(1.5, rmax / 3)
    bubbles: list[Bubble] = []

    def new(centre, role, scale=1.0):
        r = rng.uniform(rmin, rmax) * scale
        axes = r * np.array([1.0, rng.uniform(0.55, 1.0), rng.uniform(0.4, 1.0)])
        return Bubble(np.asarray(centre, float), axes, _rotation(rng), role)

    def random_centre():
        z = rng.uniform(rmax, Z - rmax)
        y = rng.uniform(gasket + rmax, Y - gasket - rmax)
        side = rng.choice([-1, 1])
        m = surf[int(z), int(y)]
        x = m + side * rng.uniform(thickness / 2 + rmax, X / 2 - rmax)
        return np.array([z, y, np.clip(x, rmax, X - 1 - rmax)])

    n_membrane, n_pairs, n_cut = max(1, n_bubbles // 6), max(1, n_bubbles // 8), max(1, n_bubbles // 10)
    for _ in range(n_bubbles - n_membrane - 2 * n_pairs - n_cut):
        bubbles.append(new(random_centre(), "free"))
    for _ in range(n_membrane):  # overlap the membrane: clipped by it, so they touch it
        c = random_centre()
        m = surf[int(c[0]), int(c[1])]
        side = rng.choice([-1, 1])
        b = new(c, "membrane")
        c[2] = m + side * (thickness / 2 + 0.6 * b.semi_axes.min())
        b.centre = c
        bubbles.append(b)
    for _ in range(n_pairs):  # two bubbles that overlap slightly: one 26-component, two ids
        a = new(random_centre(), "pair", 0.8)
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        b = new(a.centre, "pair", 0.8)
        b.rotation = a.rotation = np.eye(3)
        b.centre = a.centre + direction * (_reach(a, direction) + _reach(b, direction) - 0.8)
        bubbles += [a, b]
    for _ in range(n_cut):  # centre near a z face: cut by the field of view
        c = random_centre()
        c[0] = rng.choice([0.3, Z - 1.3])
        bubbles.append(new(c, "cut"))
    return bubbles


def _fibres(classes, surf, thickness, rng, density: float) -> np.ndarray:
    """Carbon-felt fibres (radius ~1.2 voxel) lying in planes of constant x, inside electrodes."""
    Z, Y, X = classes.shape
    fibre = np.zeros(classes.shape, bool)
    n = int(density * Z * Y * X / 4000)
    zz, yy = np.meshgrid(np.arange(Z), np.arange(Y), indexing="ij")
    for _ in range(n):
        x0 = rng.uniform(0, X - 1)
        angle = rng.uniform(0, np.pi)
        p = np.array([rng.uniform(0, Z), rng.uniform(0, Y)])
        d = np.array([np.cos(angle), np.sin(angle)])
        perp = np.abs((zz - p[0]) * d[1] - (yy - p[1]) * d[0])
        for x in range(max(0, int(x0) - 2), min(X, int(x0) + 3)):
            fibre[:, :, x] |= perp ** 2 + (x - x0) ** 2 <= 1.2 ** 2
    far = np.abs(np.arange(X)[None, None, :] - surf[:, :, None]) > thickness / 2 + 1
    return fibre & far & (classes == ELECTROLYTE)


def make_phantom(
    shape: tuple[int, int, int] = (96, 160, 160),
    *,
    voxel_size: float | tuple[float, float, float] = 10.0,
    seed: int = 0,
    n_bubbles: int | None = None,
    noise: float = 10.0,
    blur: float = 0.8,
    rings: float = 6.0,
    fibre_density: float = 1.0,
) -> Phantom:
    """Generate a synthetic VRFB tomogram with exact ground truth.

    Parameters
    ----------
    shape : (z, y, x)
        Volume size in voxels (each at least 16).
    voxel_size : float or (z, y, x)
        Micrometres.
    seed : int
        Everything is a deterministic function of the seed.
    n_bubbles : int, optional
        Number of ellipsoids (default scales with the volume, at least 12).
    noise, blur, rings : float
        Gaussian noise s.d. (grey levels), blur sigma (voxels), ring-artefact amplitude.
    fibre_density : float
        Relative number of felt fibres (0 for none).

    Returns
    -------
    Phantom
        Grey image, classes and instances, each of shape ``shape``, with the ground truth.

    Examples
    --------
    >>> p = make_phantom((16, 32, 32), seed=1, n_bubbles=12)
    >>> p.classes.shape, len(p.bubbles), p.voxel_size
    ((16, 32, 32), 12, (10.0, 10.0, 10.0))
    >>> make_phantom((8, 32, 32))
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: phantom shape (8, 32, 32) must be three sizes of at least 16 voxels
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 16:
        raise InputError(f"phantom shape {shape} must be three sizes of at least 16 voxels")
    vsize = normalize_voxel_size(voxel_size)
    rng = np.random.default_rng(seed)
    Z, Y, X = shape
    surf, thickness = _membrane_surface(shape, rng)
    gasket = max(2, round(0.06 * Y))
    if n_bubbles is None:
        n_bubbles = max(12, int(np.prod(shape) / 40000))
    bubbles = _place_bubbles(shape, surf, thickness, gasket, rng, n_bubbles)
    instances = np.zeros(shape, np.uint32)
    for i, b in enumerate(bubbles, start=1):
        _paint_ellipsoid(instances, b, i)
    classes = np.where(instances > 0, BUBBLE, ELECTROLYTE).astype(np.uint8)
    membrane = np.abs(np.arange(X)[None, None, :] - surf[:, :, None]) <= thickness / 2
    classes[membrane] = MEMBRANE
    classes[:, :gasket] = GASKET
    classes[:, Y - gasket:] = GASKET
    instances[classes != BUBBLE] = 0
    image = _render(classes, surf, thickness, rng, noise, blur, rings, fibre_density)
    return Phantom(image, classes, instances, surf, thickness, gasket, bubbles, vsize, seed,
                   {"negative_side": "high", "through_plane_axis": "x"})


def _render(classes, surf, thickness, rng, noise, blur, rings, fibre_density) -> np.ndarray:
    lut = np.array([GREY["electrolyte"], GREY["bubble"], GREY["membrane"], GREY["gasket"]],
                   np.float32)
    img = lut[classes]
    if fibre_density > 0:
        img[_fibres(classes, surf, thickness, rng, fibre_density)] = GREY["fibre"]
    if blur > 0:
        img = ndimage.gaussian_filter(img, blur)
    Z, Y, X = classes.shape
    if rings > 0:
        r = np.hypot(*np.meshgrid(np.arange(Y) - Y / 2, np.arange(X) - X / 2, indexing="ij"))
        profile = rng.normal(0, rings, int(r.max()) + 2)
        img += profile[r.astype(int)][None]
    if noise > 0:
        img += rng.normal(0, noise, img.shape).astype(np.float32)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


# --- 4D phantom: bubbles moving, growing, coalescing, splitting, with true identities -------

@dataclass
class PhantomSeries:
    """A 4D series of bubble label volumes with the true identity of every bubble.

    Attributes
    ----------
    labels : uint32 ndarray, shape (t, z, y, x)
        Per step, ids 1..n in the raster order of each bubble's first voxel (as
        :func:`scipy.ndimage.label` numbers them), 0 elsewhere.
    identity : list of int64 ndarray
        ``identity[t][k - 1]`` is the true bubble id of label ``k`` at step ``t``.
    events : list of (int, str, tuple of int, tuple of int)
        ``(t, kind, before, after)``: ``"merge"`` (two true ids at ``t - 1`` become one at
        ``t``), ``"split"`` (one becomes two), ``"nucleation"`` (``before`` empty) and
        ``"dropout"`` (the bubble in ``before`` is missing at step ``t`` only).
    velocity : (float, float, float)
        Mean drift (z, y, x) in voxels per step.
    mean_diameter : float
        Mean bubble diameter at step 0 (voxels).
    voxel_size : (float, float, float)
        Micrometres (z, y, x).
    seed : int
        The seed it was generated from.

    Examples
    --------
    >>> s = make_phantom_series((24, 32, 48), n_steps=3, seed=0)
    >>> s.labels.shape, len(s.identity), s.labels.dtype
    ((3, 24, 32, 48), 3, dtype('uint32'))
    >>> int(s.labels[0].max()) == len(s.identity[0])
    True
    """

    labels: np.ndarray
    identity: list[np.ndarray]
    events: list[tuple[int, str, tuple[int, ...], tuple[int, ...]]]
    velocity: tuple[float, float, float]
    mean_diameter: float
    voxel_size: tuple[float, float, float]
    seed: int

    def true_links(self, t: int) -> dict[str, set[tuple[int, int]]]:
        """The true links between steps ``t - 1`` and ``t`` as (label, label) pairs.

        Parameters
        ----------
        t : int
            Step of the targets (at least 1).

        Returns
        -------
        dict
            ``"continue"``: the same bubble seen at both steps; ``"merge"``: each parent
            with its merged bubble; ``"split"``: the parent with each of its parts. Only
            bubbles visible at both steps count.

        Examples
        --------
        >>> s = make_phantom_series((24, 32, 48), n_steps=2, seed=0)
        >>> sorted(s.true_links(1))
        ['continue', 'merge', 'split']
        """
        before = {int(b): k + 1 for k, b in enumerate(self.identity[t - 1])}
        after = {int(b): k + 1 for k, b in enumerate(self.identity[t])}
        out: dict[str, set[tuple[int, int]]] = {"continue": set(), "merge": set(),
                                                "split": set()}
        for b in before.keys() & after.keys():
            out["continue"].add((before[b], after[b]))
        for step, kind, src, dst in self.events:
            if step != t or kind not in out:
                continue
            for s in src:
                for d in dst:
                    if s in before and d in after:
                        out[kind].add((before[s], after[d]))
        return out


    def true_gaps(self, t: int) -> set[tuple[int, int]]:
        """Bubbles missing at step ``t - 1`` only, as (label at ``t - 2``, label at ``t``).

        Parameters
        ----------
        t : int
            Step of the targets (at least 2).

        Returns
        -------
        set of (int, int)

        Examples
        --------
        >>> s = make_phantom_series(n_steps=4, n_dropouts=1, seed=0)
        >>> sum(len(s.true_gaps(t)) for t in range(2, 4))
        1
        """
        before = {int(b): k + 1 for k, b in enumerate(self.identity[t - 2])}
        middle = {int(b) for b in self.identity[t - 1]}
        after = {int(b): k + 1 for k, b in enumerate(self.identity[t])}
        return {(before[b], after[b]) for b in (before.keys() & after.keys()) - middle}


def _ball_paint(out: np.ndarray, centre: np.ndarray, radius: float, value: int) -> None:
    lo = np.maximum(np.floor(centre - radius).astype(int), 0)
    hi = np.minimum(np.ceil(centre + radius).astype(int) + 1, out.shape)
    if np.any(hi <= lo):
        return
    zz, yy, xx = np.ogrid[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    inside = ((zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2
              <= radius * radius)
    view = out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    view[inside & (view == 0)] = value


def _series_groups(shape, n_steps, speed, radius, rng, n_merges, n_splits, n_nuclei,
                   growth, fill):
    """Groups of bubbles (single, merging pair, splitting bubble, nucleus) with their
    member offsets, radii over time and lifetimes, placed without collisions."""
    Z, Y, X = shape
    rmin, rmax = radius
    travel = speed * (n_steps - 1)
    span = np.array([Z, Y, X + travel + 2 * rmax], float)
    origin = np.array([0.0, 0.0, -travel - rmax])
    kinds = ["merge"] * n_merges + ["split"] * n_splits + ["nucleus"] * n_nuclei
    n_single = int(fill * np.prod(span) / (4 / 3 * np.pi * ((rmin + rmax) / 2) ** 3))
    kinds += ["single"] * max(n_single, 1)
    groups = []
    for kind in kinds:
        r = rng.uniform(rmin, rmax)
        t_event = int(rng.integers(1, n_steps)) if n_steps > 1 else 0
        # members: (offset, radius(t) array, first step, last step)
        ts = np.arange(n_steps)
        if kind == "merge":
            r_a, r_b = r, rng.uniform(rmin, r)
            d = r_a + r_b + 1.0
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            va, vb = r_a ** 3, r_b ** 3
            oa, ob = u * d * vb / (va + vb), -u * d * va / (va + vb)
            r_c = (va + vb) ** (1 / 3)
            members = [(oa, np.full(n_steps, r_a), 0, t_event - 1),
                       (ob, np.full(n_steps, r_b), 0, t_event - 1),
                       (np.zeros(3), np.full(n_steps, r_c), t_event, n_steps - 1)]
            reach = max(np.linalg.norm(oa) + r_a, np.linalg.norm(ob) + r_b, r_c)
        elif kind == "split":
            r_p = max(r, (rmin + rmax) / 2)
            f = rng.uniform(0.35, 0.5)
            r_q, r_r = r_p * f ** (1 / 3), r_p * (1 - f) ** (1 / 3)
            d = r_q + r_r + 1.0
            u = rng.normal(size=3)
            u /= np.linalg.norm(u)
            oq, orr = u * d * (1 - f), -u * d * f
            members = [(np.zeros(3), np.full(n_steps, r_p), 0, t_event - 1),
                       (oq, np.full(n_steps, r_q), t_event, n_steps - 1),
                       (orr, np.full(n_steps, r_r), t_event, n_steps - 1)]
            reach = max(np.linalg.norm(oq) + r_q, np.linalg.norm(orr) + r_r, r_p)
        elif kind == "nucleus":
            r0 = rmin * 0.8
            rad = r0 * (1 + 3 * growth) ** (np.maximum(ts - t_event, 0) / 3)
            members = [(np.zeros(3), rad, t_event, n_steps - 1)]
            reach = rad[-1]
        else:
            g = growth if rng.random() < 0.3 else 0.0
            rad = r * (1 + g) ** (ts / 3)
            members = [(np.zeros(3), rad, 0, n_steps - 1)]
            reach = rad[-1]
        groups.append({"kind": kind, "t_event": t_event, "members": members,
                       "reach": reach + 1.0})
    # trajectories: a common drift along x with a mild shear across z, and a small jitter
    placed = []
    paths = np.zeros((len(groups), n_steps, 3))
    reaches = np.zeros(len(groups))
    for g in groups:
        for _ in range(60):
            c0 = origin + rng.random(3) * span
            if g["kind"] in ("merge", "split", "nucleus"):  # events happen inside the field
                lo = np.minimum(g["reach"], np.array([Z, Y, X]) / 2)
                c0 = rng.uniform(lo, np.array([Z, Y, X]) - lo)
                c0[2] -= speed * g["t_event"]
            shear = 1.0 + 0.1 * (c0[0] / Z - 0.5)
            steps = np.zeros((n_steps, 3))
            steps[1:, 2] = speed * shear
            steps[1:] += rng.normal(scale=0.15, size=(n_steps - 1, 3))
            path = c0 + np.cumsum(steps, axis=0)
            n = len(placed)
            gaps = np.linalg.norm(paths[:n] - path, axis=2).min(axis=1) if n else np.zeros(0)
            if np.all(gaps >= g["reach"] + reaches[:n] + 0.5):
                g["path"] = path
                paths[n], reaches[n] = path, g["reach"]
                placed.append(g)
                break
    return placed


def make_phantom_series(
    shape: tuple[int, int, int] = (32, 48, 96),
    *,
    n_steps: int = 6,
    speed: float = 1.0,
    radius: tuple[float, float] = (3.0, 5.5),
    n_merges: int = 2,
    n_splits: int = 2,
    n_nuclei: int = 2,
    n_dropouts: int = 0,
    growth: float = 0.08,
    fill: float = 0.12,
    voxel_size: float | tuple[float, float, float] = 1.0,
    seed: int = 0,
) -> PhantomSeries:
    """Generate a 4D series of bubble labels with exact ground-truth identities.

    Balls drift along +x (``speed`` voxels per step, 10 % shear across z and a 0.15-voxel
    jitter), enter and leave the field of view, some grow (``growth`` in volume per step),
    ``n_merges`` nearly touching pairs coalesce into one ball of their summed volume at
    their volume-weighted centre, ``n_splits`` balls split into two that conserve volume
    and centroid, and ``n_nuclei`` small bubbles nucleate and grow.

    Parameters
    ----------
    shape : (z, y, x)
        Field of view in voxels (each at least 16).
    n_steps : int
        Number of time steps.
    speed : float
        Drift along x in voxels per step (above the mean diameter is "fast").
    radius : (float, float)
        Range of initial radii (voxels).
    n_merges, n_splits, n_nuclei : int
        Number of coalescences, splits and nucleations (each at a random step >= 1).
    n_dropouts : int
        Number of missed detections: a bubble (inside the field at steps ``t - 1`` to
        ``t + 1``) is left out of step ``t`` (``"dropout"`` events, for gap closing).
    growth : float
        Relative volume growth per step of the growing bubbles (30 % of them).
    fill : float
        Target gas fraction of the singles.
    voxel_size : float or (z, y, x)
        Micrometres (recorded; the geometry is in voxels).
    seed : int
        Everything is a deterministic function of the seed.

    Returns
    -------
    PhantomSeries

    Examples
    --------
    >>> s = make_phantom_series((24, 32, 48), n_steps=3, speed=12.0, seed=1)
    >>> s.velocity[2] > s.mean_diameter  # fast: more than a diameter per step
    True
    >>> len(s.true_links(1)["continue"]) > 0
    True
    """
    shape = tuple(int(s) for s in shape)  # type: ignore[assignment]
    if len(shape) != 3 or min(shape) < 16:
        raise InputError(f"phantom shape {shape} must be three sizes of at least 16 voxels")
    if n_steps < 1:
        raise InputError(f"n_steps = {n_steps}: give at least one step")
    vsize = normalize_voxel_size(voxel_size)
    rng = np.random.default_rng(seed)
    groups = _series_groups(shape, n_steps, float(speed), radius, rng, n_merges, n_splits,
                            n_nuclei, growth, fill)
    next_id = 1
    for g in groups:  # true ids
        g["ids"] = list(range(next_id, next_id + len(g["members"])))
        next_id += len(g["members"])
    events = []
    for g in groups:
        ids, t = g["ids"], g["t_event"]
        if g["kind"] == "merge":
            events.append((t, "merge", (ids[0], ids[1]), (ids[2],)))
        elif g["kind"] == "split":
            events.append((t, "split", (ids[0],), (ids[1], ids[2])))
        elif g["kind"] == "nucleus":
            events.append((t, "nucleation", (), (ids[0],)))
    dropped = set()
    singles_idx = [k for k, g in enumerate(groups) if g["kind"] == "single"]
    for k in rng.permutation(singles_idx):
        if len(dropped) >= n_dropouts or n_steps < 3:
            break
        g = groups[k]
        t = int(rng.integers(1, n_steps - 1))
        r = float(g["members"][0][1][t + 1]) + 1
        inside = all(np.all((g["path"][s] >= r) & (g["path"][s] <= np.array(shape) - 1 - r))
                     for s in (t - 1, t, t + 1))
        if inside:
            dropped.add((t, g["ids"][0]))
            events.append((t, "dropout", (g["ids"][0],), ()))
    labels = np.zeros((n_steps, *shape), np.uint32)
    identity = []
    for t in range(n_steps):
        painted = np.zeros(shape, np.int64)
        for g in groups:
            for (offset, rad, first, last), bid in zip(g["members"], g["ids"]):
                if first <= t <= last and (t, bid) not in dropped:
                    _ball_paint(painted, g["path"][t] + offset, float(rad[t]), bid)
        flat = painted.ravel()
        ids, first_voxel = np.unique(flat, return_index=True)
        keep = ids > 0
        order = ids[keep][np.argsort(first_voxel[keep])]
        lut = np.zeros(next_id, np.uint32)
        lut[order] = np.arange(1, len(order) + 1, dtype=np.uint32)
        labels[t] = lut[painted]
        identity.append(order.astype(np.int64))
    singles = [g["members"][0][1][0] for g in groups if g["kind"] == "single"]
    return PhantomSeries(labels, identity, sorted(events), (0.0, 0.0, float(speed)),
                         float(2 * np.mean(singles)) if singles else 0.0, vsize, int(seed))
