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
    """Volume store options."""

    chunk_mib: float = 96.0
    compression_level: int = 1
    pyramid_levels: int | None = None


@dataclass
class ClusterConfig:
    """Where dask runs: ``local``, a scheduler address, ``slurm``, ``pbs`` or ``cuda``."""

    cluster: str = "local"
    workers: int | None = None
    threads_per_worker: int = 1
    memory_limit: str = "auto"
    profile: str | None = None
    dashboard_address: str | None = "127.0.0.1:8787"  # None: no dashboard


@dataclass
class LabelConfig:
    """Connected-component labeling options."""

    connectivity: Connectivity = 26
    backend: Backend = "numpy"


@dataclass
class SegmentConfig:
    """Segmentation of grey levels into classes (``redoxflow.segment``).

    ``model``: ``builtin`` (the shipped phantom U-Net), ``classical`` (multi-Otsu baseline),
    a checkpoint path, or ``skip`` (the input already holds classes; for the synthetic input
    its exact ground truth is used).
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
    """Bubble analysis options (``redoxflow.analyze``)."""

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
    """

    source: str = "synthetic"
    kind: InputKind = "auto"
    voxel_size: float | None = None
    shape: list[int] = field(default_factory=lambda: [96, 160, 160])
    seed: int = 0


@dataclass
class OutputConfig:
    """Where the pipeline writes."""

    directory: str = "redoxflow-results"
    overwrite: bool = False
    report: bool = True
    orbit_frames: int = 0


@dataclass
class Config:
    """The resolved redoxflow configuration."""

    input: InputConfig = field(default_factory=InputConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    io: IOConfig = field(default_factory=IOConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    segment: SegmentConfig = field(default_factory=SegmentConfig)
    label: LabelConfig = field(default_factory=LabelConfig)
    analyze: AnalyzeConfig = field(default_factory=AnalyzeConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (JSON/YAML serialisable)."""
        return asdict(self)

    def to_json(self) -> str:
        """Compact JSON, as stored in output attrs."""
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
        for a in allowed:
            if isinstance(a, int) and value.strip() == str(a):
                value = a
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
    """Read a YAML mapping safely (``yaml.safe_load``: no arbitrary objects)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {str(path)!r} does not exist: check the path")
    try:
        data = yaml.safe_load(path.read_text()) or {}
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
        YAML file with sections (``input``, ``output``, ``io``, ``cluster``, ``label``).
    overrides : dict, optional
        Explicit values with dotted keys (``{"cluster.workers": 2}``); ``None`` values are
        ignored so CLI options left unset do not mask lower layers.
    environ : dict, optional
        Environment to read ``REDOXFLOW_SECTION__KEY`` variables from (default ``os.environ``).
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
    return cfg
