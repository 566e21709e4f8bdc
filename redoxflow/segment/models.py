"""Model registry and checkpoints (a torch ``state_dict`` plus JSON metadata).

A checkpoint file holds ``{"format": "redoxflow-checkpoint", "metadata": "<json>",
"state_dict": {...}}`` and is read with ``torch.load(weights_only=True)``: tensors, strings and
numbers only, never arbitrary pickled objects.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..common.atomic import atomic_file
from ..errors import InputError, require

FORMAT = "redoxflow-checkpoint"
VRFB_CLASSES = ["electrolyte", "bubble", "membrane", "gasket"]
BUILTIN = "phantom-small-unet.pt"


def _smp():
    return require("segmentation_models_pytorch", "ml")


def _nets():
    """:mod:`.nets` defines torch modules, so it loads with torch (the ``ml`` extra)."""
    require("torch", "ml")
    from . import nets  # the one lazy import of ours: it is torch

    return nets


def _unet_resnext101(in_channels, classes, input_size, encoder="resnext101_32x8d"):
    return _smp().Unet(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                       classes=classes)


def _swin_unet(in_channels, classes, input_size, encoder="tu-swin_tiny_patch4_window7_224",
               window_size=8):
    # Swin-transformer encoder (timm, 4 stages) with a U-Net decoder; any multiple of 32 works
    return _smp().Unet(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                       classes=classes, encoder_depth=4, decoder_channels=(256, 128, 64, 32),
                       img_size=input_size, window_size=window_size, strict_img_size=False)


def _unetplusplus(in_channels, classes, input_size, encoder="resnet34"):
    return _smp().UnetPlusPlus(encoder_name=encoder, encoder_weights=None,
                               in_channels=in_channels, classes=classes)


def _fpn(in_channels, classes, input_size, encoder="resnet34"):
    return _smp().FPN(encoder_name=encoder, encoder_weights=None, in_channels=in_channels,
                      classes=classes)


def _attention_unet(in_channels, classes, input_size, width=32, depth=4):
    return _nets().UNet(in_channels, classes, width, depth, attention=True)


def _unet3plus(in_channels, classes, input_size, width=16, depth=4, deep_supervision=True):
    return _nets().UNet3Plus(in_channels, classes, width, depth, deep_supervision)


def _small_unet(in_channels, classes, input_size, width=16, depth=3):
    return _nets().UNet(in_channels, classes, width, depth)


ARCHITECTURES: dict[str, tuple[Callable, str]] = {
    "unet-resnext101": (_unet_resnext101, "U-Net, ResNeXt-101 32x8d encoder (smp; the paper's best)"),
    "attention-unet": (_attention_unet, "Attention U-Net (gated skip connections)"),
    "unet3plus": (_unet3plus, "U-Net 3+ (full-scale skips, deep supervision)"),
    "swin-unet": (_swin_unet, "Swin-transformer encoder with a U-Net decoder (smp + timm)"),
    "unetplusplus": (_unetplusplus, "UNet++ (smp, ResNet-34 encoder)"),
    "fpn": (_fpn, "FPN (smp, ResNet-34 encoder)"),
    "small-unet": (_small_unet, "small U-Net for CPUs (0.5 M parameters; the built-in model)"),
}


@dataclass
class ModelSpec:
    """Everything needed to rebuild a model and use it correctly (the checkpoint's JSON).

    Attributes
    ----------
    architecture : str
        A key of :data:`ARCHITECTURES`.
    classes : list of str
        Class names, index = class id.
    in_channels : int
        ``2 * context + 1`` (2.5D input stacks neighbouring slices as channels).
    context : int
        Neighbouring slices on each side given as extra channels.
    input_size : int
        Training patch size (inference tiles default to it).
    normalization : dict
        ``{"method": "auto" | "dtype" | "percentile", "low": 0.5, "high": 99.5}``: ``dtype``
        maps the integer range to [0, 1]; ``percentile`` maps the volume's percentiles;
        ``auto`` is ``dtype`` for 8-bit data and ``percentile`` otherwise.
    options : dict
        Keyword arguments of the architecture's builder (width, encoder...).
    training : dict
        Provenance: data, recipe, epochs, metrics, seed, version.

    Examples
    --------
    >>> spec = ModelSpec("small-unet", context=1, in_channels=3)
    >>> spec.classes, spec.in_channels
    (['electrolyte', 'bubble', 'membrane', 'gasket'], 3)
    """

    architecture: str
    classes: list[str] = field(default_factory=lambda: list(VRFB_CLASSES))
    in_channels: int = 1
    context: int = 0
    input_size: int = 128
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"method": "auto", "low": 0.5, "high": 99.5})
    options: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The spec as sorted JSON (what a checkpoint stores as ``metadata``).

        Examples
        --------
        >>> ModelSpec("small-unet").to_json()[:31]
        '{"architecture": "small-unet", '
        """
        return json.dumps(asdict(self), sort_keys=True)


def build_model(architecture: str | ModelSpec, *, in_channels: int = 1, classes: int = 4,
                input_size: int = 128, **options: Any):
    """Build a network with random weights (offline: no pretrained encoder is downloaded).

    Parameters
    ----------
    architecture : str or ModelSpec
        A key of :data:`ARCHITECTURES` (or a spec, whose fields then take precedence).
    in_channels, classes, input_size : int
        Input channels, output classes and the nominal input size (Swin uses it).
    **options
        Builder options, e.g. ``width=`` for the U-Nets, ``encoder=`` for smp models.

    Returns
    -------
    torch.nn.Module

    Examples
    --------
    >>> import torch
    >>> net = build_model("small-unet", in_channels=3, classes=2, width=4, depth=2).eval()
    >>> net(torch.rand(1, 3, 32, 32)).shape
    torch.Size([1, 2, 32, 32])
    """
    if isinstance(architecture, ModelSpec):
        spec = architecture
        architecture, in_channels, classes = spec.architecture, spec.in_channels, len(spec.classes)
        input_size, options = spec.input_size, {**spec.options, **options}
    if architecture not in ARCHITECTURES:
        raise InputError(f"unknown architecture {architecture!r}: known ones are "
                         f"{', '.join(ARCHITECTURES)}")
    require("torch", "ml")
    builder, _ = ARCHITECTURES[architecture]
    try:
        return builder(in_channels, classes, input_size, **options)
    except TypeError as exc:
        raise InputError(f"architecture {architecture!r} does not take options "
                         f"{sorted(options)}: {exc}") from exc


def save_checkpoint(model, spec: ModelSpec, path: str | os.PathLike) -> Path:
    """Write ``model``'s weights and ``spec`` to ``path`` atomically (an existing file is
    replaced only once the new one is complete).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> spec = ModelSpec("small-unet", options={"width": 4, "depth": 2})
    >>> path = save_checkpoint(build_model(spec), spec,
    ...                        pathlib.Path(tempfile.mkdtemp()) / "m.pt")
    >>> read_checkpoint(path)[0] == spec
    True
    """
    torch = require("torch", "ml")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    with atomic_file(path) as tmp:
        torch.save({"format": FORMAT, "metadata": spec.to_json(), "state_dict": state}, tmp)
    return Path(path)


def builtin_checkpoint() -> Path:
    """Path of the shipped model (small U-Net trained on synthetic phantoms).

    Examples
    --------
    >>> builtin_checkpoint().name
    'phantom-small-unet.pt'
    """
    return Path(str(resources.files("redoxflow") / "data" / "models" / BUILTIN))


def resolve_checkpoint(model: str | os.PathLike) -> Path:
    """``"builtin"`` or a file path -> an existing checkpoint path (clear error otherwise).

    Examples
    --------
    >>> resolve_checkpoint("builtin") == builtin_checkpoint()
    True
    >>> resolve_checkpoint("missing.pt")
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: checkpoint 'missing.pt' does not exist: pass 'builtin', 'classical' or the path of a file written by `redoxflow train`
    """
    path = builtin_checkpoint() if str(model) == "builtin" else Path(model)
    if not path.is_file():
        raise InputError(f"checkpoint {str(path)!r} does not exist: pass 'builtin', "
                         "'classical' or the path of a file written by `redoxflow train`")
    return path


def read_checkpoint(data: bytes | str | os.PathLike, *,
                    name: str | None = None) -> tuple[ModelSpec, dict]:
    """Read a checkpoint (path or bytes) safely -> (spec, state_dict); clear errors otherwise.

    Only tensors, strings and numbers are unpickled (``torch.load(weights_only=True)``).
    ``name`` is what messages call bytes (default: their file's path is unknown).

    Examples
    --------
    >>> spec, state = read_checkpoint(builtin_checkpoint())
    >>> spec.architecture, spec.classes
    ('small-unet', ['electrolyte', 'bubble', 'membrane', 'gasket'])
    """
    torch = require("torch", "ml")
    name = name or ("checkpoint bytes" if isinstance(data, bytes) else str(data))
    source = io.BytesIO(data) if isinstance(data, bytes) else resolve_checkpoint(data)
    try:
        blob = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for corrupt or foreign files
        why = ("it contains pickled Python objects, which are never loaded"
               if "Unsupported global" in str(exc)
               else "it is not a readable torch file (corrupt, truncated or another format)")
        raise InputError(f"cannot load checkpoint {name!r}: {why}; use a file written by "
                         "`redoxflow train` or redoxflow.segment.save_checkpoint") from exc
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise InputError(f"{name!r} is not a redoxflow checkpoint (a bare state_dict or another "
                         "tool's file?): wrap the weights with redoxflow.segment.save_checkpoint")
    try:
        spec = ModelSpec(**json.loads(blob["metadata"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise InputError(f"checkpoint {name!r} has unreadable metadata: {exc}") from exc
    return spec, blob["state_dict"]


def load_model(data: bytes | str | os.PathLike, *, classes: int | None = None,
               in_channels: int | None = None):
    """Load a checkpoint -> (model in eval mode on the CPU, spec).

    ``classes`` / ``in_channels``, when given, must match the checkpoint's.

    Examples
    --------
    >>> model, spec = load_model("builtin", classes=4)
    >>> model.training, spec.in_channels
    (False, 1)
    """
    spec, state = read_checkpoint(data)
    check_request(spec, classes=classes, in_channels=in_channels)
    check_weights(spec, state)
    model = build_model(spec)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"checkpoint weights do not fit architecture {spec.architecture!r} "
                         f"with options {spec.options}: {str(exc).splitlines()[0]}") from exc
    return model.eval(), spec


def check_weights(spec: ModelSpec, state: dict) -> None:
    """Compare the network the metadata asks for with the weights before building it: the
    network is built on torch's ``meta`` device (no memory), so metadata asking for a huge
    network never allocates it.

    Examples
    --------
    >>> import dataclasses
    >>> spec, state = read_checkpoint(builtin_checkpoint())
    >>> check_weights(spec, state)
    >>> wide = dataclasses.replace(spec, options={**spec.options, "width": 60000})
    >>> check_weights(wide, state)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: checkpoint weights do not fit ...
    """
    torch = require("torch", "ml")
    with torch.device("meta"):
        wanted = {k: tuple(v.shape) for k, v in build_model(spec).state_dict().items()}
    given = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    if wanted != given:
        diff = sorted(set(wanted.items()) ^ set(given.items()))[:1]
        raise InputError(f"checkpoint weights do not fit architecture {spec.architecture!r} "
                         f"with options {spec.options} (first difference: {diff}): the "
                         "metadata does not describe these weights; use the file as "
                         "`redoxflow train` wrote it")


def check_request(spec: ModelSpec, *, classes: int | None = None,
                  in_channels: int | None = None) -> None:
    """Raise a clear error when the checkpoint's classes or channels differ from the request.

    Examples
    --------
    >>> check_request(ModelSpec("small-unet"), classes=4)
    >>> check_request(ModelSpec("small-unet"), classes=2)
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: checkpoint predicts 4 classes ['electrolyte', 'bubble', 'membrane', 'gasket'], but 2 were requested: use a matching checkpoint or retrain
    """
    if classes is not None and classes != len(spec.classes):
        raise InputError(f"checkpoint predicts {len(spec.classes)} classes {spec.classes}, "
                         f"but {classes} were requested: use a matching checkpoint or retrain")
    if in_channels is not None and in_channels != spec.in_channels:
        raise InputError(f"checkpoint takes {spec.in_channels} input channel(s) (context "
                         f"{spec.context}), but {in_channels} were requested")
