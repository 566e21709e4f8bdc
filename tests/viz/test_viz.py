"""Pictures: real off-screen renders checked as images, plots with labelled axes, the report."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import redoxflow as rf
from redoxflow.errors import InputError

pytest.importorskip("pyvista")
from redoxflow import viz  # noqa: E402


def _count(img, rgb, tol=70):
    return int((np.abs(img[..., :3].astype(int) - np.asarray(rgb)).max(axis=-1) < tol).sum())


@pytest.fixture(scope="module")
def analysed(tmp_path_factory):
    from redoxflow.synthetic import make_phantom

    ph = make_phantom((48, 80, 80), seed=3)
    out = tmp_path_factory.mktemp("viz")
    rf.ingest(ph.classes, out / "classes.zarr", kind="classes", voxel_size=ph.voxel_size)
    tree = rf.analyze(str(out / "classes.zarr"), negative_side="high", out=out)
    return ph, out, tree


def test_cell_render_shows_palette_colours(analysed):
    ph, out, _ = analysed
    img = viz.screenshot(viz.scene_cell(ph.classes, size=(400, 300)), out / "cell.png")
    assert img.shape == (300, 400, 3)
    assert (out / "cell.png").stat().st_size > 5000
    assert img.std() > 10  # not blank
    assert _count(img, (255, 0, 0)) > 50  # bubbles red
    assert _count(img, (0, 0, 255), tol=110) > 500  # membrane blue
    assert _count(img, (0, 204, 0), tol=110) > 500  # gaskets green


def test_property_render_has_colour_bar_and_validates_names(analysed):
    _, out, tree = analysed
    bubbles = tree["bubbles"].to_dataset()
    img = viz.screenshot(viz.scene_property(str(out / "bubble_labels.zarr"), bubbles,
                                            "volume", log=True, size=(400, 400)))
    bar = img[330:, 100:]
    assert bar.std() > 20  # the colour bar at the bottom has many colours
    assert _count(img, (68, 1, 84), tol=60) + _count(img, (253, 231, 37), tol=60) > 0  # viridis
    with pytest.raises(InputError, match="valid:.*sphericity"):
        viz.scene_property(str(out / "bubble_labels.zarr"), bubbles, "nonsense")


def test_blockage_and_halfcell_renders(analysed):
    ph, out, tree = analysed
    ids = tree["blockage/contact_bubble"].values
    assert len(ids) > 0
    img = viz.screenshot(viz.scene_blockage(ph.classes, str(out / "bubble_labels.zarr"), ids,
                                            size=(300, 300)))
    assert _count(img, (255, 0, 0)) > 20 and _count(img, (0, 0, 255), tol=120) > 200
    from redoxflow.analysis import halfcell_map

    img = viz.screenshot(viz.scene_halfcells(halfcell_map(ph.classes, negative_side="high")
                                             .compute(), size=(300, 300)))
    assert _count(img, (255, 140, 0), tol=90) > 200  # negative half orange
    assert _count(img, (140, 51, 230), tol=90) > 200  # positive half purple


def test_orbit_gif_has_the_frames(analysed, tmp_path):
    import imageio.v3 as iio

    ph, _, _ = analysed
    path = viz.orbit(viz.scene_cell(ph.classes, size=(160, 120)), tmp_path / "o.gif", frames=5)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == 5 and frames.shape[1:3] == (120, 160)
    assert not np.array_equal(frames[0], frames[2])  # the camera moved
    with pytest.raises(InputError, match="gif or .mp4"):
        viz.orbit(viz.scene_cell(ph.classes, size=(64, 64)), tmp_path / "o.avi", frames=2)


def test_large_volume_renders_from_a_subsampled_level():
    vol = np.zeros((64, 64, 64), np.uint8)
    vol[20:40, 20:40, 20:40] = 1
    data, spacing, note = viz.render_volume(vol, max_voxels=40**3)
    assert data.shape == (32, 32, 32) and spacing == (2.0, 2.0, 2.0)
    assert "subsampled x2" in note


def test_plots_have_labelled_axes(analysed):
    _, _, tree = analysed
    fig = viz.density_maps(tree["density"].to_dataset())
    labels = [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes[:3]]
    assert labels == [("x (um)", "y (um)"), ("x (um)", "z (um)"), ("y (um)", "z (um)")]
    fig = viz.histograms(tree["bubbles"].to_dataset())
    xlabels = [ax.get_xlabel() for ax in fig.axes]
    assert "log10 volume (um^3)" in xlabels and "sphericity" in xlabels
    fig = viz.orientation_polar(tree["bubbles"].to_dataset())
    assert "theta" in fig.axes[0].get_xlabel()
    with pytest.raises(InputError, match="time dim"):
        viz.time_series(tree["summary"].to_dataset())


def test_time_series_and_tracks_plots():
    summary = xr.Dataset({"bubble_volume_fraction": ("time", [0.1, 0.2]),
                          "n_bubbles_cell": ("time", [3, 4]),
                          "membrane_blocked_fraction": ("time", [0.0, 0.1])},
                         coords={"time": [0, 1]})
    fig = viz.time_series(summary)
    assert [ax.get_ylabel() for ax in fig.axes] == ["R_bv (negative)", "bubbles",
                                                     "blocked membrane fraction"]
    bubbles = xr.Dataset({"track": ("bubble", [1, 1, 2]), "time": ("bubble", [0, 1, 0]),
                          "centroid": (("bubble", "axis"), np.arange(9.0).reshape(3, 3))})
    fig = viz.tracks_plot(bubbles)
    assert fig.axes[0].get_xlabel() == "x (um)" and len(fig.axes[0].lines) == 2


def test_report_is_self_contained(analysed):
    _, out, tree = analysed
    path = viz.report(out / "results.zarr")
    page = path.read_text()
    assert page.count('src="data:image/png;base64,') >= 5
    assert 'class="sortable"' in page and "bubble_volume_fraction" in page
    assert tree.attrs["input_checksum"] in page and "Config" in page
    assert (out / "figures" / "density.png").exists()
    assert not list(out.glob(".report*"))


def test_report_without_bubbles_or_groups_says_so(tmp_path):
    v = np.zeros((12, 16, 20), np.uint8)
    v[:, :, 9:11] = 2
    rf.analyze(v, negative_side="high", out=tmp_path)
    page = viz.report(tmp_path / "results.zarr").read_text()
    assert "No bubbles were kept" in page
    assert "3D scenes: skipped" in page  # the input was an array, not a store
    tree = xr.open_datatree(tmp_path / "results.zarr", engine="zarr", consolidated=False)
    partial = xr.DataTree.from_dict({"summary": tree["summary"].to_dataset()})
    partial.to_zarr(tmp_path / "partial.zarr", consolidated=False)
    page = viz.report(tmp_path / "partial.zarr", tmp_path / "p" / "p.html").read_text()
    assert "No bubbles were kept" in page and "bubble_volume_fraction" in page
    with pytest.raises(InputError, match="does not exist"):
        viz.report(tmp_path / "nope.zarr")


def test_cli_report(analysed):
    from click.testing import CliRunner

    from redoxflow.cli import main

    _, out, _ = analysed
    res = CliRunner().invoke(main, ["report", str(out / "results.zarr"), "--no-3d",
                                    "--out", str(out / "r2" / "r2.html")])
    assert res.exit_code == 0, res.output
    assert (out / "r2" / "r2.html").exists()
    again = CliRunner().invoke(main, ["report", str(out / "results.zarr"), "--no-3d",
                                      "--out", str(out / "r2" / "other.html")])
    assert again.exit_code == 2 and "density.png exists" in again.output  # figures too
    forced = CliRunner().invoke(main, ["report", str(out / "results.zarr"), "--no-3d",
                                       "--out", str(out / "r2" / "r2.html"), "--overwrite"])
    assert forced.exit_code == 0, forced.output
    bad = CliRunner().invoke(main, ["report", str(out / "missing.zarr")])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_report_without_the_viz_extra_is_one_line_and_writes_nothing(tmp_path, monkeypatch):
    """Without matplotlib (the viz extra) the CLI says which extra to install, exits 2 and
    leaves no figures/ folder behind."""
    import sys

    from click.testing import CliRunner

    from redoxflow.cli import main

    v = np.zeros((6, 8, 10), np.uint8)
    v[:, :, 4] = 2
    rf.analyze(v, negative_side="high", out=tmp_path)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now fails
    res = CliRunner().invoke(main, ["report", str(tmp_path / "results.zarr"), "--no-3d"])
    assert res.exit_code == 2
    assert "redoxflow[viz]" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "figures").exists() and not (tmp_path / "report.html").exists()


def test_report_reads_like_a_document(analysed, tmp_path):
    """Parsed as HTML: sample name and date in the title, a summary grouped by topic with a
    units column in a fixed order, a bubble table with units in its headers and the shape
    columns first, provenance decoded once."""
    from html.parser import HTMLParser

    class Tables(HTMLParser):
        def __init__(self):
            super().__init__()
            self.tables, self.h1, self._cell, self._in_h1 = [], "", None, False

        def handle_starttag(self, tag, attrs):
            if tag == "table":
                self.tables.append([])
            elif tag == "tr":
                self.tables[-1].append([])
            elif tag in ("td", "th"):
                self._cell = ""
            self._in_h1 |= tag == "h1"

        def handle_endtag(self, tag):
            if tag in ("td", "th"):
                self.tables[-1][-1].append(self._cell)
                self._cell = None
            self._in_h1 &= tag != "h1"

        def handle_data(self, data):
            if self._cell is not None:
                self._cell += data
            if self._in_h1:
                self.h1 += data

    _, out, _ = analysed
    page = viz.report(out / "results.zarr", tmp_path / "r.html", render_3d=False).read_text()
    parsed = Tables()
    parsed.feed(page)
    assert "classes.zarr" in parsed.h1
    assert "Analysed 20" in page  # the ISO date of the analysis
    summary, bubbles = parsed.tables[0], parsed.tables[1]
    assert summary[0] == ["topic", "quantity", "value", "units", "description"]
    topics = [row[0] for row in summary[1:]]
    assert topics == sorted(topics, key=["gas fraction", "counts", "membrane", "other"].index)
    units = {row[1]: row[3] for row in summary[1:]}
    assert units["bubble_volume"] == "micrometer^3" and units["n_bubbles"] == "1"
    head = bubbles[0]
    assert head[1] == "half"
    assert "volume (micrometer^3)" in head and "surface_area (micrometer^2)" in head
    assert head.index("volume (micrometer^3)") < head.index("centroid_z (micrometer)")
    import html

    assert '"timings_s": {' in html.unescape(page)  # a JSON object, not JSON in a string
