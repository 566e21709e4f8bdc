"""Real-data check: a binary U-Net trained on one real XCT slice, scored on another.

../shared/data/battery_cell_xct/im_1.tif (576x576 uint16, a jelly-roll cross-section of a
Li-ion cell) with mask_1.tif (electrode mask, 0/255) trains the small U-Net (percentile
normalisation, focal loss, Adam, flips + 90 degree rotations; validation = the last 20 % of
im_1's rows). im_2/mask_2, never seen in training, give the reported precision, recall, F1
and IoU; an Otsu threshold of the same slice is the weight-free baseline.

    python benchmarks/bench_segment_real.py [--epochs 30] [--steps 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import report

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "battery_cell_xct"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--lr", type=float, default=1e-3)
    args = ap.parse_args()

    import tifffile
    from skimage.filters import threshold_otsu

    from redoxflow.segment import evaluate, segment, train

    im1, im2 = (tifffile.imread(DATA / f"im_{i}.tif") for i in (1, 2))
    m1, m2 = ((tifffile.imread(DATA / f"mask_{i}.tif") > 0).astype(np.uint8) for i in (1, 2))
    names = ["background", "electrode"]
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        result = train(im1, m1, out=work, classes=names, tile=128, epochs=args.epochs,
                       steps_per_epoch=args.steps, lr=args.lr, rotate90=True, seed=0,
                       normalization={"method": "percentile", "low": 0.5, "high": 99.5},
                       provenance={"data": "battery_cell_xct im_1/mask_1"})
        train_s = time.perf_counter() - t0
        pred = segment(im2[None], result.checkpoint, progress=False).compute()[0]
    otsu = (im2 > threshold_otsu(im2)).astype(np.uint8)
    # the electrode may be the bright or the dark phase: give the baseline the better polarity
    otsu_scores = max((evaluate(o, m2, classes=names) for o in (otsu, 1 - otsu)),
                      key=lambda d: float(d["f1"].sel({"class": "electrode"})))
    rows = []
    for method, ds in (("small U-Net (trained on im_1)", evaluate(pred, m2, classes=names)),
                       ("Otsu threshold (baseline)", otsu_scores)):
        r = ds.sel({"class": "electrode"})
        rows.append({"method": method, "precision": round(float(r.precision), 4),
                     "recall": round(float(r.recall), 4), "F1": round(float(r.f1), 4),
                     "IoU": round(float(r.iou), 4)})
    report("segment_real_xct", rows, {"train_seconds": round(train_s, 1),
                                      "epochs_run": len(result.history),
                                      "best_epoch": result.spec.training.get("epochs"),
                                      "held_out": "im_2/mask_2"})


if __name__ == "__main__":
    main()
