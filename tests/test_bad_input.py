"""Issue 18's adversarial inputs: each is refused in one line naming the problem, exit 2,
nothing half-written. Every test here failed (a traceback, a wrong result or lost data) on
the code before its fix."""

from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import redoxflow as rf
from redoxflow.cli import main
from redoxflow.errors import InputError


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def refused(res, *words):
    """Exit 2, one line starting with ``error:``, each word in it, no traceback."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert lines[-1].startswith("error:") and "Traceback" not in res.output, res.output
    for word in words:
        assert word in lines[-1], (word, lines[-1])
    return lines[-1]


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A class store (4 z-chunks), its label store and a grey-level store."""
    root = tmp_path_factory.mktemp("stores")
    ph = rf.make_phantom((32, 48, 48), seed=2)
    rf.ingest(ph.classes.astype(np.uint8), root / "cls.zarr", voxel_size=1,
              chunks=(8, 48, 48), kind="classes", progress=False)
    rf.ingest(ph.image, root / "raw.zarr", voxel_size=1, chunks=(8, 48, 48), progress=False)
    rf.label(rf.open_volume(root / "cls.zarr").data == 1, out=root / "lab.zarr")
    return root


def damaged(stores, tmp_path, how) -> Path:
    """A copy of the class store, damaged by ``how(copy)``."""
    copy = tmp_path / "damaged.zarr"
    shutil.copytree(stores / "cls.zarr", copy)
    how(copy)
    return copy


# --- tiling, labels, classes (causes 7, 8, int8 -1) -----------------------------------------

@pytest.mark.parametrize("kwargs, message", [({"overlap": -3}, "overlap -3"),
                                             ({"overlap": 1.0}, "outside"),
                                             ({"batch_size": 0}, "positive")])
def test_segment_refuses_tiling_that_leaves_gaps(kwargs, message):
    with pytest.raises(InputError, match=message):
        rf.segment(np.zeros((4, 32, 32), np.float32), "builtin", **kwargs)


@pytest.mark.parametrize("option", [("--batch-size", "0"), ("--overlap", "-3"),
                                    ("--tile", "0")])
def test_segment_options_are_refused_at_parse_time(stores, tmp_path, option):
    refused(run("segment", stores / "raw.zarr", tmp_path / "s.zarr", *option),
            option[0][2:].replace("-", "_"))
    assert list(tmp_path.iterdir()) == []


def test_regionprops_refuses_negative_labels():
    labels = np.zeros((3, 4, 5), np.int32)
    labels[1, 1, 1] = -5
    with pytest.raises(InputError, match="negative values"):
        rf.regionprops(labels)


def test_negative_class_ids_are_refused(tmp_path):
    classes = np.zeros((4, 8, 8), np.int8)
    classes[:, :, 4] = 2
    classes[1, 1, 1] = -1
    with pytest.raises(InputError, match="from -1"):
        rf.analyze(classes, negative_side="high")
    rf.ingest(classes, tmp_path / "neg.zarr", voxel_size=1, kind="classes", progress=False)
    refused(run("analyze", tmp_path / "neg.zarr", tmp_path / "out", "--negative-side", "high"),
            "from -1")


# --- damaged stores (cause 10 and the crashes) ----------------------------------------------

def test_a_deleted_chunk_is_an_error_naming_it_not_zeros(stores, tmp_path):
    store = damaged(stores, tmp_path, lambda p: (p / "0" / "c" / "1" / "0" / "0").unlink())
    with pytest.raises(InputError, match=r"chunk \(1, 0, 0\) .* is missing \(1 of 4 chunks\)"):
        rf.open_volume(store)
    for args in (("label", store, tmp_path / "l.zarr"),
                 ("analyze", store, tmp_path / "out", "--negative-side", "high"),
                 ("ingest", store, tmp_path / "i.zarr")):
        refused(run(*args), "(1, 0, 0)", "missing")
    with pytest.raises(InputError, match="missing"):
        rf.segment(store, "classical", out=tmp_path / "s.zarr")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["damaged.zarr"]
    # a store that declares a fill reads absent chunks as its fill value
    meta = json.loads((store / "zarr.json").read_text())
    meta["attributes"]["missing_chunks"] = "fill"
    (store / "zarr.json").write_text(json.dumps(meta))
    data = rf.open_volume(store).data.compute()
    assert not data[8:16].any() and data[16:].any()


def test_our_stores_keep_every_chunk_even_empty_ones(tmp_path):
    rf.ingest(np.zeros((8, 8, 8), np.uint8), tmp_path / "z.zarr", voxel_size=1,
              chunks=(4, 8, 8), progress=False)
    assert sorted(os.listdir(tmp_path / "z.zarr" / "0" / "c")) == ["0", "1"]
    rf.open_volume(tmp_path / "z.zarr")  # no missing chunk


@pytest.mark.parametrize("damage", ["garbled", "truncated"])
def test_garbled_or_truncated_chunks_are_one_line_errors(stores, tmp_path, damage):
    def how(p):
        chunk = p / "0" / "c" / "2" / "0" / "0"
        if damage == "garbled":
            chunk.write_bytes(np.random.default_rng(0).bytes(200))
        else:
            chunk.write_bytes(chunk.read_bytes()[:10])
    store = damaged(stores, tmp_path, how)
    with pytest.raises(InputError, match=r"cannot read \[16:24.*corrupt or truncated"):
        rf.open_volume(store).data.compute()
    refused(run("label", store, tmp_path / "l.zarr"), "corrupt or truncated")
    refused(run("analyze", store, tmp_path / "out", "--negative-side", "high"),
            "corrupt or truncated")
    assert not (tmp_path / "l.zarr").exists() and hidden(tmp_path) == []


@pytest.mark.parametrize("where", ["zarr.json", "0/zarr.json"])
def test_invalid_zarr_json_is_a_one_line_error(stores, tmp_path, where):
    store = damaged(stores, tmp_path, lambda p: (p / where).write_text('{"zarr_format": 3, "no'))
    refused(run("info", store), "invalid")
    refused(run("label", store, tmp_path / "l.zarr"), "invalid")


def _edit_ome(store: Path, edit) -> None:
    meta = json.loads((store / "zarr.json").read_text())
    edit(meta["attributes"]["ome"]["multiscales"][0])
    (store / "zarr.json").write_text(json.dumps(meta))


def test_a_multiscales_path_pointing_nowhere(stores, tmp_path):
    store = damaged(stores, tmp_path, lambda p: _edit_ome(
        p, lambda ms: ms["datasets"][0].update(path="nowhere")))
    refused(run("label", store, tmp_path / "l.zarr"), "'nowhere'", "missing")


def test_an_array_node_passed_as_a_store(stores, tmp_path):
    refused(run("info", stores / "cls.zarr" / "0"), "is a Zarr array", "cls.zarr")
    refused(run("label", stores / "cls.zarr" / "0", tmp_path / "l.zarr"), "is a Zarr array")


def test_axes_stored_as_x_y_z_are_read_in_z_y_x_order(tmp_path):
    x = np.arange(4 * 5 * 6, dtype=np.uint8).reshape(4, 5, 6) % 7
    rf.ingest(x.transpose(2, 1, 0).copy(), tmp_path / "xyz.zarr", voxel_size=(3, 2, 1),
              kind="classes", progress=False)  # stored as (x, y, z), voxel sizes 3, 2, 1

    def reverse(ms):
        ms["axes"] = ms["axes"][::-1]
    _edit_ome(tmp_path / "xyz.zarr", reverse)
    vol = rf.open_volume(tmp_path / "xyz.zarr")
    assert vol.dims == ("z", "y", "x") and vol.attrs["voxel_size"] == (1.0, 2.0, 3.0)
    np.testing.assert_array_equal(vol.data.compute(), x)
    _edit_ome(tmp_path / "xyz.zarr", lambda ms: ms["axes"][0].update(name="c"))
    with pytest.raises(InputError, match="expected z, y, x"):
        rf.open_volume(tmp_path / "xyz.zarr")


# --- outputs ---------------------------------------------------------------------------------

def test_out_a_plain_file(stores, tmp_path):
    (tmp_path / "plain").write_text("keep me")
    refused(run("analyze", stores / "cls.zarr", tmp_path / "plain", "--negative-side", "high"),
            "is a file")
    refused(run("label", stores / "cls.zarr", tmp_path / "plain"), "already exists")
    assert (tmp_path / "plain").read_text() == "keep me"


def test_a_dangling_output_symlink_leaves_nothing(stores, tmp_path):
    (tmp_path / "l.zarr").symlink_to(tmp_path / "gone" / "l.zarr")
    refused(run("label", stores / "cls.zarr", tmp_path / "l.zarr"), "link", "does not exist")
    assert hidden(tmp_path) == []


def test_measure_into_a_missing_folder(stores, tmp_path):
    res = run("measure", stores / "lab.zarr", tmp_path / "new" / "t.csv")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "t.csv").read_text().startswith("bubble,")


def test_an_unwritable_output_is_one_line(stores, tmp_path):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc: no place that even root cannot write")
    refused(run("label", stores / "cls.zarr", "/proc/self/x/l.zarr"), "/proc/self")
    # /proc itself exists, and root may "write" it by its permission bits
    refused(run("label", stores / "cls.zarr", "/proc/l.zarr"), "/proc")
    refused(run("measure", stores / "lab.zarr", "/proc/t.csv"), "/proc")
    refused(run("analyze", stores / "cls.zarr", "/proc/out", "--negative-side", "high"),
            "/proc")


@pytest.mark.parametrize("out", ["cls.zarr/sub.zarr", "x/../cls.zarr"])
def test_an_output_inside_or_equal_to_the_input_is_refused(stores, tmp_path, out):
    (stores / "x").mkdir(exist_ok=True)
    before = sorted(p.name for p in (stores / "cls.zarr").iterdir())
    refused(run("label", stores / "cls.zarr", stores / out), "input")
    refused(run("ingest", stores / "cls.zarr", stores / out, "--overwrite"), "input")
    assert sorted(p.name for p in (stores / "cls.zarr").iterdir()) == before
    rf.open_volume(stores / "cls.zarr")  # intact


def test_a_killed_runs_temporary_output_is_removed_by_the_next(stores, tmp_path):
    from redoxflow.common.atomic import HOST

    stale = tmp_path / f".l.zarr.partial-{HOST}-999999999-0123abcd"  # no such process
    (stale / "0").mkdir(parents=True)
    assert run("label", stores / "cls.zarr", tmp_path / "l.zarr").exit_code == 0
    assert hidden(tmp_path) == []


@pytest.mark.parametrize("target", ["cls.zarr", "."])
def test_report_on_a_class_store_or_the_results_folder(stores, tmp_path, target):
    (tmp_path / "results.zarr").mkdir()
    (tmp_path / "results.zarr" / "zarr.json").write_text('{"zarr_format": 3, '
                                                         '"node_type": "group"}')
    path = stores / target if target != "." else tmp_path
    msg = refused(run("report", path, "--no-3d", "--out", tmp_path / "r.html"))
    assert ("results.zarr" in msg) if target == "." else ("not an analysis result" in msg)


# --- readers ---------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (("--shape", "2,64,64", "--dtype", "foo"), "not a numpy dtype"),
    (("--shape", "-2,64,-64", "--dtype", "uint8"), "must be positive"),
    (("--shape", "2,64", "--dtype", "uint8"), "expected a 3D volume")])
def test_raw_options_are_one_line_errors(tmp_path, args, message):
    (tmp_path / "r.raw").write_bytes(bytes(8192))
    refused(run("ingest", tmp_path / "r.raw", tmp_path / "r.zarr", "--voxel-size", "1", *args),
            message)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.raw"]


def test_vti_with_an_impossible_extent_is_refused(tmp_path):
    from redoxflow.io import open_source

    (tmp_path / "v.vti").write_text(
        '<VTKFile type="ImageData"><ImageData WholeExtent="0 -3 0 1 0 0"><Piece><PointData>'
        '<DataArray type="UInt8" format="ascii">0 1</DataArray></PointData></Piece>'
        '</ImageData></VTKFile>')
    with pytest.raises(InputError, match="WholeExtent"):
        open_source(tmp_path / "v.vti")


def test_vti_with_vectors_is_refused_not_read_as_interleaved_values(tmp_path):
    from redoxflow.io import open_source

    (tmp_path / "rgb.vti").write_text(
        '<VTKFile type="ImageData"><ImageData WholeExtent="0 1 0 0 0 0"><Piece><PointData>'
        '<DataArray type="UInt8" NumberOfComponents="3" format="ascii">1 2 3 4 5 6</DataArray>'
        '</PointData></Piece></ImageData></VTKFile>')
    with pytest.raises(InputError, match="3 components per voxel"):
        open_source(tmp_path / "rgb.vti")


def test_vti_with_an_oversized_extent_is_refused_before_allocating(tmp_path):
    from redoxflow.io import open_source

    (tmp_path / "big.vti").write_text(
        '<VTKFile type="ImageData"><ImageData WholeExtent="0 4000000000 0 4000000000 0 9">'
        '<Piece><PointData><DataArray type="Float64" format="ascii">0 1</DataArray>'
        '</PointData></Piece></ImageData></VTKFile>')
    with pytest.raises(InputError, match="GiB of data, more than this machine"):
        open_source(tmp_path / "big.vti")


def _zlib_vti(path: Path, declared: int, data: bytes, extent: str = "0 1 0 1 0 1") -> None:
    packed = zlib.compress(data, 9)
    header = struct.pack("<4I", 1, declared, declared, len(packed))
    path.write_bytes(
        b'<VTKFile type="ImageData" byte_order="LittleEndian" header_type="UInt32" '
        b'compressor="vtkZLibDataCompressor"><ImageData WholeExtent="' + extent.encode()
        + b'"><Piece><PointData><DataArray type="UInt8" format="appended" offset="0"/>'
        b'</PointData></Piece></ImageData><AppendedData encoding="raw">_' + header + packed
        + b"</AppendedData></VTKFile>")


def test_a_zlib_bomb_is_refused_before_it_inflates(tmp_path):
    import tracemalloc

    from redoxflow.io import open_source

    _zlib_vti(tmp_path / "ok.vti", 8, bytes(range(8)))
    assert open_source(tmp_path / "ok.vti").read(0, 2).ravel().tolist() == [0, 4, 2, 6, 1, 5,
                                                                             3, 7]
    _zlib_vti(tmp_path / "bomb.vti", 2**31 - 1, bytes(2**28))  # 256 MiB of zeros, 2x2x2 extent
    tracemalloc.start()
    with pytest.raises(InputError, match="declares 2147483647 bytes, the extent needs 8"):
        open_source(tmp_path / "bomb.vti")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20
    _zlib_vti(tmp_path / "lies.vti", 8, bytes(2**20))  # declares 8 bytes, inflates to 1 MiB
    with pytest.raises(InputError, match="does not inflate to its declared 8 bytes"):
        open_source(tmp_path / "lies.vti")


def test_a_multi_key_npz_asks_for_a_key(tmp_path):
    np.savez(tmp_path / "m.npz", a=np.zeros((4, 4, 4)), b=np.zeros((4, 4, 4)))
    refused(run("ingest", tmp_path / "m.npz", tmp_path / "m.zarr", "--voxel-size", "1"),
            "pick one with --key")


# --- config ----------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    ("io:\n  compression_level: 99\n", "'io.compression_level' is 99"),
    ("cluster:\n  memory_limit: lots\n", "'cluster.memory_limit' is 'lots'"),
    ("cluster:\n  workers: 0\n", "'cluster.workers' is 0"),
    ("segment:\n  overlap: -3\n", "'segment.overlap' is -3.0"),
    ("io:\n  chunk_mib: .nan\n", "'io.chunk_mib' is nan")])
def test_config_values_out_of_range_are_refused_at_load(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    refused(run("run", tmp_path / "c.yaml", "--dry-run"), message)
    np.save(tmp_path / "v.npy", np.zeros((4, 4, 4), np.uint8))
    refused(run("ingest", tmp_path / "v.npy", tmp_path / "v.zarr", "--voxel-size", "1",
                "--config", tmp_path / "c.yaml"), message)
    assert not (tmp_path / "v.zarr").exists()


def test_non_utf8_yaml_is_one_line(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"cluster:\n  workers: 2\n  name: \xff\xfe\n")
    refused(run("run", tmp_path / "c.yaml", "--dry-run"), "not UTF-8")


# --- checkpoints -----------------------------------------------------------------------------

def test_a_checkpoint_asking_for_a_huge_network_is_refused_before_building(tmp_path):
    torch = pytest.importorskip("torch")
    import tracemalloc

    from redoxflow.segment.models import builtin_checkpoint, load_model, read_checkpoint

    spec, state = read_checkpoint(builtin_checkpoint())
    spec.options = {**spec.options, "width": 60000}
    torch.save({"format": "redoxflow-checkpoint", "metadata": spec.to_json(),
                "state_dict": state}, tmp_path / "wide.pt")
    tracemalloc.start()
    with pytest.raises(InputError, match="do not fit architecture"):
        load_model(tmp_path / "wide.pt")
    with pytest.raises(InputError, match=f"{tmp_path / 'wide.pt'}.*do not fit|do not fit"):
        rf.segment(np.zeros((2, 32, 32), np.float32), tmp_path / "wide.pt")
    assert tracemalloc.get_traced_memory()[1] < 256 * 2**20
    tracemalloc.stop()


def test_a_pickled_checkpoint_is_named_by_its_path(tmp_path):
    torch = pytest.importorskip("torch")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"format": "redoxflow-checkpoint", "metadata": "{}", "x": Evil()},
               tmp_path / "evil.pt")
    with pytest.raises(InputError, match=r"evil\.pt.*pickled Python objects"):
        rf.segment(np.zeros((2, 32, 32), np.float32), tmp_path / "evil.pt")


def test_ctrl_c_is_one_line(tmp_path, monkeypatch):
    import redoxflow.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "open_volume", interrupted)
    res = run("info", tmp_path / "x.zarr")
    assert res.exit_code == 130 and res.output.strip().splitlines() == [
        "error: interrupted; finished work is kept and a rerun resumes"]
