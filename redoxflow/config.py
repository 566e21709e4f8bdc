"""One typed configuration: defaults < YAML file < ``REDOXFLOW_*`` environment < explicit args.

Environment variables name a section and a key with a double underscore, e.g.
``REDOXFLOW_CLUSTER__WORKERS=4`` or ``REDOXFLOW_IO__CHUNK_MIB=64``. Explicit overrides use dotted
keys: ``load_config("run.yaml", {"cluster.workers": 4})``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .common.options import (
    Backend,
    Compat,
    Connectivity,
    Device,
    InputKind,
    Mode,
    NanPolicy,
    NegativeSide,
    check_choice,
)
from .errors import InputError

ENV_PREFIX = "REDOXFLOW_"


@dataclass
class IOConfig:
    """Volume store options (section ``io``).

    Attributes
    ----------
    chunk_mib : float
        Target chunk size in MiB of the stores that :func:`redoxflow.ingest` writes (chunks
        are whole (y, x) planes where they fit).
    compression_level : int
        Zstd level of the stored chunks (0: uncompressed); label stores use blosc-lz4
        (no shuffle) when it is above 0.
    pyramid_levels : int or None
        Number of pyramid levels (default: halve until a side would drop below 32, at most 5).

    Examples
    --------
    >>> IOConfig(chunk_mib=64).chunk_mib
    64
    >>> load_config(overrides={"io.compression_level": 3}, environ={}).io.compression_level
    3
    """

    chunk_mib: float = 96.0
    compression_level: int = 1
    pyramid_levels: int | None = None


@dataclass
class ClusterConfig:
    """Where dask runs (section ``cluster``; the arguments of :func:`redoxflow.cluster.make_client`).

    Attributes
    ----------
    cluster : str
        ``local``, a scheduler address (``tcp://host:8786`` or a scheduler JSON file),
        ``slurm``, ``pbs``, ``cuda`` or ``mpi``.
    workers : int or None
        Local workers, or jobs on SLURM/PBS (default: one per core / the profile's).
    threads_per_worker : int
        Threads per local worker.
    memory_limit : str
        Per-worker memory limit (``"4GB"``; ``"auto"`` splits the machine's memory).
    profile : str or None
        YAML profile of dask-jobqueue arguments (``slurm``/``pbs``).
    dashboard_address : str or None
        Where the dashboard listens (localhost by default); None: no dashboard.

    Examples
    --------
    >>> ClusterConfig().cluster
    'local'
    >>> load_config(overrides={"cluster.workers": 4}, environ={}).cluster.workers
    4
    """

    cluster: str = "local"
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    profile: str | None = None
    dashboard_address: str | None = "127.0.0.1:8787"  # None: no dashboard


@dataclass
class LabelConfig:
    """Connected-component labeling options (section ``label``).

    Attributes
    ----------
    connectivity : {6, 18, 26}
        Voxel neighbourhood of a component (faces, + edges, + corners).
    backend : {"numpy", "cupy"}
        Where the block kernels run (``cupy``: on the worker's GPU).

    Examples
    --------
    >>> LabelConfig()
    LabelConfig(connectivity=26, backend='numpy')
    >>> load_config(overrides={"label.backend": "gpu"}, environ={})
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: label.backend='gpu' is not allowed: use one of 'numpy', 'cupy'
    """

    connectivity: Connectivity = 26
    backend: Backend = "numpy"


@dataclass
class SegmentConfig:
    """Segmentation of grey levels into classes (``redoxflow.segment``).

    ``model``: ``builtin`` (the shipped phantom U-Net), ``classical`` (multi-Otsu baseline),
    a checkpoint path, or ``skip`` (the input already holds classes; for the synthetic input
    its exact ground truth is used). The other fields are the keyword arguments of
    :func:`redoxflow.segment`.

    Attributes
    ----------
    model : str
        ``builtin``, ``classical``, ``skip`` or a checkpoint path.
    device : {"auto", "cpu", "cuda"}
        Where inference runs (``auto``: each worker's GPU when it has one).
    tile : int or None
        Inference tile size (default: the training size, shrunk to fit the slices).
    overlap : float
        Overlap fraction between tiles.
    batch_size : int
        Tiles per forward pass.
    mode : {"tile", "resize"}
        Native resolution by blended tiles, or the reference's resize-to-input method.
    slab : int or None
        Slices per task (default: the input's z chunk, at most 32).
    triplanar : bool
        Predict along z, y and x and average the probabilities.
    probabilities : bool
        Also store the class probabilities.
    nan_policy : {"raise", "fill"}
        Non-finite voxels raise, or count as the darkest grey level.

    Examples
    --------
    >>> SegmentConfig().model
    'builtin'
    >>> load_config(overrides={"segment.model": "classical", "segment.device": "cpu"},
    ...             environ={}).segment.device
    'cpu'
    """

    model: str = "builtin"
    device: Device = "auto"
    tile: int | None = None
    overlap: float = 0.25
    batch_size: int = 8
    mode: Mode = "tile"
    slab: int | None = None
    triplanar: bool = False
    probabilities: bool = False
    nan_policy: NanPolicy = "raise"


@dataclass
class AnalyzeConfig:
    """Bubble analysis options (section ``analyze``; defaults of :func:`redoxflow.analyze`).

    Attributes
    ----------
    negative_side : {"low", "high"} or None
        Which half along x is the negative electrode (None: ``high``, with a warning).
    compat : {"utile"} or None
        Reproduce the reference project's definitions exactly.
    clean_z_isolated : bool
        Drop bubble voxels with no bubble voxel directly above or below (the reference's
        "1-D bubble" filter).
    min_volume_voxels : int
        Smallest bubble kept (voxels); compat mode uses the reference's 60.
    min_solidity : float or None
        Drop bubbles less solid than this (None: keep all).
    drop_cut_by_fov : bool
        Drop bubbles that touch a face of the field of view.
    split_touching : bool
        Split touching bubbles with an in-memory distance-transform watershed
        (:func:`redoxflow.analysis.split_touching`) instead of exact chunked labeling.
    split_min_distance, split_h : float
        Minimum distance between bubble centres and dynamic of the kept distance maxima
        (voxels) of that watershed.

    Examples
    --------
    >>> AnalyzeConfig().min_volume_voxels
    27
    >>> load_config(overrides={"analyze.negative_side": "low"}, environ={}).analyze.negative_side
    'low'
    """

    negative_side: NegativeSide | None = None
    compat: Compat | None = None
    clean_z_isolated: bool = True
    min_volume_voxels: int = 27
    min_solidity: float | None = None
    drop_cut_by_fov: bool = False
    split_touching: bool = False
    split_min_distance: float = 3.0
    split_h: float = 2.0


@dataclass
class InputConfig:
    """What the pipeline reads (a path, or ``synthetic`` for the built-in phantom).

    ``kind``: ``intensity`` (grey levels: segmented first), ``classes`` (already segmented)
    or ``auto`` (integer volumes with values below 16 are classes).

    Attributes
    ----------
    source : str
        Input path (anything :func:`redoxflow.io.open_source` reads) or ``synthetic``.
    kind : {"auto", "intensity", "classes"}
        What the input holds.
    voxel_size : float or None
        Micrometres (default: the input's, else 1; the phantom's default is 10).
    shape : list of int, [z, y, x]
        Size of the synthetic phantom.
    seed : int
        Seed of the synthetic phantom.

    Examples
    --------
    >>> InputConfig().source
    'synthetic'
    >>> load_config(overrides={"input.shape": [32, 48, 48]}, environ={}).input.shape
    [32, 48, 48]
    """

    source: str = "synthetic"
    kind: InputKind = "auto"
    voxel_size: float | None = None
    shape: list[int] = field(default_factory=lambda: [96, 160, 160])
    seed: int = 0


@dataclass
class OutputConfig:
    """Where the pipeline writes (section ``output``).

    Attributes
    ----------
    directory : str
        Output folder of the pipeline's stores, results and report.
    overwrite : bool
        Start again: remove what a previous run wrote in ``directory`` (nothing else).
        Without it, ``run`` skips every stage whose output is complete, and refuses a
        folder holding the results of another configuration (``run.json``).
    report : bool
        Write ``report.html``.
    orbit_frames : int
        Frames of the report's orbit animation (0: none).

    Examples
    --------
    >>> OutputConfig().directory
    'redoxflow-results'
    """

    directory: str = "redoxflow-results"
    overwrite: bool = False
    report: bool = True
    orbit_frames: int = 0


@dataclass
class Config:
    """The resolved redoxflow configuration: one dataclass per section.

    Build it with :func:`load_config` (which validates every value); ``Config()`` holds the
    built-in defaults.

    Attributes
    ----------
    input, output, io, cluster, segment, label, analyze
        :class:`InputConfig`, :class:`OutputConfig`, :class:`IOConfig`,
        :class:`ClusterConfig`, :class:`SegmentConfig`, :class:`LabelConfig`,
        :class:`AnalyzeConfig`.

    Examples
    --------
    >>> cfg = Config()
    >>> cfg.label.connectivity, cfg.io.chunk_mib
    (26, 96.0)
    >>> list(cfg.to_dict())
    ['input', 'output', 'io', 'cluster', 'segment', 'label', 'analyze']
    """

    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    io: IOConfig = field(default_factory=IOConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML serialisable).

        Examples
        --------
        >>> Config().to_dict()["cluster"]["cluster"]
        'local'
        """
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON with sorted keys, as stored in output attrs.

        Examples
        --------
        >>> import json
        >>> json.loads(Config().to_json())["label"]
        {'backend': 'numpy', 'connectivity': 26}
        """
        return json.dumps(self.to_dict(), sort_keys=True)


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a YAML/env value to a field's declared type (strings come from the environment)."""
    origin = typing.get_origin(annotation)
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    optional = origin in (typing.Union, types.UnionType)
    if value is None or (isinstance(value, str) and value.lower() in {"none", "null"}):
        if optional and type(None) in typing.get_args(annotation):
            return None
        raise InputError(f"config key {key!r} must not be empty")
    if optional:  # X | None
        annotation, origin = args[0], typing.get_origin(args[0])
    if origin is typing.Literal:
        return _choice(value, annotation, key)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in {"1", "true", "yes", "on"}:
                    return True
                if value.lower() in {"0", "false", "no", "off"}:
                    return False
                raise ValueError(value)
            return bool(value)
        if annotation in (int, float, str):
            return annotation(value)
        if origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            (item,) = typing.get_args(annotation)
            return [item(v) for v in value]
    except (TypeError, ValueError) as exc:
        raise InputError(f"config key {key!r}: cannot read {value!r} as {annotation}") from exc
    return value


def _choice(value: Any, annotation: Any, key: str) -> Any:
    """A ``Literal`` field: numbers from the environment arrive as strings."""
    allowed = typing.get_args(annotation)
    if isinstance(value, str) and value not in allowed:
        value = next((a for a in allowed if isinstance(a, int) and value.strip() == str(a)),
                     value)
    return check_choice(value, annotation, key)


def _apply(cfg: Config, dotted: dict[str, Any], origin: str) -> None:
    hints = {f.name: f for f in dataclasses.fields(cfg)}
    for key, value in dotted.items():
        section, _, name = key.partition(".")
        if section not in hints or not name:
            raise InputError(f"unknown config key {key!r} ({origin}); known sections: "
                             f"{', '.join(hints)}")
        sub = getattr(cfg, section)
        types = typing.get_type_hints(type(sub))
        if name not in types:
            raise InputError(f"unknown config key {key!r} ({origin}); keys of {section!r}: "
                             f"{', '.join(types)}")
        setattr(sub, name, _coerce(value, types[name], key))


def _flatten(tree: dict[str, Any], origin: str) -> dict[str, Any]:
    flat = {}
    for section, values in tree.items():
        if not isinstance(values, dict):
            raise InputError(f"config section {section!r} in {origin} must be a mapping")
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def load_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping safely (``yaml.safe_load``: no arbitrary objects).

    Parameters
    ----------
    path : path
        A YAML file holding a mapping (an empty file gives ``{}``).

    Returns
    -------
    dict
        The mapping as read (not validated: :func:`load_config` checks the keys).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "run.yaml"
    >>> _ = path.write_text("cluster:\\n  workers: 2\\n")
    >>> load_yaml(path)
    {'cluster': {'workers': 2}}
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {str(path)!r} does not exist: check the path")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise InputError(f"config file {str(path)!r} is not UTF-8 text (byte {exc.start}): "
                         "save it as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"cannot read config file {str(path)!r}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise InputError(f"config file {str(path)!r} is not valid YAML: {exc}".splitlines()[0]) from exc
    if not isinstance(data, dict):
        raise InputError(f"config file {str(path)!r} must hold a mapping of sections")
    return data


def load_config(
    path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    environ: dict[str, str] | None = None,
) -> Config:
    """Resolve the configuration.

    Parameters
    ----------
    path : path, optional
        YAML file with sections (``input``, ``output``, ``io``, ``cluster``, ``segment``,
        ``label``, ``analyze``).
    overrides : dict, optional
        Explicit values with dotted keys (``{"cluster.workers": 2}``); ``None`` values are
        ignored so CLI options left unset do not mask lower layers.
    environ : dict, optional
        Environment to read ``REDOXFLOW_SECTION__KEY`` variables from (default ``os.environ``).

    Returns
    -------
    Config
        Defaults < YAML file < environment < ``overrides``, each value converted to its
        field's type and checked; an unknown key or a bad value raises a one-line
        :class:`~redoxflow.errors.InputError`.

    Examples
    --------
    >>> cfg = load_config(overrides={"cluster.workers": 4},
    ...                   environ={"REDOXFLOW_IO__CHUNK_MIB": "64"})
    >>> cfg.cluster.workers, cfg.io.chunk_mib
    (4, 64.0)
    >>> load_config(overrides={"label.foo": 1}, environ={})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: unknown config key 'label.foo' (arguments); keys of 'label': ...
    """
    cfg = Config()
    if path is not None:
        _apply(cfg, _flatten(load_yaml(path), str(path)), str(path))
    env = os.environ if environ is None else environ
    from_env = {
        name[len(ENV_PREFIX):].lower().replace("__", "."): value
        for name, value in env.items()
        if name.startswith(ENV_PREFIX) and "__" in name
    }
    _apply(cfg, from_env, "environment")
    _apply(cfg, {k: v for k, v in (overrides or {}).items() if v is not None}, "arguments")
    check_ranges(cfg)
    return cfg


def _memory(value: str) -> bool:
    from dask.utils import parse_bytes

    if value == "auto":
        return True
    try:
        return parse_bytes(value) > 0
    except (ValueError, TypeError):
        return False


#: (key, test, what the value must be) of every option whose type alone does not bound it
RANGES = (
    ("io.chunk_mib", lambda v: v > 0, "a positive number of MiB"),
    ("io.compression_level", lambda v: 0 <= v <= 22, "an integer from 0 (none) to 22"),
    ("io.pyramid_levels", lambda v: v is None or 1 <= v <= 16, "an integer from 1 to 16"),
    ("cluster.workers", lambda v: v is None or v >= 1, "a positive integer"),
    ("cluster.threads_per_worker", lambda v: v >= 1, "a positive integer"),
    ("cluster.memory_limit", _memory, "'auto' or a size like 4GB"),
    ("segment.tile", lambda v: v is None or v >= 1, "a positive integer"),
    ("segment.overlap", lambda v: 0 <= v < 1, "a fraction in [0, 1)"),
    ("segment.batch_size", lambda v: v >= 1, "a positive integer"),
    ("segment.slab", lambda v: v is None or v >= 1, "a positive integer"),
    ("analyze.min_volume_voxels", lambda v: v >= 0, "a non-negative integer"),
    ("analyze.min_solidity", lambda v: v is None or 0 <= v <= 1, "a fraction in [0, 1]"),
    ("analyze.split_min_distance", lambda v: v > 0, "a positive number of voxels"),
    ("analyze.split_h", lambda v: v >= 0, "a non-negative number of voxels"),
    ("input.voxel_size", lambda v: v is None or 0 < v < float("inf"), "a positive number"),
    ("input.shape", lambda v: len(v) == 3 and min(v) >= 1, "three positive integers [z, y, x]"),
    ("output.orbit_frames", lambda v: v >= 0, "a non-negative integer"),
)


def check_ranges(cfg: Config) -> None:
    """Refuse values of the right type but outside their range, in one line.

    Examples
    --------
    >>> check_ranges(Config())
    >>> load_config(overrides={"io.compression_level": 99}, environ={})
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: config key 'io.compression_level' is 99: it must be an integer from 0 (none) to 22
    """
    for key, test, want in RANGES:
        section, name = key.split(".")
        value = getattr(getattr(cfg, section), name)
        if not test(value):
            raise InputError(f"config key {key!r} is {value!r}: it must be {want}")
