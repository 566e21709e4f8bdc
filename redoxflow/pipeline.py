"""The pipeline as a list of stages: ingest -> segment -> analyze -> report.

Each :class:`Stage` names the artifact it writes under the output directory and is skipped
when that artifact is complete (stores and tables are renamed into place only when
complete), so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .analysis import analyze
from .analysis.results import scratch_in_use
from .common.atomic import atomic_file, is_store
from .config import Config
from .errors import InputError
from .io import detect_kind, ingest, open_source, open_volume
from .segment import evaluate, segment
from .synthetic import make_phantom
from .viz import report
from .viz.report import FIGURES

ARTIFACTS = ("raw.zarr", "classes.zarr", "bubble_labels.zarr", "bubbles.nc", "bubbles.csv",
             "results.zarr", "segmentation_scores.json", "report.html", "figures",
             "summary.json", "run.json")


# the counts of a run, each named as in results.zarr/summary (whose long_name says what
# it counts): all labelled components, those kept in the cell, those kept in the negative
# electrode
COUNTS = ("n_components", "n_bubbles_cell", "n_bubbles")


@dataclass
class Run:
    """What the stages share: the config, the output folder and what earlier stages made.

    Examples
    --------
    >>> from redoxflow.config import Config
    >>> run = Run(Config(), Path("out"))
    >>> run.synthetic, run.path("results.zarr").as_posix()
    (True, 'out/results.zarr')
    """

    cfg: Config
    out: Path
    progress: bool = True
    phantom: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)  # what became of each stage

    @property
    def synthetic(self) -> bool:
        return self.cfg.input.source == "synthetic"

    def path(self, name: str) -> Path:
        return self.out / name


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline.

    Attributes
    ----------
    name : str
        Shown in timings and progress.
    artifact : callable
        ``artifact(run) -> name`` of the file or store it writes under the output folder.
    run : callable
        ``run(run)`` writes the artifact.
    when : callable
        ``when(run) -> bool``; a stage that does not apply is skipped.

    Examples
    --------
    >>> [(s.name, s.artifact(Run(Config(), Path(".")))) for s in STAGES][:2]
    [('ingest', 'raw.zarr'), ('segment', 'classes.zarr')]
    """

    name: str
    artifact: Callable[[Run], str]
    run: Callable[[Run], None]
    when: Callable[[Run], bool] = lambda run: True


def _ingest_target(run: Run) -> str:
    if run.synthetic:
        return "raw.zarr"
    return "classes.zarr" if input_kind(run.cfg) == "classes" else "raw.zarr"


def _ingest(run: Run) -> None:
    if run.synthetic:
        ingest(run.phantom.image, run.path("raw.zarr"), voxel_size=run.phantom.voxel_size,
               kind="intensity", config=run.cfg, progress=run.progress)
        return
    ingest(run.cfg.input.source, run.path(_ingest_target(run)),
           voxel_size=run.cfg.input.voxel_size, kind=input_kind(run.cfg), config=run.cfg,
           progress=run.progress)


def _segment(run: Run) -> None:
    seg = run.cfg.segment
    if seg.model == "skip":
        if not run.synthetic:
            raise InputError("the input holds grey levels but segment.model is 'skip': set "
                             "segment.model to builtin, classical or a checkpoint path")
        ingest(run.phantom.classes, run.path("classes.zarr"), voxel_size=run.phantom.voxel_size,
               kind="classes", config=run.cfg, progress=run.progress)
        return
    segment(run.path("raw.zarr"), seg.model, out=run.path("classes.zarr"), tile=seg.tile,
            overlap=seg.overlap, batch_size=seg.batch_size, mode=seg.mode, slab=seg.slab,
            triplanar=seg.triplanar, probabilities=seg.probabilities, device=seg.device,
            nan_policy=seg.nan_policy, progress=run.progress, config=run.cfg)


def _score(run: Run) -> None:
    ds = evaluate(open_volume(run.path("classes.zarr")).data, run.phantom.classes)
    scores = {str(c): round(float(ds["f1"].sel({"class": c})), 4) for c in ds["class"].values}
    with atomic_file(run.path("segmentation_scores.json")) as tmp:
        tmp.write_text(json.dumps(scores, indent=2))


def _classes(run: Run):
    return open_volume(run.path("classes.zarr"))


def _analyze(run: Run) -> None:
    side = run.cfg.analyze.negative_side or ("high" if run.synthetic else None)
    analyze(run.path("classes.zarr"), config=run.cfg, negative_side=side, out=run.out,
            overwrite=True, csv=True, table=True, progress=run.progress)


def _report(run: Run) -> None:
    report(run.path("results.zarr"), run.path("report.html"),
           orbit_frames=run.cfg.output.orbit_frames)


STAGES = (
    Stage("ingest", _ingest_target, _ingest,  # the source is not opened once ingested
          when=lambda run: run.synthetic or not (run.path("classes.zarr").exists()
                                                 or run.path("raw.zarr").exists())),
    Stage("segment", lambda run: "classes.zarr", _segment),
    Stage("score", lambda run: "segmentation_scores.json", _score,
          when=lambda run: run.synthetic and run.cfg.segment.model != "skip"),
    Stage("analyze", lambda run: "results.zarr", _analyze),  # results.zarr is written last
    Stage("report", lambda run: "report.html", _report, when=lambda run: run.cfg.output.report),
)


def run_pipeline(cfg: Config, *, progress: bool = True, stages=STAGES) -> dict[str, Any]:
    """Run the configured stages; returns a summary dict (also written as ``summary.json``).

    The input (a grey-level or class volume path, or ``synthetic``: the built-in phantom) is
    ingested to ``raw.zarr`` (grey levels) or ``classes.zarr``; grey levels are segmented into
    ``classes.zarr`` (for the phantom, scored against its ground truth); the analysis labels
    and measures the bubbles once (``bubble_labels.zarr``; the one bubble table
    ``bubbles.nc``/``bubbles.csv``, every component with its half-cell, wall and filter
    columns) and writes ``results.zarr``; the report goes to ``report.html``. A stage whose
    artifact exists is skipped. Every count in the summary comes from the analysis.

    Examples
    --------
    >>> import tempfile
    >>> from redoxflow.config import load_config
    >>> cfg = load_config(None, {"output.directory": tempfile.mkdtemp(), "input.shape":
    ...     [32, 48, 48], "segment.model": "skip", "output.report": False})
    >>> summary = run_pipeline(cfg, progress=False)  # doctest: +SKIP
    """
    run = Run(cfg, check_paths(cfg), progress)
    if cfg.output.overwrite:
        clear_outputs(run.out)
    run.out.mkdir(parents=True, exist_ok=True)
    _check_same_run(run)
    if run.synthetic:
        run.phantom = make_phantom(tuple(cfg.input.shape), seed=cfg.input.seed,
                                   voxel_size=cfg.input.voxel_size or 10.0)
    for i, stage in enumerate(stages, 1):
        t0 = time.perf_counter()
        step = f"[{i}/{len(stages)}] {stage.name}"
        if not stage.when(run):
            run.stages[stage.name] = "not needed"
        elif run.path(stage.artifact(run)).exists():
            run.stages[stage.name] = f"skipped: {stage.artifact(run)} is complete"
        else:
            if progress:
                print(f"{step} ...", file=sys.stderr, flush=True)
            stage.run(run)
            run.stages[stage.name] = "done"
        run.timings[stage.name] = time.perf_counter() - t0
        if progress:
            print(f"{step}: {run.stages[stage.name]} ({run.timings[stage.name]:.1f} s)",
                  file=sys.stderr, flush=True)
    summary = _summary(run)
    with atomic_file(run.path("summary.json")) as tmp:
        tmp.write_text(json.dumps(summary, indent=2))
    return summary


def _summary(run: Run) -> dict[str, Any]:
    """The run's numbers, all read from the analysis results (one labeling, one table)."""
    classes = _classes(run)
    tree = xr.open_datatree(run.path("results.zarr"), engine="zarr", consolidated=False)
    summary = tree["summary"].to_dataset()
    scores_path = run.path("segmentation_scores.json")
    report_path = run.path("report.html")
    # counted by the analysis's first pass (a series: over all its steps), ids 0-3 at least
    counts = np.asarray(tree.attrs["class_voxels"])
    counts = counts[:max(4, len(np.trim_zeros(counts, "b")))]
    return {
        "output": str(run.out.absolute()),
        "report": str(report_path.absolute()) if report_path.exists() else None,
        "shape": list(classes.shape),
        "voxel_size_um": list(classes.attrs["voxel_size"]),
        **{name: _number(summary[name], int) for name in COUNTS},
        "bubble_volume_negative": _number(summary["bubble_volume"]),
        "volume_unit": f"{tree.attrs.get('unit', 'micrometer')}^3",
        "class_voxels": counts.tolist(),
        "bubble_volume_fraction": _number(summary["bubble_volume_fraction"]),
        "membrane_blocked_fraction": _number(summary["membrane_blocked_fraction"]),
        "segmentation_f1": json.loads(scores_path.read_text()) if scores_path.exists() else None,
        "timings_s": {k: round(v, 3) for k, v in run.timings.items()},
        "stages": dict(run.stages),
    }


#: the config sections whose values decide what the stages write
RESULT_SECTIONS = ("input", "segment", "label", "analyze")


def _check_same_run(run: Run) -> None:
    """Refuse to reuse the finished stages of another configuration; record this one's."""
    mine = {k: v for k, v in run.cfg.to_dict().items() if k in RESULT_SECTIONS}
    record = run.path("run.json")
    if record.exists():
        theirs = json.loads(record.read_text())
        changed = sorted(f"{section}.{key}" for section in RESULT_SECTIONS
                         for key in set(mine.get(section, {})) | set(theirs.get(section, {}))
                         if mine.get(section, {}).get(key) != theirs.get(section, {}).get(key))
        if changed:
            raise InputError(f"{run.out} holds the results of another configuration "
                             f"({', '.join(changed[:4])} changed): pass --overwrite "
                             "(output.overwrite: true) to start again, or choose another "
                             "output.directory")
        return
    with atomic_file(record) as tmp:
        tmp.write_text(json.dumps(mine, indent=2, default=str))


def clear_outputs(out: Path) -> list[str]:
    """Remove what a previous run wrote in ``out`` (its artifacts, report figures, scratch
    and partial stores) and nothing else; a store name holding something that is not a
    store is refused. Returns the names removed.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (out / "summary.json").write_text("{}"); _ = (out / "scan.raw").write_text("x")
    >>> clear_outputs(out), sorted(p.name for p in out.iterdir())
    (['summary.json'], ['scan.raw'])
    """
    if not out.is_dir():
        return []
    ours = [out / n for n in ARTIFACTS if n != "figures"]
    ours += [out / f".{n}.partial" for n in ARTIFACTS]
    ours += [out / "figures" / n for n in FIGURES]
    ours += [p for p in sorted(out.glob(".redoxflow-scratch-*")) if not scratch_in_use(p)]
    ours += sorted(out.glob("bubble_labels/t[0-9][0-9][0-9][0-9].zarr"))  # a series' labels
    for path in ours:
        if path.suffix == ".zarr" and path.exists() and not is_store(path):
            raise InputError(f"{path} is not a Zarr store: refusing to clear {out}; choose "
                             "another output folder")
    removed = []
    for path in ours:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        else:
            continue
        removed.append(str(path.relative_to(out)))
    for folder in (out / "figures", out / "bubble_labels"):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    return removed


def _number(var, kind=float):
    """A summary value: a number, or one per time step of a series."""
    values = np.asarray(var)
    return kind(values) if values.ndim == 0 else [kind(v) for v in values]


def check_paths(cfg: Config) -> Path:
    """The output folder, after refusing layouts that could overwrite user data.

    Every artifact is written under ``output.directory`` with a fixed name; the input must not
    be one of them (or contain the output folder), and the output folder must be a folder.

    Examples
    --------
    >>> from redoxflow.config import load_config
    >>> check_paths(load_config(None, {"output.directory": "/tmp/rf-out"}, environ={}))
    PosixPath('/tmp/rf-out')
    >>> check_paths(load_config(None, {"output.directory": "/tmp/rf-out",
    ...                                "input.source": "/tmp/rf-out/classes.zarr"}, environ={}))
    Traceback (most recent call last):
    ...
    redoxflow.errors.InputError: input '/tmp/rf-out/classes.zarr' lies where the pipeline writes its outputs: choose another output.directory
    """
    out = Path(cfg.output.directory).absolute()
    if out.exists() and not out.is_dir():
        raise InputError(f"output.directory {str(out)!r} is a file: choose a folder")
    if cfg.input.source != "synthetic":
        src = Path(cfg.input.source).absolute()
        if src == out or out in src.parents and src.relative_to(out).parts[0] in ARTIFACTS:
            raise InputError(f"input {str(src)!r} lies where the pipeline writes its outputs: "
                             "choose another output.directory")
        if src in out.parents:
            raise InputError(f"output.directory {str(out)!r} is inside the input "
                             f"{str(src)!r}: choose a folder outside it")
    return out


def input_kind(cfg: Config) -> str:
    """``intensity`` or ``classes`` for the configured input (``auto`` looks at its values).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from redoxflow.config import load_config
    >>> path = os.path.join(tempfile.mkdtemp(), "classes.npy")
    >>> np.save(path, np.zeros((4, 5, 6), np.uint8))
    >>> input_kind(load_config(None, {"input.source": path}, environ={}))
    'classes'
    """
    if cfg.input.kind in ("intensity", "classes"):
        return cfg.input.kind
    src = open_source(cfg.input.source)
    src = src.steps[0] if hasattr(src, "steps") else src
    return detect_kind(src.read(0, min(src.shape[0], 8)))
