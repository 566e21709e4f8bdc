"""GPU check and throughput in one prepared run (under 5 minutes on one GPU).

1. check: ``label(backend="cupy")`` equals the CPU labels (cc3d, identical to
   ``scipy.ndimage.label``) on 3 chunkings of a blob volume: one single chunk, 128^3 cubes,
   and chunks that do not divide the shape; ``regionprops(backend="cupy")`` equals the CPU's;
2. throughput: GPU and CPU labeling (MVoxel/s), GPU and CPU regionprops moments (MVoxel/s),
   and inference of the built-in model with bf16 autocast (slices/s, MVoxel/s) via
   :func:`redoxflow.segment.predict_slices`.

Prints one JSON document and writes it to ``benchmarks/results/gpu.json``
(``gpu_standin.json`` with ``--standin``). Exit status: 0 when
every check passed (or when there is no GPU: nothing is measured, a message says why), 1 when
a check failed or a section raised (its error is in the JSON).

    python benchmarks/bench_gpu.py [--size 384] [--slices 64] [--slice-size 512]
    python benchmarks/bench_gpu.py --standin --size 64 --slices 2 --slice-size 128

``--standin`` runs the same code through the NumPy stand-in of cupy from
``tests/gpu_standin`` (no GPU needed; inference on the CPU): a smoke test of this script,
whose timings are CPU timings and are labelled so.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from _common import RESULTS, machine
from bench_label import blobs

from redoxflow import _backend
from redoxflow.labeling import label
from redoxflow.measure import MOMENT_PROPERTIES, regionprops

REPO = Path(__file__).resolve().parents[1]


def install_standin() -> None:
    """Put the test suite's NumPy stand-in of cupy/cupyx in ``sys.modules``."""
    sys.path.insert(0, str(REPO))
    from tests.gpu_standin.standin import modules

    sys.modules.update(modules())
    _backend.has_gpu.cache_clear()


def synchronize() -> None:
    """Wait for the device (cupy calls are asynchronous)."""
    _backend.get_array_module(backend="cupy").cuda.Device().synchronize()


def timed(fn, repeats: int = 2):
    """(best seconds, last result) over ``repeats`` calls; the first also warms up kernels."""
    best, out = np.inf, None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def gpu_name() -> str:
    cupy = _backend.get_array_module(backend="cupy")
    if getattr(cupy, "__standin__", False):
        return "numpy stand-in (no GPU)"
    name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def label_section(mask: np.ndarray, chunkings, out: dict) -> np.ndarray:
    """GPU labels == CPU labels on every chunking; GPU and CPU labeling throughput."""
    mvox = mask.size / 1e6
    t_ref, (ref, n_ref) = timed(lambda: label(mask), repeats=1)  # cc3d, whole array
    out["components"] = int(n_ref)
    checks, rows = [], []
    for chunks in chunkings:
        arr = da.from_array(mask, chunks=chunks)

        def on_gpu(arr=arr):
            labels, n = label(arr, backend="cupy")
            got = labels.compute()
            synchronize()
            return got, n

        def on_cpu(arr=arr):
            labels, n = label(arr)
            return labels.compute(), n

        t_gpu, (got, n) = timed(on_gpu)
        host = _backend.to_numpy(got)
        equal = bool(n == n_ref and host.dtype == ref.dtype and np.array_equal(host, ref))
        checks.append({"chunks": list(chunks), "equal": equal, "n_gpu": int(n),
                       "n_cpu": int(n_ref)})
        t_cpu, _ = timed(on_cpu, repeats=1)
        rows.append({"chunks": list(chunks), "gpu_seconds": t_gpu, "gpu_MVoxel_s": mvox / t_gpu,
                     "cpu_seconds": t_cpu, "cpu_MVoxel_s": mvox / t_cpu})
        del got, host
    out["label_checks"] = checks
    out["label"] = rows
    out["label_cpu_whole_array_cc3d"] = {"seconds": t_ref, "MVoxel_s": mvox / t_ref}
    return ref


def regionprops_section(ref: np.ndarray, chunks, out: dict) -> bool:
    """GPU moments == CPU moments; throughput of both (moment properties only)."""
    arr = da.from_array(ref, chunks=chunks)
    props = list(MOMENT_PROPERTIES)
    t_gpu, gpu = timed(lambda: regionprops(arr, properties=props, backend="cupy"))
    t_cpu, cpu = timed(lambda: regionprops(arr, properties=props), repeats=1)
    equal = bool(np.array_equal(gpu["bubble"].values, cpu["bubble"].values)
                 and np.array_equal(gpu["volume_voxels"].values, cpu["volume_voxels"].values)
                 and np.array_equal(gpu["bbox_min"].values, cpu["bbox_min"].values)
                 and np.array_equal(gpu["bbox_max"].values, cpu["bbox_max"].values)
                 and np.allclose(gpu["covariance"].values, cpu["covariance"].values,
                                 rtol=1e-9, atol=1e-12))
    mvox = ref.size / 1e6
    out["regionprops"] = {"chunks": list(chunks), "bubbles": int(cpu.sizes["bubble"]),
                          "properties": props, "equal": equal,
                          "gpu_seconds": t_gpu, "gpu_MVoxel_s": mvox / t_gpu,
                          "cpu_seconds": t_cpu, "cpu_MVoxel_s": mvox / t_cpu}
    return equal


def inference_section(slices: int, size: int, device: str, batch_size: int, out: dict) -> None:
    """Built-in model on ``slices`` random normalised slices, bf16 autocast on CUDA."""
    import torch

    from redoxflow.segment import builtin_checkpoint, load_model, predict_slices

    model, spec = load_model(builtin_checkpoint())
    model = model.to(device)
    tile = min(spec.input_size, size)
    rng = np.random.default_rng(0)
    images = rng.random((slices, spec.in_channels, size, size), dtype=np.float32)
    predict_slices(model, images[:2], tile=tile, batch_size=batch_size, device=device)  # warm-up
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    probs = predict_slices(model, images, tile=tile, batch_size=batch_size, device=device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    assert probs.shape == (len(spec.classes), slices, size, size)
    out["inference"] = {"model": spec.architecture, "device": device,
                        "autocast": "bf16" if device.startswith("cuda") else "none (fp32)",
                        "slices": slices, "slice_shape": [size, size], "tile": tile,
                        "batch_size": batch_size, "seconds": seconds,
                        "slices_s": slices / seconds, "MVoxel_s": slices * size * size / 1e6
                        / seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=384, help="edge of the cubic blob volume")
    ap.add_argument("--slices", type=int, default=64, help="slices for inference")
    ap.add_argument("--slice-size", type=int, default=512, help="edge of an inference slice")
    ap.add_argument("--batch-size", type=int, default=32, help="tiles per forward pass")
    ap.add_argument("--standin", action="store_true",
                    help="no GPU: run through the NumPy stand-in (smoke test, CPU timings)")
    ap.add_argument("--output", type=Path, default=None,
                    help="default results/gpu.json (results/gpu_standin.json with --standin)")
    args = ap.parse_args(argv)

    if args.standin:
        install_standin()
    elif not _backend.has_gpu():
        print("bench_gpu: no usable CUDA device (cupy missing or no GPU): nothing measured. "
              "Install redoxflow[gpu] on a GPU machine, or pass --standin for a smoke test.")
        return 0
    t_start = time.perf_counter()
    dask.config.set(scheduler="threads")
    s = args.size
    # one single chunk, cubes, and chunks that divide no axis
    chunkings = [(s, s, s), (max(1, min(128, s // 2)),) * 3,
                 (max(1, s // 3 + 5), max(1, s // 2 + 3), max(1, s // 4 + 7))]
    out: dict = {"gpu": gpu_name(), "standin": bool(args.standin), "size": [s, s, s],
                 "machine": machine(), "errors": {}}
    ok = True
    mask = blobs(s)
    ref = None
    try:
        ref = label_section(mask, chunkings, out)
        ok &= all(c["equal"] for c in out["label_checks"])
    except Exception:
        out["errors"]["label"] = traceback.format_exc()
        ok = False
    if ref is not None:
        try:
            ok &= regionprops_section(ref, chunkings[1], out)
        except Exception:
            out["errors"]["regionprops"] = traceback.format_exc()
            ok = False
    try:
        device = "cpu" if args.standin else "cuda"
        inference_section(args.slices, args.slice_size, device, args.batch_size, out)
    except Exception:
        out["errors"]["inference"] = traceback.format_exc()
        ok = False
    out["ok"] = bool(ok)
    out["total_seconds"] = time.perf_counter() - t_start
    text = json.dumps(out, indent=2)
    print(text)
    path = args.output or RESULTS / ("gpu_standin.json" if args.standin else "gpu.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
