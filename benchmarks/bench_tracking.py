"""Tracking quality: the 4D phantom (slow and fast drift), the real foam series and the
mirrored-foam control, beside FoamQuant's tracker on the same labels.

Trackers compared on the same label volumes:

- ``redoxflow``: :func:`redoxflow.track` (global assignment, predicted position, gating, gap
  closing, volume-conserving merges/splits);
- ``overlap (0.1)``: the former overlap linking (IoU >= 0.1 or 25 % of the smaller bubble),
  :func:`redoxflow.analysis.tracking.link` + ``assign_tracks``;
- ``FoamQuant``: ``FoamQuant.Tracking.LabelTracking`` (greedy nearest centroid in a
  +-10 voxel search box with a 5 % volume tolerance, its defaults), when ``foamquant`` is
  installed (``pip install -e .[bench]``); its wheel needs three import shims, kept here.

Figures: on the phantom, the fraction of true continuations kept (same track id at both
steps), false links (pairs that are no true continuation, merge or split), merges and
splits found (every true parent-child pair linked with the event flag); on the foam, the
one-to-one fraction step to step (links of degree one on both sides / bubbles of the earlier
step); on the controls (two unrelated volumes: phantoms of different seeds; foam step 1
against its mirror image), the fraction of bubbles linked at all.

    python benchmarks/bench_tracking.py [--seeds 5] [--steps 10] [--no-foamquant]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, report

import redoxflow as rf
from redoxflow.analysis.tracking import assign_tracks, link, overlaps, step_table

FOAM = Path(__file__).resolve().parents[2] / "shared" / "data" / "foam_4d"


# --- peers ----------------------------------------------------------------------------------

def foamquant_tracking():
    """FoamQuant's LabelTracking with the shims its 0.1 wheel needs, or None."""
    try:
        import numpy
        import tifffile

        if not hasattr(numpy, "int"):
            numpy.int = int  # removed from numpy, used by FoamQuant
        if not hasattr(tifffile, "imsave"):
            tifffile.imsave = tifffile.imwrite  # renamed in tifffile
        import foamquant

        sys.modules.setdefault("FoamQuant", foamquant)  # it imports itself as FoamQuant.*
        from foamquant.Tracking import LabelTracking
    except ImportError:
        return None
    return LabelTracking


def foamquant_links(LabelTracking, tables):
    """FoamQuant's links per step pair as sets of (label, label), on our per-step tables."""
    import contextlib
    import io

    def props(tab):
        c = tab.centroid  # voxel units (spacing 1 in these runs)
        n = len(tab)
        zeros = np.zeros(n)
        return {"lab": tab.ids, "z": c[:, 0], "y": c[:, 1], "x": c[:, 2], "vol": tab.voxels,
                "rad": zeros, "area": zeros, "sph": zeros, "volfit": zeros, "U": zeros,
                "type": zeros}

    out = []
    for a, b in zip(tables[:-1], tables[1:]):
        with contextlib.redirect_stdout(io.StringIO()):
            pairs = LabelTracking(props(a), props(b))[0]
        out.append({(int(p), int(q)) for p, q in pairs if q != -1})
    return out


def overlap_links(labels, tables):
    """The former tracker: overlap criteria, best-IoU continuation."""
    links = [link(a.ids, a.voxels, b.ids, b.voxels, overlaps(x, y))
             for a, b, x, y in zip(tables[:-1], tables[1:], labels[:-1], labels[1:])]
    tracks = assign_tracks([t.ids for t in tables], links)
    return links, tracks


# --- scoring --------------------------------------------------------------------------------

def pairs_of(ds, t):
    sel = (ds["time"].values == t) & (ds["gap"].values == 0)
    return dict(zip(zip(ds["source"].values[sel].tolist(), ds["target"].values[sel].tolist()),
                    ds["event"].values[sel].tolist()))


def score_phantom(series, links_per_step, tracks, flags=True):
    """Continuations kept, false links, merges and splits found against the truth."""
    kept = total = false = n_links = 0
    ev = {"merge": [0, 0], "split": [0, 0]}
    for t in range(1, len(series.identity)):
        truth = series.true_links(t)
        pairs = links_per_step[t - 1]
        n_links += len(pairs)
        before = dict(zip(tracks[t - 1][0].tolist(), tracks[t - 1][1].tolist()))
        after = dict(zip(tracks[t][0].tolist(), tracks[t][1].tolist()))
        for a, b in truth["continue"]:
            total += 1
            kept += before.get(a, -1) == after.get(b, -2)
        allowed = truth["continue"] | truth["merge"] | truth["split"]
        false += sum(p not in allowed for p in pairs)
        for kind, flag in (("merge", 2), ("split", 1)):
            groups = {}
            for a, b in truth[kind]:
                groups.setdefault(b if kind == "merge" else a, []).append((a, b))
            for members in groups.values():
                ev[kind][1] += 1
                ev[kind][0] += flags and all(pairs.get(p, 0) & flag for p in members)
    return {"continuations_kept_pct": 100 * kept / max(total, 1), "true_continuations": total,
            "false_links": false, "links": n_links,
            "merges_found": f"{ev['merge'][0]}/{ev['merge'][1]}",
            "splits_found": f"{ev['split'][0]}/{ev['split'][1]}"}


def tracks_from_pairs(tables, pair_sets):
    """Track ids when each pair set is one-to-one (FoamQuant)."""
    out = [(tables[0].ids, np.arange(1, len(tables[0]) + 1))]
    nxt = len(tables[0]) + 1
    for t, pairs in enumerate(pair_sets, start=1):
        prev = dict(zip(out[-1][0].tolist(), out[-1][1].tolist()))
        src_of = {b: a for a, b in pairs}
        ids = tables[t].ids
        tr = np.empty(len(ids), np.int64)
        for k, b in enumerate(ids.tolist()):
            if b in src_of:
                tr[k] = prev[src_of[b]]
            else:
                tr[k] = nxt
                nxt += 1
        out.append((ids, tr))
    return out


def phantom_rows(seeds, LabelTracking):
    rows = []
    for name, speed in (("phantom slow (1 voxel/step)", 1.0),
                        ("phantom fast (13 voxels/step)", 13.0)):
        acc = {}
        for seed in range(seeds):
            s = rf.make_phantom_series(speed=speed, seed=seed)
            labels = list(s.labels)
            t0 = time.perf_counter()
            ds = rf.analysis.track(labels)
            seconds = time.perf_counter() - t0
            n = len(s.identity)
            ours = score_phantom(s, [pairs_of(ds, t) for t in range(1, n)],
                                 [(ds[f"label_{t}"].values, ds[f"track_{t}"].values)
                                  for t in range(n)])
            ours["seconds"] = seconds
            tables = [step_table(x) for x in labels]
            old_links, old_tracks = overlap_links(labels, tables)
            old = score_phantom(
                s, [dict(zip(zip(lk["source"].tolist(), lk["target"].tolist()),
                             lk["event"].tolist())) for lk in old_links],
                [(tb.ids, tr) for tb, tr in zip(tables, old_tracks)])
            per = {"redoxflow": ours, "overlap (0.1)": old}
            if LabelTracking is not None:
                fq = foamquant_links(LabelTracking, tables)
                per["FoamQuant"] = score_phantom(s, [{p: 0 for p in ps} for ps in fq],
                                                 tracks_from_pairs(tables, fq), flags=False)
            for tracker, sc in per.items():
                acc.setdefault(tracker, []).append(sc)
        for tracker, scores in acc.items():
            kept = sum(sc["continuations_kept_pct"] * sc["true_continuations"]
                       for sc in scores) / sum(sc["true_continuations"] for sc in scores)
            m = [sum(int(x) for x in col) for col in zip(*[sc["merges_found"].split("/")
                                                          for sc in scores])]
            sp = [sum(int(x) for x in col) for col in zip(*[sc["splits_found"].split("/")
                                                           for sc in scores])]
            rows.append({"case": name, "tracker": tracker,
                         "continuations_kept_pct": round(kept, 2),
                         "false_links": sum(sc["false_links"] for sc in scores),
                         "links": sum(sc["links"] for sc in scores),
                         "merges_found": f"{m[0]}/{m[1]}" if tracker != "FoamQuant" else "n/a",
                         "splits_found": f"{sp[0]}/{sp[1]}" if tracker != "FoamQuant"
                         else "n/a",
                         "one_to_one_pct": "", "linked_pct": ""})
    # control: two unrelated phantoms
    for tracker in ["redoxflow", "overlap (0.1)"] + ["FoamQuant"] * (LabelTracking is not None):
        linked = []
        for seed in range(seeds):
            a = rf.make_phantom_series(seed=seed, n_steps=1).labels[0]
            b = rf.make_phantom_series(seed=seed + 100, n_steps=1).labels[0]
            linked.append(linked_fraction(tracker, [a, b], LabelTracking))
        rows.append({"case": "control: unrelated phantoms", "tracker": tracker,
                     "continuations_kept_pct": "", "false_links": "", "links": "",
                     "merges_found": "", "splits_found": "", "one_to_one_pct": "",
                     "linked_pct": round(100 * float(np.mean(linked)), 2)})
    return rows


def linked_fraction(tracker, pair, LabelTracking, spacing=1.0):
    """Fraction of the first volume's bubbles with any link into the second."""
    tables = [step_table(x, spacing) for x in pair]
    if tracker == "redoxflow":
        ds = rf.analysis.track(pair, spacing=spacing)
        return len(np.unique(ds["source"].values)) / len(tables[0])
    if tracker == "overlap (0.1)":
        links, _ = overlap_links(pair, tables)
        return len(np.unique(links[0]["source"])) / len(tables[0])
    return len(foamquant_links(LabelTracking, tables)[0]) / len(tables[0])


def foam_labels(steps):
    import tifffile
    from skimage.filters import threshold_otsu

    out = []
    for f in sorted(FOAM.glob("Raw_*.tiff"))[:steps]:
        raw = tifffile.imread(f)
        out.append(rf.analysis.split_touching(raw < threshold_otsu(raw))[0])
    return out


def foam_rows(steps, LabelTracking):
    if not FOAM.is_dir():
        print("foam series absent: skipped")
        return [], {}
    t0 = time.perf_counter()
    labels = foam_labels(steps)
    seg_seconds = time.perf_counter() - t0
    tables = [step_table(x) for x in labels]
    rows, extra = [], {"foam_segmentation_seconds": seg_seconds,
                       "foam_bubbles_per_step": [len(t) for t in tables]}
    t0 = time.perf_counter()
    ds = rf.analysis.track(labels)
    extra["foam_tracking_seconds"] = time.perf_counter() - t0
    n = ds["n_bubbles"].values
    o2o = ds["one_to_one"].values[1:] / n[:-1]
    extra["redoxflow_per_step"] = {k: ds[k].values.tolist() for k in (
        "n_bubbles", "one_to_one", "births", "deaths", "births_edge", "deaths_edge", "merges",
        "splits", "gaps")}
    extra["redoxflow_drift_um"] = ds["drift"].values.tolist()
    per = {"redoxflow": o2o}
    old_links, _ = overlap_links(labels, tables)
    old = []
    for t, lk in enumerate(old_links):
        src, dst = lk["source"], lk["target"]
        out_deg = dict(zip(*np.unique(src, return_counts=True)))
        in_deg = dict(zip(*np.unique(dst, return_counts=True)))
        old.append(sum(out_deg[a] == 1 and in_deg[b] == 1 for a, b in zip(src, dst)) / n[t])
    per["overlap (0.1)"] = np.array(old)
    if LabelTracking is not None:
        fq = foamquant_links(LabelTracking, tables)
        per["FoamQuant"] = np.array([len(p) / len(tables[t]) for t, p in enumerate(fq)])
    # FoamQuant's own workflow removes the bubbles cut by the field of view before tracking
    # (RemoveEdgeBubble): the same figures on interior bubbles only, for both trackers
    interior = [tb.subset(np.flatnonzero(~tb.cut)) for tb in tables]
    inner_o2o = []
    for t in range(1, len(tables)):
        sel = ((ds["time"].values == t) & (ds["gap"].values == 0)
               & (ds["event"].values == 0))
        src = set(ds["source"].values[sel].tolist()) & set(interior[t - 1].ids.tolist())
        inner_o2o.append(len(src) / len(interior[t - 1]))
    per_inner = {"redoxflow": np.array(inner_o2o)}
    mirrored = np.ascontiguousarray(labels[0][::-1, ::-1, ::-1])
    mirror_tab = step_table(mirrored)
    ctl = rf.analysis.track([labels[0], mirrored])
    inner_ids = set(interior[0].ids.tolist())
    inner_ctl = {"redoxflow": len(set(ctl["source"].values.tolist()) & inner_ids)
                 / len(inner_ids)}
    if LabelTracking is not None:
        fq_in = foamquant_links(LabelTracking, interior)
        per_inner["FoamQuant"] = np.array([len(p) / len(interior[t])
                                           for t, p in enumerate(fq_in)])
        inner_ctl["FoamQuant"] = len(foamquant_links(
            LabelTracking, [interior[0], mirror_tab.subset(np.flatnonzero(~mirror_tab.cut))]
        )[0]) / len(interior[0])
    for tracker, values in per_inner.items():
        extra[f"interior_one_to_one_per_step_{tracker}"] = values.tolist()
        rows.append({"case": "foam_4d, interior bubbles (FoamQuant's workflow)",
                     "tracker": tracker, "continuations_kept_pct": "", "false_links": "",
                     "links": "", "merges_found": "", "splits_found": "",
                     "one_to_one_pct": f"{100 * values.mean():.1f} (min "
                                       f"{100 * values.min():.1f})",
                     "linked_pct": ""})
        rows.append({"case": "control: interior bubbles vs mirror image", "tracker": tracker,
                     "continuations_kept_pct": "", "false_links": "", "links": "",
                     "merges_found": "", "splits_found": "", "one_to_one_pct": "",
                     "linked_pct": f"{100 * inner_ctl[tracker]:.1f}"})
    for tracker, values in per.items():
        extra[f"one_to_one_per_step_{tracker}"] = values.tolist()
        control = [linked_fraction(tracker, [labels[0], mirrored], LabelTracking),
                   linked_fraction(tracker, [labels[0], np.ascontiguousarray(
                       labels[1][::-1, ::-1, ::-1])], LabelTracking)]
        rows.append({"case": f"foam_4d ({steps} steps)", "tracker": tracker,
                     "continuations_kept_pct": "", "false_links": "", "links": "",
                     "merges_found": "", "splits_found": "",
                     "one_to_one_pct": f"{100 * values.mean():.1f} (min "
                                       f"{100 * values.min():.1f})",
                     "linked_pct": ""})
        rows.append({"case": "control: foam step 1 vs its mirror image", "tracker": tracker,
                     "continuations_kept_pct": "", "false_links": "", "links": "",
                     "merges_found": "", "splits_found": "", "one_to_one_pct": "",
                     "linked_pct": f"{100 * control[0]:.1f} (vs mirrored step 2: "
                                   f"{100 * control[1]:.1f})"})
    return rows, extra


def markdown(rows) -> str:
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--no-foamquant", action="store_true")
    args = ap.parse_args()
    LabelTracking = None if args.no_foamquant else foamquant_tracking()
    rows = phantom_rows(args.seeds, LabelTracking)
    foam, extra = foam_rows(args.steps, LabelTracking)
    rows += foam
    extra["foamquant"] = LabelTracking is not None
    report("tracking", rows, extra)
    (RESULTS / "tracking.md").write_text(markdown(rows))


if __name__ == "__main__":
    main()
