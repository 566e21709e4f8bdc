"""Plain in-memory numpy implementations of the analysis definitions (the test oracles)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def row_extent(v, cls=2):
    m = v == cls
    has = m.any(axis=2)
    first = np.where(has, m.argmax(axis=2), -1)
    last = np.where(has, v.shape[2] - 1 - m[:, :, ::-1].argmax(axis=2), -1)
    return first, last, has


def utile_right_half(v):
    """The reference's right half, row by row in Python loops (as its code walks it)."""
    out = v.copy()
    for z in range(v.shape[0]):
        positions = []
        for y in range(v.shape[1]):
            xs = np.flatnonzero(v[z, y] == 2)
            if xs.size:
                positions.append(xs[0])
                out[z, y, :xs[0]] = 5
            elif positions:
                cut = int(np.round(np.mean(positions)))
                out[z, :, :cut] = 5
    return out


def z_clean(v):
    b = v == 1
    iso = np.zeros_like(b)
    iso[1:-1] = b[1:-1] & ~b[:-2] & ~b[2:]
    out = v.copy()
    out[iso] = 0
    return out


def utile_analysis(v):
    """Summary numbers and per-bubble rows of the reference definitions."""
    from scipy.spatial import cKDTree
    from skimage.measure import marching_cubes, mesh_surface_area, regionprops

    half = z_clean(utile_right_half(v))
    ratio = (half == 1).sum() / (half == 0).sum()
    lab, n = ndi.label(half == 1, structure=np.ones((3, 3, 3)))
    bubble = half == 1
    mem = half == 2
    touched = np.zeros_like(mem)
    for axis in range(3):
        for step in (1, -1):
            shifted = np.zeros_like(bubble)
            src = [slice(None)] * 3
            dst = [slice(None)] * 3
            src[axis] = slice(1, None) if step == 1 else slice(None, -1)
            dst[axis] = slice(None, -1) if step == 1 else slice(1, None)
            shifted[tuple(dst)] = bubble[tuple(src)]
            touched |= shifted
    blocked = int((mem & touched).sum())
    tree = cKDTree(np.argwhere(mem))
    rows = []
    d, h, w = v.shape
    for p in regionprops(lab):
        if p.area < 60:
            continue
        verts, faces, _, _ = marching_cubes(lab == p.label, level=0)
        area = mesh_surface_area(verts, faces)
        sph = np.pi ** (1 / 3) * (6 * p.area) ** (2 / 3) / area
        if sph > 1:
            continue
        vals, vecs = np.linalg.eigh(np.cov(p.coords, rowvar=False))
        e = vecs[:, np.argmax(vals)]
        s = sorted(vals, reverse=True)
        elong = np.sqrt(s[0] / s[1]) if s[-1] != 0 else 0.0
        flat = np.sqrt(s[1] / s[-1]) if s[-1] != 0 else 0.0
        c = p.centroid
        dist = {"top": h - c[1], "bottom": c[1], "left": c[2], "right": w - c[2],
                "front": c[0], "back": d - c[0], "membrane": tree.query(c)[0]}
        wall = min(dist, key=dist.get)
        rows.append({"id": p.label, "volume": p.area, "sphericity": sph,
                     "theta": np.degrees(np.arctan2(e[1], e[0])),
                     "phi": np.degrees(np.arccos(e[2] / np.linalg.norm(e))),
                     "elongation": elong, "flatness": flat, "centroid": c,
                     "closest_distance": dist[wall], "closest_wall": wall})
    return {"ratio": ratio, "n_components": n, "blocked": blocked, "rows": rows}
