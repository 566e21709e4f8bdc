"""Tortuosity factor side by side: redoxflow vs TauFactor (CPU) vs PoreSpy ``tortuosity_fd``.

Every run (tool x size x axis) is a fresh subprocess, so that the reported peak memory is
that run's own (``ru_maxrss``; it includes the tool's imports: torch for TauFactor, OpenPNM
for PoreSpy). Times are of the solve call only (imports, volume generation and one tiny
warm-up call that loads the compiled kernels are excluded). The volumes are thresholded
anisotropic Gaussian-smoothed noise (default 30 % porous, correlation lengths 1:2:3 voxels
along z, y, x), generated from a seed in each subprocess.

Conventions: TauFactor fixes the concentrations on the outer faces and divides the total
phase fraction (redoxflow's default, ``boundary="face"``); PoreSpy fixes the first and last
voxel layers and divides the percolating fraction, which redoxflow computes with
``boundary="voxel"`` as ``through_porosity / effective_diffusivity``. Each peer is compared
with redoxflow's run in its own convention.

Usage::

    python benchmarks/bench_tortuosity.py --sizes 64 128 256 --taufactor-max 128
    python benchmarks/bench_tortuosity.py --sizes 512 --peers        # ours alone
    python benchmarks/bench_tortuosity.py --sizes 128 --axes 2 --chunked 64   # blockwise
    python benchmarks/bench_tortuosity.py --big 2048,1024,1024 --big-dir /tmp/redoxflow-big

``--big Z,Y,X`` solves along z through the pore phase of the generated 3-phase electrode of
``bench_microstructure.py --big`` (its Zarr store in ``--big-dir``, written if absent) on a
LocalCluster of 2 single-threaded workers capped at ``--memory-limit``, sampling the RSS of
every worker and of the client: results/tortuosity_big.*.

Writes ``benchmarks/results/tortuosity.json`` and ``tortuosity.md`` (``--tag`` adds a suffix).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def make_volume(n: int, porosity: float, seed: int) -> np.ndarray:
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random((n, n, n), dtype=np.float32), (1.0, 2.0, 3.0),
                                mode="wrap")
    return field > np.quantile(field, 1 - porosity)


def _peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _ours(im, axis, boundary, tol, warm=True):
    from redoxflow.microstructure.tortuosity import tortuosity

    if warm:  # load the compiled kernels (numba cache) outside the timing
        tortuosity(make_volume(16, 0.5, 0), axis, boundary=boundary)
    t = time.perf_counter()
    ds = tortuosity(im, axis, boundary=boundary, device="cpu", tol=tol)
    seconds = time.perf_counter() - t
    if boundary == "voxel":
        value = float(ds.through_porosity / ds.effective_diffusivity)
    else:
        value = float(ds.tortuosity_factor)
    return {"tau": value, "seconds": seconds, "iterations": int(ds.iterations),
            "flux_balance": float(ds.flux_balance)}


def _taufactor(im, axis):
    import taufactor as tau

    img = np.ascontiguousarray(np.moveaxis(im, axis, 0)).astype(np.uint8)
    t = time.perf_counter()
    solver = tau.Solver(img, device="cpu")
    solver.solve(verbose=False)
    seconds = time.perf_counter() - t
    value = float(np.asarray(solver.tau).ravel()[0])
    return {"tau": value, "seconds": seconds, "iterations": int(solver.iter)}


def _porespy(im, axis):
    import porespy as ps

    t = time.perf_counter()
    r = ps.simulations.tortuosity_fd(im, axis=axis)
    seconds = time.perf_counter() - t
    return {"tau": float(r.tortuosity), "seconds": seconds}


def _geodesic_ours(im, axis):
    from redoxflow.microstructure.tortuosity import tortuosity

    t = time.perf_counter()
    ds = tortuosity(im, axis, "geodesic")
    return {"tau": float(ds.geodesic_tortuosity_mean), "seconds": time.perf_counter() - t}


def _geodesic_mcp(im, axis):
    """scikit-image's MCP_Geometric from all inlet voxels (the alternative we measured)."""
    from skimage.graph import MCP_Geometric

    m = np.moveaxis(im, axis, 0)
    t = time.perf_counter()
    costs = np.where(m, 1.0, np.inf)
    mcp = MCP_Geometric(costs, fully_connected=True)
    starts = [(0, j, k) for j, k in np.argwhere(m[0])]
    cum, _ = mcp.find_costs(starts)
    last = cum[-1][m[-1] & np.isfinite(cum[-1])]
    # MCP_Geometric charges half the cost of both voxels per step: centre-to-centre length
    value = float(np.mean((last + 1) / m.shape[0])) if last.size else float("inf")
    return {"tau": value, "seconds": time.perf_counter() - t}


def _ours_chunked(im, axis, chunk, tol, method="diffusion", memory_limit="4GB"):
    """Ours blockwise through a LocalCluster (2 workers x 1 thread, ``memory_limit`` each):
    time, iterations (or sweeps) and the peak worker RSS (polled every 0.5 s)."""
    import threading

    import dask.array as da
    import psutil
    from dask.distributed import Client, LocalCluster

    from redoxflow.microstructure.tortuosity import tortuosity

    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        peak, stop = [0], threading.Event()

        def poll():
            while not stop.is_set():
                try:
                    rss = client.run(lambda: psutil.Process().memory_info().rss)
                    peak[0] = max([peak[0], *rss.values()])
                except Exception:  # a worker restarting: the next poll counts
                    pass
                time.sleep(0.5)

        watcher = threading.Thread(target=poll, daemon=True)
        watcher.start()
        kwargs = {"tol": tol} if method == "diffusion" else {}
        t = time.perf_counter()
        ds = tortuosity(da.from_array(im, chunks=chunk), axis, method, chunks="auto", **kwargs)
        seconds = time.perf_counter() - t
        stop.set()
        watcher.join()
    out = {"seconds": seconds, "peak_worker_mib": peak[0] / 2**20, "chunk": chunk,
           "method": method, "memory_limit": memory_limit}
    if method == "diffusion":
        out.update(tau=float(ds.tortuosity_factor), iterations=int(ds.iterations))
    else:
        out.update(tau=float(ds.geodesic_tortuosity_mean), sweeps=int(ds.attrs["sweeps"]))
    return out


TOOLS = {"ours": _ours, "ours_chunked": _ours_chunked, "taufactor": _taufactor, "porespy": _porespy,
         "geodesic_dijkstra3d": _geodesic_ours, "geodesic_skimage_mcp": _geodesic_mcp}


def _child(queue, tool, n, porosity, seed, axis, kwargs):
    try:
        im = make_volume(n, porosity, seed)
        out = TOOLS[tool](im, axis, **kwargs)
        out["peak_mib"] = _peak_mib()
        queue.put(out)
    except Exception as exc:  # reported in the table, the run goes on
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def run_one(tool, n, porosity, seed, axis, timeout, **kwargs):
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, tool, n, porosity, seed, axis, kwargs))
    proc.start()
    try:
        out = queue.get(timeout=timeout)
    except Exception:
        out = {"error": f"timed out after {timeout} s"}
    proc.join(5)
    if proc.is_alive():
        proc.kill()
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    ap.add_argument("--axes", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--porosity", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tol", type=float, default=1e-6)
    ap.add_argument("--strict-tol", type=float, default=None,
                    help="also run ours (PoreSpy's convention) at this tol: the time and "
                         "tau of the stricter solve beside the --tol one")
    ap.add_argument("--peers", nargs="*", default=["taufactor", "porespy"],
                    help="peers to run (none: ours alone)")
    ap.add_argument("--taufactor-max", type=int, default=128,
                    help="largest side for TauFactor (its work grows ~N^4)")
    ap.add_argument("--porespy-max", type=int, default=256)
    ap.add_argument("--geodesic", action="store_true", help="also time geodesic methods")
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--tag", default="")
    ap.add_argument("--chunked", type=int, default=0, metavar="CHUNK",
                    help="instead of the peers: ours in memory and blockwise (dask chunks of "
                         "CHUNK^3, LocalCluster workers capped at 4 GB), diffusion and "
                         "geodesic, on --sizes and --axes")
    ap.add_argument("--big", default="", help="Z,Y,X of the out-of-core run (e.g. 2048,1024,1024)")
    ap.add_argument("--big-dir", default="/tmp/redoxflow-big")
    ap.add_argument("--memory-limit", default="4GB", help="per worker of the --big run")
    args = ap.parse_args(argv)
    if args.big:
        return big_run(args)
    if args.chunked:
        return chunked_rows(args)

    rows = []
    for n in args.sizes:
        for axis in args.axes:
            row = {"size": n, "axis": axis, "load_start": os.getloadavg()[0]}
            row["ours_face"] = run_one("ours", n, args.porosity, args.seed, axis, args.timeout,
                                       boundary="face", tol=args.tol)
            if "porespy" in args.peers and n <= args.porespy_max:
                row["ours_voxel"] = run_one("ours", n, args.porosity, args.seed, axis,
                                            args.timeout, boundary="voxel", tol=args.tol)
                row["porespy"] = run_one("porespy", n, args.porosity, args.seed, axis,
                                         args.timeout)
                if args.strict_tol:
                    row["ours_voxel_strict"] = run_one("ours", n, args.porosity, args.seed,
                                                       axis, args.timeout, boundary="voxel",
                                                       tol=args.strict_tol)
            if "taufactor" in args.peers and n <= args.taufactor_max:
                row["taufactor"] = run_one("taufactor", n, args.porosity, args.seed, axis,
                                           args.timeout)
            if args.geodesic and axis == args.axes[0]:
                for tool in ("geodesic_dijkstra3d", "geodesic_skimage_mcp"):
                    row[tool] = run_one(tool, n, args.porosity, args.seed, axis, args.timeout)
            row["load_end"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
            write(rows, args)  # after every row: a long run keeps what it measured
    print(markdown(rows, _meta(args)))


def chunked_rows(args):
    rows = []
    for n in args.sizes:
        for axis in args.axes:
            row = {"size": n, "axis": axis, "load_start": os.getloadavg()[0]}
            row["memory"] = run_one("ours", n, args.porosity, args.seed, axis, args.timeout,
                                    boundary="face", tol=args.tol)
            for method in ("diffusion", "geodesic"):
                row[method] = run_one("ours_chunked", n, args.porosity, args.seed, axis,
                                      args.timeout, chunk=args.chunked, tol=args.tol,
                                      method=method)
            row["load_end"] = os.getloadavg()[0]
            rows.append(row)
            print(json.dumps(row), flush=True)
    stem = "tortuosity_chunked" + (f"_{args.tag}" if args.tag else "")
    meta = _meta(args)
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    head = ("| size | axis | chunk | in memory s | chunked s | iterations | tau in memory / "
            "chunked | geodesic chunked s (sweeps) | peak worker MiB diffusion / geodesic | "
            "load |")
    lines = [f"Tortuosity blockwise (LocalCluster 2 x 1 thread, 4 GB per worker), tol "
             f"{args.tol}, {meta['date']}", "", head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        mem, dif, geo = r["memory"], r["diffusion"], r["geodesic"]
        lines.append(f"| {r['size']}^3 | {'zyx'[r['axis']]} | {args.chunked} | {_fmt(mem)} | "
                     f"{_fmt(dif)} | {dif.get('iterations', '-')} | {_fmt(mem, 'tau', 5)} / "
                     f"{_fmt(dif, 'tau', 5)} | {_fmt(geo)} ({geo.get('sweeps', '-')}) | "
                     f"{_fmt(dif, 'peak_worker_mib', 0)} / {_fmt(geo, 'peak_worker_mib', 0)} | "
                     f"{r['load_start']:.1f}-{r['load_end']:.1f} |")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def big_run(args):
    """The out-of-core solve on a 2 G-voxel electrode, workers capped at --memory-limit."""
    import logging
    import threading

    import dask.array as da
    import psutil
    from bench_microstructure import RssSampler, electrode_store
    from distributed import Client, LocalCluster

    from redoxflow.microstructure.tortuosity import tortuosity

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    shape = tuple(int(v) for v in args.big.split(","))
    store = Path(args.big_dir) / "electrode.zarr"
    made = None
    if not store.exists():
        made = electrode_store(shape, store)
    vol = da.from_zarr(str(store))
    if tuple(vol.shape) != shape:
        raise SystemExit(f"{store} holds shape {vol.shape}, not {shape}: remove it or give "
                         "another --big-dir")
    client_peak, scratch_peak = [0], [0]

    def scratch_bytes() -> int:  # disk blocks of the solve's scratch folder(s)
        return sum(f.stat().st_blocks * 512
                   for d in Path(args.big_dir).glob("redoxflow-tortuosity-*")
                   for f in d.iterdir())

    with LocalCluster(n_workers=2, threads_per_worker=1, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        with RssSampler(client) as sampler:
            def poll_client():
                while not sampler._stop.is_set():
                    client_peak[0] = max(client_peak[0], psutil.Process().memory_info().rss)
                    try:
                        scratch_peak[0] = max(scratch_peak[0], scratch_bytes())
                    except OSError:  # the folder is being created or removed
                        pass
                    sampler._stop.wait(2.0)

            watcher = threading.Thread(target=poll_client, daemon=True)
            watcher.start()
            t = time.perf_counter()
            ds = tortuosity(vol, "z", phase=0, tol=args.tol, scratch=args.big_dir)
            seconds = time.perf_counter() - t
        watcher.join()
    row = {"shape": shape, "voxels": int(np.prod(shape)), "seconds": round(seconds, 1),
           "tau": float(ds.tortuosity_factor), "porosity": float(ds.porosity),
           "through_porosity": float(ds.through_porosity),
           "iterations": int(ds.iterations), "residual": float(ds.residual),
           "flux_balance": float(ds.flux_balance), "converged": bool(ds.converged),
           "peak_worker_rss_gb": sampler.max_gb,
           "peak_client_rss_gb": round(client_peak[0] / 1e9, 2),
           "peak_scratch_gb": round(scratch_peak[0] / 1e9, 1),
           "worker_restarts": len(sampler.peak) - 2,
           "memory_limit": args.memory_limit, "workers": 2, "tol": args.tol,
           "store_written_s": made, "load_end": round(os.getloadavg()[0], 1)}
    meta = _meta(args)
    (RESULTS / "tortuosity_big.json").write_text(json.dumps({"meta": meta, "row": row},
                                                            indent=1))
    lines = [f"Out-of-core tortuosity along z, pore phase of the generated electrode "
             f"{args.big} ({row['voxels'] / 1e9:.2f} G voxels), LocalCluster 2 x 1 thread "
             f"capped at {args.memory_limit} each, tol {args.tol}, {meta['date']}", "",
             "| voxels | time | iterations | tau | porosity / through | peak worker RSS | "
             "peak client RSS | worker restarts | scratch on disk | balance |",
             "|---|---|---|---|---|---|---|---|---|---|",
             f"| {row['voxels']:,} | {seconds / 60:.1f} min | {row['iterations']} | "
             f"{row['tau']:.5f} | {row['porosity']:.4f} / {row['through_porosity']:.4f} | "
             f"{row['peak_worker_rss_gb']} GB | {row['peak_client_rss_gb']} GB | "
             f"{row['worker_restarts']} | {row['peak_scratch_gb']} GB | "
             f"{row['flux_balance']:.2g} |"]
    (RESULTS / "tortuosity_big.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _meta(args):
    return {"machine": platform.platform(), "processor": platform.processor(),
            "cpus": mp.cpu_count(), "porosity": args.porosity, "seed": args.seed,
            "tol": args.tol, "strict_tol": args.strict_tol, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write(rows, args):
    RESULTS.mkdir(parents=True, exist_ok=True)
    meta = _meta(args)
    stem = "tortuosity" + (f"_{args.tag}" if args.tag else "")
    (RESULTS / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    (RESULTS / f"{stem}.md").write_text(markdown(rows, meta))


def _fmt(run, key="seconds", digits=2):
    if not run:
        return "-"
    if "error" in run:
        return "error"
    return f"{run[key]:.{digits}f}"


def _rel(a, b):
    if not a or not b or "error" in a or "error" in b:
        return "-"
    return f"{100 * (a['tau'] / b['tau'] - 1):+.3f} %"


def markdown(rows, meta) -> str:
    head = ("| size | axis | ours face s | TauFactor s | ours voxel s | PoreSpy s | "
            "tau ours face | tau TauFactor | ours vs TauFactor | tau ours voxel | tau PoreSpy "
            "| ours vs PoreSpy | speed-up vs PoreSpy | peak MiB ours / TF / PS | ours voxel s / "
            "tau at strict tol | load 1-min start-end |")
    lines = [f"Tortuosity factor, {meta['cpus']} CPUs, porosity {meta['porosity']}, "
             f"tol {meta['tol']} (strict {meta.get('strict_tol')}), {meta['date']}", "", head,
             "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        of, ov, tf, ps = (r.get(k) for k in ("ours_face", "ours_voxel", "taufactor", "porespy"))
        speed = "-"
        if ov and ps and "error" not in ov and "error" not in ps:
            speed = f"{ps['seconds'] / ov['seconds']:.1f}x"
        mem = " / ".join(_fmt(x, "peak_mib", 0) for x in (of, tf, ps))
        lines.append(f"| {r['size']}^3 | {'zyx'[r['axis']]} | {_fmt(of)} | {_fmt(tf)} | "
                     f"{_fmt(ov)} | {_fmt(ps)} | {_fmt(of, 'tau', 4)} | {_fmt(tf, 'tau', 4)} | "
                     f"{_rel(of, tf)} | {_fmt(ov, 'tau', 4)} | {_fmt(ps, 'tau', 4)} | "
                     f"{_rel(ov, ps)} | {speed} | {mem} | {_fmt(r.get('ours_voxel_strict'))} / "
                     f"{_fmt(r.get('ours_voxel_strict'), 'tau', 5)} | "
                     f"{r.get('load_start', 0):.1f}-{r.get('load_end', 0):.1f} |")
    geo = [r for r in rows if "geodesic_dijkstra3d" in r]
    if geo:
        lines += ["", "| size | geodesic dijkstra3d s | skimage MCP s | mean dijkstra3d | "
                      "mean MCP |", "|---|---|---|---|---|"]
        for r in geo:
            d, m = r["geodesic_dijkstra3d"], r["geodesic_skimage_mcp"]
            lines.append(f"| {r['size']}^3 | {_fmt(d)} | {_fmt(m)} | {_fmt(d, 'tau', 4)} | "
                         f"{_fmt(m, 'tau', 4)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
