"""Labeling and regionprops against their peers, on one input in one run.

Labeling of a blob volume (default 512^3, 128^3 chunks, 26-connectivity): redoxflow.label vs
one in-memory scipy.ndimage.label call, cc3d on the whole array and dask-image
ndmeasure.label. regionprops (area, centroid, inertia eigenvalues, bbox) vs
skimage.measure.regionprops_table. Every result is checked against scipy before timing counts.
``--backend cupy`` labels and measures on the GPU (see also bench_gpu.py).

    python benchmarks/bench_label.py [--size 512] [--chunk 128] [--skip-dask-image]
                                     [--backend numpy|cupy]
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import best_of, report, timed


def blobs(size: int, seed: int = 0) -> np.ndarray:
    """Many separate blobs: smoothed noise, thresholded."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((size,) * 3, dtype=np.float32)
    return ndimage.gaussian_filter(noise, 2.0, output=np.float32) > 0.12


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--skip-dask-image", action="store_true")
    ap.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = ap.parse_args()

    import cc3d
    import dask
    import dask.array as da
    from scipy import ndimage
    from skimage.measure import regionprops_table

    from redoxflow import label, regionprops
    from redoxflow._backend import to_numpy

    dask.config.set(scheduler="threads", num_workers=2)
    on = "" if args.backend == "numpy" else f", {args.backend}"
    mask = blobs(args.size)
    voxels = mask.size / 1e6
    structure = np.ones((3, 3, 3), bool)
    t_scipy, (ref, n_ref) = best_of(2, ndimage.label, mask, structure)
    t_cc3d, _ = best_of(2, cc3d.connected_components, mask, connectivity=26)
    darr = da.from_array(mask, chunks=args.chunk)

    def ours():
        labels, n = label(darr, connectivity=26, backend=args.backend)
        return to_numpy(labels.compute()), n

    t_ours, (got, n) = best_of(2, ours)
    assert n == n_ref and np.array_equal(got, ref), "redoxflow.label differs from scipy"
    rows = [
        {"method": "scipy.ndimage.label (in memory)", "seconds": t_scipy,
         "MVoxel/s": voxels / t_scipy},
        {"method": "cc3d (whole array)", "seconds": t_cc3d, "MVoxel/s": voxels / t_cc3d},
        {"method": f"redoxflow.label ({args.chunk}^3 chunks{on})", "seconds": t_ours,
         "MVoxel/s": voxels / t_ours},
    ]
    ratios = {"ours_vs_scipy": t_ours / t_scipy}
    if not args.skip_dask_image:
        from dask_image.ndmeasure import label as di_label

        def peer():
            labels, n = di_label(darr, structure)
            return labels.compute(), int(n)

        t_di, (_, n_di) = timed(peer)
        assert n_di == n_ref
        rows.append({"method": f"dask-image ndmeasure.label ({args.chunk}^3 chunks)",
                     "seconds": t_di, "MVoxel/s": voxels / t_di})
        ratios["dask_image_vs_ours"] = t_di / t_ours
    lab = da.from_array(ref.astype(np.uint32), chunks=args.chunk)
    props = ["volume", "centroid", "inertia", "bbox"]
    t_rp, ds = best_of(2, regionprops, lab, properties=props, backend=args.backend)
    t_sk, sk = timed(regionprops_table, ref, properties=["area", "centroid",
                                                         "inertia_tensor_eigvals", "bbox"])
    assert np.array_equal(ds["volume_voxels"].values, sk["area"])
    rows.append({"method": f"redoxflow.regionprops ({n_ref} labels{on})", "seconds": t_rp,
                 "MVoxel/s": voxels / t_rp})
    rows.append({"method": "skimage regionprops_table", "seconds": t_sk,
                 "MVoxel/s": voxels / t_sk})
    ratios["skimage_vs_regionprops"] = t_sk / t_rp
    print(f"{args.size}^3, {n_ref} components; ratios: "
          + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items()))
    report("label" if args.backend == "numpy" else f"label_{args.backend}", rows,
           {"size": args.size, "chunk": args.chunk, "components": int(n_ref),
            "backend": args.backend, "ratios": ratios})


if __name__ == "__main__":
    main()
