"""Segmentation throughput: slices/s per architecture, and the dask pipeline vs a bare loop.

1. Every registered architecture (random weights, 1 input channel, 4 classes) predicts
   512x512 slices on this CPU with 2 torch threads (float32), and on a GPU when one is present
   (bf16 autocast, channels-last).
2. The built-in model segments a 128x512x512 phantom twice: a bare in-memory loop
   (normalise, tile, predict, argmax, all slices in RAM, 2 torch threads) and
   ``redoxflow.segment`` from a Zarr store to a Zarr store on a dask LocalCluster whose
   workers have imported torch and cached the model (a long run's steady state; worker
   start-up is a one-off cost). The ratio of their throughputs is the pipeline's efficiency
   (target: at least 0.9).

    python benchmarks/bench_segment.py [--slices 128] [--skip-archs]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import report


def arch_rows(size: int, device: str) -> list[dict]:
    import torch

    from redoxflow.segment import ARCHITECTURES, build_model

    rows = []
    cuda = device == "cuda"
    for name in ARCHITECTURES:
        model = build_model(name, input_size=size).eval().to(device)
        model = model.to(memory_format=torch.channels_last)
        batch = 8 if cuda else 1
        x = torch.rand(batch, 1, size, size, device=device).contiguous(
            memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            model(x)  # warm-up
            n, t0 = 0, time.perf_counter()
            while n < (64 if cuda else 3) or time.perf_counter() - t0 < 2:
                model(x)
                n += batch
            if cuda:
                torch.cuda.synchronize()
            dt = time.perf_counter() - t0
        params = sum(p.numel() for p in model.parameters()) / 1e6
        rows.append({"architecture": name, "device": device + (" bf16" if cuda else " fp32"),
                     "params_M": round(params, 2), "slices_per_s": round(n / dt, 3)})
        print(rows[-1], flush=True)
    return rows


def bare_loop(image: np.ndarray, checkpoint) -> tuple[float, np.ndarray]:
    from redoxflow.segment import load_model, predict_slices
    from redoxflow.segment.inference import choose_tile, normalization_range, normalize

    model, spec = load_model(checkpoint)
    t0 = time.perf_counter()
    low, high = normalization_range(image, spec)
    tile = choose_tile(image.shape[1:], spec, None)
    out = np.empty(image.shape, np.uint8)
    for z0 in range(0, image.shape[0], 8):
        x = normalize(image[z0:z0 + 8], low, high)[:, None]
        out[z0:z0 + 8] = predict_slices(model, x, tile=tile).astype(np.float16).argmax(0)
    return time.perf_counter() - t0, out


def _import_torch() -> None:
    import segmentation_models_pytorch  # noqa: F401
    import torch  # noqa: F401


def pipeline(store: Path, out: Path, checkpoint, workers: int, threads: int):
    import dask.array as da
    from distributed import Client, LocalCluster

    from redoxflow.segment import segment

    with LocalCluster(n_workers=workers, threads_per_worker=threads, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        # steady state, as in a long run: torch imported and the model cached on each worker
        client.run(_import_torch)
        size = da.from_zarr(str(store / "0")).shape[1:]
        segment(da.zeros((4 * workers, *size), np.uint8, chunks=(1, -1, -1)), checkpoint,
                slab=1, progress=False).compute()
        t0 = time.perf_counter()
        vol = segment(store, checkpoint, out=out, progress=False, slab=8)
        dt = time.perf_counter() - t0
    return dt, vol.data.compute()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--slices", type=int, default=128)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--skip-archs", action="store_true")
    args = ap.parse_args()

    import torch

    import redoxflow as rf
    from redoxflow.segment.models import builtin_checkpoint

    torch.set_num_threads(2)
    rows = [] if args.skip_archs else arch_rows(args.size, "cpu")
    if torch.cuda.is_available() and not args.skip_archs:
        rows += arch_rows(args.size, "cuda")
    ph = rf.make_phantom((args.slices, args.size, args.size), seed=7)
    ckpt = builtin_checkpoint()
    bare_s, bare = bare_loop(ph.image, ckpt)
    work = Path(tempfile.mkdtemp(prefix="rf-bench-seg-"))
    try:
        rf.ingest(ph.image, work / "raw.zarr", chunks=(8, args.size, args.size), voxel_size=1.0,
                  progress=False)
        pipe = []
        for workers, threads in [(1, 1), (2, 1)]:
            dt, classes = pipeline(work / "raw.zarr", work / f"seg-{workers}.zarr", ckpt,
                                   workers, threads)
            assert np.array_equal(classes, bare), "pipeline and bare loop disagree"
            pipe.append({"run": f"dask pipeline, {workers} worker(s) x {threads} thread",
                         "seconds": round(dt, 2), "slices_per_s": round(args.slices / dt, 3),
                         "ratio_to_bare_loop": round(bare_s / dt, 3)})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    pipe.insert(0, {"run": "bare in-memory loop (2 torch threads)", "seconds": round(bare_s, 2),
                    "slices_per_s": round(args.slices / bare_s, 3), "ratio_to_bare_loop": 1.0})
    extra = {"volume": [args.slices, args.size, args.size],
             "model": str(ckpt.name), "cpu_threads": os.cpu_count()}
    if rows:
        report("segment_architectures", rows)
    report("segment_pipeline", pipe, extra)


if __name__ == "__main__":
    main()
