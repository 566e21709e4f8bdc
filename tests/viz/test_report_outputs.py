"""The report as a person sees it: a headless Chromium screenshot, its orbit GIF capped in
size, and its progress counted."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

import redoxflow as rf
from redoxflow.errors import InputError

pytest.importorskip("matplotlib")
from redoxflow import viz  # noqa: E402


def _noise_frames(n=12, size=240, seed=0):
    """Frames that compress badly (GIF cannot shrink noise by its palette alone)."""
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_orbit_gif_is_shrunk_to_its_cap():
    import imageio.v3 as iio

    from redoxflow.viz.scene import ORBIT_MAX_BYTES, _capped_gif

    frames = _noise_frames()
    full = _capped_gif(frames, 3.0, None)
    assert len(full) > 400_000 and ORBIT_MAX_BYTES == 2**20
    small = _capped_gif(frames, 3.0, 200_000)
    assert len(small) <= 200_000
    out = iio.imread(small, index=None, extension=".gif")
    assert out.shape[0] >= 2 and out.shape[2] < 240  # scaled down before frames are dropped
    assert abs(out.mean() - frames.mean()) < 10 and out.std() > 5  # the picture, not a blank
    assert _capped_gif(frames[:2, :64, :64], 3.0, None) == _capped_gif(frames[:2, :64, :64],
                                                                         3.0, 10**7)
    with pytest.raises(InputError, match="does not fit in 100 bytes"):
        _capped_gif(frames[:3], 3.0, 100)


def test_report_orbit_is_optional_and_capped(tmp_path):
    """No GIF unless asked; asked, the page's GIF stays within ORBIT_MAX_BYTES."""
    pytest.importorskip("pyvista")
    from redoxflow.synthetic import make_phantom
    from redoxflow.viz.scene import ORBIT_MAX_BYTES

    ph = make_phantom((32, 64, 64), seed=1)
    rf.ingest(ph.classes, tmp_path / "classes.zarr", kind="classes", voxel_size=10.0,
              progress=False)
    rf.analyze(str(tmp_path / "classes.zarr"), negative_side="high", out=tmp_path)
    page = viz.report(tmp_path / "results.zarr").read_text()
    assert "image/gif" not in page and not (tmp_path / "figures" / "cell_orbit.gif").exists()
    page = viz.report(tmp_path / "results.zarr", orbit_frames=6, overwrite=True).read_text()
    gif = tmp_path / "figures" / "cell_orbit.gif"
    assert "image/gif" in page and 0 < gif.stat().st_size <= ORBIT_MAX_BYTES


def test_report_counts_its_steps_on_the_stage_bar(tmp_path):
    """The pipeline's report stage shows progress: every planned step is counted done."""
    import xarray as xr

    from redoxflow.pipeline import StageBar

    v = np.zeros((12, 16, 20), np.uint8)
    v[:, :, 9:11] = 2
    v[2:6, 3:7, 13:17] = 1
    rf.analyze(v, negative_side="high", out=tmp_path)
    assert "summary" in xr.open_datatree(tmp_path / "results.zarr", engine="zarr",
                                           consolidated=False).children
    with StageBar("[5/5] report", enabled=False) as bar:
        viz.report(tmp_path / "results.zarr", render_3d=False, progress=bar)
    assert bar.own_total >= 3 and bar.own_done == bar.own_total


def _chromium():
    return next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")
                 if shutil.which(n)), None)


def screenshot(page, png, width=1280, height=2400):
    """A headless Chromium screenshot of ``page`` (what a reader's browser shows)."""
    subprocess.run([_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--window-size={width},{height}",
                    f"--screenshot={png}", page.absolute().as_uri()],
                   check=True, capture_output=True, timeout=120)
    return png


@pytest.mark.slow
def test_report_renders_in_headless_chromium(tmp_path):
    """Chromium draws the page: a PNG of the window's size, not blank, with the figures'
    colours (the density maps) and dark text on white."""
    if _chromium() is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    import imageio.v3 as iio

    from redoxflow.synthetic import make_phantom

    ph = make_phantom((32, 64, 64), seed=1)
    rf.ingest(ph.classes, tmp_path / "classes.zarr", kind="classes", voxel_size=10.0,
              progress=False)
    rf.analyze(str(tmp_path / "classes.zarr"), negative_side="high", out=tmp_path)
    page = viz.report(tmp_path / "results.zarr", render_3d=False)
    img = iio.imread(screenshot(page, tmp_path / "report.png", 1000, 1500))
    assert img.shape[:2] == (1500, 1000)
    rgb = img[..., :3].astype(int)
    white = (rgb.min(axis=-1) > 245).mean()
    dark = (rgb.max(axis=-1) < 80).mean()
    colour = ((rgb.max(axis=-1) - rgb.min(axis=-1)) > 60).mean()
    assert 0.3 < white < 0.98 and dark > 0.002 and colour > 0.01
