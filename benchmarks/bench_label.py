"""Labeling and regionprops against their peers, on one input in one run.

Labeling of a blob volume (default 512^3, 128^3 chunks, 26-connectivity): redoxflow.label vs
one in-memory scipy.ndimage.label call, cc3d on the whole array and dask-image
ndmeasure.label. regionprops (area, centroid, inertia eigenvalues, bbox) vs
skimage.measure.regionprops_table. Every result is checked against scipy before timing counts.
``--backend cupy`` labels and measures on the GPU (see also bench_gpu.py).

    python benchmarks/bench_label.py [--size 512] [--chunk 128] [--skip-dask-image]
                                     [--backend numpy|cupy]

``--store``: labeling store to store against its limit, in one run on one mask. A uint8 class
store (default: a 128x512x512 VRFB phantom mirrored along z to 512^3, about 3.5 % gas, z-slab
chunks of 64x512x512) is labelled for class 1 with 26-connectivity into a uint32 label store,
the way ``redoxflow label`` does (``rf.label(open_volume(store).data == 1, out=...)``), with
2 and 1 dask threads, and timed against ONE single-threaded ``cc3d.connected_components``
call on the same mask in memory (the faster of its default and uint32 outputs). Every
configuration runs in its own process (peak RSS is per configuration), in ``--rounds``
interleaved rounds of ``--repeats`` timed calls after one warm-up; the best time counts (the
machine is shared). "CPU s" is the least CPU time of a call over all threads (what load
from other processes changes least); "1st call s" is the warm-up call of a fresh process
(imports, numba's cached kernels, zarr's event loop). The label store is checked equal to
``scipy.ndimage.label``. Also measured: the labels kept LZ4-compressed between the passes
(what volumes whose labels exceed the memory budget get), not kept (every block read and
labelled twice), the default pyramid, and the label codecs (zstd-1, blosc-lz4, none) on
these labels. ``--before DIR`` adds the rows of another checkout (e.g. ``git archive`` of an
older commit). JSON: results/label_store.json, table: results/label_store.md
(``label_store_blobs.*`` for ``--mask blobs``).

    python benchmarks/bench_label.py --store [--size 512] [--chunks 64,512,512]
                                     [--mask phantom|blobs] [--before DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, best_of, machine, report, timed


def blobs(size: int, seed: int = 0) -> np.ndarray:
    """Many separate blobs: smoothed noise, thresholded."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((size,) * 3, dtype=np.float32)
    return ndimage.gaussian_filter(noise, 2.0, output=np.float32) > 0.12


def phantom_classes(size: int, seed: int = 21) -> np.ndarray:
    """uint8 classes of a (size/4, size, size) VRFB phantom mirrored along z to size^3."""
    import redoxflow as rf

    base_z = max(16, size // 4)
    base = rf.make_phantom((base_z, size, size), seed=seed, fibre_density=0.05).classes
    copies = [base if k % 2 == 0 else base[::-1] for k in range(-(-size // base_z))]
    return np.ascontiguousarray(np.concatenate(copies)[:size])


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: ru_maxrss would count the parent's RSS at fork)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def store_child(args) -> None:
    """One configuration in this process: print one JSON line (best/median seconds, RSS)."""
    import zarr

    times, cpu = [], []
    if args.child == "cc3d":
        import cc3d

        mask = zarr.open_array(str(Path(args.store_path) / "0"), mode="r")[:] == 1
        out_dtype = None if args.out_dtype == "default" else np.dtype(args.out_dtype)
        for _ in range(args.repeats + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            labels = cc3d.connected_components(mask, connectivity=26, out_dtype=out_dtype)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
            del labels
    else:
        import dask

        import redoxflow as rf
        from redoxflow.io import open_volume

        kw = {} if args.keep_mib is None else {"keep_mib": args.keep_mib}
        if args.levels != "default":
            kw["levels"] = None if args.levels == "auto" else int(args.levels)
        dask.config.set(scheduler="threads", num_workers=args.threads)
        for _ in range(args.repeats + 1):
            shutil.rmtree(args.out_path, ignore_errors=True)  # a new output, as in a real run
            t0, c0 = time.perf_counter(), time.process_time()
            vol = open_volume(args.store_path)
            _, n = rf.label(vol.data == 1, connectivity=26, out=args.out_path,
                            overwrite=True, **kw)
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    timed_runs = times[1:]  # the first call warms up (imports, compiled kernels, caches)
    print(json.dumps({"best": min(timed_runs), "median": float(np.median(timed_runs)),
                      "cpu": min(cpu[1:]), "warmup": times[0], "peak_rss_mib": peak_rss_mib()}))


def run_child(script: Path, argv: list[str], pythonpath: str | None = None) -> dict:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, str(script), *argv], env=env, capture_output=True,
                          text=True, cwd=pythonpath or None)
    if proc.returncode:
        raise RuntimeError(f"{argv} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def codec_rows(labels: np.ndarray, chunks) -> list[dict]:
    """Write and read the same uint32 labels with each candidate codec (one thread)."""
    import zarr
    from zarr.codecs import BloscCodec, ZstdCodec

    candidates = {
        "zstd level 1": [ZstdCodec(level=1)],
        "blosc lz4, no shuffle": [BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")],
        "blosc lz4, byte shuffle": [BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")],
        "none": None,
    }
    rows = []
    root = Path(tempfile.mkdtemp(prefix="rf-codecs-"))
    try:
        for name, codec in candidates.items():
            path = root / f"{len(rows)}.zarr"
            z = zarr.create_array(store=str(path), shape=labels.shape, chunks=chunks,
                                  dtype=labels.dtype, fill_value=0, compressors=codec,
                                  config={"write_empty_chunks": True})
            slabs = [slice(z0, z0 + chunks[0]) for z0 in range(0, labels.shape[0], chunks[0])]
            writes, reads = [], []
            for _ in range(3):
                t0 = time.perf_counter()
                for sl in slabs:
                    z[sl] = labels[sl]
                writes.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                for sl in slabs:
                    z[sl]
                reads.append(time.perf_counter() - t0)
            size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            rows.append({"codec": name, "write MVoxel/s": labels.size / min(writes) / 1e6,
                         "read MVoxel/s": labels.size / min(reads) / 1e6,
                         "MB on disk": size / 1e6, "ratio": labels.nbytes / size})
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return rows


def store_main(args) -> None:
    """Store-to-store labeling against one single-threaded cc3d call (see the docstring)."""
    import cc3d
    from scipy import ndimage

    import redoxflow as rf
    from redoxflow.io import open_volume

    chunks = tuple(int(c) for c in args.chunks.split(","))
    load_before = os.getloadavg()
    classes = (phantom_classes(args.size) if args.mask == "phantom"
               else blobs(args.size).astype(np.uint8))
    voxels = classes.size / 1e6
    root = Path(tempfile.mkdtemp(prefix="rf-label-store-"))
    store, out = root / "classes.zarr", root / "labels.zarr"
    script = Path(__file__).resolve()
    try:
        rf.ingest(classes, store, voxel_size=10.0, kind="classes", chunks=chunks,
                  progress=False)
        mask = classes == 1
        del classes
        ref, n_ref = ndimage.label(mask, np.ones((3, 3, 3), bool))
        gas = float(mask.mean())
        child = ["--child-of-store", "--store-path", str(store), "--out-path", str(out),
                 "--repeats", str(args.repeats)]
        configs = {
            "cc3d, in memory, 1 call (default out dtype)": (["--child", "cc3d"], None),
            "cc3d, in memory, 1 call (uint32 out)": (
                ["--child", "cc3d", "--out-dtype", "uint32"], None),
            "redoxflow.label store->store, 2 threads": (
                ["--child", "label", "--threads", "2"], None),
            "redoxflow.label store->store, 1 thread": (
                ["--child", "label", "--threads", "1"], None),
            "  same, 2 threads, labels kept LZ4-compressed (keep_mib=256 < raw labels)": (
                ["--child", "label", "--threads", "2", "--keep-mib", "256"], None),
            "  same, 2 threads, labels not kept (keep_mib=0: 2 reads, 2 labellings)": (
                ["--child", "label", "--threads", "2", "--keep-mib", "0"], None),
            "  same, 2 threads, with the default pyramid": (
                ["--child", "label", "--threads", "2", "--levels", "auto"], None),
        }
        if args.before:
            configs["before: redoxflow.label store->store, 2 threads"] = (
                ["--child", "label", "--threads", "2", "--keep-mib", "none"], args.before)
            configs["before: redoxflow.label store->store, 1 thread"] = (
                ["--child", "label", "--threads", "1", "--keep-mib", "none"], args.before)
        results: dict[str, list[dict]] = {name: [] for name in configs}
        for _ in range(args.rounds):  # interleaved, so a busy spell hits every row alike
            for name, (argv, path) in configs.items():
                results[name].append(run_child(script, child + argv, path))
                if "label" in argv:
                    got = open_volume(out).data.compute()
                    assert np.array_equal(got, ref), f"{name}: labels differ from scipy"
        best = {name: min(r["best"] for r in runs) for name, runs in results.items()}
        t_cc3d = min(v for k, v in best.items() if k.startswith("cc3d"))
        rows = []
        for name, runs in results.items():
            rows.append({"method": name, "seconds": best[name], "MVoxel/s": voxels / best[name],
                         "x one cc3d call": best[name] / t_cc3d,
                         "median s": float(np.median([r["median"] for r in runs])),
                         "CPU s": min(r["cpu"] for r in runs),
                         "1st call s": float(np.median([r["warmup"] for r in runs])),
                         "peak RSS MiB": max(r["peak_rss_mib"] for r in runs)})
        cc3d_labels = cc3d.connected_components(mask, connectivity=26, out_dtype=np.uint32)
        assert np.array_equal(cc3d_labels, ref)
        codecs = codec_rows(cc3d_labels, chunks)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ratio = best["redoxflow.label store->store, 2 threads"] / t_cc3d
    print(f"{args.mask} {args.size}^3, chunks {chunks}, {n_ref} components, {100 * gas:.1f} % "
          f"of voxels in class 1; store->store on 2 threads = {ratio:.2f}x one cc3d call")
    extra = {"size": args.size, "chunks": chunks, "mask": args.mask, "components": int(n_ref),
             "class1_fraction": gas, "rounds": args.rounds, "repeats": args.repeats,
             "ratio_2_threads_vs_one_cc3d": ratio, "target_ratio": 4.0, "codecs": codecs,
             "before": args.before,
             "load_average_1_5_15min": {"start": load_before, "end": os.getloadavg()}}
    name = "label_store" if args.mask == "phantom" else f"label_store_{args.mask}"
    report(name, rows, extra)
    markdown_table(name, rows, codecs, extra)


def _md(rows: list[dict]) -> list[str]:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k])
                                       for k in keys) + " |")
    return lines


def markdown_table(name: str, rows: list[dict], codecs: list[dict], extra: dict) -> None:
    name = os.environ.get("RF_BENCH_PREFIX", "") + name
    text = [f"# Labeling store to store vs one cc3d call ({extra['mask']} "
            f"{extra['size']}^3, chunks {'x'.join(map(str, extra['chunks']))}, "
            f"{extra['components']} components, {100 * extra['class1_fraction']:.1f} % class 1)",
            "", f"Store->store on 2 threads: **{extra['ratio_2_threads_vs_one_cc3d']:.2f}x** "
            f"one single-threaded cc3d call (target {extra['target_ratio']:g}x). "
            f"Machine: {machine()['cpus']} CPUs ({machine()['machine']}, Python "
            f"{machine()['python']}), shared: load average (1, 5, 15 min) "
            f"{', '.join(f'{x:.1f}' for x in extra['load_average_1_5_15min']['start'])} at the "
            f"start, {', '.join(f'{x:.1f}' for x in extra['load_average_1_5_15min']['end'])} "
            "at the end.", "", *_md(rows), "",
            "## Label codec (one thread, these labels, whole chunks; label stores use blosc lz4 "
            "without shuffle)", "", *_md(codecs), ""]
    (RESULTS / f"{name}.md").write_text("\n".join(text))
    print("\n".join(text[-len(codecs) - 3:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--chunk", type=int, default=128)
    ap.add_argument("--skip-dask-image", action="store_true")
    ap.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    ap.add_argument("--store", action="store_true", help="store-to-store mode (see above)")
    ap.add_argument("--chunks", default="64,512,512", help="class store chunks (--store)")
    ap.add_argument("--mask", choices=["phantom", "blobs"], default="phantom")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--before", default=None, help="a checkout to time as 'before' (--store)")
    # one configuration of --store, run in a child process
    ap.add_argument("--child-of-store", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--child", choices=["cc3d", "label"], help=argparse.SUPPRESS)
    ap.add_argument("--store-path", help=argparse.SUPPRESS)
    ap.add_argument("--out-path", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    ap.add_argument("--keep-mib", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--levels", default="default", help=argparse.SUPPRESS)
    ap.add_argument("--out-dtype", default="default", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_of_store:
        args.keep_mib = None if args.keep_mib in (None, "none") else float(args.keep_mib)
        return store_child(args)
    if args.store:
        return store_main(args)

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
