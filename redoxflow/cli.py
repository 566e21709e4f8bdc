"""Thin command-line shell over the public API: parse, call one function, summarise."""

from __future__ import annotations

import errno
import functools
import sys
from pathlib import Path

import click
import numpy as np

from . import __version__
from .analysis import analyze as run_analysis
from .cluster import dashboard_link, job_script, make_client
from .common.atomic import (
    atomic_file,
    check_file_output,
    check_writable,
    is_store,
    write_netcdf,
)
from .common.options import Backend as BackendOption
from .common.options import Device, choices
from .common.tables import bubble_frame
from .config import load_config
from .errors import InputError, RedoxflowError
from .io import ingest as do_ingest
from .io import open_volume
from .io.metadata import CLASS_NAMES
from .io.store import check_not_inside
from .labeling import label
from .measure import regionprops
from .microstructure import METRICS as MICRO_METRICS
from .microstructure import microstructure as measure_microstructure
from .microstructure import tortuosity
from .pipeline import clear_outputs, run_pipeline
from .segment import evaluate, format_scores, segment, train
from .segment.builtin import phantom_pairs
from .segment.training import read_volumes
from .viz import export as export_volume
from .viz import report as make_report

OS_USER_ERRORS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EACCES,
                  errno.EPERM)


def user_errors(fn):
    """Print RedoxflowError as one line (no traceback) and exit with status 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except RedoxflowError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except OSError as exc:  # disk full, quota, read-only or unwritable output
            if exc.errno not in OS_USER_ERRORS:
                raise
            click.echo(f"error: cannot write {exc.filename or 'the output'}: {exc.strerror}; "
                       "free space or choose another output location", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("error: interrupted; finished work is kept and a rerun resumes",
                       err=True)
            sys.exit(130)

    return wrapper


def _output_folder(out: Path, source: Path) -> None:
    """An output folder must not be a file, nor the input or inside it, and must be
    writable."""
    if out.exists() and not out.is_dir():
        raise InputError(f"output folder {str(out)!r} is a file: choose a folder path")
    check_not_inside(out, source)
    check_writable(out, create=False)  # nothing is made before the input is read


def _results_store(path: Path) -> Path:
    """RESULTS of ``report``: a results store, not the folder holding it (nor another store)."""
    if path.is_dir() and not is_store(path):
        hint = (f"pass {str(path / 'results.zarr')!r}" if (path / "results.zarr").exists()
                else "pass the results.zarr that `redoxflow analyze` or `run` wrote")
        raise InputError(f"{str(path)!r} is a folder, not a results store: {hint}")
    return path


def _ints(text: str | None):
    if text is None:
        return None
    try:
        return tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a list of integers like 64,128,128") from exc


def _size_on_disk(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class PipelineOrder(click.Group):
    """Commands listed in the order a run uses them, their first sentence in full."""

    ORDER = ("demo", "run", "ingest", "info", "train", "segment", "evaluate", "label",
             "measure", "analyze", "microstructure", "track", "report", "export")

    def list_commands(self, ctx):
        rank = {name: i for i, name in enumerate(self.ORDER)}
        return sorted(self.commands, key=lambda n: (rank.get(n, len(rank)), n))

    def format_commands(self, ctx, formatter):
        rows = [(name, " ".join(self.commands[name].help.split("\n\n")[0].split())
                 .split(". ")[0].rstrip("."))
                for name in self.list_commands(ctx) if not self.commands[name].hidden]
        with formatter.section("Commands (in pipeline order)"):
            formatter.write_dl(rows, col_max=16)


@click.group(cls=PipelineOrder, context_settings={"help_option_names": ["-h", "--help"],
                                                  "max_content_width": 100})
@click.version_option(__version__, prog_name="redoxflow")
def main():
    """redoxflow: exact, out-of-core bubble analysis of flow-battery tomograms."""
    _quiet_warnings()


def _quiet_warnings() -> None:
    """Warnings as one-line notes (no source lines); dask's own chatter silenced."""
    import logging
    import warnings

    def note(message, category, *args, **kwargs):
        click.echo(f"note: {str(message).splitlines()[0]}", err=True)

    warnings.showwarning = note
    warnings.filterwarnings("ignore", message="Sending large graph")  # our maps, sent once
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    for name in ("distributed.nanny", "distributed.worker"):  # "still alive ... killing"
        logging.getLogger(name).setLevel(logging.ERROR)
    # tifffile logs each damaged tag of a corrupt file; our one-line error says it instead
    logging.getLogger("tifffile").setLevel(logging.CRITICAL)


@main.command()
@click.argument("source", nargs=-1, required=True)
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--voxel-size", help="Micrometres: one number or z,y,x (default: the file's "
              "metadata; required when it has none, 1 to work in voxels).")
@click.option("--chunks", help="Chunk shape z,y,x (clamped to the volume).")
@click.option("--kind", type=click.Choice(["auto", "intensity", "classes", "labels"]),
              default="auto", show_default=True,
              help="What the volume holds (auto: integers below 16 are classes).")
@click.option("--dataset", help="HDF5 dataset path.")
@click.option("--key", help="Array name inside an .npz.")
@click.option("--shape", help="Raw files: z,y,x.")
@click.option("--dtype", help="Raw files: numpy dtype, e.g. uint16.")
@click.option("--byte-order", type=click.Choice(["little", "big"]), default="little",
              show_default=True, help="Raw files: byte order.")
@click.option("--overwrite", is_flag=True, help="Replace an existing store.")
@click.option("--config", "config_path", type=click.Path(), help="YAML config file.")
@user_errors
def ingest(source, store, voxel_size, chunks, kind, dataset, key, shape, dtype, byte_order,
           overwrite, config_path):
    """Stream SOURCE (file, folder, glob or several files = 4D series) into an OME-Zarr STORE."""

    cfg = load_config(config_path)
    src = list(source) if len(source) > 1 else source[0]
    vol = do_ingest(src, store, voxel_size=voxel_size, chunks=_ints(chunks), kind=kind,
                    overwrite=overwrite, config=cfg, dataset=dataset, key=key,
                    shape=_ints(shape), dtype=dtype, byte_order=byte_order)
    click.echo(f"wrote {store}: shape {tuple(vol.shape)} {vol.dtype}, chunks "
               f"{vol.data.chunksize}, voxel size {vol.attrs['voxel_size']} um, "
               f"{vol.attrs['n_levels']} pyramid level(s), kind {vol.attrs['kind']}, "
               f"{_size_on_disk(Path(store)) / 2**20:.1f} MiB on disk.")


@main.command()
@click.argument("store", type=click.Path(path_type=Path))
@user_errors
def info(store):
    """Shape, chunks, voxel size, classes present and size on disk of STORE."""

    vol = open_volume(store)
    click.echo(f"store       {store}")
    click.echo(f"shape       {tuple(vol.shape)} ({', '.join(vol.dims)}) {vol.dtype}")
    click.echo(f"chunks      {vol.data.chunksize}")
    click.echo(f"voxel size  {vol.attrs['voxel_size']} um")
    click.echo(f"levels      {vol.attrs['n_levels']}")
    click.echo(f"kind        {vol.attrs['kind']}")
    click.echo(f"source      {vol.attrs['source']}")
    if vol.attrs["kind"] == "classes":
        small = open_volume(store, level=vol.attrs["n_levels"] - 1) if vol.size > 2**27 else vol
        present = np.unique(small.data.compute())
        note = " (from the coarsest level)" if small is not vol else ""
        named = ", ".join(f"{c} {CLASS_NAMES.get(int(c), '(unknown)')}" for c in present)
        click.echo(f"classes     {named}{note}")
    click.echo(f"on disk     {_human_bytes(_size_on_disk(Path(store)))}")


def _human_bytes(n: int) -> str:
    """1023 B, 4.0 KiB, 12.5 MiB, 3.2 GiB."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"  # pragma: no cover


def _cluster_options(fn):
    fn = click.option("--cluster", default=None,
                      help="local, slurm, pbs, cuda, mpi (inside mpirun -n 3 or more), a scheduler "
                           "address or a scheduler file.")(fn)
    fn = click.option("--workers", type=int, default=None, help="Number of workers.")(fn)
    fn = click.option("--profile", default=None, help="dask-jobqueue YAML profile.")(fn)
    return fn


def _backend_option(fn):
    return click.option("--backend", type=click.Choice(choices(BackendOption)), default="numpy",
                        show_default=True,
                        help="numpy (CPU, cc3d) or cupy (the workers' GPUs).")(fn)


def _per_step(value, spec: str = "") -> str:
    """A number, or a series' numbers per time step."""
    if isinstance(value, list):
        return "[" + ", ".join(format(v, spec) for v in value) + "] (per time step)"
    return format(value, spec)


def _summarise(summary: dict) -> None:
    t = summary["timings_s"]
    click.echo(
        f"Done. {_per_step(summary['n_components'])} bubble components labelled, "
        f"{_per_step(summary['n_bubbles_cell'])} kept in the cell, "
        f"{_per_step(summary['n_bubbles'])} kept in the negative electrode "
        f"({_per_step(summary['bubble_volume_negative'], '.4g')} "
        f"{summary['volume_unit']}) in a {'x'.join(map(str, summary['shape']))} volume at "
        f"{summary['voxel_size_um']} um; stages: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()) + ". "
        f"R_bv (negative electrode) {_per_step(summary['bubble_volume_fraction'], '.4g')}, "
        f"blocked membrane fraction {_per_step(summary['membrane_blocked_fraction'], '.4g')}.\n"
        + ("Segmentation F1 against the phantom's ground truth: "
           + ", ".join(f"{k} {v:.3f}" for k, v in summary["segmentation_f1"].items()) + ".\n"
           if summary.get("segmentation_f1") else "")
        + f"Results are in {summary['output']} (results.zarr, bubbles.csv and bubbles.nc: "
        "every component with its filter columns, bubble_labels.zarr, classes.zarr, "
        "summary.json; with an image, raw.zarr holds both label stores under raw.zarr/labels/ "
        "and the two names link there)."
        + (f"\nReport: {summary['report']}" if summary.get("report") else ""))


def _run(cfg, dry_run: bool = False) -> None:

    if dry_run:
        if cfg.cluster.cluster in ("slurm", "pbs"):
            click.echo(job_script(cfg.cluster.cluster, cfg.cluster.profile))
        else:
            click.echo(cfg.to_json())
        return
    with make_client(config=cfg.cluster) as client:
        link = dashboard_link(client)
        batch = " so far (batch jobs starting)" if cfg.cluster.cluster in ("slurm", "pbs") else ""
        click.echo(f"dask: {len(client.scheduler_info()['workers'])} workers{batch}"
                   + (f", dashboard {link}" if link else ""))
        _summarise(run_pipeline(cfg))


@main.command()
@click.option("--output", default="demo-results", show_default=True, type=click.Path(),
              help="Folder for the results and pictures.")
@click.option("--shape", default="96,160,160", show_default=True, help="Phantom size z,y,x.")
@click.option("--seed", default=0, show_default=True, help="Seed of the synthetic cell.")
@click.option("--overwrite", is_flag=True, help="Start again in an existing output folder.")
@_cluster_options
@user_errors
def demo(output, shape, seed, overwrite, cluster, workers, profile):
    """Run the pipeline on the built-in synthetic VRFB cell on a local dask cluster."""
    out = Path(output)
    if overwrite:  # only what a previous run wrote goes; anything else in the folder stays
        clear_outputs(out)
    cfg = load_config(None, {"output.directory": str(out), "input.source": "synthetic",
                             "input.shape": list(_ints(shape)), "input.seed": seed,
                             "cluster.cluster": cluster, "cluster.workers": workers,
                             "cluster.profile": profile, "output.orbit_frames": 24,
                             "analyze.negative_side": "high"})
    _run(cfg)


@main.command()
@click.argument("config_path", metavar="CONFIG.yaml", type=click.Path())
@click.option("--dry-run", is_flag=True, help="Print the resolved config or the job script.")
@click.option("--overwrite", is_flag=True,
              help="Start again: remove what a previous run wrote (output.overwrite).")
@_cluster_options
@user_errors
def run(config_path, dry_run, cluster, workers, profile, overwrite):
    """Run the stages configured in CONFIG.yaml (skipping outputs that are complete)."""

    cfg = load_config(config_path, {"cluster.cluster": cluster, "cluster.workers": workers,
                                    "cluster.profile": profile,
                                    "output.overwrite": overwrite or None})
    prof = cfg.cluster.profile
    if prof and not Path(prof).exists():  # a profile named relative to the repo / config
        for base in (Path(config_path).parent, Path(config_path).parent.parent):
            if (base / prof).exists():
                cfg.cluster.profile = str(base / prof)
                break
    _run(cfg, dry_run)


@main.command("label")
@click.argument("store", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--class-id", type=int, default=1, show_default=True,
              help="Class to label in a class volume.")
@click.option("--connectivity", type=click.Choice(["6", "18", "26"]), default="26",
              show_default=True, help="Voxel neighbourhood of a component.")
@click.option("--overwrite", is_flag=True, help="Replace an existing label store.")
@_backend_option
@user_errors
def label_cmd(store, out, class_id, connectivity, overwrite, backend):
    """Label connected components of one class of STORE into the label store OUT."""

    check_not_inside(out, store)
    vol = open_volume(store)
    if vol.attrs.get("kind") == "intensity" or np.dtype(vol.dtype).kind not in "iub":
        raise InputError(f"{store} holds grey levels ({vol.dtype}), not classes: segment it "
                         "first (redoxflow segment) and label the class store")
    _, n = label(vol.data == class_id, connectivity=int(connectivity), out=out,
                 overwrite=overwrite, voxel_size=vol.attrs["voxel_size"], progress=True,
                 backend=backend)
    click.echo(f"wrote {out}: {n} components of class {class_id} ({connectivity}-connectivity).")


@main.command()
@click.argument("labels", type=click.Path(path_type=Path))
@click.argument("table", type=click.Path(path_type=Path))
@click.option("--properties", default="all", show_default=True,
              help="Comma-separated property names, or 'all'.")
@click.option("--overwrite", is_flag=True, help="Replace an existing TABLE.")
@_backend_option
@user_errors
def measure(labels, table, properties, backend, overwrite):
    """Per-bubble properties of the label store LABELS, written to TABLE (.nc or .csv)."""

    props = "all" if properties == "all" else properties.split(",")
    check_not_inside(table, labels)
    check_file_output(table, overwrite=overwrite)  # before the measuring
    ds = regionprops(open_volume(labels), properties=props, backend=backend)
    if table.suffix == ".csv":
        with atomic_file(table, overwrite=overwrite) as tmp:
            bubble_frame(ds).to_csv(tmp)
    else:
        write_netcdf(ds, table, overwrite=overwrite)
    click.echo(f"wrote {table}: {ds.sizes['bubble']} bubbles.")


@main.command()
@click.argument("classes", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--negative-side", type=click.Choice(["low", "high"]),
              help="Half along x that is the negative electrode (default: config, else high).")
@click.option("--compat", type=click.Choice(["utile"]), help="Reproduce UTILE-Redox exactly.")
@click.option("--voxel-size", help="Micrometres: one number or z,y,x (default: the store's).")
@click.option("--split-touching", is_flag=True, default=None,
              help="Watershed-split bubbles that touch through sub-voxel films.")
@click.option("--netcdf", is_flag=True, help="Also write results.nc.")
@click.option("--csv", is_flag=True, help="Also write bubbles.csv.")
@click.option("--overwrite", is_flag=True, help="Replace an existing results.zarr.")
@click.option("--config", "config_path", type=click.Path(), help="YAML config file.")
@user_errors
def analyze(classes, out, negative_side, compat, voxel_size, split_touching, netcdf, csv,
            overwrite, config_path):
    """Bubble analysis of the class store CLASSES, written to OUT/results.zarr."""

    cfg = load_config(config_path, {"analyze.split_touching": split_touching})
    _output_folder(out, classes)
    tree = run_analysis(str(classes), spacing=voxel_size, negative_side=negative_side,
                        compat=compat, config=cfg, out=out, overwrite=overwrite, netcdf=netcdf,
                        csv=csv, progress=True)
    s = tree["summary"]
    lines = [f"wrote {out / 'results.zarr'}"]
    for key in ("bubble_volume_fraction", "bubble_electrolyte_ratio", "n_bubbles",
                "membrane_blocked_voxels", "membrane_blocked_fraction"):
        values = np.atleast_1d(s[key].values)
        lines.append(f"  {key}: " + ", ".join(f"{v:.6g}" for v in values))
    click.echo("\n".join(lines))


@main.command()
@click.argument("results", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="HTML path (default: next to it).")
@click.option("--orbit-frames", default=0, show_default=True,
              help="Also write an orbit GIF of the cell with this many frames.")
@click.option("--no-3d", is_flag=True, help="Skip the pyvista scenes (plots only).")
@click.option("--overwrite", is_flag=True, help="Replace an existing report and its figures.")
@click.option("--step", type=int, help="For a series: the time step of the 3D scenes "
                                       "(default: the last).")
@user_errors
def report(results, out, orbit_frames, no_3d, overwrite, step):
    """Write a self-contained HTML report (and PNGs) of RESULTS.zarr."""

    path = make_report(_results_store(results), out, render_3d=not no_3d, orbit_frames=orbit_frames,
                       overwrite=overwrite, step=step)
    click.echo(f"wrote {path} (figures in {path.parent / 'figures'})")


@main.command("microstructure")
@click.argument("volume", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--phases", help="name=value pairs, e.g. pore=0,NMC=85,CBD=170 (default: every "
                               "value present).")
@click.option("--voxel-size", help="Micrometres: one number or z,y,x (default: the store's).")
@click.option("--method", type=click.Choice(["marching_cubes", "face_counting"]),
              default="marching_cubes", show_default=True, help="Surface-area estimator.")
@click.option("--metrics", default=",".join(MICRO_METRICS), show_default=True,
              help="Which metric groups to compute, comma separated.")
@click.option("--inlet", default="x-", show_default=True,
              help="Inlet face of the simulated intrusion (r_min, constrictivity).")
@click.option("--tortuosity", "tortuosity_axes", default="",
              help="Also the diffusion tortuosity factor of the first of --phases (list the "
                   "pore phase first) along these axes, e.g. z,y,x.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT/microstructure.nc.")
@user_errors
def microstructure_cmd(volume, out, phases, voxel_size, method, metrics, inlet,
                       tortuosity_axes, overwrite):
    """Porosity, surfaces, pore sizes, percolation and correlation of the phase volume VOLUME,
    written to OUT/microstructure.nc."""

    _output_folder(out, volume)
    ds = measure_microstructure(str(volume), phases=phases, spacing=voxel_size, method=method,
                                inlet=inlet, metrics=tuple(m.strip() for m in metrics.split(",")))
    axes = [a.strip() for a in tortuosity_axes.split(",") if a.strip()]
    if axes:
        first = int(ds["phase_value"].values[0]) if "phase_value" in ds else None
        click.echo(f"tortuosity of phase {ds['phase'].values[0]} (value {first}): the first "
                   "of --phases")
        tau = [tortuosity(str(volume), axis, spacing=voxel_size, phase=first) for axis in axes]
        ds["tortuosity_factor"] = ("tortuosity_axis", [float(t["tortuosity_factor"]) for t in tau],
                                   dict(tau[0]["tortuosity_factor"].attrs))
        ds = ds.assign_coords(tortuosity_axis=axes)
    target = write_netcdf(ds, Path(out) / "microstructure.nc", overwrite=overwrite)
    lines = [f"wrote {target}"]
    for name in ("volume_fraction", "specific_surface_area", "r_max", "r_min",
                 "constrictivity", "tortuosity_factor"):
        if name in ds:
            values = np.atleast_1d(ds[name].values)
            lines.append(f"  {name} ({ds[name].attrs.get('units', '')}): "
                         + ", ".join(f"{v:.5g}" for v in values))
    click.echo("\n".join(lines))


@main.command("export")
@click.argument("store", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["tiff", "vti", "ply", "stl", "vtp"]),
              help="Default: from OUT's suffix (.tif, .vti, .ply, .stl, .vtp).")
@click.option("--table", type=click.Path(path_type=Path),
              help="results.zarr or bubbles.nc whose bubble columns go on the VTP cells.")
@click.option("--overwrite", is_flag=True, help="Replace an existing OUT.")
@user_errors
def export_cmd(store, out, fmt, table, overwrite):
    """Export STORE for Fiji/ParaView: a TIFF or VTI volume, or the bubbles of a label
    store as one PLY/STL/VTP mesh."""

    path = export_volume(store, out, format=fmt, table=table, overwrite=overwrite)
    click.echo(f"wrote {path}")


@main.command("segment")
@click.argument("volume", type=click.Path(path_type=Path))
@click.argument("out", type=click.Path(path_type=Path))
@click.option("--model", default="builtin", show_default=True,
              help="builtin, classical or a checkpoint written by `redoxflow train`.")
@click.option("--tile", type=int, help="Tile size (multiple of 32; default the model's).")
@click.option("--overlap", type=float, default=0.25, show_default=True,
              help="Tile overlap fraction, 0 <= overlap < 1 (blended).")
@click.option("--batch-size", type=int, default=8, show_default=True,
              help="Tiles per forward pass.")
@click.option("--mode", type=click.Choice(["tile", "resize"]), default="tile", show_default=True,
              help="tile: overlapping tiles at full resolution; resize: whole slices.")
@click.option("--triplanar", is_flag=True, help="Average predictions along z, y and x.")
@click.option("--probabilities", is_flag=True, help="Also store float16 probabilities.")
@click.option("--device", type=click.Choice(choices(Device)), default="auto", show_default=True,
              help="auto (a GPU when there is one), cpu or cuda.")
@click.option("--nan-policy", type=click.Choice(["raise", "fill"]), default="raise",
              show_default=True, help="NaN voxels: stop, or treat them as the darkest grey.")
@click.option("--overwrite", is_flag=True, help="Replace an existing class store.")
@_cluster_options
@user_errors
def segment_cmd(volume, out, model, tile, overlap, batch_size, mode, triplanar, probabilities,
                device, nan_policy, overwrite, cluster, workers, profile):
    """Segment the grey-level store VOLUME into the class store OUT (resumable)."""

    cfg = load_config(None, {"cluster.cluster": cluster, "cluster.workers": workers,
                             "cluster.profile": profile, "segment.overlap": overlap,
                             "segment.batch_size": batch_size, "segment.tile": tile})
    check_not_inside(out, volume)
    with make_client(config=cfg.cluster):
        vol = segment(volume, model, out=out, tile=tile, overlap=overlap, batch_size=batch_size,
                      mode=mode, triplanar=triplanar, probabilities=probabilities,
                      device=device, nan_policy=nan_policy, overwrite=overwrite, config=cfg)
    counts = np.bincount(np.asarray(vol.data[::max(1, vol.shape[0] // 16)]).ravel(), minlength=4)
    click.echo(f"wrote {out}: {tuple(vol.shape)} classes; sampled class fractions "
               + ", ".join(f"{c} {n / counts.sum():.3f}" for c, n in enumerate(counts)))


@main.command("train")
@click.option("--images", multiple=True, help="Image volume/slice path (repeatable).")
@click.option("--masks", multiple=True, help="Mask path matching each --images.")
@click.option("--synthetic", type=int, default=0, help="Train on N phantoms instead.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Checkpoint folder.")
@click.option("--architecture", default="small-unet", show_default=True,
              help="small-unet (CPU), unet-resnext101, attention-unet, unet3plus, swin-unet, "
                   "unetplusplus or fpn.")
@click.option("--classes", default="electrolyte,bubble,membrane,gasket", show_default=True,
              help="Class names, comma separated.")
@click.option("--binary", is_flag=True, help="Masks are 0/255 (or 0/1): two classes.")
@click.option("--context", type=int, default=0, show_default=True, help="2.5D: neighbours per side.")
@click.option("--tile", type=int, default=128, show_default=True, help="Training tile size.")
@click.option("--batch-size", type=int, default=8, show_default=True, help="Tiles per step.")
@click.option("--epochs", type=int, default=50, show_default=True, help="At most this many.")
@click.option("--steps", type=int, default=100, show_default=True, help="Steps per epoch.")
@click.option("--lr", type=float, default=1e-4, show_default=True, help="Learning rate.")
@click.option("--early-stopping", type=int, default=8, show_default=True,
              help="Stop after this many epochs without a better validation loss.")
@click.option("--rotate90", is_flag=True, help="Also augment by 90-degree rotations.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--resume", is_flag=True, help="Continue from OUT/training-state.pt.")
@click.option("--overwrite", is_flag=True, help="Replace an existing checkpoint folder.")
@click.option("--device", type=click.Choice(choices(Device)), default="auto", show_default=True,
              help="auto (a GPU when there is one), cpu or cuda.")
@user_errors
def train_cmd(images, masks, synthetic, out, architecture, classes, binary, context, tile,
              batch_size, epochs, steps, lr, early_stopping, rotate90, seed, resume, overwrite,
              device):
    """Train a segmentation model on image/mask pairs (or phantoms); writes OUT/best.pt."""

    names = ["background", "foreground"] if binary else classes.split(",")
    if synthetic:

        imgs, msks = phantom_pairs(range(1000, 1000 + synthetic))
    elif images and len(images) == len(masks):
        imgs, msks = read_volumes(list(images), "images"), read_volumes(list(masks), "masks")
        if binary:
            msks = [(m > 0).astype(np.uint8) for m in msks]
    else:
        raise InputError("pass matching --images and --masks, or --synthetic N")
    result = train(imgs, msks, out=out, architecture=architecture, classes=names,
                   context=context, tile=tile, batch_size=batch_size, epochs=epochs,
                   steps_per_epoch=steps, lr=lr, early_stopping=early_stopping,
                   rotate90=rotate90, seed=seed, resume=resume, overwrite=overwrite,
                   device=device)
    best = result.spec.training
    click.echo(f"best checkpoint {result.checkpoint} (epoch {best.get('epochs')}, validation "
               f"loss {best.get('val_loss', float('nan')):.4g}, F1 {best.get('val_f1')})"
               + ("; stopped early" if result.stopped_early else ""))


@main.command("evaluate")
@click.argument("prediction", type=click.Path(path_type=Path))
@click.argument("truth", type=click.Path(path_type=Path))
@click.option("--classes", default="electrolyte,bubble,membrane,gasket", show_default=True,
              help="Class names, comma separated, in id order.")
@click.option("--binary", is_flag=True, help="Compare foreground (> 0) against background.")
@click.option("--out", type=click.Path(path_type=Path), help="Write the scores as NetCDF.")
@click.option("--overwrite", is_flag=True, help="Replace an existing --out file.")
@user_errors
def evaluate_cmd(prediction, truth, classes, binary, out, overwrite):
    """Per-class precision, recall, F1 and IoU of PREDICTION against TRUTH (stores or images)."""

    pred, true = (v if _is_zarr(v) else read_volumes(str(v), "volume")[0]
                  for v in (prediction, truth))
    names = ["background", "foreground"] if binary else classes.split(",")
    if binary:
        pred, true = ((_data(v) > 0).astype(np.uint8) for v in (pred, true))
    ds = evaluate(pred, true, classes=names)
    click.echo(format_scores(ds))
    if out is not None:
        write_netcdf(ds, out, overwrite=overwrite)
        click.echo(f"wrote {out}")


def _is_zarr(path: Path) -> bool:
    return path.suffix == ".zarr" or (path / "zarr.json").exists()


def _data(v):
    return open_volume(v).data if isinstance(v, Path) else v


if __name__ == "__main__":
    main()
