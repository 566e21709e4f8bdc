"""Microstructure metrics side by side with PoreSpy and TauFactor, in one run.

Volumes: the real 3-phase electrode (../shared/data/electrode_3phase, 256^3, TauFactor's
example) and generated 30 %-porous volumes (Gaussian-smoothed noise at a quantile) of the
edges given by ``--sizes``. Per volume and metric: our time, the peer's time, the speed-up
and how far the values agree (same definitions: face counting and volume fractions as
TauFactor; local thickness and porosimetry as PoreSpy, whose integer radii our
``radii="integer"`` reproduces value for value, while ``radii="exact"`` needs no bins).

    python benchmarks/bench_microstructure.py --sizes 128,256 [--real/--no-real]

Writes results/microstructure.json and results/microstructure.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
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


def timed(fn, *args, repeats: int = 1, **kwargs):
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best, out


def generated(n: int, porosity: float = 0.3, seed: int = 0) -> np.ndarray:
    """A 30 %-porous volume: smoothed noise at its porosity quantile (True: pore)."""
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.random((n, n, n), np.float32), 3.0)
    return field < np.quantile(field[::4, ::4, ::4], porosity)


def row(volume, metric, ours_s, peer_name, peer_s, agreement, **extra):
    return {"volume": volume, "metric": metric, "ours_s": round(ours_s, 3),
            "peer": peer_name, "peer_s": None if peer_s is None else round(peer_s, 3),
            "speedup": None if not peer_s else round(peer_s / ours_s, 2),
            "agreement": agreement, **extra}


def bench_phases(name, vol, tf, repeats):
    """Volume fractions, face-counting surfaces and TPB against TauFactor."""
    rows = []
    t, ours = timed(ms.volume_fractions, vol, phases=PHASES, repeats=repeats)
    if tf:
        tp, theirs = timed(tf.volume_fraction, vol, phases=PHASES, repeats=repeats)
        diff = max(abs(float(ours.sel(phase=k)) - theirs[k]) for k in PHASES)
        rows.append(row(name, "volume_fraction", t, "taufactor", tp, f"max |diff| {diff:.1e}"))
    t, ours = timed(ms.specific_surface_area, vol, phases=PHASES, method="face_counting",
                    repeats=repeats)
    if tf:
        tp, theirs = timed(tf.specific_surface_area, vol, phases=PHASES,
                           method="face_counting", device="cpu", repeats=repeats)
        diff = max(abs(float(ours.sel(phase=k)) - theirs[k]) for k in PHASES)
        rows.append(row(name, "ssa face_counting", t, "taufactor", tp,
                        f"max |diff| {diff:.1e}",
                        values={k: round(float(ours.sel(phase=k)), 5) for k in PHASES}))
    t, ours = timed(ms.specific_surface_area, vol, phases=PHASES, repeats=repeats)
    if tf:
        tp, theirs = timed(tf.specific_surface_area, vol, phases=PHASES,
                           method="marching_cubes", device="cpu", repeats=repeats)
        # TauFactor smooths with a 3^3 kernel of sigma 1 and divides by size * dx: both
        # are per voxel here, so the ratio shows the smoothing's effect only
        ratio = {k: round(float(ours.sel(phase=k)) / theirs[k], 3) for k in PHASES}
        rows.append(row(name, "ssa marching_cubes (sigma 0.8 vs TauFactor 3^3 sigma 1)", t,
                        "taufactor", tp, f"ours/theirs {ratio}"))
    t, ours = timed(ms.triple_phase_boundary, vol, phases=PHASES, repeats=repeats)
    if tf:
        import contextlib
        import io

        signed = vol.astype(np.int16)  # it pads with -1
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the edge count
            tp, theirs = timed(tf.triple_phase_boundary, signed, repeats=repeats)
        diff = abs(ours.attrs["edge_fraction"] - float(theirs))
        rows.append(row(name, "triple_phase_boundary (edge fraction)", t, "taufactor", tp,
                        f"|diff| {diff:.1e}"))
    return rows


def bench_sizes(name, mask, ps, repeats, inlet="x-", peer_porosimetry=True):
    """Local thickness and porosimetry against PoreSpy (integer radii), and exact."""
    rows = []
    t_exact, exact = timed(ms.local_thickness, mask, repeats=repeats)
    t_int, integer = timed(ms.local_thickness, mask, radii="integer", repeats=repeats)
    inlets = np.zeros(mask.shape, bool)
    inlets[:, :, 0] = True
    ti_exact, intr = timed(ms.intrusion, mask, inlet=inlet, repeats=repeats)
    ti_int, intr_int = timed(ms.intrusion, mask, inlet=inlet, radii="integer", repeats=repeats)
    tp = tpi = None
    agree_lt = agree_in = "porespy unavailable"
    if ps:
        tp, theirs = timed(ps.filters.local_thickness, mask, repeats=repeats)
        same = float(np.mean(integer[mask] / 2 == theirs[mask]))
        mean_exact = float(np.mean(np.abs(exact[mask] / 2 - theirs[mask])))
        agree_lt = (f"integer: {same:.4%} voxels equal; exact vs porespy mean |dr| "
                    f"{mean_exact:.3f} voxel")
        if peer_porosimetry:
            tpi, theirs_i = timed(ps.filters.porosimetry, mask, inlets=inlets,
                                  repeats=repeats)
            same_i = float(np.mean(intr_int[mask] / 2 == theirs_i[mask]))
            agree_in = f"integer: {same_i:.4%} voxels equal"
        else:
            agree_in = "porespy porosimetry not run at this size (--porosimetry-max)"
    rows.append(row(name, "local_thickness exact", t_exact, "porespy", tp, agree_lt))
    rows.append(row(name, "local_thickness integer radii", t_int, "porespy", tp, agree_lt))
    rows.append(row(name, f"porosimetry exact ({inlet})", ti_exact, "porespy", tpi, agree_in))
    rows.append(row(name, f"porosimetry integer radii ({inlet})", ti_int, "porespy", tpi,
                    agree_in))
    t, psd = timed(ms.pore_size_distribution, mask, thickness=exact)
    rows.append(row(name, "r_max (from the exact thickness)", t, "-", None,
                    f"r_max {psd.attrs['r_max']:.3f} voxel"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="128,256", help="generated volume edges (up to 512)")
    ap.add_argument("--porosity", type=float, default=0.3)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--no-real", action="store_true", help="skip the real electrode")
    ap.add_argument("--porosimetry-max", type=int, default=256,
                    help="largest edge at which PoreSpy's porosimetry runs (it takes ~5 min "
                         "at 256^3 here)")
    args = ap.parse_args()
    ps, ps_why = peer("porespy")
    tf, tf_why = peer("taufactor.metrics")
    # compile the kernels once before timing
    ms.local_thickness(generated(16))
    ms.intrusion(generated(16))
    ms.local_thickness(generated(16), radii="integer")
    rows = []
    if not args.no_real and (ELECTRODE / "electrode.tiff").is_file():
        import tifffile

        vol = tifffile.imread(ELECTRODE / "electrode.tiff")
        rows += bench_phases("electrode 256^3 (3 phases)", vol, tf, args.repeats)
        rows += bench_sizes("electrode 256^3, pore phase", vol == 0, ps, args.repeats)
    for n in [int(s) for s in args.sizes.split(",") if s]:
        mask = generated(n, args.porosity)
        labels = np.where(mask, 0, 85).astype(np.uint8)
        labels[ndimage.binary_erosion(~mask, iterations=2) ^ ~mask] = 170  # a 3rd phase skin
        rows += bench_phases(f"generated {n}^3", labels, tf, args.repeats)
        rows += bench_sizes(f"generated {n}^3, {args.porosity:.0%} pore", mask, ps,
                            args.repeats, peer_porosimetry=n <= args.porosimetry_max)
        print(json.dumps(rows[-5:], indent=1), flush=True)
    RESULTS.mkdir(exist_ok=True)
    from importlib.metadata import version

    versions = {m: version(m) for m, mod in (("porespy", ps), ("taufactor", tf)) if mod}
    out = {"rows": rows, "machine": machine(), "peers": versions,
           "unavailable": {k: v for k, v in (("porespy", ps_why), ("taufactor", tf_why)) if v},
           "args": vars(args)}
    (RESULTS / "microstructure.json").write_text(json.dumps(out, indent=2))
    keys = ["volume", "metric", "ours_s", "peer", "peer_s", "speedup", "agreement"]
    lines = ["# microstructure metrics vs PoreSpy and TauFactor", "",
             f"Machine: {machine()}; peers {versions}; dask threads; best of "
             f"{args.repeats}. Target: >= 2x PoreSpy's local thickness and porosimetry at "
             "256^3-512^3.", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("" if r[k] is None else str(r[k]) for k in keys) + " |"
              for r in rows]
    (RESULTS / "microstructure.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
