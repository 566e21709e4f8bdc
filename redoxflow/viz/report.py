"""A single self-contained HTML report of an analysis (images embedded, sortable table)."""

from __future__ import annotations

import base64
import html
import json
import os
from pathlib import Path

import numpy as np

from ..common.atomic import atomic_file
from ..common.tables import bubble_frame
from ..errors import InputError, StoreExistsError, require
from ..io.store import open_volume
from . import plots, scene

SORT_JS = """<script>
document.querySelectorAll('table.sortable th').forEach((th, i) => th.addEventListener('click', () => {
  const body = th.closest('table').tBodies[0];
  const rows = Array.from(body.rows);
  const asc = th.dataset.asc !== '1'; th.dataset.asc = asc ? '1' : '0';
  rows.sort((a, b) => { const x = a.cells[i].innerText, y = b.cells[i].innerText;
    const nx = parseFloat(x), ny = parseFloat(y);
    const c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny; return asc ? c : -c; });
  rows.forEach(r => body.appendChild(r));
}));
</script>"""
STYLE = """<style>body{font-family:sans-serif;margin:2em;max-width:1300px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ccc;padding:2px 6px}
th{cursor:pointer;background:#eee}img{max-width:100%}.note{color:#a33}
.wide{overflow-x:auto;max-width:100%}
@media print{body{margin:0;max-width:none}.wide{overflow:visible}table{font-size:9px}
h2,h3{break-after:avoid}img,tr{break-inside:avoid}}</style>"""


#: every file the report may write under figures/
FIGURES = ("density.png", "histograms.png", "orientation.png", "time_series.png", "tracks.png",
           "cell.png", "cell_orbit.gif", "sphericity.png", "blockage.png", "microstructure.png")


def _refuse_existing_page(out: Path, overwrite: bool) -> None:
    """The page and its figures are replaced only with ``overwrite``."""
    taken = [p for p in [out, *(out.parent / "figures" / n for n in FIGURES)] if p.exists()]
    if taken and not overwrite:
        raise StoreExistsError(f"{taken[0]} exists: pass overwrite=True (--overwrite) or "
                               "choose another --out folder")


def _table(frame, sortable=False) -> str:
    cls = ' class="sortable"' if sortable else ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in [frame.index.name or "", *frame.columns])
    rows = []
    for idx, row in frame.iterrows():
        cells = "".join(f"<td>{_fmt(v)}</td>" for v in row.values)
        rows.append(f"<tr><td>{html.escape(str(idx))}</td>{cells}</tr>")
    return f"<table{cls}><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _fmt(v) -> str:
    if isinstance(v, (float, np.floating)):
        return f"{v:.5g}"
    return html.escape(str(v))


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f'<img src="data:{mime};base64,{data}" alt="{path.stem}">'


def report(results: str | os.PathLike, out: str | os.PathLike | None = None, *,
           render_3d: bool = True, orbit_frames: int = 0, progress: bool = False,
           overwrite: bool = False, step: int | None = None) -> Path:
    """Write ``report.html`` next to ``results.zarr`` (or at ``out``) and its PNGs under
    ``figures/`` beside it.

    Figures whose variables are missing are skipped with a note in the report; 3D scenes
    need the class store recorded in the results' provenance and ``bubble_labels.zarr``.
    The page is written atomically, its images embedded (base64), the bubble table sortable.

    Parameters
    ----------
    results : path
        A ``results.zarr`` written by :func:`redoxflow.analyze` (``out=``) or
        :func:`redoxflow.analysis.write_results`.
    out : path, optional
        The HTML file (default: ``report.html`` beside ``results``).
    render_3d : bool
        Add pyvista renders of the cell, the bubbles by sphericity and the blocking bubbles.
    orbit_frames : int
        Also add an orbit GIF of the cell with this many frames (0: none).
    progress : bool or StageBar
        Show a bar named ``report`` of the figures made; or a
        :class:`redoxflow.pipeline.StageBar` (anything with ``add(n)`` and ``update(n)``)
        that counts them.
    overwrite : bool
        Replace an existing page (and its figures); refused otherwise, before any work.
    step : int, optional
        For a series: the time step of the 3D scenes (default: the last).

    Returns
    -------
    pathlib.Path
        The HTML file.

    Examples
    --------
    >>> import pathlib, tempfile, xarray as xr
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> tree = xr.DataTree.from_dict({"summary": xr.Dataset({"n_bubbles": 0})})
    >>> _ = tree.to_zarr(folder / "results.zarr", consolidated=False)
    >>> page = report(folder / "results.zarr", render_3d=False)
    >>> page.name, "No bubbles were kept" in page.read_text()
    ('report.html', True)

    A real analysis, with its 3D scenes (needs pyvista and an off-screen OpenGL):

    >>> import numpy as np, redoxflow as rf
    >>> v = np.zeros((8, 16, 16), np.uint8); v[:, :, 8] = 2; v[2:5, 4:7, 10:13] = 1
    >>> _ = rf.analyze(v, negative_side="high", out=folder, overwrite=True)  # doctest: +SKIP
    >>> report(folder / "results.zarr")  # doctest: +SKIP
    PosixPath('.../report.html')
    """
    import xarray as xr

    require("matplotlib", "viz")  # before anything is written
    results = Path(results)
    if not results.exists():
        raise InputError(f"{results} does not exist: run `redoxflow analyze` first")
    if results.suffix == ".nc":  # a microstructure dataset (redoxflow microstructure)
        return _microstructure_page(xr.load_dataset(results, engine="h5netcdf"), results,
                                    Path(out) if out else results.with_suffix(".html"),
                                    overwrite)
    tree = xr.open_datatree(results, engine="zarr", consolidated=False)
    if "summary" not in tree.children:
        raise InputError(f"{results} is not an analysis result (no summary group)")
    folder = results.parent
    out = Path(out) if out else folder / "report.html"
    _refuse_existing_page(out, overwrite)
    figs = out.parent / "figures"  # next to the page, whose <img> links point there
    figs.mkdir(parents=True, exist_ok=True)
    sections, notes = [], []
    summary = tree["summary"].to_dataset()
    bubbles = tree["bubbles"].to_dataset() if "bubbles" in tree.children else None
    density = tree["density"].to_dataset() if "density" in tree.children else None

    def figure(name, title, make):
        try:
            fig = make()
        except InputError as exc:
            notes.append(f"{title}: skipped ({exc})")
            return
        path = figs / f"{name}.png"
        plots.save(fig, path)
        sections.append(f"<h3>{html.escape(title)}</h3>{_embed(path)}")
        steps.update(1)

    n_bubbles = 0 if bubbles is None else bubbles.sizes.get("bubble", 0)
    steps = _steps(progress, _planned(density is not None, n_bubbles, "time" in summary.dims,
                                      render_3d, orbit_frames))
    if density is not None:
        figure("density", "Density maps", lambda: plots.density_maps(density))
    if n_bubbles:
        figure("histograms", "Bubble shape histograms", lambda: plots.histograms(bubbles))
        figure("orientation", "Orientation", lambda: plots.orientation_polar(bubbles))
    else:
        notes.append("No bubbles were kept: no histograms, orientation map or bubble table.")
    if "time" in summary.dims:
        figure("time_series", "Time series", lambda: plots.time_series(summary))
        if n_bubbles:
            figure("tracks", "Bubble tracks", lambda: plots.tracks_plot(bubbles))
    if render_3d:
        sections += _scenes(tree, folder, figs, notes, orbit_frames, n_bubbles, step, steps)
    sample = _sample_name(tree.attrs, results)
    made = str(tree.attrs.get("history", "")).split(" ", 1)[0] or "unknown date"
    body = [f"<h1>redoxflow report: {html.escape(sample)}</h1>",
            f"<p>Analysed {html.escape(made)} with redoxflow "
            f"{html.escape(str(tree.attrs.get('redoxflow_version', '')))}; results "
            f"<code>{html.escape(str(results.absolute()))}</code></p>",
            "<h2>Summary</h2>", _table(_summary_frame(summary))]
    if notes:
        body.append("<h2>Notes</h2><ul>" + "".join(
            f'<li class="note">{html.escape(n)}</li>' for n in notes) + "</ul>")
    body += ["<h2>Figures</h2>", *sections]
    if n_bubbles:
        body += [f"<h2>Bubbles kept in the cell ({n_bubbles}; click a header to sort)</h2>",
                 '<div class="wide">' + _table(_bubble_table(bubbles), sortable=True)
                 + "</div>"]
    prov = {k: _decoded(v) for k, v in tree.attrs.items() if k != "config"}
    config = tree.attrs.get("config", "{}")
    body += ["<h2>Provenance</h2>", f"<pre>{html.escape(_json(prov))}</pre>",
             "<h2>Config</h2>", f"<pre>{html.escape(_json(json.loads(config)))}</pre>"]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>redoxflow report</title>" \
           f"{STYLE}</head><body>{''.join(body)}{SORT_JS}</body></html>"
    with atomic_file(out, overwrite=overwrite) as part:
        part.write_text(page)
    steps.finish()
    return out


def _planned(density: bool, n_bubbles: int, series: bool, render_3d: bool,
             orbit_frames: int) -> int:
    """How many steps (figures, scenes, the page) the report will take.

    Examples
    --------
    >>> _planned(True, 5, False, True, 24)
    8
    """
    figures = density + 2 * bool(n_bubbles) + series * (1 + bool(n_bubbles))
    scenes = render_3d * (1 + bool(orbit_frames) + 2 * bool(n_bubbles))
    return figures + scenes + 1


class _Steps:
    """The report's progress: a stage bar's own steps, a bar named ``report``, or nothing."""

    def __init__(self, bar, planned: int):
        self.bar, self.left = bar, planned
        if hasattr(bar, "add"):  # a stage bar: these steps join its dask tasks
            bar.add(planned)

    def update(self, n: int = 1) -> None:
        n = min(n, self.left)
        self.left -= n
        if self.bar is not None and n:
            self.bar.update(n)

    def finish(self) -> None:
        """The page is written: the steps skipped (figures without data) count as done."""
        self.update(self.left)
        if self.bar is not None and not hasattr(self.bar, "add"):
            self.bar.close()


def _steps(progress, planned: int) -> _Steps:
    if hasattr(progress, "add") and hasattr(progress, "update"):
        return _Steps(progress, planned)
    if progress:
        from tqdm.auto import tqdm

        return _Steps(tqdm(total=planned, desc="report", unit="figure", leave=False), planned)
    return _Steps(None, planned)


#: summary rows by topic, in this order (others follow, by name)
TOPICS = (("gas fraction", ("bubble_volume_fraction", "bubble_volume_fraction_positive",
                            "bubble_volume_fraction_cell", "bubble_electrolyte_ratio",
                            "bubble_volume", "bubble_volume_mm3", "bubble_voxels")),
          ("counts", ("n_bubbles", "n_bubbles_cell", "n_components", "n_measured")),
          ("membrane", ("membrane_blocked_fraction", "membrane_blocked_area",
                        "membrane_facing_area", "membrane_blocked_voxels",
                        "membrane_blocked_voxels_positive")))
#: the bubble table's leading columns (the rest follow in the table's order)
LEADING = ("half", "kept", "removed_by", "volume", "equivalent_diameter", "surface_area",
           "sphericity", "solidity", "elongation", "flatness", "nearest_wall",
           "nearest_wall_distance", "touches_membrane", "membrane_contact_area")


def _summary_frame(summary):
    """Topic, quantity, value, units and description, in a fixed order."""
    import pandas as pd

    known = [n for _, names in TOPICS for n in names]
    order = [(t, n) for t, names in TOPICS for n in names if n in summary.data_vars]
    order += [("other", n) for n in sorted(summary.data_vars) if n not in known]
    rows = []
    for topic, name in order:
        v = summary[name]
        vals = np.atleast_1d(v.values)
        rows.append({"topic": topic, "quantity": name,
                     "value": ", ".join(f"{x:.6g}" if isinstance(x, (float, np.floating))
                                        else str(x) for x in vals),
                     "units": v.attrs.get("units", ""),
                     "description": v.attrs.get("long_name", "")})
    return pd.DataFrame(rows).set_index("topic")


def _bubble_table(bubbles):
    """The kept bubbles, leading columns first, units in the headers."""
    frame = bubble_frame(bubbles)
    first = [c for c in LEADING if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    units = {}
    for name, var in bubbles.data_vars.items():
        unit = var.attrs.get("units", "")
        if unit and unit != "1":
            units.update({c: unit for c in frame.columns
                          if c == name or c.startswith(f"{name}_")})
    return frame.rename(columns={c: f"{c} ({u})" for c, u in units.items()})


#: per-phase rows of the microstructure page: variable, heading
PHASE_COLUMNS = (("phase_value", "value"), ("volume_fraction", "volume fraction"),
                 ("specific_surface_area", "specific surface area"),
                 ("r_max", "r_max"), ("r_min", "r_min"), ("constrictivity", "constrictivity"))


def _microstructure_page(ds, source: Path, out: Path, overwrite: bool) -> Path:
    """The report of a :func:`redoxflow.microstructure.microstructure` dataset."""
    import pandas as pd

    if "volume_fraction" not in ds or "phase" not in ds.dims:
        raise InputError(f"{source} is neither an analysis nor a microstructure result")
    _refuse_existing_page(out, overwrite)
    figs = out.parent / "figures"
    figs.mkdir(parents=True, exist_ok=True)
    cols = {f"{head} ({ds[n].attrs.get('units', '')})": ds[n].values
            for n, head in PHASE_COLUMNS if n in ds}
    frame = pd.DataFrame(cols, index=pd.Index(ds["phase"].values, name="phase"))
    body = [f"<h1>redoxflow microstructure: {html.escape(source.name)}</h1>",
            f"<p><code>{html.escape(str(source.absolute()))}</code></p>",
            "<h2>Phases</h2>", _table(frame)]
    if "interfacial_area" in ds:
        pairs = pd.DataFrame({"interfacial area (" + ds["interfacial_area"].attrs.get(
            "units", "") + ")": ds["interfacial_area"].values},
            index=pd.Index([str(p) for p in ds["pair"].values], name="pair"))
        body += ["<h2>Interfaces</h2>", _table(pairs)]
    if "percolation" in ds:
        perc = ds["percolation"].to_dataframe().unstack("connection")["percolation"]
        body += ["<h2>Percolation (phase fraction by connection to both faces)</h2>",
                 _table(perc)]
    if "tortuosity_factor" in ds:
        tau = ds["tortuosity_factor"].to_dataframe()[["tortuosity_factor"]]
        body += ["<h2>Tortuosity factor</h2>", _table(tau)]
    try:
        plots.save(plots.microstructure_plots(ds), figs / "microstructure.png")
        body += ["<h2>Profiles and distributions</h2>", _embed(figs / "microstructure.png")]
    except InputError:
        pass
    attrs = json.dumps({k: _decoded(v) for k, v in ds.attrs.items()}, indent=2, default=str)
    body += ["<h2>Attributes</h2>", f"<pre>{html.escape(attrs)}</pre>"]
    page = f"<!doctype html><html><head><meta charset='utf-8'><title>redoxflow " \
           f"microstructure</title>{STYLE}</head><body>{''.join(body)}</body></html>"
    with atomic_file(out, overwrite=overwrite) as part:
        part.write_text(page)
    return out


def _sample_name(attrs, results: Path) -> str:
    """What the page is about: the run's input (``run.json`` beside the results, written by
    ``redoxflow run``/``demo``), else the analysed store's name.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _sample_name({"input": "/data/cell7/classes.zarr"}, folder / "results.zarr")
    'classes.zarr'
    >>> _ = (folder / "run.json").write_text('{"input": {"source": "synthetic", "seed": 0, '
    ...                                      '"shape": [96, 160, 160]}}')
    >>> _sample_name({}, folder / "results.zarr")
    'synthetic cell (seed 0, 96x160x160)'
    """
    record = results.parent / "run.json"
    source = None
    if record.exists():
        inp = json.loads(record.read_text()).get("input", {})
        source = inp.get("source")
        if source == "synthetic":
            shape = "x".join(str(s) for s in inp.get("shape", []))
            return f"synthetic cell (seed {inp.get('seed')}, {shape})"
    return Path(str(source or attrs.get("input", results.parent.name))).name or "array"


def _json(value) -> str:
    """Indented JSON whose lists of numbers stay on one line (class counts, shapes)."""
    import re

    text = json.dumps(value, indent=2, default=str)
    return re.sub(r"\[[-0-9.eE,\s]*\]", lambda m: "[" + " ".join(m.group()[1:-1].split()) + "]",
                  text)


def _decoded(value):
    """Attributes stored as JSON text, decoded (so the page does not encode them twice)."""
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _scenes(tree, folder: Path, figs: Path, notes: list, orbit_frames: int, n_bubbles: int,
            step: int | None = None, steps: _Steps | None = None):
    steps = steps or _Steps(None, 0)

    classes = tree.attrs.get("input", "")
    labels = folder / "bubble_labels.zarr"
    out = []
    if not classes or not Path(classes).exists():
        notes.append("3D scenes: skipped (the class volume is not a store on disk)")
        return out
    bubbles = tree["bubbles"].to_dataset() if "bubbles" in tree.children else None
    blocking = tree["blockage/contact_bubble"].values if "blockage" in tree.children else []
    if "time" in tree["summary"].dims:  # a series: the scenes of one step
        n_steps = tree["summary"].sizes["time"]
        t = n_steps - 1 if step is None else step
        if not 0 <= t < n_steps:
            raise InputError(f"step {t} is not in the series (0-{n_steps - 1})")
        classes = open_volume(classes).isel(t=t)
        labels = folder / "bubble_labels" / f"t{t:04d}.zarr"
        bubbles = bubbles.isel(bubble=np.flatnonzero(bubbles["time"].values == t))
        n_bubbles, blocking = bubbles.sizes["bubble"], []
        out.append(f"<h3>Time step {t} of {n_steps}</h3>")
    try:
        scene.screenshot(scene.scene_cell(classes), figs / "cell.png")
        out.append(f"<h3>Segmented cell</h3>{_embed(figs / 'cell.png')}")
        steps.update(1)
        if orbit_frames:
            scene.orbit(scene.scene_cell(classes), figs / "cell_orbit.gif", frames=orbit_frames)
            out.append(f"<h3>Orbit</h3>{_embed(figs / 'cell_orbit.gif')}")
            steps.update(1)
        if labels.exists() and n_bubbles:
            scene.screenshot(scene.scene_property(str(labels), bubbles, "sphericity",
                                                  classes=classes), figs / "sphericity.png")
            out.append(f"<h3>Bubbles by sphericity</h3>{_embed(figs / 'sphericity.png')}")
            steps.update(1)
            if len(blocking):
                scene.screenshot(scene.scene_blockage(classes, str(labels), blocking),
                                 figs / "blockage.png")
                out.append(f"<h3>Membrane-blocking bubbles</h3>{_embed(figs / 'blockage.png')}")
                steps.update(1)
        else:
            notes.append("bubble renders: skipped (no bubble_labels.zarr or no bubbles)")
    except Exception as exc:  # a render failure must not lose the rest of the report
        notes.append(f"3D scenes: failed ({type(exc).__name__}: {exc})")
    return out
