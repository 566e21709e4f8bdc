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

import numpy as np

from ..errors import InputError, StoreExistsError, require
from .inference import normalization_range, normalize, resolve_device, stack_context
from .metrics import scores
from .models import FORMAT, VRFB_CLASSES, ModelSpec, build_model, save_checkpoint

STATE = "training-state.pt"
BEST = "best.pt"


@dataclass
class TrainResult:
    """Where the best checkpoint is, and what happened epoch by epoch."""

    checkpoint: Path
    spec: ModelSpec
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped_early: bool = False


# --- pure pieces -------------------------------------------------------------------------

def focal_loss(logits, target, gamma: float = 2.0, alpha=None):
    """Categorical focal loss, mean over pixels: ``-alpha_c (1 - p_c)^gamma log p_c``."""
    import torch.nn.functional as F

    logp = F.log_softmax(logits.float(), 1).gather(1, target[:, None]).squeeze(1)
    loss = -((1 - logp.exp()) ** gamma) * logp
    if alpha is not None:
        loss = loss * alpha[target]
    return loss.mean()


def augment(image: np.ndarray, mask: np.ndarray, rng: np.random.Generator,
            rotate90: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random flips along both slice axes (and optionally a multiple of 90 degrees)."""
    for axis in (-2, -1):
        if rng.random() < 0.5:
            image, mask = np.flip(image, axis), np.flip(mask, axis)
    if rotate90:
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, (-2, -1)), np.rot90(mask, k, (-2, -1))
    return np.ascontiguousarray(image), np.ascontiguousarray(mask)


def random_patch(image: np.ndarray, mask: np.ndarray, tile: int, rng: np.random.Generator):
    """A ``tile x tile`` crop of a (C, H, W) image and its (H, W) mask (reflect-padded)."""
    H, W = mask.shape
    ph, pw = max(0, tile - H), max(0, tile - W)
    if ph or pw:
        image = np.pad(image, ((0, 0), (0, ph), (0, pw)), mode="reflect")
        mask = np.pad(mask, ((0, ph), (0, pw)), mode="reflect")
    y = int(rng.integers(0, mask.shape[0] - tile + 1))
    x = int(rng.integers(0, mask.shape[1] - tile + 1))
    return image[:, y:y + tile, x:x + tile], mask[y:y + tile, x:x + tile]


def grid_patches(image: np.ndarray, mask: np.ndarray, tile: int):
    """Non-random validation tiles covering a slice (the last row/column aligned to the end)."""
    from .inference import tile_starts

    H, W = mask.shape
    if H < tile or W < tile:
        image = np.pad(image, ((0, 0), (0, max(0, tile - H)), (0, max(0, tile - W))), "reflect")
        mask = np.pad(mask, ((0, max(0, tile - H)), (0, max(0, tile - W))), "reflect")
    for y in tile_starts(mask.shape[0], tile, 0.0):
        for x in tile_starts(mask.shape[1], tile, 0.0):
            yield image[:, y:y + tile, x:x + tile], mask[y:y + tile, x:x + tile]


# --- data --------------------------------------------------------------------------------

def read_volumes(data: Any, what: str) -> list[np.ndarray]:
    """Array, path (any readable volume or slice) or a list of them -> list of 3D arrays."""
    items = data if isinstance(data, (list, tuple)) else [data]
    out = []
    for item in items:
        if isinstance(item, (str, os.PathLike)):
            item = _read_any(Path(item))
        arr = np.asarray(item.data.compute() if hasattr(item, "dims") else item)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise InputError(f"{what} must be 2D slices or 3D volumes; got shape {arr.shape}")
        out.append(arr)
    return out


def _read_any(path: Path) -> np.ndarray:
    """One image file (2D slice or 3D stack), or any volume :func:`open_source` reads."""
    from ..io import open_source
    from ..io.readers import TIFF_SUFFIXES, _read_slice

    if path.is_file() and path.suffix.lower() in (*TIFF_SUFFIXES, ".png", ".jpg", ".bmp"):
        return _read_slice(path)
    src = open_source(path)
    return src.read(0, src.shape[0])


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
    fewer than five slices (a single annotated slice still gets a validation region)."""
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
    device: str = "auto",
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
    """
    torch = require("torch", "ml")
    from tqdm.auto import tqdm

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
    """Mean focal loss and per-class scores over fixed tiles of the validation slices."""
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

    tmp = path.with_name(f".{path.name}.partial")
    torch.save({"format": f"{FORMAT}-training-state", "metadata": spec.to_json(),
                "state_dict": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "epoch": epoch, "best": float(best),
                "bad_epochs": bad, "history": json.dumps(history),
                "numpy_rng": json.dumps(rng.bit_generator.state),
                "torch_rng": torch.get_rng_state()}, tmp)
    os.replace(tmp, path)
