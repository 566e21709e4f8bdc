"""Chunked inference: a model mapped over slab blocks of slices with dask.

Pure helpers (normalisation, tiling with Gaussian blending, 2.5D stacking) work on numpy
slabs; :func:`segment` builds the dask graph. The checkpoint travels as one graph key, so
each worker receives it once, and every worker builds the model once (a per-process cache
keyed by the checkpoint's hash and device); tasks never pickle the model.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any, Literal

import dask
import numpy as np

from ..errors import InputError, require
from .models import (
    ModelSpec,
    check_request,
    digest,
    load_model,
    read_checkpoint,
    resolve_checkpoint,
)

Mode = Literal["tile", "resize"]
MIN_TILE = 32

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()


# --- pure helpers ------------------------------------------------------------------------

def normalization_range(volume, spec: ModelSpec, *, max_samples: int = 2**24) -> tuple[float, float]:
    """The (low, high) grey levels that map to 0 and 1, following the checkpoint's method.

    ``dtype`` uses the integer range (0..255 for 8-bit); ``percentile`` uses the volume's
    ``low``/``high`` percentiles from an evenly strided sample of at most ``max_samples``
    voxels, so the result does not depend on the chunking.
    """
    norm = spec.normalization
    dtype = np.dtype(volume.dtype)
    method = norm.get("method", "auto")
    if method == "auto":
        method = "dtype" if dtype == np.uint8 else "percentile"
    if method == "dtype":
        if dtype.kind not in "ui":
            raise InputError(f"normalisation 'dtype' needs integer data, got {dtype}: use "
                             "a checkpoint with percentile normalisation")
        info = np.iinfo(dtype)
        return float(info.min), float(info.max)
    if method != "percentile":
        raise InputError(f"unknown normalisation method {method!r}: use auto, dtype or percentile")
    step = max(1, int(np.ceil((volume.size / max_samples) ** (1 / 3))))
    sample = np.asarray(volume[::step, ::step, ::step])
    if hasattr(sample, "compute"):
        sample = sample.compute()
    sample = np.asarray(sample, np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        raise InputError("the volume has no finite values: check the input")
    lo, hi = np.percentile(finite, [norm.get("low", 0.5), norm.get("high", 99.5)])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def normalize(slab: np.ndarray, low: float, high: float, nan_policy: str = "raise") -> np.ndarray:
    """Map grey levels to [0, 1] float32; non-finite values raise or become 0 (``"fill"``)."""
    x = slab.astype(np.float32, copy=False)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        if nan_policy != "fill":
            raise InputError("the volume holds NaN or infinite values: clean it, or pass "
                             "nan_policy='fill' to treat them as the darkest grey level")
        x = np.where(np.isfinite(x), x, low)
    return np.clip((x - low) / (high - low), 0.0, 1.0).astype(np.float32, copy=False)


def stack_context(slab: np.ndarray, context: int) -> np.ndarray:
    """(n + 2k, H, W) -> (n, 2k + 1, H, W): each slice with its k neighbours on each side."""
    n = slab.shape[0] - 2 * context
    return np.stack([slab[i:i + n] for i in range(2 * context + 1)], axis=1)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Tile origins covering ``size`` with at least ``overlap`` (fraction) between tiles."""
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def gaussian_window(tile: int, sigma_scale: float = 0.125) -> np.ndarray:
    """Blending weights: a 2D Gaussian (sigma = tile / 8), never below 1e-3 at the edges."""
    r = np.arange(tile) - (tile - 1) / 2
    g = np.exp(-0.5 * (r / (sigma_scale * tile)) ** 2)
    w = np.outer(g, g)
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)


def choose_tile(shape_2d, spec: ModelSpec, tile: int | None) -> int:
    """The inference tile: as asked, else the training size shrunk to fit the slices."""
    smallest = min(shape_2d)
    if smallest < MIN_TILE:
        raise InputError(f"slices are {shape_2d[0]}x{shape_2d[1]}, smaller than the smallest "
                         f"model input ({MIN_TILE}x{MIN_TILE}): pad the volume or use "
                         "mode='resize'")
    if tile is None:
        return min(spec.input_size, smallest // MIN_TILE * MIN_TILE)
    if tile % MIN_TILE or tile < MIN_TILE:
        raise InputError(f"tile {tile} must be a positive multiple of {MIN_TILE}")
    if tile > smallest:
        raise InputError(f"tile {tile} is larger than the {shape_2d[0]}x{shape_2d[1]} slices: "
                         f"pass tile <= {smallest // MIN_TILE * MIN_TILE} or mode='resize'")
    return tile


def resolve_device(device: str = "auto") -> str:
    """``auto`` -> ``cuda`` when this process sees a GPU, else ``cpu``; ``cuda`` must exist."""
    torch = require("torch", "ml")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {device!r} was requested but no CUDA GPU is visible: use "
                         "device='auto' (falls back to the CPU) or 'cpu'")
    if device != "cpu" and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}: use auto, cpu or cuda")
    return device


def predict_slices(model, images: np.ndarray, *, tile: int, overlap: float = 0.25,
                   batch_size: int = 8, mode: Mode = "tile", device: str = "cpu") -> np.ndarray:
    """Class probabilities of normalised slices.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode, on ``device``.
    images : float32 (n, channels, H, W)
        Normalised slices (channels = 2.5D context).
    tile : int
        Model input size. ``mode="tile"`` predicts overlapping tiles at native resolution and
        blends them with Gaussian weights; ``mode="resize"`` resizes each slice to
        ``tile x tile`` (the reference's method) and the probabilities back to native size.

    Returns
    -------
    float32 (classes, n, H, W)
    """
    import torch
    import torch.nn.functional as F

    n, _, H, W = images.shape
    cuda = device.startswith("cuda")

    def run(batch: np.ndarray) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(batch)).to(device)
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        return torch.softmax(logits.float(), 1)

    if mode == "resize":
        out = []
        for b0 in range(0, n, batch_size):
            x = torch.from_numpy(images[b0:b0 + batch_size])
            small = F.interpolate(x, size=(tile, tile), mode="bilinear", align_corners=False)
            probs = run(small.numpy())
            out.append(F.interpolate(probs, size=(H, W), mode="bilinear",
                                     align_corners=False).cpu().numpy())
        return np.concatenate(out).transpose(1, 0, 2, 3)
    if mode != "tile":
        raise InputError(f"unknown mode {mode!r}: use 'tile' or 'resize'")
    weight = gaussian_window(tile)
    ys, xs = tile_starts(H, tile, overlap), tile_starts(W, tile, overlap)
    jobs = [(i, y, x) for i in range(n) for y in ys for x in xs]
    acc = None
    norm = np.zeros((H, W), np.float32)
    for y in ys:
        for x in xs:
            norm[y:y + tile, x:x + tile] += weight
    for b0 in range(0, len(jobs), batch_size):
        batch = jobs[b0:b0 + batch_size]
        probs = run(np.stack([images[i, :, y:y + tile, x:x + tile] for i, y, x in batch]))
        probs = (probs * torch.from_numpy(weight).to(probs.device)).cpu().numpy()
        if acc is None:
            acc = np.zeros((probs.shape[1], n, H, W), np.float32)
        for p, (i, y, x) in zip(probs, batch):
            acc[:, i, y:y + tile, x:x + tile] += p
    return acc / norm


# --- per-worker model cache --------------------------------------------------------------

def cached_model(key: str, blob: bytes, device: str):
    """The model for checkpoint ``key`` on ``device``, built once per process."""
    with _MODELS_LOCK:
        if (key, device) not in _MODELS:
            import torch

            model, _ = load_model(blob)
            model = model.to(device).to(memory_format=torch.channels_last)
            _MODELS[(key, device)] = model
        return _MODELS[(key, device)]


def _predict_block(block: np.ndarray, blob: bytes, *, key: str, spec: ModelSpec, low: float,
                   high: float, context: int, tile: int, overlap: float, batch_size: int,
                   mode: Mode, device: str, threads: int | None, nan_policy: str) -> np.ndarray:
    """One slab (with ``context`` halo slices) -> float16 probabilities (C, n, H, W)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    model = cached_model(key, blob, dev)
    images = stack_context(normalize(block, low, high, nan_policy), context)
    probs = predict_slices(model, images, tile=tile, overlap=overlap, batch_size=batch_size,
                           mode=mode, device=dev)
    return probs.astype(np.float16)


# --- dask edge ---------------------------------------------------------------------------

def _torch_threads() -> int:
    """Intra-op threads per task: the cores of this machine shared by the dask threads."""
    try:
        from distributed import get_client

        info = get_client().scheduler_info()["workers"].values()
        total = sum(w["nthreads"] for w in info)
    except (ImportError, ValueError):
        import dask

        total = dask.config.get("num_workers", None) or os.cpu_count() or 1  # thread pool
    return max(1, (os.cpu_count() or 1) // max(total, 1))


def _as_volume(volume):
    """Path / store / DataArray / dask / numpy -> (dask array (z, y, x), voxel size, identity).

    The identity names the input for resuming: the store's path, else the dask graph name.
    """
    import dask.array as da

    from ..io import open_volume

    identity = None
    if isinstance(volume, (str, os.PathLike)):
        identity = str(Path(volume).absolute())
        volume = open_volume(volume)
    voxel = volume.attrs.get("voxel_size") if hasattr(volume, "attrs") else None
    data = volume.data if hasattr(volume, "dims") else volume
    if np.ndim(data) != 3:
        raise InputError(f"segment takes a 3D volume (z, y, x); got shape {np.shape(data)}")
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(16, -1, -1))
    if np.dtype(data.dtype).kind not in "uif":
        raise InputError(f"volume dtype {data.dtype} is not a grey-level image")
    return data, voxel, identity or data.name


def _axis_probabilities(vol, blob, perm, *, slab, context, **kw):
    """Probabilities (C, z, y, x) from slices normal to axis ``perm[0]`` of ``vol``."""
    import dask.array as da

    slabs = vol.transpose(perm).rechunk((slab, -1, -1))
    v = da.overlap.overlap(slabs, depth={0: context, 1: 0, 2: 0},
                           boundary="nearest") if context else slabs
    chunks = ((len(kw["spec"].classes),), *slabs.chunks)
    probs = v.map_blocks(_predict_block, blob, context=context, dtype=np.float16, chunks=chunks,
                         new_axis=0, meta=np.empty((0, 0, 0, 0), np.float16), **kw)
    inverse = np.argsort(perm)
    return probs.transpose(0, *(int(i) + 1 for i in inverse))


def segment(
    volume: Any,
    model: str | os.PathLike = "builtin",
    *,
    out: str | os.PathLike | None = None,
    probabilities: bool = False,
    tile: int | None = None,
    overlap: float = 0.25,
    batch_size: int = 8,
    mode: Mode = "tile",
    triplanar: bool = False,
    slab: int | None = None,
    device: str = "auto",
    classes: int | None = None,
    nan_policy: str = "raise",
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    config: Any = None,
):
    """Segment a grey-level volume into classes with a U-Net, chunked over dask.

    Parameters
    ----------
    volume : path, xarray.DataArray, dask or numpy array (z, y, x)
        Grey levels (8/16-bit or float).
    model : "builtin", "classical" or path
        A checkpoint written by ``redoxflow train`` / :func:`save_checkpoint`; ``builtin`` is
        the shipped phantom model; ``classical`` the weight-free baseline
        (:func:`redoxflow.segment.classical_segment`).
    out : path, optional
        Write uint8 classes to this OME-Zarr store (resumable: a rerun after a crash skips
        finished slabs). Without it the lazy dask array is returned.
    probabilities : bool
        Also write float16 probabilities (class, z, y, x) as the array ``probabilities/0``
        inside the ``out`` store.
    tile, overlap, batch_size : int, float, int
        Tile size (default: the training size, shrunk to fit), tile overlap fraction, tiles per
        forward pass.
    mode : {"tile", "resize"}
        Native resolution by blended tiles, or the reference's resize-to-input method.
    triplanar : bool
        Predict along z, y and x and average the probabilities (3x the work).
    slab : int, optional
        Slices per task (default: the input's z chunk, at most 32).
    device : {"auto", "cpu", "cuda"}
        ``auto`` uses each worker's GPU when it has one, else its CPU; ``cuda`` is an error
        without a GPU.
    classes : int, optional
        Expected number of classes (checked against the checkpoint).
    nan_policy : {"raise", "fill"}
        Non-finite voxels raise, or are treated as the darkest grey level.

    Returns
    -------
    xarray.DataArray or dask.array.Array
        The written class store (lazy) when ``out`` is given, else a lazy uint8 dask array.
    """
    if str(model) == "classical":
        from .classical import classical_segment

        return classical_segment(volume, out=out, overwrite=overwrite, progress=progress,
                                 config=config)
    path = resolve_checkpoint(model)
    blob = path.read_bytes()
    spec, _ = read_checkpoint(blob)
    check_request(spec, classes=classes)
    if nan_policy not in ("raise", "fill"):
        raise InputError(f"nan_policy {nan_policy!r} is unknown: use 'raise' or 'fill'")
    if device.startswith("cuda"):
        _check_cuda_somewhere(device)
    vol, voxel, identity = _as_volume(volume)
    low, high = normalization_range(vol, spec)
    slab = slab or min(int(vol.chunks[0][0]), 32)
    key = digest(blob)
    blob_node = dask.delayed(blob, name=f"checkpoint-{key}")  # one key: sent once per worker
    axes = [(0, 1, 2), (1, 0, 2), (2, 0, 1)] if triplanar else [(0, 1, 2)]
    parts = []
    for perm in axes:
        shape_2d = [vol.shape[p] for p in perm[1:]]
        t = choose_tile(shape_2d, spec, tile) if mode == "tile" else (tile or spec.input_size)
        parts.append(_axis_probabilities(
            vol, blob_node, perm, slab=slab, context=spec.context, key=key, spec=spec, low=low,
            high=high, tile=t, overlap=overlap, batch_size=batch_size, mode=mode, device=device,
            threads=_torch_threads(), nan_policy=nan_policy))
    probs = parts[0] if len(parts) == 1 else sum(p.astype(np.float32) for p in parts) / len(parts)
    probs = probs.rechunk((-1, slab, -1, -1)).astype(np.float16)
    labels = probs.argmax(axis=0).astype(np.uint8)
    if out is None:
        return labels
    resume_key = ":".join(map(str, (key, identity, slab, tile, overlap, mode, triplanar,
                                    probabilities)))
    return _write_segmentation(labels, probs, out, probabilities, spec, voxel, path, overwrite,
                               progress, config, resume_key if resume else None)


def _check_cuda_somewhere(device: str) -> None:
    """Explicit CUDA: fine when the dask workers have GPUs, an error when nobody does."""
    try:
        from distributed import get_client

        get_client()
        return  # checked on the workers, where the GPUs are
    except (ImportError, ValueError):
        resolve_device(device)


def _write_segmentation(labels, probs, out, probabilities, spec, voxel, path, overwrite,
                        progress, config, resume_key):
    """Write classes (and probabilities) block by block, resumably; open the class store."""
    from ..io.store import write_dask

    return write_dask(
        labels, out, voxel_size=voxel, kind="classes", overwrite=overwrite, config=config,
        progress=progress, resume_key=resume_key,
        companions={"probabilities": probs} if probabilities else None,
        description=f"segmented by {path.name}",
        attrs={"model": {"checkpoint": str(path), "architecture": spec.architecture,
                         "classes": spec.classes}})
