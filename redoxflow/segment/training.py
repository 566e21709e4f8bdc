"""Training: the paper's recipe (categorical focal loss, Adam, learning rate reduced on plateau
from 1e-4 to 1e-6, random flips, batch 8, held-out validation) with seeds, checkpoints,
resume and early stopping.

Data are image/mask volumes (or single slices) held in memory: training sets are small, and
patches are drawn at random from their slices.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
from tqdm.auto import tqdm

from ..common.atomic import atomic_file
from ..common.options import Device
from ..errors import InputError, StoreExistsError, require
from ..io.readers import TIFF_SUFFIXES, open_source, read_slice
from ..io.volume import as_volume
from .inference import (
    normalization_range,
    normalize,
    resolve_device,
    stack_context,
    tile_starts,
)
from .metrics import scores
from .models import FORMAT, VRFB_CLASSES, ModelSpec, build_model, save_checkpoint

STATE = "training-state.pt"
BEST = "best.pt"
#: single-image files read with :func:`redoxflow.io.readers.read_slice` (2D, or a 3D stack)
IMAGE_SUFFIXES = (*TIFF_SUFFIXES, ".png", ".jpg", ".bmp")


@dataclass
class TrainResult:
    """Where the best checkpoint is, and what happened epoch by epoch.

    Examples
    --------
    >>> from pathlib import Path
    >>> r = TrainResult(Path("model/best.pt"), ModelSpec("small-unet"))
    >>> r.checkpoint.name, r.stopped_early
    ('best.pt', False)
    """

    checkpoint: Path
    spec: ModelSpec
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


# --- pure pieces -------------------------------------------------------------------------

def focal_loss(logits, target, gamma: float = 2.0, alpha=None):
    """Categorical focal loss, mean over pixels: ``-alpha_c (1 - p_c)^gamma log p_c``.

    Parameters
    ----------
    logits : torch.Tensor (batch, classes, H, W)
    target : torch.Tensor (batch, H, W) of class ids (int64)
    gamma : float
        Focusing parameter; 0 gives the cross-entropy.
    alpha : torch.Tensor (classes,), optional
        Per-class weights.

    Examples
    --------
    >>> import torch
    >>> logits, target = torch.zeros(1, 4, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long)
    >>> round(float(focal_loss(logits, target, gamma=0)), 4)  # log(4)
    1.3863
    """
    import torch.nn.functional as F

    logp = F.log_softmax(logits.float(), 1).gather(1, target[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** gamma) * logp
    if alpha is not None:
        loss = loss * alpha[target]
    return loss.mean()


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
            rotate90: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random flips along both slice axes (and optionally a multiple of 90 degrees).

    Parameters
    ----------
    image : (C, H, W) array
    mask : (H, W) array
    rng : numpy.random.Generator
    rotate90 : bool
        Also rotate by a random multiple of 90 degrees.

    Returns
    -------
    (image, mask), contiguous, transformed alike

    Examples
    --------
    >>> import numpy as np
    >>> image = np.arange(16.0).reshape(1, 4, 4)
    >>> a, m = augment(image, image[0] > 7, np.random.default_rng(0), rotate90=True)
    >>> bool(((a[0] > 7) == m).all())
    True
    """
    for axis in (-2, -1):
        if rng.random() < 0.5:
            image, mask = np.flip(image, axis), np.flip(mask, axis)
    if rotate90:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, (-2, -1)), np.rot90(mask, k, (-2, -1))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def random_patch(image: np.ndarray, mask: np.ndarray, tile: int, rng: np.random.Generator):
    """A random ``tile x tile`` crop of a (C, H, W) image and its (H, W) mask; slices
    smaller than the tile are reflect-padded first.

    Examples
    --------
    >>> import numpy as np
    >>> img, msk = random_patch(np.zeros((3, 40, 20)), np.zeros((40, 20)), 32,
    ...                         np.random.default_rng(0))
    >>> img.shape, msk.shape
    ((3, 32, 32), (32, 32))
    """
    H, W = mask.shape
    ph, pw = max(0, tile - H), max(0, tile - W)
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        mask = np.pad(mask, ((0, ph), (0, pw)), mode="reflect")
    y = int(rng.integers(0, mask.shape[0] - tile + 1))
    x = int(rng.integers(0, mask.shape[1] - tile + 1))
    return image[:, y:y + tile, x:x + tile], mask[y:y + tile, x:x + tile]


def grid_patches(image: np.ndarray, mask: np.ndarray, tile: int):
    """Non-random validation tiles covering a slice (the last row/column aligned to the end).

    Yields
    ------
    ((C, tile, tile) image, (tile, tile) mask)

    Examples
    --------
    >>> import numpy as np
    >>> len(list(grid_patches(np.zeros((1, 40, 64)), np.zeros((40, 64)), 32)))
    4
    """
    H, W = mask.shape
    if H < tile or W < tile:
        image = np.pad(image, ((0, 0), (0, max(0, tile - H)), (0, max(0, tile - W))), "reflect")
        mask = np.pad(mask, ((0, max(0, tile - H)), (0, max(0, tile - W))), "reflect")
    for y in tile_starts(mask.shape[0], tile, 0.0):
        for x in tile_starts(mask.shape[1], tile, 0.0):
            yield image[:, y:y + tile, x:x + tile], mask[y:y + tile, x:x + tile]


# --- data --------------------------------------------------------------------------------

def read_volumes(data: Any, what: str) -> list[np.ndarray]:
    """Arrays, stores or files (or a list of them) -> a list of 3D numpy arrays in memory.

    Training sets are small, so everything is read. In-memory inputs (numpy, dask, zarr
    arrays, xarray) go through the one coercer, :func:`redoxflow.io.as_volume`; paths
    through the readers (:func:`redoxflow.io.readers.read_slice` for image files,
    :func:`redoxflow.io.open_source` for stacks, slice folders, HDF5, Zarr stores...). A 2D
    slice becomes a volume of one slice.

    Parameters
    ----------
    data : array, path or list of them
    what : str
        What the caller calls the data (``"images"``, ``"masks"``), for errors.

    Examples
    --------
    >>> import numpy as np
    >>> [v.shape for v in read_volumes([np.zeros((5, 6)), np.zeros((2, 5, 6))], "images")]
    [(1, 5, 6), (2, 5, 6)]
    """
    items = data if isinstance(data, (list, tuple)) else [data]
    out = []
    for item in items:
        arr = np.asarray(_read_one(item, what))
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"{what} must be 2D slices or 3D volumes; got shape {arr.shape}")
        out.append(arr)
    return out


def _read_one(item: Any, what: str) -> np.ndarray:
    """One input of :func:`read_volumes`, read into memory (2D or 3D)."""
    if isinstance(item, (str, os.PathLike)):
        # files and stores on disk: the readers know every format, bare Zarr arrays included
        path = Path(item)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            return read_slice(path)
        src = open_source(path)
        return src.read(0, src.shape[0])
    if getattr(item, "ndim", None) == 2 and not isinstance(item, da.Array):
        item = np.asarray(item)[None]  # one in-memory slice: coerced as a volume of one
    return as_volume(item, what=what, ndim=(2, 3)).data.compute()


def _slices(images, masks, spec: ModelSpec, n_classes: int):
    """Normalised (C, H, W) slices with their masks, one list entry per slice."""
    if len(images) != len(masks):
        raise InputError(f"{len(images)} image volume(s) but {len(masks)} mask(s): pass pairs")
    pairs = []
    for img, msk in zip(images, masks):
        if img.shape != msk.shape:
            raise InputError(f"image {img.shape} and mask {msk.shape} differ in shape")
        top = int(msk.max()) if msk.size else 0
        if top >= n_classes:
            raise InputError(f"mask holds value {top} but the model has {n_classes} classes: "
                             "map the mask to 0..n-1 (e.g. mask > 0 for 0/255 masks)")
        k = spec.context
        if k and img.shape[0] < 2 * k + 1:
            raise InputError(f"2.5D context {k} needs at least {2 * k + 1} slices per volume")
        low, high = normalization_range(img, spec)
        norm = normalize(img, low, high)
        padded = np.concatenate([norm[:1].repeat(k, 0), norm, norm[-1:].repeat(k, 0)]) if k else norm
        stacked = stack_context(padded, k)
        pairs += [(stacked[i], msk[i].astype(np.int64)) for i in range(img.shape[0])]
    return pairs


def split_validation(pairs, fraction: float):
    """Hold out the last ``fraction`` of the slices, or of each slice's rows when there are
    fewer than five slices (a single annotated slice still gets a validation region).

    Parameters
    ----------
    pairs : list of ((C, H, W) image, (H, W) mask)
    fraction : float
        Between 0 and 1.

    Returns
    -------
    (train pairs, validation pairs)

    Examples
    --------
    >>> import numpy as np
    >>> pairs = [(np.zeros((1, 8, 8)), np.zeros((8, 8))) for _ in range(10)]
    >>> [len(p) for p in split_validation(pairs, 0.2)]
    [8, 2]
    >>> [p[0][1].shape for p in split_validation(pairs[:1], 0.25)]
    [(6, 8), (2, 8)]
    """
    if not 0 < fraction < 1:
        raise InputError(f"val_fraction {fraction} must be between 0 and 1")
    if len(pairs) >= 5:
        n_val = max(1, round(len(pairs) * fraction))
        return pairs[:-n_val], pairs[-n_val:]
    train, val = [], []
    for img, msk in pairs:
        cut = int(round(msk.shape[0] * (1 - fraction)))
        train.append((img[:, :cut], msk[:cut]))
        val.append((img[:, cut:], msk[cut:]))
    return train, val


# --- the loop ----------------------------------------------------------------------------

def train(
    images: Any,
    masks: Any,
    *,
    out: str | os.PathLike,
    architecture: str = "small-unet",
    options: dict[str, Any] | None = None,
    classes: Sequence[str] | None = None,
    context: int = 0,
    val_images: Any = None,
    val_masks: Any = None,
    val_fraction: float = 0.2,
    tile: int = 128,
    batch_size: int = 8,
    epochs: int = 50,
    steps_per_epoch: int = 100,
    lr: float = 1e-4,
    min_lr: float = 1e-6,
    plateau_patience: int = 3,
    plateau_factor: float = 0.1,
    early_stopping: int = 8,
    gamma: float = 2.0,
    rotate90: bool = False,
    normalization: dict[str, Any] | None = None,
    seed: int = 0,
    resume: bool = False,
    overwrite: bool = False,
    device: Device = "auto",
    progress: bool = True,
    provenance: dict[str, Any] | None = None,
) -> TrainResult:
    """Train a segmentation model; the best checkpoint (lowest validation loss) is ``out/best.pt``.

    Parameters
    ----------
    images, masks : arrays, paths (TIFF stacks, slice folders, Zarr...) or lists of them
        Grey-level volumes or slices and their integer class masks (0..n-1).
    out : path
        Folder for ``best.pt`` and ``training-state.pt`` (for ``resume``).
    architecture, options : str, dict
        A key of :data:`ARCHITECTURES` and its builder options.
    classes : list of str
        Class names (default the four VRFB classes).
    context : int
        2.5D: neighbouring slices on each side as extra input channels.
    val_images, val_masks : optional
        Held-out validation data; default the last ``val_fraction`` of the slices.
    tile, batch_size, epochs, steps_per_epoch : int
        Patch size, patches per step, and the epoch length in steps.
    lr, min_lr, plateau_patience, plateau_factor : float, float, int, float
        Adam's learning rate, reduced by ``plateau_factor`` after ``plateau_patience`` epochs
        without a better validation loss, down to ``min_lr``.
    early_stopping : int
        Stop after this many epochs without improvement.
    gamma : float
        Focal-loss focusing parameter.
    rotate90 : bool
        Add random 90-degree rotations to the flips.
    normalization : dict, optional
        Intensity normalisation recorded in the checkpoint (default ``auto``).
    seed : int
        Seeds numpy and torch (patch sampling, augmentation, initial weights).
    resume : bool
        Continue from ``out/training-state.pt``.
    overwrite : bool
        Start again in a folder that already holds checkpoints.
    device : {"auto", "cpu", "cuda"}
    progress : bool
        Show a progress bar per epoch and print each epoch's record.
    provenance : dict, optional
        Extra entries for the checkpoint's ``training`` metadata (data, script).

    Returns
    -------
    TrainResult

    Examples
    --------
    >>> import tempfile, redoxflow as rf
    >>> ph = rf.make_phantom((16, 48, 48), seed=0)
    >>> result = train(ph.image, ph.classes, out=tempfile.mkdtemp(), tile=32, epochs=1,
    ...                steps_per_epoch=1, batch_size=2, options={"width": 4, "depth": 2},
    ...                progress=False)
    >>> result.checkpoint.name, len(result.history)
    ('best.pt', 1)
    """
    torch = require("torch", "ml")
    out = Path(out)
    state_path = out / STATE
    if not resume and not overwrite and (out / BEST).exists():
        raise StoreExistsError(f"{out / BEST} exists: pass resume=True to continue training or "
                               "overwrite=True to start again")
    if resume and not state_path.exists():
        raise InputError(f"nothing to resume: {state_path} does not exist")
    names = list(classes or VRFB_CLASSES)
    spec = ModelSpec(architecture=architecture, classes=names, in_channels=2 * context + 1,
                     context=context, input_size=tile, options=dict(options or {}),
                     **({"normalization": normalization} if normalization else {}))
    pairs = _slices(read_volumes(images, "images"), read_volumes(masks, "masks"), spec, len(names))
    if val_images is not None:
        train_pairs = pairs
        val_pairs = _slices(read_volumes(val_images, "val_images"),
                            read_volumes(val_masks, "val_masks"), spec, len(names))
    else:
        train_pairs, val_pairs = split_validation(pairs, val_fraction)
    dev = resolve_device(device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_model(spec).to(dev)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, factor=plateau_factor, patience=plateau_patience, min_lr=min_lr)
    history: list[dict[str, Any]] = []
    best, bad, start = np.inf, 0, 0
    if resume:
        state = torch.load(state_path, map_location=dev, weights_only=True)
        model.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        history = json.loads(state["history"])
        best, bad, start = state["best"], state["bad_epochs"], state["epoch"] + 1
        rng.bit_generator.state = json.loads(state["numpy_rng"])
        torch.set_rng_state(state["torch_rng"])
    spec.training = {"architecture": architecture, "recipe": {
        "loss": f"categorical focal (gamma {gamma})", "optimizer": "Adam", "lr": lr,
        "min_lr": min_lr, "plateau_patience": plateau_patience, "batch_size": batch_size,
        "tile": tile, "flips": True, "rotate90": rotate90, "seed": seed},
        "train_slices": len(train_pairs), "val_slices": len(val_pairs), **(provenance or {})}
    out.mkdir(parents=True, exist_ok=True)
    stopped = False
    for epoch in range(start, epochs):
        model.train()
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}",
                   disable=not progress, leave=False)
        for _ in bar:
            batch = [augment(*random_patch(*train_pairs[int(rng.integers(len(train_pairs)))],
                                           tile, rng), rng, rotate90)
                     for _ in range(batch_size)]
            x = torch.from_numpy(np.stack([b[0] for b in batch])).to(dev)
            y = torch.from_numpy(np.stack([b[1] for b in batch])).to(dev)
            outputs = model(x)
            outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
            loss = sum(focal_loss(o, y, gamma) for o in outputs) / len(outputs)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
        val_loss, metrics = validate(model, val_pairs, tile, len(names), names, gamma, dev)
        scheduler.step(val_loss)
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)), "val_loss": val_loss,
                  "lr": optimizer.param_groups[0]["lr"],
                  **{f"f1_{n}": float(metrics["f1"].sel({"class": n})) for n in names}}
        history.append(record)
        if progress:
            tqdm.write("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                 for k, v in record.items()))
        if val_loss < best:
            best, bad = val_loss, 0
            spec.training.update(epochs=epoch + 1, val_loss=val_loss,
                                 val_f1={n: record[f"f1_{n}"] for n in names})
            save_checkpoint(model, spec, out / BEST)
        else:
            bad += 1
        _save_state(out / STATE, model, optimizer, scheduler, spec, epoch, history, best, bad, rng)
        if bad >= early_stopping:
            stopped = True
            break
    return TrainResult(out / BEST, spec, history, stopped)


def validate(model, pairs, tile: int, n_classes: int, names, gamma: float, device: str):
    """Mean focal loss and per-class scores over fixed tiles of the validation slices.

    Parameters
    ----------
    model : torch.nn.Module
        On ``device``; set to eval mode.
    pairs : list of ((C, H, W) image, (H, W) mask)
    tile, n_classes : int
    names : list of str
        Class names for the scores.
    gamma : float
        Focal-loss focusing parameter.
    device : str
        A resolved device.

    Returns
    -------
    (float, xarray.Dataset)
        The pixel-weighted mean loss and :func:`redoxflow.segment.metrics.scores`.

    Examples
    --------
    >>> import numpy as np
    >>> from redoxflow.segment import build_model
    >>> pairs = [(np.zeros((1, 32, 32), np.float32), np.zeros((32, 32), np.int64))]
    >>> model = build_model("small-unet", width=4, depth=2)
    >>> loss, ds = validate(model, pairs, 32, 4, ["a", "b", "c", "d"], 2.0, "cpu")
    >>> int(ds["support"].sel({"class": "a"}))
    1024
    """
    import torch

    model.eval()
    matrix = np.zeros((n_classes, n_classes), np.int64)
    losses, weights = [], []
    with torch.inference_mode():
        for img, msk in pairs:
            for pi, pm in grid_patches(img, msk, tile):
                x = torch.from_numpy(np.ascontiguousarray(pi[None])).to(device)
                y = torch.from_numpy(np.ascontiguousarray(pm[None])).to(device)
                logits = model(x)
                losses.append(float(focal_loss(logits, y, gamma)))
                weights.append(pm.size)
                pred = logits.argmax(1).cpu().numpy().ravel()
                matrix += np.bincount(pm.ravel() * n_classes + pred,
                                      minlength=n_classes ** 2).reshape(n_classes, n_classes)
    return float(np.average(losses, weights=weights)), scores(matrix, names)


def _save_state(path, model, optimizer, scheduler, spec, epoch, history, best, bad, rng):
    """Everything ``resume`` needs, in a file ``torch.load(weights_only=True)`` can read."""
    import torch

    with atomic_file(path) as tmp:
        torch.save({"format": f"{FORMAT}-training-state", "metadata": spec.to_json(),
                    "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(), "epoch": epoch, "best": float(best),
                    "bad_epochs": bad, "history": json.dumps(history),
                    "numpy_rng": json.dumps(rng.bit_generator.state),
                    "torch_rng": torch.get_rng_state()}, tmp)
