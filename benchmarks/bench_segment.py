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
3. Blending side by side (``segment_blending``): the same tiles of the built-in model through
   (a) the old host blending (tiles stacked in numpy, probabilities copied to the host and
   added there one batch at a time, as before issue 12), (b) :func:`predict_slices`, which
   keeps tiling, Gaussian blending and the argmax on the model's device, and (c) a bare
   per-tile loop (the same batches of tiles through the model and a softmax, nothing else:
   the floor). On the CPU (b) must not be slower than (c) by more than noise (``cpu_vs_bare``,
   the ratio of least process CPU times, is the figure that other load on a shared machine
   disturbs least; ``wall_vs_bare`` the same for wall time); on a GPU the
   same rows are measured there too. The same three runs with a 1x1 convolution in place of
   the U-Net time the tiling and blending machinery alone. Each set runs in a fresh process
   twice: with glibc's default malloc, which hands torch's large activation buffers back to
   the OS after every forward pass (some 1e5 page faults per 100 tiles on the CPU, a cost
   that lands on whichever run the heap layout disfavours), and with
   ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` raised so the buffers are reused:
   the "no trim" rows compare the code paths without that noise.

    python benchmarks/bench_segment.py [--slices 128] [--skip-archs] [--blending-only]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
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


def host_blended(model, images: np.ndarray, *, tile: int, overlap: float = 0.25,
                 batch_size: int = 8, device: str = "cpu") -> np.ndarray:
    """The pre-issue-12 ``predict_slices``: tiles stacked and blended in numpy on the host."""
    import torch

    from redoxflow.segment.inference import gaussian_window, tile_starts

    cuda = device.startswith("cuda")

    def run(batch):
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        return torch.softmax(logits.float(), 1)

    n, _, H, W = images.shape
    weight = gaussian_window(tile)
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    jobs = [(i, y, x) for i in range(n) for y in ys for x in xs]
    norm = np.zeros((H, W), np.float32)
    for y in ys:
        for x in xs:
            norm[y:y + tile, x:x + tile] += weight
    acc = None
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0:b0 + batch_size]
        probs = run(np.stack([images[i, :, y:y + tile, x:x + tile] for i, y, x in batch]))
        probs = (probs * torch.from_numpy(weight).to(probs.device)).cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1], n, H, W), np.float32)
        for p, (i, y, x) in zip(probs, batch):
            acc[:, i, y:y + tile, x:x + tile] += p
    return acc / norm


def bare_tile_loop(model, images: np.ndarray, *, tile: int, overlap: float = 0.25,
                   batch_size: int = 8, device: str = "cpu") -> int:
    """The floor: the same batches of tiles (cut on the device) through the model and a
    softmax, with no blending and nothing copied back; returns the number of tiles."""
    import torch

    from redoxflow.segment.inference import tile_starts

    cuda = device.startswith("cuda")
    x = torch.from_numpy(images).to(device)
    n, _, H, W = images.shape
    jobs = [(i, y, xx) for y in tile_starts(H, tile, overlap)
            for xx in tile_starts(W, tile, overlap) for i in range(n)]
    with torch.inference_mode():
        for b0 in range(0, len(jobs), batch_size):
            batch = torch.stack([x[i, :, y:y + tile, xx:xx + tile]
                                 for i, y, xx in jobs[b0:b0 + batch_size]])
            batch = batch.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
                logits = model(batch)
            torch.softmax(logits.float(), 1)
        if cuda:
            torch.cuda.synchronize()
    return len(jobs)


def blending_rows(slices: int, size: int, device: str, repeats: int = 3,
                  pointwise: bool = False) -> list[dict]:
    """Old host blending vs device blending vs the bare per-tile loop, best of ``repeats``.

    ``pointwise`` swaps the built-in U-Net for a 1x1 convolution (4 classes), so the rows
    time the tiling and blending machinery alone: the overhead each way adds to a model.
    """
    import torch

    from redoxflow.segment import load_model, predict_slices
    from redoxflow.segment.inference import choose_tile, normalize
    from redoxflow.synthetic import make_phantom

    model, spec = load_model("builtin")
    if pointwise:
        torch.manual_seed(0)
        model = torch.nn.Conv2d(1, len(spec.classes), 1).eval()
    model = model.to(device).to(memory_format=torch.channels_last)
    image = make_phantom((max(16, slices), size, size), seed=7).image[:slices]
    x = normalize(image, 0, 255)[:, None]
    tile = choose_tile(x.shape[2:], spec, None)
    label = "1x1 conv (overhead only)" if pointwise else "built-in U-Net"

    runs = {"old: host blending (numpy)": lambda: host_blended(model, x, tile=tile,
                                                                device=device),
            "new: device blending (torch)": lambda: predict_slices(model, x, tile=tile,
                                                                   device=device),
            "bare per-tile loop (model + softmax only)": lambda: bare_tile_loop(
                model, x, tile=tile, device=device)}
    seconds = {name: [] for name in runs}
    cpu = {name: [] for name in runs}
    results = {}
    for fn in runs.values():
        fn()  # warm-up: allocator, oneDNN/cuDNN kernels
    for _ in range(repeats):  # interleaved, so drifting machine load hits every row alike
        for name, fn in runs.items():
            t0, c0 = time.perf_counter(), time.process_time()
            results[name] = fn()
            seconds[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
    old, new = results["old: host blending (numpy)"], results["new: device blending (torch)"]
    if device == "cpu":  # the same arithmetic in the same order: the same classes
        assert np.allclose(old, new, atol=1e-6), "blendings disagree"
        assert np.array_equal(old.astype(np.float16).argmax(0),
                              new.astype(np.float16).argmax(0)), "blendings give other classes"
    else:  # bf16 autocast: kernels may pick other reduction orders between runs
        assert np.allclose(old, new, atol=2e-2), "blendings disagree"
    n_tiles = results["bare per-tile loop (model + softmax only)"]
    bare = min(seconds["bare per-tile loop (model + softmax only)"])
    bare_cpu = min(cpu["bare per-tile loop (model + softmax only)"])
    rows = []
    for name in runs:
        best = min(seconds[name])
        rows.append({"model": label, "malloc": os.environ.get("RF_BENCH_MALLOC", "default"),
                     "run": name, "device": device, "seconds": round(best, 3),
                     "median_s": round(float(np.median(seconds[name])), 3),
                     "cpu_s": round(min(cpu[name]), 3),
                     "slices_per_s": round(slices / best, 2),
                     "tiles_per_s": round(n_tiles / best, 1),
                     "wall_vs_bare": round(best / bare, 3),
                     "cpu_vs_bare": round(min(cpu[name]) / bare_cpu, 3)})
        print(rows[-1], flush=True)
    return rows


#: glibc settings under which freed activation buffers stay in the heap (no page faults)
NO_TRIM = {"MALLOC_MMAP_THRESHOLD_": str(2**30), "MALLOC_TRIM_THRESHOLD_": str(2**31),
           "RF_BENCH_MALLOC": "no trim"}


def blending_in_subprocesses(args) -> list[dict]:
    """Section 3 in two fresh processes (default malloc, no trim); their rows."""
    rows = []
    for extra in ({}, NO_TRIM):
        cmd = [sys.executable, __file__, "--blending-child", "--blend-slices",
               str(args.blend_slices), "--size", str(args.size), "--repeats", str(args.repeats),
               "--blend-threads", str(args.blend_threads)]
        out = subprocess.run(cmd, env={**os.environ, **extra}, check=True, text=True,
                             stdout=subprocess.PIPE).stdout
        rows += json.loads(out.strip().splitlines()[-1])
    return rows


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
    ap.add_argument("--blending-only", action="store_true",
                    help="only the side-by-side blending section (3.)")
    ap.add_argument("--blend-slices", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=11)
    ap.add_argument("--blend-threads", type=int, default=1,
                    help="torch threads in section 3 (1: least disturbed by other load)")
    ap.add_argument("--blending-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()

    import torch

    import redoxflow as rf
    from redoxflow.segment.models import builtin_checkpoint

    torch.set_num_threads(2)
    if args.blending_child:  # one process of section 3: rows as JSON on the last line
        torch.set_num_threads(args.blend_threads)
        devices = ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
        rows = [row for device in devices for pointwise in (False, True)
                for row in blending_rows(args.blend_slices * (4 if device == "cuda" else 1),
                                         args.size, device, args.repeats, pointwise)]
        print(json.dumps(rows))
        return
    blend = blending_in_subprocesses(args)
    report("segment_blending", blend, {
        "volume": [args.blend_slices, args.size, args.size], "model": "builtin",
        "torch_threads": args.blend_threads, "batch_size": 8, "overlap": 0.25,
        "repeats": args.repeats,
        "no_trim_env": {k: v for k, v in NO_TRIM.items() if k.startswith("MALLOC")},
        "note": "best (and median) wall time of interleaved repeats after one warm-up; cpu_s: "
                "least process CPU time; wall_vs_bare / cpu_vs_bare: ratios to the bare loop"})
    if args.blending_only:
        return
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
