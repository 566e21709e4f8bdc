"""Fault tolerance with real processes: a worker dies mid-stage, the pipeline is killed and
restarted, the disk is full. Each time the result equals an undisturbed run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
from scipy import ndimage


def die_once(block, marker: str, block_info=None):
    """Identity, except that the first task to reach block 1 kills its worker process."""
    if block_info[0]["chunk-location"][0] == 1 and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)  # a hard crash: no cleanup, no exception
    return block


def test_a_worker_killed_mid_stage_gives_the_same_labels(tmp_path, rng):
    from distributed import Client, LocalCluster

    from redoxflow.io import open_volume
    from redoxflow.labeling import label

    mask = ndimage.gaussian_filter(rng.random((64, 64, 64)), 2) > 0.5
    expected, n = ndimage.label(mask, np.ones((3, 3, 3)))
    marker = str(tmp_path / "died")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, memory_limit="1GB") as cluster, \
            Client(cluster) as client:
        pids = set(client.run(os.getpid).values())
        chaos = da.from_array(mask, chunks=16).map_blocks(die_once, marker, dtype=bool)
        _, count = label(chaos, out=tmp_path / "labels.zarr")
        assert Path(marker).exists()  # a worker really died during the stage
        assert set(client.run(os.getpid).values()) != pids  # ... and was replaced
    assert count == n
    np.testing.assert_array_equal(open_volume(tmp_path / "labels.zarr").data.compute(), expected)


def _config(path: Path, out: Path, checkpoint: Path) -> Path:
    path.write_text(json.dumps({
        "input": {"source": "synthetic", "shape": [96, 96, 96], "seed": 4},
        "output": {"directory": str(out), "report": False},
        "cluster": {"cluster": "local", "workers": 1, "dashboard_address": None},
        "segment": {"model": str(checkpoint), "slab": 4},  # 24 slabs
        "analyze": {"negative_side": "high"}}))  # JSON is YAML
    return path


def _run(config: Path) -> subprocess.Popen:
    """``redoxflow run CONFIG`` in its own process group, output to CONFIG.log (a pipe that
    nobody reads would block the child once full)."""
    log = open(config.with_suffix(".log"), "w")
    return subprocess.Popen([sys.executable, "-m", "redoxflow.cli", "run", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


@pytest.mark.slow
def test_pipeline_killed_mid_segmentation_resumes_without_recomputing(tmp_path):
    pytest.importorskip("torch")
    from redoxflow.io import open_volume
    from redoxflow.segment.models import builtin_checkpoint

    ckpt = builtin_checkpoint()
    # an undisturbed run for reference
    ref = _run(_config(tmp_path / "ref.yaml", tmp_path / "ref", ckpt))
    assert ref.wait(timeout=600) == 0, (tmp_path / "ref.log").read_text()[-2000:]
    out = tmp_path / "run"
    proc = _run(_config(tmp_path / "run.yaml", out, ckpt))
    done = out / ".classes.zarr.partial" / ".done"
    deadline = time.time() + 300
    while time.time() < deadline and not (done.is_dir() and len(list(done.iterdir())) >= 3):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)  # the pipeline and its dask workers, mid-stage
    proc.wait()
    finished = sorted(p.name for p in done.iterdir())
    assert 3 <= len(finished) < 24 and not (out / "classes.zarr").exists()
    stamps = {p: p.stat().st_mtime_ns for p in (out / ".classes.zarr.partial" / "0").rglob("*")
              if p.is_file()}
    again = _run(tmp_path / "run.yaml")
    assert again.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-2000:]
    kept = [p for p in stamps if (out / "classes.zarr" / p.relative_to(
        out / ".classes.zarr.partial")).exists()]
    moved = {out / "classes.zarr" / p.relative_to(out / ".classes.zarr.partial"): stamps[p]
             for p in kept}
    # the finished slabs' chunks are kept as written; a chunk in flight at the kill (its
    # slab not marked done) is legitimately written again
    unchanged = [p for p, t in moved.items()
                 if p.name != "zarr.json" and p.stat().st_mtime_ns == t]
    assert len(unchanged) >= 3, sorted(str(p) for p in moved)
    a = json.loads((tmp_path / "ref" / "summary.json").read_text())
    b = json.loads((out / "summary.json").read_text())
    for key in ("n_components", "n_bubbles_cell", "n_bubbles", "bubble_volume_negative",
                "class_voxels", "bubble_volume_fraction", "membrane_blocked_fraction",
                "segmentation_f1"):
        assert a[key] == b[key], key
    np.testing.assert_array_equal(
        open_volume(tmp_path / "ref" / "bubble_labels.zarr").data.compute(),
        open_volume(out / "bubble_labels.zarr").data.compute())


def _limit_file_size():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG instead of a signal
    resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, 256 * 1024))


def test_disk_full_is_a_clear_error_and_leaves_the_input_untouched(tmp_path, rng):
    source = tmp_path / "volume.npy"
    np.save(source, rng.integers(0, 255, (32, 256, 256), dtype=np.uint8))  # incompressible
    before = source.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "redoxflow.cli", "ingest", str(source),
                           str(tmp_path / "out.zarr"), "--voxel-size", "1", "--chunks",
                           "32,256,256"],
                          capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert proc.returncode == 2, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no space" in errors[0] and "Traceback" not in proc.stderr
    assert source.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["volume.npy"]  # nothing half-written


def _limit_file_size_small():
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))


def test_netcdf_on_a_full_disk_is_one_line_not_a_segfault(tmp_path, phantom):
    from redoxflow.labeling import label

    label(phantom.classes == 1, out=tmp_path / "l.zarr")
    proc = subprocess.run([sys.executable, "-m", "redoxflow.cli", "measure",
                           str(tmp_path / "l.zarr"), str(tmp_path / "t.nc")],
                          capture_output=True, text=True, preexec_fn=_limit_file_size_small)
    assert proc.returncode == 2, proc.stderr[-2000:]  # HDF5 crashed the process: rc -11
    assert proc.stderr.strip().splitlines()[-1].startswith("error: no space to write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l.zarr"]  # nothing half-written


def test_ctrl_c_on_run_is_one_line_and_stops_every_worker(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C sends): the run prints one line and
    exits 130; its worker processes neither print tracebacks nor outlive it."""
    pytest.importorskip("torch")
    import psutil

    from redoxflow.segment.models import builtin_checkpoint

    config = _config(tmp_path / "run.yaml", tmp_path / "run", builtin_checkpoint())
    log = open(config.with_suffix(".log"), "w")
    proc = subprocess.Popen([sys.executable, "-m", "redoxflow.cli", "run", str(config)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    done = tmp_path / "run" / ".classes.zarr.partial" / ".done"
    deadline = time.time() + 300
    while time.time() < deadline and not (done.is_dir() and any(done.iterdir())):
        time.sleep(0.02)
    children = psutil.Process(proc.pid).children(recursive=True)
    assert children, "the run started no worker process"
    os.killpg(proc.pid, signal.SIGINT)
    assert proc.wait(timeout=120) == 130
    text = config.with_suffix(".log").read_text()
    assert "Traceback" not in text and "KeyboardInterrupt" not in text, text[-2000:]
    assert text.rstrip().endswith("error: interrupted; finished work is kept and a rerun resumes")
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert not alive
