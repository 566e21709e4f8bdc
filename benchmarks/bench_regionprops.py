"""regionprops: all properties vs moments only, and vs the per-crop meshes it replaced.

One run measures, on each label volume (dask array, 128^3 chunks, 2 threads):

* moments only (``properties=MOMENT_PROPERTIES``) and all properties, MVoxel/s (wall clock,
  best of ``--repeats``; process CPU seconds beside them: this machine is shared);
* the previous implementation of the shape properties, kept below as a reference copy
  (marching cubes and a Qhull hull per bubble crop, crops batched in (z, y, x) order), with
  the same moments;
* the largest relative difference of surface area and solidity between the two.

Volumes: labels of smoothed-noise blob volumes (256^3 and 384^3, about 6 % gas in bubbles
of a few hundred voxels; plus the dense, tiny blobs of bench_label.py as a worst case) and of
the bubble class of a synthetic VRFB phantom (``redoxflow.synthetic.make_phantom``, mirrored
along z). Target (issue 13): all properties at least 1/3 the speed of moments only.

    python benchmarks/bench_regionprops.py [--sizes 256,384] [--repeats 3] [--skip-old]
"""

from __future__ import annotations

import argparse
import json
import time

import dask
import numpy as np
from _common import RESULTS, machine, report
from scipy.spatial import ConvexHull, QhullError
from skimage.measure import marching_cubes, mesh_surface_area

# --------------------------------------------------------------------------------------
# the previous shape-property implementation, verbatim but for names (reference for timing
# and values): skimage marching cubes and scipy's Qhull on each bubble's crop


def old_mesh_measures(mask, spacing, level=0.5, pad=True):
    vol = mask.astype(np.float32)
    if pad is True:
        vol = np.pad(vol, 1)
    elif pad is not False:
        vol = np.pad(vol, pad)
    if min(vol.shape) < 2:
        return np.nan, np.nan, np.nan
    try:
        verts, faces, _, _ = marching_cubes(vol, level=level, spacing=tuple(spacing))
    except (ValueError, RuntimeError):
        return np.nan, np.nan, np.nan
    tri = verts[faces]
    signed = float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum()) / 6
    try:
        hull = float(ConvexHull(verts).volume)
    except (QhullError, ValueError):
        hull = np.nan
    return float(mesh_surface_area(verts, faces)), abs(signed), hull


def old_crop_measures(crop, ids, boxes, spacing, level, pad):
    out = np.full((len(ids), 3), np.nan)
    for i, (bid, box) in enumerate(zip(ids, boxes)):
        sub = crop[box[0]:box[3], box[1]:box[4], box[2]:box[5]] == bid
        clipped = [(box[6 + a], box[9 + a]) for a in range(3)]
        out[i] = old_mesh_measures(sub, spacing, level=level, pad=clipped if pad else False)
    return out


def old_crop_batches(bbmin, bbmax, budget):
    order = np.lexsort((bbmin[:, 2], bbmin[:, 1], bbmin[:, 0]))
    batches, current, lo, hi = [], [], None, None
    for i in order:
        nlo = bbmin[i] if lo is None else np.minimum(lo, bbmin[i])
        nhi = bbmax[i] if hi is None else np.maximum(hi, bbmax[i])
        if current and np.prod(nhi - nlo + 1) > budget:
            batches.append((current, lo, hi))
            current, nlo, nhi = [], bbmin[i], bbmax[i]
        current.append(i)
        lo, hi = nlo, nhi
    if current:
        batches.append((current, lo, hi))
    return batches


def old_shape(arr, mom, sp, level=0.5, pad=True, budget=2**24):
    """(k, 3) area, mesh volume, hull volume; bubbles larger than the budget are skipped
    (NaN: the benchmark volumes have none)."""
    shape = np.asarray(arr.shape)
    grown_min = np.maximum(mom["bbmin"] - 1, 0)
    grown_max = np.minimum(mom["bbmax"] + 1, shape - 1)
    clip_lo = grown_min - (mom["bbmin"] - 1)
    clip_hi = (mom["bbmax"] + 1) - grown_max
    small = np.flatnonzero(np.prod(grown_max - grown_min + 1, axis=1) <= budget)
    tasks, regions = [], 0
    for members, lo, hi in old_crop_batches(grown_min[small], grown_max[small], budget):
        region = arr[lo[0]:hi[0] + 1, lo[1]:hi[1] + 1, lo[2]:hi[2] + 1]
        regions += region.size
        members = small[members]
        boxes = [tuple(grown_min[i] - lo) + tuple(grown_max[i] - lo + 1)
                 + tuple(clip_lo[i]) + tuple(clip_hi[i]) for i in members]
        tasks.append((members, dask.delayed(old_crop_measures, pure=True)(
            region, mom["ids"][members].tolist(), boxes, sp, level, pad)))
    results = dask.compute([t for _, t in tasks])[0]
    mesh = np.full((len(mom["ids"]), 3), np.nan)
    for (members, _), res in zip(tasks, results):
        mesh[members] = res
    return mesh, regions / arr.size


# --------------------------------------------------------------------------------------


def blob_labels(size: int, sigma: float, fraction: float | None, seed: int = 0):
    """26-connected components of smoothed noise above a threshold (``fraction`` of the
    voxels, or bench_label.py's fixed 0.12)."""
    import cc3d
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((size,) * 3, dtype=np.float32)
    smooth = ndimage.gaussian_filter(noise, sigma, output=np.float32)
    thr = 0.12 if fraction is None else float(np.quantile(smooth[::4, ::4, ::4], 1 - fraction))
    return cc3d.connected_components(smooth > thr, connectivity=26).astype(np.uint32)


def phantom_labels(size: int, seed: int = 0):
    """Bubble-class components of a VRFB phantom (size/4 x size x size) mirrored along z to
    size/2 planes."""
    import cc3d

    from redoxflow.synthetic import make_phantom

    base = make_phantom((size // 4, size, size), seed=seed, noise=0, blur=0, rings=0).classes
    classes = np.concatenate([base, base[::-1]])
    return cc3d.connected_components(classes == 1, connectivity=26).astype(np.uint32)


def best(fn, repeats):
    """(best wall s, CPU s of that run, result) over ``repeats`` calls after one warm-up."""
    fn()
    runs = []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        runs.append((time.perf_counter() - w, time.process_time() - c, out))
    return min(runs, key=lambda r: r[0])


def rel_diff(a, b):
    both = np.isfinite(a) & np.isfinite(b)
    if (np.isnan(a) != np.isnan(b)).any():
        return float("inf")
    return float(np.max(np.abs(a[both] - b[both]) / np.abs(b[both]), initial=0.0))


def case(name, labels, spacing, chunks, repeats, old):
    import dask.array as da

    import redoxflow.measure as M

    arr = da.from_array(labels, chunks=chunks)
    mvox = labels.size / 1e6
    t_mom, c_mom, _ = best(lambda: M.regionprops(arr, spacing=spacing,
                                                 properties=list(M.MOMENT_PROPERTIES)), repeats)
    t_all, c_all, ds = best(lambda: M.regionprops(arr, spacing=spacing), repeats)
    row = {"volume": name, "shape": "x".join(map(str, labels.shape)),
           "bubbles": int(ds.sizes["bubble"]),
           "mean_voxels": round(float(ds["volume_voxels"].mean()), 1),
           "moments_MVox_s": round(mvox / t_mom, 1), "all_MVox_s": round(mvox / t_all, 1),
           "all_over_moments": round(t_mom / t_all, 3),
           "moments_MVox_cpu_s": round(mvox / c_mom, 1), "all_MVox_cpu_s": round(mvox / c_all, 1),
           "all_over_moments_cpu": round(c_mom / c_all, 3)}
    if old:
        def previous():
            mom = M._partial_sums(arr)
            M._moment_dataset(mom, arr.shape, spacing, 0, np.nan)
            return old_shape(arr, mom, spacing)

        t_old, c_old, (mesh, regions) = best(previous, 1)
        area = ds["surface_area"].values
        with np.errstate(divide="ignore", invalid="ignore"):
            solidity = mesh[:, 1] / mesh[:, 2]
        row.update({"old_all_MVox_s": round(mvox / t_old, 1),
                    "old_all_over_moments": round(t_mom / t_old, 3),
                    "speedup_vs_old": round(t_old / t_all, 1),
                    "old_crop_regions_x_volume": round(regions, 2),
                    "max_rel_diff_area": rel_diff(area, mesh[:, 0]),
                    "max_rel_diff_solidity": rel_diff(ds["solidity"].values, solidity)})
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="256,384", help="blob volume edges")
    ap.add_argument("--phantom", type=int, default=384, help="phantom y/x size (0: none)")
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-old", action="store_true")
    args = ap.parse_args()
    dask.config.set(scheduler="threads", num_workers=2)
    chunks = (args.chunk,) * 3
    rows = []
    sizes = [int(s) for s in args.sizes.split(",") if s]
    for size in sizes:
        rows.append(case(f"blobs sigma 3, 6% gas, {size}^3", blob_labels(size, 3.0, 0.06),
                         (1.0, 1.0, 1.0), chunks, args.repeats, not args.skip_old))
    if sizes:
        size = sizes[0]
        rows.append(case(f"dense tiny blobs (bench_label), {size}^3",
                         blob_labels(size, 2.0, None), (1.0, 1.0, 1.0), chunks, args.repeats,
                         not args.skip_old))
    if args.phantom:
        rows.append(case(f"VRFB phantom bubbles, {args.phantom}^2", phantom_labels(args.phantom),
                         (10.0, 10.0, 10.0), chunks, args.repeats, not args.skip_old))
    report("regionprops", rows, {"target": "all_over_moments >= 1/3",
                                 "chunks": list(chunks), "threads": 2})
    keys = ["volume", "shape", "bubbles", "mean_voxels", "moments_MVox_s", "all_MVox_s",
            "all_over_moments", "all_over_moments_cpu", "old_all_MVox_s", "speedup_vs_old",
            "old_crop_regions_x_volume", "max_rel_diff_area", "max_rel_diff_solidity"]
    keys = [k for k in keys if k in rows[0]]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.2g}" if k.startswith("max_rel") else str(r[k])
                                       for k in keys) + " |")
    md = RESULTS / "regionprops.md"
    md.write_text("# regionprops: all properties vs moments only\n\n"
                  f"Machine: {machine()}; dask threads x2, {args.chunk}^3 chunks, best of "
                  f"{args.repeats} (wall clock; ``_cpu``: process CPU seconds). Target: "
                  "all_over_moments >= 0.333.\n\n" + "\n".join(lines) + "\n")
    print(f"wrote {md}")


if __name__ == "__main__":
    main()
