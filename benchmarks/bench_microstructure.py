"""Microstructure metrics side by side with PoreSpy and TauFactor, in one run.

Volumes: the real 3-phase electrode (../shared/data/electrode_3phase, 256^3, TauFactor's
example) and generated 30 %-porous volumes (Gaussian-smoothed noise at a quantile) of the
edges given by ``--sizes``. Per volume and metric: our time, the peer's time, the speed-up
and how far the values agree (same definitions: face counting and volume fractions as
TauFactor; local thickness and porosimetry as PoreSpy, whose integer radii our
``radii="integer"`` reproduces value for value, while ``radii="exact"`` needs no bins).

    python benchmarks/bench_microstructure.py --sizes 128,256 [--real/--no-real]
    python benchmarks/bench_microstructure.py --big 2048,1024,1024 --big-dir /tmp/big

Both sides are warmed up (their compiled kernels built) on a small volume first, and each
local thickness call is preceded by one untimed call of the same (fresh memory pages);
times are wall seconds, with the process's CPU seconds beside them (the machine is shared:
compare CPU where the load moved). Writes results/microstructure.json and results/microstructure.md.

``--big Z,Y,X`` instead writes a generated 3-phase electrode of that shape to a Zarr store
and measures volume fractions, face-counting surface areas, the distance transform and the
local thickness (both written to Zarr) on a dask LocalCluster of ``--big-workers`` workers
capped at ``--memory-limit`` each, sampling every worker's RSS: results/microstructure_big.*.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, machine  # noqa: E402

import redoxflow.microstructure as ms  # noqa: E402

ELECTRODE = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode_3phase"
PHASES = {"pore": 0, "NMC": 85, "CBD": 170}


def peer(name: str):
    """(module, None) or (None, why it cannot be used)."""
    try:
        return importlib.import_module(name), None
    except Exception as exc:  # ImportError, or a broken install
        return None, f"{type(exc).__name__}: {exc}"


def timed(fn, *args, repeats: int = 1, warm: bool = False, **kwargs):
    """(best wall seconds, result); the CPU seconds of the best call in ``timed.cpu``.

    ``warm``: one untimed call first (given to both sides of the local thickness rows): a
    process's first call on a volume of a new size pays for growing its memory (fresh
    pages: measured +0.35 s wall, +0.6 CPU s on our first electrode call, which the row
    order otherwise gave to our side only)."""
    if warm:
        fn(*args, **kwargs)
    best, out = np.inf, None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        wall = time.perf_counter() - t0
        if wall < best:
            best, timed.cpu = wall, time.process_time() - c0
    return best, out


timed.cpu = 0.0


def generated(n: int, porosity: float = 0.3, seed: int = 0) -> np.ndarray:
    """A 30 %-porous volume: smoothed noise at its porosity quantile (True: pore)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((n, n, n), np.float32), 3.0)
    return field < np.quantile(field[::4, ::4, ::4], porosity)


def row(volume, metric, ours_s, peer_name, peer_s, agreement, ours_cpu=None, peer_cpu=None,
        **extra):
    return {"volume": volume, "metric": metric, "ours_s": round(ours_s, 3),
            "peer": peer_name, "peer_s": None if peer_s is None else round(peer_s, 3),
            "speedup": None if not peer_s else round(peer_s / ours_s, 2),
            "ours_cpu_s": None if ours_cpu is None else round(ours_cpu, 2),
            "peer_cpu_s": None if peer_cpu is None else round(peer_cpu, 2),
            "agreement": agreement, "load": round(os.getloadavg()[0], 1), **extra}


def bench_phases(name, vol, tf, repeats):
    """Volume fractions, face-counting surfaces and TPB against TauFactor."""
    rows = []
    t, ours = timed(ms.volume_fractions, vol, phases=PHASES, repeats=repeats)
    c = timed.cpu
    if tf:
        tp, theirs = timed(tf.volume_fraction, vol, phases=PHASES, repeats=repeats)
        cp = timed.cpu
        diff = max(abs(float(ours.sel(phase=k)) - theirs[k]) for k in PHASES)
        rows.append(row(name, "volume_fraction", t, "taufactor", tp, f"max |diff| {diff:.1e}",
                        c, cp))
    t, ours = timed(ms.specific_surface_area, vol, phases=PHASES, method="face_counting",
                    repeats=repeats)
    c = timed.cpu
    if tf:
        tp, theirs = timed(tf.specific_surface_area, vol, phases=PHASES,
                           method="face_counting", device="cpu", repeats=repeats)
        cp = timed.cpu
        diff = max(abs(float(ours.sel(phase=k)) - theirs[k]) for k in PHASES)
        rows.append(row(name, "ssa face_counting", t, "taufactor", tp,
                        f"max |diff| {diff:.1e}", c, cp,
                        values={k: round(float(ours.sel(phase=k)), 5) for k in PHASES}))
    t, ours = timed(ms.specific_surface_area, vol, phases=PHASES, repeats=repeats)
    c = timed.cpu
    if tf:
        tp, theirs = timed(tf.specific_surface_area, vol, phases=PHASES,
                           method="marching_cubes", device="cpu", repeats=repeats)
        cp = timed.cpu
        # TauFactor smooths with a 3^3 kernel of sigma 1 and divides by size * dx: both
        # are per voxel here, so the ratio shows the smoothing's effect only
        ratio = {k: round(float(ours.sel(phase=k)) / theirs[k], 3) for k in PHASES}
        rows.append(row(name, "ssa marching_cubes (sigma 0.8 vs TauFactor 3^3 sigma 1)", t,
                        "taufactor", tp, f"ours/theirs {ratio}", c, cp))
    t, ours = timed(ms.triple_phase_boundary, vol, phases=PHASES, repeats=repeats)
    c = timed.cpu
    if tf:
        import contextlib
        import io

        signed = vol.astype(np.int16)  # it pads with -1
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the edge count
            tp, theirs = timed(tf.triple_phase_boundary, signed, repeats=repeats)
            cp = timed.cpu
        diff = abs(ours.attrs["edge_fraction"] - float(theirs))
        rows.append(row(name, "triple_phase_boundary (edge fraction)", t, "taufactor", tp,
                        f"|diff| {diff:.1e}", c, cp))
    return rows


def bench_sizes(name, mask, ps, repeats, inlet="x-", peer_porosimetry=True,
                intrusion=True):
    """Local thickness and porosimetry against PoreSpy (integer radii), and exact."""
    rows = []
    t_exact, exact = timed(ms.local_thickness, mask, repeats=repeats, warm=True)
    c_exact = timed.cpu
    t_int, integer = timed(ms.local_thickness, mask, radii="integer", repeats=repeats,
                           warm=True)
    c_int = timed.cpu
    inlets = np.zeros(mask.shape, bool)
    inlets[:, :, 0] = True
    ti_exact = ti_int = ci_exact = ci_int = None
    if intrusion:
        ti_exact, intr = timed(ms.intrusion, mask, inlet=inlet, repeats=repeats)
        ci_exact = timed.cpu
        ti_int, intr_int = timed(ms.intrusion, mask, inlet=inlet, radii="integer",
                                 repeats=repeats)
        ci_int = timed.cpu
    peer_porosimetry = peer_porosimetry and intrusion
    tp = tpi = cp = cpi = None
    agree_lt = agree_in = "porespy unavailable"
    if ps:
        tp, theirs = timed(ps.filters.local_thickness, mask, repeats=repeats, warm=True)
        cp = timed.cpu
        same = float(np.mean(integer[mask] / 2 == theirs[mask]))
        mean_exact = float(np.mean(np.abs(exact[mask] / 2 - theirs[mask])))
        agree_lt = (f"integer: {same:.4%} voxels equal; exact vs porespy mean |dr| "
                    f"{mean_exact:.3f} voxel")
        if peer_porosimetry:
            tpi, theirs_i = timed(ps.filters.porosimetry, mask, inlets=inlets,
                                  repeats=repeats)
            cpi = timed.cpu
            same_i = float(np.mean(intr_int[mask] / 2 == theirs_i[mask]))
            agree_in = f"integer: {same_i:.4%} voxels equal"
        else:
            agree_in = "porespy porosimetry not run at this size (--porosimetry-max)"
    rows.append(row(name, "local_thickness exact", t_exact, "porespy", tp, agree_lt,
                    c_exact, cp))
    rows.append(row(name, "local_thickness integer radii", t_int, "porespy", tp, agree_lt,
                    c_int, cp))
    if intrusion:
        rows.append(row(name, f"porosimetry exact ({inlet})", ti_exact, "porespy", tpi,
                        agree_in, ci_exact, cpi))
        rows.append(row(name, f"porosimetry integer radii ({inlet})", ti_int, "porespy", tpi,
                        agree_in, ci_int, cpi))
    t, psd = timed(ms.pore_size_distribution, mask, thickness=exact)
    rows.append(row(name, "r_max (from the exact thickness)", t, "-", None,
                    f"r_max {psd.attrs['r_max']:.3f} voxel"))
    return rows


def warm_up(ps) -> None:
    """Build both sides' compiled kernels before anything is timed."""
    small = generated(24)
    inlets = np.zeros(small.shape, bool)
    inlets[:, :, 0] = True
    for radii in ("exact", "integer"):
        ms.local_thickness(small, radii=radii)
        ms.intrusion(small, radii=radii)
    if ps:
        ps.filters.local_thickness(small)
        ps.filters.porosimetry(small, inlets=inlets)


# ------------------------------------------------------------------ the 2 G-voxel run
BIG_CHUNK = 64  # planes per Zarr chunk of the big electrode (64 M voxels at 1024^2)


def electrode_store(shape, path: Path, seed: int = 0) -> float:
    """Write a generated 3-phase electrode (pore 0 below the 30 % quantile of smoothed
    noise, a CBD shell 170 up to 40 %, NMC 85 above) to a Zarr store; seconds taken."""
    import dask.array as da

    t0 = time.perf_counter()
    rng = da.random.default_rng(seed)
    noise = rng.random(shape, chunks=(BIG_CHUNK,) + tuple(shape[1:]), dtype=np.float32)
    field = noise.map_overlap(ndimage.gaussian_filter, depth=12, boundary="reflect",
                              sigma=3.0, dtype=np.float32)
    sample = field[:BIG_CHUNK].compute()[::4, ::4, ::4]
    pore, cbd = np.quantile(sample, [0.3, 0.4])
    labels = da.where(field < pore, np.uint8(0),
                      da.where(field < cbd, np.uint8(170), np.uint8(85))).astype(np.uint8)
    if path.exists():
        shutil.rmtree(path)
    labels.to_zarr(str(path))
    return time.perf_counter() - t0


class RssSampler:
    """Peak resident memory of every dask worker process, sampled every ``every`` s."""

    def __init__(self, client, every: float = 0.5):
        self.client, self.every, self.peak = client, every, {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def _rss() -> int:
        import psutil

        return psutil.Process().memory_info().rss

    def _run(self):
        while not self._stop.is_set():
            try:
                for worker, rss in self.client.run(self._rss).items():
                    self.peak[worker] = max(self.peak.get(worker, 0), rss)
            except Exception:  # a worker restarting: sample again next time
                pass
            self._stop.wait(self.every)

    def __enter__(self):
        self.peak = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._stop.clear()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    @property
    def max_gb(self) -> float:
        return round(max(self.peak.values(), default=0) / 1e9, 2)


def bench_big(shape, folder: Path, workers: int, memory_limit: str) -> list[dict]:
    """The 2 G-voxel run: each metric on the store, on a fresh capped LocalCluster."""
    import dask.array as da
    from distributed import Client, LocalCluster

    folder.mkdir(parents=True, exist_ok=True)
    store = folder / "electrode.zarr"
    rows = []
    voxels = int(np.prod(shape))
    name = f"generated {'x'.join(map(str, shape))} ({voxels / 2**30:.2f} Gi voxels)"

    def run(metric, fn, note=""):
        """One metric on fresh workers (the peak RSS is this metric's own)."""
        with LocalCluster(n_workers=workers, threads_per_worker=1, memory_limit=memory_limit,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            with RssSampler(client) as sampler:
                t0 = time.perf_counter()
                try:
                    value, ok = fn(), True
                except Exception as exc:  # recorded: the measured reason a part failed
                    value, ok = f"{type(exc).__name__}: {exc}"[:300], False
                wall = time.perf_counter() - t0
        r = {"volume": name, "metric": metric, "seconds": round(wall, 1),
             "ns_per_voxel": round(wall / voxels * 1e9, 1),
             "peak_worker_rss_gb": sampler.max_gb, "memory_limit": memory_limit,
             "workers": workers, "finished": ok, "result": value, "note": note,
             "load": round(os.getloadavg()[0], 1)}
        print(json.dumps(r), flush=True)
        rows.append(r)

    run("write the generated electrode (Zarr, not counted)",
        lambda: {"store": str(store), "seconds": round(electrode_store(shape, store), 1)})
    vol = da.from_zarr(str(store))
    run("volume_fractions", lambda: {k: round(float(v), 5) for k, v in zip(
        PHASES, ms.volume_fractions(vol, phases=PHASES).values)})
    run("specific_surface_area face_counting", lambda: {
        k: round(float(v), 5) for k, v in zip(PHASES, ms.specific_surface_area(
            vol, phases=PHASES, method="face_counting").values)})
    run("specific_surface_area marching_cubes (default, sigma 0.8)", lambda: {
        k: round(float(v), 5) for k, v in zip(PHASES, ms.specific_surface_area(
            vol, phases=PHASES).values)})

    def to_store(lazy, out):
        if out.exists():
            shutil.rmtree(out)
        lazy.astype(np.float32).to_zarr(str(out))
        return {"store": str(out), "max": round(float(da.from_zarr(str(out)).max()), 4)}

    run("distance_transform (pore) -> Zarr float32",
        lambda: to_store(ms.distance_transform(vol, phase=0), folder / "distance.zarr"))
    run("local_thickness exact (pore) -> Zarr float32",
        lambda: to_store(ms.local_thickness(vol, phase=0), folder / "thickness.zarr"),
        note="one distance pass: squared distances written to a temporary Zarr store in "
             "the pass that finds the halo (their global maximum), then painted from it")
    t0 = time.perf_counter()
    check = spot_check(folder)
    rows.append({"volume": name, "metric": "spot check: stores == in-memory on crops",
                 "seconds": round(time.perf_counter() - t0, 1), "finished": check["equal"],
                 "result": check, "load": round(os.getloadavg()[0], 1)})
    return rows


SPOTS = [((40, 90), (300, 420), (500, 640)), ((0, 30), (0, 100), (900, 1024)),
         ((2020, 2048), (1000, 1024), (0, 128)), ((1000, 1100), (511, 600), (250, 300))]


def spot_check(folder: Path, margin: int = 20) -> dict:
    """The big run's distance and thickness stores against the in-memory functions on
    crops with ``margin`` planes around boxes (across chunk borders and volume faces):
    exact when the margin is at least twice the largest distance."""
    import dask.array as da

    labels = da.from_zarr(str(folder / "electrode.zarr"))
    stores = {k: da.from_zarr(str(folder / f"{k}.zarr")) for k in ("distance", "thickness")}
    equal, voxels = True, 0
    for box in SPOTS:
        box = [(min(a, n), min(b, n)) for (a, b), n in zip(box, labels.shape)]
        crop = tuple(slice(max(a - margin, 0), min(b + margin, n))
                     for (a, b), n in zip(box, labels.shape))
        inner = tuple(slice(a - c.start, b - c.start) for (a, b), c in zip(box, crop))
        mask = labels[crop].compute() == 0
        here = tuple(slice(a, b) for a, b in box)
        ref = {"distance": ms.distance_transform(mask).astype(np.float32),
               "thickness": ms.local_thickness(mask)}
        for k, lazy in stores.items():
            equal &= bool(np.array_equal(ref[k][inner], lazy[here].compute()))
        voxels += int(mask[inner].sum())
    return {"boxes": len(SPOTS), "pore_voxels": voxels, "equal": equal, "margin": margin}


def write_big(rows, args) -> None:
    out = {"rows": rows, "machine": machine(), "args": vars(args)}
    (RESULTS / "microstructure_big.json").write_text(json.dumps(out, indent=2))
    keys = ["metric", "seconds", "ns_per_voxel", "peak_worker_rss_gb", "memory_limit",
            "finished", "result", "load"]
    lines = [f"# microstructure at {rows[0]['volume']}", "",
             f"Machine: {machine()}; LocalCluster of {args.big_workers} single-threaded "
             f"workers capped at memory_limit={args.memory_limit}; peak RSS sampled every "
             "0.5 s per worker; load = 1-min load average at the end.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r.get(k) is None else str(r.get(k)).replace("|", "/")
                                for k in keys) + " |" for r in rows]
    (RESULTS / "microstructure_big.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="128,256", help="generated volume edges (up to 512)")
    ap.add_argument("--porosity", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-real", action="store_true", help="skip the real electrode")
    ap.add_argument("--porosimetry-max", type=int, default=256,
                    help="largest edge at which PoreSpy's porosimetry runs (it takes ~5 min "
                         "at 256^3 here)")
    ap.add_argument("--thickness-only", action="store_true",
                    help="only local thickness and porosimetry (no TauFactor rows)")
    ap.add_argument("--no-intrusion", action="store_true", help="skip porosimetry rows")
    ap.add_argument("--name", default="microstructure", help="results/NAME.json and .md")
    ap.add_argument("--big", default="", help="Z,Y,X of the big out-of-core run (e.g. "
                    "2048,1024,1024); runs only that")
    ap.add_argument("--big-dir", default="/tmp/redoxflow-big", help="where its stores go")
    ap.add_argument("--big-workers", type=int, default=2)
    ap.add_argument("--memory-limit", default="4GB", help="per worker of the big run")
    ap.add_argument("--big-check", action="store_true",
                    help="only the spot check of an earlier --big run's stores")
    args = ap.parse_args()
    RESULTS.mkdir(exist_ok=True)
    if args.big_check:  # the spot check alone, on the stores of an earlier --big run
        path = RESULTS / "microstructure_big.json"
        saved = json.loads(path.read_text())
        t0 = time.perf_counter()
        check = spot_check(Path(args.big_dir))
        rows = [r for r in saved["rows"] if not r["metric"].startswith("spot check")]
        rows.append({"volume": rows[0]["volume"],
                     "metric": "spot check: stores == in-memory on crops",
                     "seconds": round(time.perf_counter() - t0, 1),
                     "finished": check["equal"], "result": check,
                     "load": round(os.getloadavg()[0], 1)})
        write_big(rows, argparse.Namespace(**saved["args"]))
        return
    if args.big:
        shape = tuple(int(v) for v in args.big.split(","))
        write_big(bench_big(shape, Path(args.big_dir), args.big_workers, args.memory_limit),
                  args)
        return
    ps, ps_why = peer("porespy")
    tf, tf_why = peer("taufactor.metrics")
    warm_up(ps)
    rows = []
    if not args.no_real and (ELECTRODE / "electrode.tiff").is_file():
        import tifffile

        vol = tifffile.imread(ELECTRODE / "electrode.tiff")
        if not args.thickness_only:
            rows += bench_phases("electrode 256^3 (3 phases)", vol, tf, args.repeats)
        rows += bench_sizes("electrode 256^3, pore phase", vol == 0, ps, args.repeats,
                            peer_porosimetry=args.porosimetry_max >= 256,
                            intrusion=not args.no_intrusion)
    for n in [int(s) for s in args.sizes.split(",") if s]:
        mask = generated(n, args.porosity)
        labels = np.where(mask, 0, 85).astype(np.uint8)
        labels[ndimage.binary_erosion(~mask, iterations=2) ^ ~mask] = 170  # a 3rd phase skin
        if not args.thickness_only:
            rows += bench_phases(f"generated {n}^3", labels, tf, args.repeats)
        rows += bench_sizes(f"generated {n}^3, {args.porosity:.0%} pore", mask, ps,
                            args.repeats, peer_porosimetry=n <= args.porosimetry_max,
                            intrusion=not args.no_intrusion)
        print(json.dumps(rows[-5:], indent=1), flush=True)
    from importlib.metadata import version

    versions = {m: version(m) for m, mod in (("porespy", ps), ("taufactor", tf)) if mod}
    out = {"rows": rows, "machine": machine(), "peers": versions,
           "unavailable": {k: v for k, v in (("porespy", ps_why), ("taufactor", tf_why)) if v},
           "args": vars(args)}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2))
    keys = ["volume", "metric", "ours_s", "peer", "peer_s", "speedup", "ours_cpu_s",
            "peer_cpu_s", "agreement", "load"]
    lines = ["# microstructure metrics vs PoreSpy and TauFactor", "",
             f"Machine: {machine()}; peers {versions}; dask threads; best of "
             f"{args.repeats} (local thickness: after one untimed call); both sides "
             "warmed up (compiled) first; load = 1-min load "
             "average after the row. Target: >= 2x PoreSpy's local thickness and "
             "porosimetry at 256^3-512^3.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r[k] is None else str(r[k]) for k in keys) + " |"
              for r in rows]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
