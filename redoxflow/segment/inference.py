"""Chunked inference: a model mapped over slab blocks of slices with dask.

Host-side helpers (normalisation, 2.5D stacking, tile origins, the blending window) are pure
numpy; :func:`predict_slices` moves a slab to the model's device once and keeps everything
there: the tiles are cut, predicted, Gaussian-blended and (in :func:`segment`) reduced to
classes by an argmax in torch, so only the uint8 classes (or float16 probabilities when they
are asked for) come back to the host. :func:`segment` builds the dask graph. The checkpoint
travels as one graph key, so each worker receives it once, and every worker builds the model
once (a per-process cache keyed by the checkpoint's hash and device); tasks never pickle the
model.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Literal

import dask
import dask.array as da
import numpy as np

from ..common.options import Device, Mode, NanPolicy, check_choice
from ..common.provenance import digest
from ..errors import InputError, require
from ..io.store import stats_digest, write_dask
from ..io.volume import as_volume
from .classical import classical_segment
from .models import (
    ModelSpec,
    check_request,
    check_weights,
    load_model,
    read_checkpoint,
    resolve_checkpoint,
)

MIN_TILE = 32

_MODELS: dict[tuple[str, str], Any] = {}
_MODELS_LOCK = threading.Lock()

Output = Literal["classes", "probabilities"]


# --- host-side helpers -------------------------------------------------------------------

def normalization_range(volume, spec: ModelSpec, *,
                        max_samples: int = 2**24) -> tuple[float, float]:
    """The (low, high) grey levels that map to 0 and 1, following the checkpoint's method.

    Parameters
    ----------
    volume : numpy or dask array
        The grey levels (any shape).
    spec : ModelSpec
        Its ``normalization`` picks the method: ``dtype`` uses the integer range (0..255 for
        8-bit); ``percentile`` uses the volume's ``low``/``high`` percentiles from an evenly
        strided sample of at most ``max_samples`` voxels, so the result does not depend on
        the chunking; ``auto`` is ``dtype`` for 8-bit data, else ``percentile``.
    max_samples : int
        Largest sample the percentiles are computed from.

    Returns
    -------
    (float, float)

    Examples
    --------
    >>> import numpy as np
    >>> spec = ModelSpec("small-unet")
    >>> normalization_range(np.zeros((2, 4, 4), np.uint8), spec)
    (0.0, 255.0)
    >>> normalization_range(np.arange(1000.0).reshape(10, 10, 10), spec)
    (4.995, 994.005)
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
    sample = volume[::step, ::step, ::step]
    if hasattr(sample, "compute"):
        sample = sample.compute()
    sample = np.asarray(sample, np.float64)
    finite = sample[np.isfinite(sample)]
    if finite.size == 0:
        raise InputError("the volume has no finite values: check the input")
    lo, hi = np.percentile(finite, [norm.get("low", 0.5), norm.get("high", 99.5)])
    return float(lo), float(hi) if hi > lo else float(lo) + 1.0


def normalize(slab: np.ndarray, low: float, high: float,
              nan_policy: NanPolicy = "raise") -> np.ndarray:
    """Map grey levels to [0, 1] float32; non-finite values raise or become ``low``.

    Parameters
    ----------
    slab : numpy array
        Grey levels.
    low, high : float
        The grey levels mapped to 0 and 1 (:func:`normalization_range`).
    nan_policy : {"raise", "fill"}
        Non-finite values raise an ``InputError``, or count as the darkest grey level.

    Examples
    --------
    >>> import numpy as np
    >>> normalize(np.array([0, 128, 255], np.uint8), 0.0, 255.0)
    array([0.       , 0.5019608, 1.       ], dtype=float32)
    >>> normalize(np.array([np.nan, 2.0]), 0.0, 4.0, nan_policy="fill")
    array([0. , 0.5], dtype=float32)
    """
    x = slab.astype(np.float32, copy=False)
    if x.dtype.kind == "f" and not np.isfinite(x).all():
        if nan_policy != "fill":
            raise InputError("the volume holds NaN or infinite values: clean it, or pass "
                             "nan_policy='fill' to treat them as the darkest grey level")
        x = np.where(np.isfinite(x), x, low)
    return np.clip((x - low) / (high - low), 0.0, 1.0).astype(np.float32, copy=False)


def stack_context(slab: np.ndarray, context: int) -> np.ndarray:
    """(n + 2k, H, W) -> (n, 2k + 1, H, W): each slice with its k neighbours on each side.

    Examples
    --------
    >>> import numpy as np
    >>> stack_context(np.arange(4.0)[:, None, None], 1)[:, :, 0, 0]
    array([[0., 1., 2.],
           [1., 2., 3.]])
    """
    n = slab.shape[0] - 2 * context
    return np.stack([slab[i:i + n] for i in range(2 * context + 1)], axis=1)


def tile_starts(size: int, tile: int, overlap: float) -> list[int]:
    """Tile origins covering ``size`` with at least ``overlap`` (fraction) between tiles.

    The last tile ends at ``size``; a size no larger than the tile gets one tile at 0.

    Examples
    --------
    >>> tile_starts(100, 32, 0.25)
    [0, 24, 48, 68]
    >>> tile_starts(20, 32, 0.25)
    [0]
    """
    if size <= tile:
        return [0]
    step = max(1, int(tile * (1 - overlap)))
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] + tile < size:
        starts.append(size - tile)
    return starts


def gaussian_window(tile: int, sigma_scale: float = 0.125) -> np.ndarray:
    """Blending weights: a 2D Gaussian (sigma = tile / 8), never below 1e-3 at the edges.

    Examples
    --------
    >>> w = gaussian_window(32)
    >>> w.shape, w.dtype, float(w.max()), bool(w.min() >= 1e-3)
    ((32, 32), dtype('float32'), 1.0, True)
    """
    r = np.arange(tile) - (tile - 1) / 2
    g = np.exp(-0.5 * (r / (sigma_scale * tile)) ** 2)
    w = np.outer(g, g)
    return np.maximum(w / w.max(), 1e-3).astype(np.float32)


def choose_tile(shape_2d, spec: ModelSpec, tile: int | None) -> int:
    """The inference tile: as asked, else the training size shrunk to fit the slices.

    Parameters
    ----------
    shape_2d : (int, int)
        Slice shape.
    spec : ModelSpec
        Its ``input_size`` is the default.
    tile : int or None
        The requested tile (a multiple of 32 no larger than the slices).

    Examples
    --------
    >>> spec = ModelSpec("small-unet", input_size=128)
    >>> choose_tile((80, 200), spec, None), choose_tile((80, 200), spec, 32)
    (64, 32)
    """
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


def resolve_device(device: Device = "auto") -> str:
    """``auto`` -> ``cuda`` when this process sees a GPU, else ``cpu``; ``cuda`` must exist.

    Examples
    --------
    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("gpu")
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: device='gpu' is not allowed: use one of 'auto', 'cpu', 'cuda'
    """
    check_choice(device, Device, "device")
    torch = require("torch", "ml")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA GPU is visible: use "
                         "device='auto' (falls back to the CPU) or 'cpu'")
    return device


# --- on the device -----------------------------------------------------------------------

def _blend_tiles(model, images, *, tile: int, overlap: float, batch_size: int, mode: Mode):
    """Probabilities (n, classes, H, W) float32 of a (n, channels, H, W) float32 tensor, all
    on the tensor's device.

    ``tile`` mode walks the tile positions row by row and, at each, the slices in order, so
    every pixel adds up its tiles in the same (y, x) order whatever the batching: the blend
    does not depend on how many slices a task holds.
    """
    import torch
    import torch.nn.functional as F

    n, _, H, W = images.shape
    dev = images.device
    cuda = dev.type == "cuda"

    def run(x):
        x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda):
            logits = model(x)
        return torch.softmax(logits.float(), 1)

    acc = None
    if mode == "resize":
        for b0 in range(0, n, batch_size):
            small = F.interpolate(images[b0:b0 + batch_size], size=(tile, tile),
                                  mode="bilinear", align_corners=False)
            probs = F.interpolate(run(small), size=(H, W), mode="bilinear",
                                  align_corners=False)
            if acc is None:
                acc = torch.empty((n, probs.shape[1], H, W), dtype=torch.float32, device=dev)
            acc[b0:b0 + batch_size] = probs
        return acc
    weight = torch.from_numpy(gaussian_window(tile)).to(dev)
    positions = [(y, x) for y in tile_starts(H, tile, overlap)
                 for x in tile_starts(W, tile, overlap)]
    norm = torch.zeros((H, W), dtype=torch.float32, device=dev)
    for y, x in positions:
        norm[y:y + tile, x:x + tile] += weight
    total = len(positions) * n
    for b0 in range(0, total, batch_size):
        # the jobs b0..b1 (position-major) as runs of consecutive slices at one position
        runs, j = [], b0
        while j < min(b0 + batch_size, total):
            p, i0 = divmod(j, n)
            i1 = min(n, i0 + min(b0 + batch_size, total) - j)
            runs.append((*positions[p], i0, i1))
            j += i1 - i0
        batch = torch.cat([images[i0:i1, :, y:y + tile, x:x + tile] for y, x, i0, i1 in runs])
        probs = run(batch).mul_(weight)
        if acc is None:
            acc = torch.zeros((n, probs.shape[1], H, W), dtype=torch.float32, device=dev)
        k = 0
        for y, x, i0, i1 in runs:
            acc[i0:i1, :, y:y + tile, x:x + tile] += probs[k:k + i1 - i0]
            k += i1 - i0
    return acc.div_(norm)


def predict_slices(model, images, *, tile: int, overlap: float = 0.25, batch_size: int = 8,
                   mode: Mode = "tile", device: str = "cpu") -> np.ndarray:
    """Class probabilities of normalised slices.

    The slices are moved to ``device`` once; tiling, blending and the softmax run there.

    Parameters
    ----------
    model : torch.nn.Module
        In eval mode, on ``device``.
    images : float32 array or torch.Tensor (n, channels, H, W)
        Normalised slices (channels = 2.5D context).
    tile : int
        Model input size. ``mode="tile"`` predicts overlapping tiles at native resolution and
        blends them with Gaussian weights; ``mode="resize"`` resizes each slice to
        ``tile x tile`` (the reference's method) and the probabilities back to native size.
    overlap : float
        Smallest overlap between neighbouring tiles (fraction of the tile).
    batch_size : int
        Tiles (or resized slices) per forward pass.
    mode : {"tile", "resize"}
    device : str
        Where ``model`` lives (``"cpu"``, ``"cuda"``, ``"cuda:1"``...).

    Returns
    -------
    float32 numpy array (classes, n, H, W)

    Examples
    --------
    A pointwise model gives the same probabilities tiled as in one pass:

    >>> import numpy as np, torch
    >>> _ = torch.manual_seed(0)
    >>> model = torch.nn.Conv2d(1, 3, 1).eval()
    >>> images = np.random.default_rng(0).random((2, 1, 70, 50), dtype=np.float32)
    >>> probs = predict_slices(model, images, tile=32)
    >>> probs.shape
    (3, 2, 70, 50)
    >>> whole = torch.softmax(model(torch.from_numpy(images)), 1).detach().numpy()
    >>> bool(np.allclose(probs, whole.transpose(1, 0, 2, 3), atol=1e-6))
    True
    """
    import torch

    check_choice(mode, Mode, "mode")
    x = images if isinstance(images, torch.Tensor) else torch.from_numpy(
        np.ascontiguousarray(images, dtype=np.float32))
    with torch.inference_mode():
        probs = _blend_tiles(model, x.to(device), tile=tile, overlap=overlap,
                             batch_size=batch_size, mode=mode)
        return probs.cpu().numpy().transpose(1, 0, 2, 3)  # a view: no copy


# --- per-worker model cache --------------------------------------------------------------

def cached_model(key: str, blob: bytes, device: str):
    """The model for checkpoint ``key`` on ``device``, built once per process.

    Parameters
    ----------
    key : str
        The checkpoint's digest (:func:`redoxflow.common.provenance.digest` of ``blob``).
    blob : bytes
        The checkpoint file's content.
    device : str
        A resolved device (``"cpu"``, ``"cuda"``).

    Examples
    --------
    >>> from redoxflow.segment.models import builtin_checkpoint
    >>> blob = builtin_checkpoint().read_bytes()
    >>> cached_model(digest(blob), blob, "cpu") is cached_model(digest(blob), blob, "cpu")
    True
    """
    with _MODELS_LOCK:
        if (key, device) not in _MODELS:
            import torch

            model, _ = load_model(blob)
            model = model.to(device).to(memory_format=torch.channels_last)
            _MODELS[(key, device)] = model
        return _MODELS[(key, device)]


def _predict_block(block: np.ndarray, blob: bytes, *, key: str, spec: ModelSpec, low: float,
                   high: float, context: int, tile: int, overlap: float, batch_size: int,
                   mode: Mode, device: Device, threads: int | None, nan_policy: NanPolicy,
                   result: Output) -> np.ndarray:
    """One slab (with ``context`` halo slices) -> uint8 classes (n, H, W) or float16
    probabilities (C, n, H, W); only the result crosses back from the device."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    dev = resolve_device(device)
    model = cached_model(key, blob, dev)
    slab = torch.from_numpy(normalize(block, low, high, nan_policy)).to(dev)
    images = slab.unfold(0, 2 * context + 1, 1).permute(0, 3, 1, 2)  # 2.5D stack, a view
    with torch.inference_mode():
        probs = _blend_tiles(model, images, tile=tile, overlap=overlap,
                             batch_size=batch_size, mode=mode).half()
        if result == "classes":
            return probs.argmax(1).to(torch.uint8).cpu().numpy()
        return probs.permute(1, 0, 2, 3).contiguous().cpu().numpy()


# --- dask edge ---------------------------------------------------------------------------

def _torch_threads() -> int:
    """Intra-op threads per task: the cores of this machine shared by the dask threads."""
    try:
        from distributed import get_client  # heavy: only when segment() runs

        info = get_client().scheduler_info()["workers"].values()
        total = sum(w["nthreads"] for w in info)
    except (ImportError, ValueError):
        total = dask.config.get("num_workers", None) or os.cpu_count() or 1  # thread pool
    return max(1, (os.cpu_count() or 1) // max(total, 1))


def _axis_prediction(vol, blob, perm, *, slab: int, context: int, result: Output, **kw):
    """Classes (z, y, x) or probabilities (C, z, y, x) from slices normal to axis
    ``perm[0]`` of ``vol``, one task per slab of ``slab`` slices."""
    slabs = vol.transpose(perm).rechunk((slab, -1, -1))
    v = da.overlap.overlap(slabs, depth={0: context, 1: 0, 2: 0},
                           boundary="nearest") if context else slabs
    inverse = [int(i) for i in np.argsort(perm)]
    if result == "classes":
        classes = v.map_blocks(_predict_block, blob, context=context, result=result,
                               dtype=np.uint8, chunks=slabs.chunks,
                               meta=np.empty((0, 0, 0), np.uint8), **kw)
        return classes.transpose(inverse)
    chunks = ((len(kw["spec"].classes),), *slabs.chunks)
    probs = v.map_blocks(_predict_block, blob, context=context, result=result,
                         dtype=np.float16, chunks=chunks, new_axis=0,
                         meta=np.empty((0, 0, 0, 0), np.float16), **kw)
    return probs.transpose(0, *(i + 1 for i in inverse))


def _segment_series(series, model, *, out, overwrite, progress, config, **options):
    """Segment each step of a (t, z, y, x) volume lazily; write one 4D class store."""
    import dask.array as da

    steps = [segment(series.data[t], model, out=None, progress=False, **options)
             for t in range(series.data.shape[0])]
    classes = da.stack([s if hasattr(s, "dask") else da.from_array(s) for s in steps])
    if out is None:
        return classes
    return write_dask(classes, out, voxel_size=series.voxel_size, kind="classes",
                      overwrite=overwrite, config=config, progress=progress,
                      description=f"{model} (a series of {len(steps)} steps)")


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
    device: Device = "auto",
    classes: int | None = None,
    nan_policy: NanPolicy = "raise",
    overwrite: bool = False,
    resume: bool = True,
    progress: bool = True,
    config: Any = None,
):
    """Segment a grey-level volume into classes with a U-Net, chunked over dask.

    Parameters
    ----------
    volume : path, xarray.DataArray, dask or numpy array (z, y, x)
        Grey levels (8/16-bit or float), coerced by :func:`redoxflow.io.as_volume`.
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
    overwrite, resume, progress : bool
        Replace an existing ``out``; resume a crashed write; show a progress bar.
    config : redoxflow.Config, optional
        Store settings (compression, pyramid levels) for ``out``.

    Returns
    -------
    xarray.DataArray or dask.array.Array
        The written class store (lazy) when ``out`` is given, else a lazy uint8 dask array.

    Examples
    --------
    >>> import redoxflow as rf
    >>> ph = rf.make_phantom((16, 64, 64), seed=0)
    >>> classes = segment(ph.image, "builtin", progress=False)
    >>> classes.dtype, classes.shape
    (dtype('uint8'), (16, 64, 64))
    >>> bool((classes.compute() == ph.classes).mean() > 0.9)
    True
    """
    check_choice(mode, Mode, "mode")
    check_choice(device, Device, "device")
    check_choice(nan_policy, NanPolicy, "nan_policy")
    if not 0 <= overlap < 1:
        raise InputError(f"overlap {overlap} is outside [0, 1): tiles would leave gaps or "
                         "never advance; use e.g. 0.25")
    if batch_size < 1 or (slab is not None and slab < 1) or (tile is not None and tile < 1):
        raise InputError(f"batch_size {batch_size}, slab {slab} and tile {tile} must be "
                         "positive integers")
    series = as_volume(volume, what="segment's volume", ndim=(3, 4))
    if series.data.ndim == 4:  # a time series: each step on its own, one 4D class store
        return _segment_series(series, model, out=out, overwrite=overwrite, progress=progress,
                               config=config, tile=tile, overlap=overlap,
                               batch_size=batch_size, mode=mode, slab=slab,
                               triplanar=triplanar, device=device, nan_policy=nan_policy)
    if str(model) == "classical":
        return classical_segment(volume, out=out, overwrite=overwrite, progress=progress,
                                 config=config)
    path = resolve_checkpoint(model)
    blob = path.read_bytes()
    spec, state = read_checkpoint(blob, name=str(path))
    check_request(spec, classes=classes)
    check_weights(spec, state)  # before any worker builds the network
    if device == "cuda":
        _check_cuda_somewhere()
    coerced = as_volume(volume, what="segment's volume (z, y, x)")
    vol = coerced.data
    if np.dtype(vol.dtype).kind not in "uif":
        raise InputError(f"volume dtype {vol.dtype} is not a grey-level image")
    low, high = normalization_range(vol, spec)
    slab = slab or min(int(vol.chunks[0][0]), 32)
    key = digest(blob)
    blob_node = dask.delayed(blob, name=f"checkpoint-{key}")  # one key: sent once per worker
    axes = [(0, 1, 2), (1, 0, 2), (2, 0, 1)] if triplanar else [(0, 1, 2)]
    # the argmax runs on the device unless probabilities must be averaged or written
    result: Output = ("probabilities" if triplanar or (probabilities and out is not None)
                      else "classes")
    parts = []
    for perm in axes:
        shape_2d = [vol.shape[p] for p in perm[1:]]
        t = choose_tile(shape_2d, spec, tile) if mode == "tile" else (tile or spec.input_size)
        parts.append(_axis_prediction(
            vol, blob_node, perm, slab=slab, context=spec.context, result=result, key=key,
            spec=spec, low=low, high=high, tile=t, overlap=overlap, batch_size=batch_size,
            mode=mode, device=device, threads=_torch_threads(), nan_policy=nan_policy))
    if result == "classes":
        labels, probs = parts[0], None
    else:
        probs = sum(p.astype(np.float32) for p in parts) / len(parts) if triplanar else parts[0]
        probs = probs.rechunk((-1, slab, -1, -1)).astype(np.float16)
        labels = probs.argmax(axis=0).astype(np.uint8)
    if out is None:
        return labels
    # low/high: a percentile normalisation depends on the whole input, every slab with it
    resume_key = ":".join(map(str, (key, coerced.identity, slab, tile, overlap, mode,
                                    triplanar, probabilities, low, high)))
    block_keys = _slab_keys(coerced, labels.chunks, spec.context, triplanar)
    return write_dask(
        labels, out, voxel_size=coerced.voxel_size, kind="classes", overwrite=overwrite,
        config=config, progress=progress, resume_key=resume_key if resume else None,
        companions={"probabilities": probs} if probabilities else None,
        description=f"segmented by {path.name}", block_keys=block_keys,
        attrs={"model": {"checkpoint": str(path), "architecture": spec.architecture,
                         "classes": spec.classes}})


def _slab_keys(coerced, chunks, context: int, whole: bool) -> dict | None:
    """The identity of the input chunks each output block reads (a store input): a resumed
    write keeps a finished block only while those chunks are unchanged, so slabs of a
    replaced input are never mixed into the result (other inputs: their dask name, in the
    resume key, already hashes their content)."""
    stats = coerced.chunk_stats
    if stats is None:
        return None
    zc, nz = int(coerced.data.chunks[0][0]), int(coerced.data.shape[0])
    starts = np.cumsum((0,) + tuple(chunks[0]))
    keys = {}
    for index in np.ndindex(*(len(c) for c in chunks)):
        z0, z1 = int(starts[index[0]]), int(starts[index[0] + 1])
        lo, hi = (0, nz) if whole else (max(0, z0 - context), min(nz, z1 + context))
        rows = range(lo // zc, -(-hi // zc))
        keys[index] = stats_digest({c: st for c, st in stats.items() if c[0] in rows})
    return keys


def _check_cuda_somewhere() -> None:
    """Explicit CUDA: fine when the dask workers have GPUs, an error when nobody does."""
    try:
        from distributed import get_client  # heavy: only for an explicit device="cuda"

        get_client()
        return  # checked on the workers, where the GPUs are
    except (ImportError, ValueError):
        resolve_device("cuda")
