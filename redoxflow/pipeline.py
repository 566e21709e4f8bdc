"""The pipeline as a list of stages: ingest -> segment -> analyze -> report.

Each :class:`Stage` names the artifact it writes under the output directory and is skipped
when that artifact is complete (stores and tables are renamed into place only when
complete), so a rerun after a crash resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from .analysis import analyze
from .analysis.results import scratch_in_use
from .common.atomic import atomic_file, is_store, move_store
from .config import Config
from .errors import InputError
from .io import detect_kind, ingest, open_source, open_volume
from .io.metadata import image_label, labels_group
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
    bar: Any = None  # the running stage's StageBar (stages may add steps of their own)

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
    own_bar : bool
        The stage shows its own named progress bar (ingest: slices, no dask), so its stage
        line is printed only when it ends.

    Examples
    --------
    >>> [(s.name, s.artifact(Run(Config(), Path(".")))) for s in STAGES][:2]
    [('ingest', 'raw.zarr'), ('segment', 'classes.zarr')]
    """

    name: str
    artifact: Callable[[Run], str]
    run: Callable[[Run], None]
    when: Callable[[Run], bool] = lambda run: True
    own_bar: bool = False


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
               kind="classes", config=run.cfg, progress=False)
        return
    segment(run.path("raw.zarr"), seg.model, out=run.path("classes.zarr"), tile=seg.tile,
            overlap=seg.overlap, batch_size=seg.batch_size, mode=seg.mode, slab=seg.slab,
            triplanar=seg.triplanar, probabilities=seg.probabilities, device=seg.device,
            nan_policy=seg.nan_policy, progress=False, config=run.cfg)


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
            overwrite=True, csv=True, table=True, progress=False)


def _report(run: Run) -> None:
    report(run.path("results.zarr"), run.path("report.html"),
           orbit_frames=run.cfg.output.orbit_frames, progress=run.bar or False)


STAGES = (
    Stage("ingest", _ingest_target, _ingest,  # the source is not opened once ingested
          when=lambda run: run.synthetic or not (run.path("classes.zarr").exists()
                                                 or run.path("raw.zarr").exists()),
          own_bar=True),
    Stage("segment", lambda run: "classes.zarr", _segment),
    Stage("score", lambda run: "segmentation_scores.json", _score,
          when=lambda run: run.synthetic and run.cfg.segment.model != "skip"),
    Stage("analyze", lambda run: "results.zarr", _analyze),  # results.zarr is written last
    Stage("report", lambda run: "report.html", _report, when=lambda run: run.cfg.output.report),
)


class StageBar:
    """The one progress line of a running stage, named ``[i/n] stage``.

    It counts the dask tasks the stage runs (on the active distributed client through a
    scheduler plugin, else through a local-scheduler callback) plus the steps a stage adds
    itself (:meth:`add`, :meth:`update`: the report's figures); the stages' own bars are
    off, so a run prints one line per stage instead of one unnamed bar per dask compute.
    Closed, the line says ``done in N s``. ``live=False``: no bar while the stage runs (it
    shows its own: ingest's slices), only the closing line.

    Examples
    --------
    >>> with StageBar("[1/1] demo", enabled=False) as bar:
    ...     bar.add(2); bar.update(2)
    >>> bar.done, bar.total
    (2, 2)
    """

    def __init__(self, name: str, *, enabled: bool = True, live: bool = True,
                 interval: float = 0.5):
        self.name, self.enabled, self.interval = name, enabled, interval
        self.live = enabled and live
        self.own_total = self.own_done = 0
        self.tasks = (0, 0)  # dask tasks (total, done) since the stage began
        self._stop = threading.Event()

    @property
    def total(self) -> int:
        return self.own_total + self.tasks[0]

    @property
    def done(self) -> int:
        return self.own_done + self.tasks[1]

    def add(self, n: int) -> None:
        """Announce ``n`` more steps of the stage's own."""
        self.own_total += n

    def update(self, n: int = 1) -> None:
        """``n`` of the stage's own steps are done."""
        self.own_done += n

    def __enter__(self) -> StageBar:
        self._t0 = time.perf_counter()
        self._counter = _task_counter()
        if self.live:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=0, desc=self.name, unit="step", file=sys.stderr,
                             leave=True, mininterval=self.interval, dynamic_ncols=True,
                             bar_format="{desc}: {percentage:3.0f}%|{bar}| {n}/{total} "
                                        "steps [{elapsed}]")
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._refresh()

    def _refresh(self) -> None:
        try:
            self.tasks = self._counter.counts()
        except Exception:  # a client going away mid-poll: keep the last counts
            pass
        if self.live:
            self._bar.total, self._bar.n = max(self.total, self.done), self.done
            self._bar.refresh()

    def __exit__(self, kind, exc, tb) -> None:
        self._stop.set()
        if self.live:
            self._thread.join()
        self._refresh()
        self._counter.close()
        what = "failed" if kind else "done"
        closing = f"{what} in {time.perf_counter() - self._t0:.1f} s" + (
            f" ({self.done} steps)" if self.done else "")
        if self.live:
            self._bar.bar_format = "{desc}: " + closing.replace("{", "{{").replace("}", "}}")
            self._bar.close()
        elif self.enabled:
            print(f"{self.name}: {closing}", file=sys.stderr, flush=True)


class _LocalTasks:
    """Task counts of dask's local schedulers (threads, processes, sync)."""

    def __init__(self):
        from dask.callbacks import Callback

        self.total = self.finished = 0

        def start(dsk, state):
            self.total += len(state["ready"]) + len(state["waiting"])

        def posttask(key, result, dsk, state, worker_id):
            self.finished += 1

        self._cb = Callback(start_state=start, posttask=posttask)
        self._cb.register()

    def counts(self) -> tuple[int, int]:
        return self.total, self.finished

    def close(self) -> None:
        self._cb.unregister()


class _ClientTasks:
    """Task counts on a distributed scheduler, from :class:`_SchedulerCounter`."""

    def __init__(self, client):
        self.client = client
        client.register_plugin(_scheduler_counter(), name=_COUNTER)
        self.start = client.run_on_scheduler(_counter_counts)

    def counts(self) -> tuple[int, int]:
        now = self.client.run_on_scheduler(_counter_counts)
        return now[0] - self.start[0], now[1] - self.start[1]

    def close(self) -> None:
        pass


_COUNTER = "redoxflow-stage-progress"


def _scheduler_counter():
    """A scheduler plugin counting tasks that start waiting and that finish."""
    from distributed.diagnostics.plugin import SchedulerPlugin

    class Counter(SchedulerPlugin):
        name = _COUNTER
        idempotent = True  # registered once per scheduler; later stages read its counts

        def __init__(self):
            self.total = self.finished = 0

        def transition(self, key, start, finish, *args, **kwargs):
            if start == "released" and finish == "waiting":
                self.total += 1
            elif start == "processing" and finish in ("memory", "erred"):
                self.finished += 1

    return Counter()


def _counter_counts(dask_scheduler=None) -> tuple[int, int]:
    plugin = dask_scheduler.plugins.get(_COUNTER)
    return (plugin.total, plugin.finished) if plugin is not None else (0, 0)


def _task_counter():
    """The counter for where this process computes: the active client, or dask's local
    schedulers."""
    try:
        from distributed import get_client

        client = get_client()
    except (ImportError, ValueError):
        return _LocalTasks()
    try:
        return _ClientTasks(client)
    except Exception:  # a scheduler that refuses plugins: the bar shows the stage's own steps
        return _NoTasks()


class _NoTasks:
    def counts(self) -> tuple[int, int]:
        return 0, 0

    def close(self) -> None:
        pass


#: the label images of raw.zarr: their name under ``raw.zarr/labels/`` and the name under
#: the output folder by which every stage and reader opens them (a relative symlink)
LABEL_STORES = {"classes": "classes.zarr", "bubbles": "bubble_labels.zarr"}


def adopt_labels(out: Path) -> list[str]:
    """Make the class and bubble label stores OME-Zarr 0.5 labels of ``raw.zarr``.

    When the run has a grey-level image ``OUT/raw.zarr``, each label store of the same shape
    is moved (a rename: nothing is copied) to ``raw.zarr/labels/NAME`` with its
    ``image-label`` pointing at the image, the ``labels`` group lists them, and the old
    name ``OUT/classes.zarr`` / ``OUT/bubble_labels.zarr`` becomes a relative symlink to it,
    so every stage and reader opens it as before and ``raw.zarr`` alone is the image with
    its labels (napari-ome-zarr overlays them). Without ``raw.zarr`` (a class input) or
    for a series' per-step labels, the stores stay standalone. Idempotent: run after every
    stage, it also completes an adoption interrupted between the move and the link.

    Parameters
    ----------
    out : pathlib.Path
        The output folder.

    Returns
    -------
    list of str
        The names now under ``raw.zarr/labels/``.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> out = pathlib.Path(tempfile.mkdtemp())
    >>> for name, kind in (("raw.zarr", "intensity"), ("classes.zarr", "classes")):
    ...     _ = ingest(np.zeros((4, 8, 8), np.uint8), out / name, voxel_size=1.0, kind=kind,
    ...                progress=False)
    >>> adopt_labels(out), (out / "classes.zarr").is_symlink()
    (['classes'], True)
    """
    import zarr

    for store in LABEL_STORES.values():  # links whose label went (raw.zarr removed, or
        # swapped aside by an atomic replace) would block writing the store anew
        for link in [out / store, *out.glob(f".{store}.old-*")]:
            if link.is_symlink() and (link.name != store or not link.exists()):
                link.unlink()
    raw = out / "raw.zarr"
    if not is_store(raw) or not is_store(raw / "0"):
        return []
    shape = zarr.open_array(str(raw / "0"), mode="r").shape
    folder = raw / "labels"
    for name, store in LABEL_STORES.items():
        link, target = out / store, folder / name
        if link.is_symlink():
            continue
        if is_store(link) and zarr.open_array(str(link / "0"), mode="r").shape == shape:
            move_store(link, target, overwrite=True)  # a stale label of an earlier run goes
            group = zarr.open_group(str(target), mode="r+")
            ome = dict(group.attrs["ome"])
            kind = group.attrs.get("redoxflow", {}).get("kind", "labels")
            ome["image-label"] = {**ome.get("image-label", image_label(kind)),
                                  "source": {"image": "../../"}}
            group.attrs["ome"] = ome
        if is_store(target) and not link.exists():
            link.symlink_to(os.path.relpath(target, out), target_is_directory=True)
    present = [n for n in LABEL_STORES if is_store(folder / n)]
    if present:
        zarr.open_group(str(folder), mode="a", zarr_format=3).attrs["ome"] = labels_group(present)
    return present


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
    adopt_labels(run.out)  # completes one interrupted by a crash
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
            with StageBar(step, enabled=progress, live=not stage.own_bar) as run.bar:
                stage.run(run)
            run.stages[stage.name] = "done"
            run.bar = None
        adopt_labels(run.out)
        run.timings[stage.name] = time.perf_counter() - t0
        if progress and run.stages[stage.name] != "done":  # a done stage's bar said so
            print(f"{step}: {run.stages[stage.name]}", file=sys.stderr, flush=True)
    skipped = [name for name, what in run.stages.items() if what.startswith("skipped")]
    if progress and skipped:
        print(f"skipped as complete: {', '.join(skipped)} (their outputs exist; pass "
              "--overwrite to run them again)", file=sys.stderr, flush=True)
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
