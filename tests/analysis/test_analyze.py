"""redoxflow.analyze: compat mode against the reference definitions, default mode against
numpy oracles on phantoms, chunking invariance, bad input and outputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import redoxflow as rf
from redoxflow.analysis import separation as sep
from redoxflow.errors import InputError, StoreExistsError

from . import oracle

REFERENCE = {  # the reference page's table: ratio, kept, components, blocked voxels
    "5f6c17f": (8.3689e-05, 11, 37, 2305),
    "9a70210": (0.370099, 37, 82, 58358),
    "62c63bc": (0.0238292, 224, 224, 81264),
}


def _load(shared_data, name):
    path = next((shared_data / "utile_redox_segmentations").glob(f"volume_{name}*classes*.npz"))
    return np.load(path)["volume"]


def _summary(tree):
    return {k: float(v) for k, v in tree["summary"].to_dataset().data_vars.items()}


def _cell(shape=(20, 24, 30), membrane_x=14, thickness=2):
    v = np.zeros(shape, np.uint8)
    v[:, :, membrane_x:membrane_x + thickness] = 2
    return v


# --- compat="utile" ----------------------------------------------------------------------------

@pytest.mark.realdata
def test_compat_matches_reference_table_and_oracle_per_bubble(shared_data):
    v = _load(shared_data, "5f6c17f")
    tree = rf.analyze(v, compat="utile", negative_side="high")
    s = _summary(tree)
    ratio, kept, components, blocked = REFERENCE["5f6c17f"]
    assert s["bubble_electrolyte_ratio"] == pytest.approx(ratio, rel=1e-4)
    assert (s["n_bubbles"], s["n_components"], s["membrane_blocked_voxels"]) == \
        (kept, components, blocked)
    ref = oracle.utile_analysis(v)
    assert s["bubble_electrolyte_ratio"] == ref["ratio"]
    b = tree["bubbles"].to_dataset()
    assert b["bubble"].values.tolist() == [r["id"] for r in ref["rows"]]
    walls = np.array(b["closest_wall"].attrs["flag_meanings"].split())
    for i, r in enumerate(ref["rows"]):
        assert b["volume_voxels"].values[i] == r["volume"]
        for key in ("sphericity", "elongation", "flatness", "theta", "phi", "closest_distance"):
            assert b[key].values[i] == pytest.approx(r[key], rel=1e-6, abs=1e-6), key
        np.testing.assert_allclose(b["centroid_voxel"].values[i], r["centroid"], rtol=1e-9)
        assert walls[b["closest_wall"].values[i]] == r["closest_wall"]
    assert b["utile_label"].values.tolist() == list(range(1, kept + 1))


@pytest.mark.realdata
@pytest.mark.slow
@pytest.mark.parametrize("name", ["9a70210", "62c63bc"])
def test_compat_matches_reference_table_large(shared_data, name):
    tree = rf.analyze(_load(shared_data, name), compat="utile", negative_side="high")
    s = _summary(tree)
    ratio, kept, components, blocked = REFERENCE[name]
    assert s["bubble_electrolyte_ratio"] == pytest.approx(ratio, rel=1e-5)
    assert (s["n_bubbles"], s["n_components"], s["membrane_blocked_voxels"]) == \
        (kept, components, blocked)


def test_utile_cuts_follow_the_reference_loop(rng):
    v = _cell((6, 12, 30))
    for z in range(6):  # a wavy membrane with gaps in some rows
        for y in range(12):
            v[z, y] = 0
            x0 = 10 + (y * 7 + z * 3) % 9
            if (y + z) % 5:
                v[z, y, x0:x0 + 2] = 2
    v[rng.random(v.shape) < 0.2] = 1
    first, last, has = oracle.row_extent(v)
    right, _ = sep.utile_cuts(first, last, has)
    expected = oracle.utile_right_half(v)
    xs = np.arange(v.shape[2])
    mine = np.where(xs[None, None, :] >= right[..., None], v, 5)
    np.testing.assert_array_equal(mine, expected)


def test_compat_without_membrane_is_a_clear_error():
    v = np.zeros((8, 10, 12), np.uint8)
    v[2:5, 2:5, 2:5] = 1
    with pytest.raises(InputError, match="no membrane"):
        rf.analyze(v, compat="utile", negative_side="high")


# --- default mode -------------------------------------------------------------------------------

def _default_oracle(classes, negative="high"):
    """R_bv and density of the default definitions, in plain numpy."""
    first, last, has = oracle.row_extent(classes)
    xs = np.arange(classes.shape[2])[None, None, :]
    high = (xs > last[..., None]) & has[..., None]  # rows without membrane: gasket rows here
    low = (xs < first[..., None]) & has[..., None]
    gas = classes == 3
    ny = classes.shape[1]
    ys = np.arange(ny)[None, :, None]
    glow = np.where(gas & (ys < ny // 2), ys, -1).max(axis=1)[:, None, :]
    ghigh = np.where(gas & (ys >= ny // 2), ys, ny).min(axis=1)[:, None, :]
    cell = (ys > glow) & (ys < ghigh) & ~gas
    cleaned = (oracle.z_clean(classes) == 1) & cell
    electrolyte = ((classes == 0) | (classes == 1)) & cell & ~cleaned
    assert not (cell & ~has[..., None]).any()
    neg = high if negative == "high" else low
    b, e = (cleaned & neg).sum(), (electrolyte & neg).sum()
    return {"fraction": b / (b + e), "ratio": b / e, "xy": (cleaned & neg).sum(axis=0),
            "zy_total": ((cleaned | electrolyte) & neg).sum(axis=2)}


@pytest.mark.parametrize("chunks", [(48, 80, 80), (16, 32, 32), (13, 27, 35)])
def test_default_mode_matches_numpy_oracle_for_any_chunking(phantom, chunks):
    import dask.array as da

    classes = da.from_array(phantom.classes, chunks=chunks)
    tree = rf.analyze(classes, spacing=phantom.voxel_size, negative_side="high")
    s = _summary(tree)
    ref = _default_oracle(phantom.classes)
    assert s["bubble_volume_fraction"] == pytest.approx(ref["fraction"], rel=1e-12)
    assert s["bubble_electrolyte_ratio"] == pytest.approx(ref["ratio"], rel=1e-12)
    dens = tree["density"].to_dataset()
    np.testing.assert_array_equal(dens["xy_count"].sel(region="negative").values, ref["xy"])
    frac = dens["zy_fraction"].sel(region="negative").values
    assert np.nanmax(frac) <= 1.0
    assert s["bubble_volume"] == pytest.approx(s["bubble_voxels"] * np.prod(phantom.voxel_size))


def test_results_do_not_depend_on_chunking(phantom):
    import dask.array as da

    trees = [rf.analyze(da.from_array(phantom.classes, chunks=c), spacing=phantom.voxel_size,
                        negative_side="low") for c in [(48, 80, 80), (10, 17, 23)]]
    a, b = (t["bubbles"].to_dataset() for t in trees)
    assert a.sizes["bubble"] > 3
    xr.testing.assert_allclose(a, b, rtol=1e-9)
    assert _summary(trees[0]) == pytest.approx(_summary(trees[1]), nan_ok=True)
    np.testing.assert_array_equal(trees[0]["blockage/blocked_voxels"].values,
                                  trees[1]["blockage/blocked_voxels"].values)


def test_missing_membrane_rows_are_filled_from_neighbours_not_recut():
    v = _cell()
    v[5, 3:9, :] = np.where(v[5, 3:9, :] == 2, 0, v[5, 3:9, :])  # a hole in one slice
    v[5, 6, 20:24] = 1  # a bubble in the hole's row, on the high side
    v[4:7, 6, 20:24] = 1
    first, last, has = oracle.row_extent(v)
    lo, hi = sep.membrane_band(np.where(has, (first + last) * (last - first + 1) / 2, 0),
                               np.where(has, last - first + 1, 0))
    lo, hi = sep.fill_missing(lo, hi, has)
    assert np.all(lo == 13.5) and np.all(hi == 15.5)
    tree = rf.analyze(v, negative_side="high", spacing=1)
    assert int(tree["summary/bubble_voxels"]) == 12


def test_membrane_band_with_a_gap_assigns_caught_bubbles_to_a_side():
    lo, hi = sep.membrane_band(np.array([[10 + 11 + 30 + 31]]), np.array([[4]]))
    assert lo[0, 0] == pytest.approx(18.5) and hi[0, 0] == pytest.approx(22.5)


def test_blockage_contacts_and_areas_with_anisotropic_spacing():
    v = _cell((10, 12, 20), membrane_x=8, thickness=2)  # membrane x = 8, 9
    v[3:6, 4:7, 10:13] = 1  # a 3x3x3 bubble on the high side touching x = 9
    v[2:4, 2:3, 5:8] = 1  # a 2x1x3 bubble on the low side touching x = 8
    sp = (2.0, 3.0, 5.0)
    tree = rf.analyze(v, spacing=sp, negative_side="high")
    s = _summary(tree)
    assert s["membrane_blocked_voxels"] == 9
    assert s["membrane_blocked_voxels_positive"] == 2
    assert s["membrane_blocked_area"] == pytest.approx(9 * sp[0] * sp[1])
    assert s["membrane_blocked_fraction"] == pytest.approx(9 / (10 * 12))
    b = tree["bubbles"].to_dataset()
    high = b.where(b["half"] == 1, drop=True)
    assert high.sizes["bubble"] == 1
    assert float(high["membrane_contact_area"][0]) == pytest.approx(9 * 6.0)
    assert bool(high["touches_membrane"][0])
    walls = list(b["wall"].values)
    # touching: one voxel pitch along x between voxel centres
    assert float(high["wall_distance"][0, walls.index("membrane")]) == pytest.approx(5.0)
    blocked_map = tree["blockage/blocked_voxels"].sel(half="negative").values
    assert blocked_map.sum() == 9 and blocked_map[3:6, 4:7].min() == 1


def test_wall_distances_of_a_ball_near_the_membrane():
    v = _cell((30, 30, 40), membrane_x=10, thickness=2)  # membrane x = 10, 11
    zz, yy, xx = np.mgrid[:30, :30, :40]
    v[(zz - 15) ** 2 + (yy - 15) ** 2 + (xx - 25) ** 2 <= 16] = 1  # radius 4, x 21..29
    cfg = rf.load_config(overrides={"analyze.clean_z_isolated": False})  # keep the ball's tips
    tree = rf.analyze(v, spacing=(1, 1, 2), negative_side="high", config=cfg)
    b = tree["bubbles"].to_dataset()
    walls = list(b["wall"].values)
    assert float(b["wall_distance"][0, walls.index("membrane")]) == pytest.approx((21 - 11) * 2)
    assert float(b["distance_membrane_centroid"][0]) == pytest.approx((25 - 11) * 2)
    assert float(b["wall_distance"][0, walls.index("x+")]) == pytest.approx((40 - 29) * 2)
    names = b["nearest_wall"].attrs["flag_meanings"].split()
    assert names[int(b["nearest_wall"][0])] == "z+"  # z 11..19 of 30: 11 voxels (ties y+)
    assert float(b["nearest_wall_distance"][0]) == pytest.approx(11.0)
    assert np.isnan(b["wall_distance"][0, walls.index("gasket")])


@pytest.mark.parametrize("chunks", [(48, 80, 80), (13, 80, 80), (13, 27, 35)])
def test_wall_distances_equal_brute_force(phantom, chunks, tmp_path):
    """Surface distances = min over the bubble's voxels of scipy's EDT of the wall; centroid
    distances = nearest wall voxel centre; anisotropic, chunkings that do not divide. Whole
    planes: measured in the walls' pass; other chunkings: in a pass of their own."""
    import dask.array as da
    from scipy import ndimage
    from scipy.spatial import cKDTree

    spacing = (3.0, 1.0, 0.7)
    cfg = rf.load_config(overrides={"analyze.min_volume_voxels": 1}, environ={})
    tree = rf.analyze(da.from_array(phantom.classes, chunks=chunks), spacing=spacing,
                      negative_side="high", config=cfg, out=tmp_path)
    b = tree["bubbles"].to_dataset()
    labels = rf.open_volume(tmp_path / "bubble_labels.zarr").values
    ids = b["bubble"].values.astype(np.int64)
    assert len(ids) > 3
    walls = list(b["wall"].values)
    for name, cls in (("membrane", 2), ("gasket", 3)):
        wall = phantom.classes == cls
        field = ndimage.distance_transform_edt(~wall, sampling=spacing)
        expected = ndimage.minimum(field, labels, index=ids)
        np.testing.assert_allclose(b["wall_distance"].values[:, walls.index(name)], expected,
                                   rtol=1e-12)
        kd = cKDTree(np.argwhere(wall) * np.asarray(spacing))
        np.testing.assert_allclose(b[f"distance_{name}_centroid"].values,
                                   kd.query(b["centroid"].values)[0], rtol=1e-12)


# --- bad input and edge cases ----------------------------------------------------------------

def test_no_membrane_in_default_mode_warns_and_gives_nan():
    v = np.zeros((8, 10, 12), np.uint8)
    v[2:5, 2:5, 2:5] = 1
    with pytest.warns(RuntimeWarning, match="no membrane"):
        tree = rf.analyze(v, negative_side="high")
    s = _summary(tree)
    assert np.isnan(s["bubble_volume_fraction"]) and np.isnan(s["membrane_blocked_fraction"])
    assert s["bubble_volume_fraction_cell"] == pytest.approx(27 / v.size)
    assert tree["bubbles"].sizes["bubble"] == 1


def test_unexpected_class_ids_are_named():
    v = _cell()
    v[0, 0, 0] = 7
    with pytest.raises(InputError, match=r"ids \[0, 2, 7\]"):
        rf.analyze(v, negative_side="high")


def test_failed_analysis_leaves_nothing_in_the_output(tmp_path):
    v = _cell()
    v[0, 0, 0] = 7
    with pytest.raises(InputError):
        rf.analyze(v, negative_side="high", out=tmp_path / "out")
    assert not list((tmp_path / "out").iterdir())


def test_membrane_that_is_not_a_sheet_is_rejected():
    v = np.zeros((10, 12, 20), np.uint8)
    v[:, :, 2:18] = 2
    with pytest.raises(InputError, match="not a sheet"):
        rf.analyze(v, negative_side="high")


def test_float_classes_are_rejected():
    with pytest.raises(InputError, match="integer class ids"):
        rf.analyze(np.zeros((4, 4, 4), np.float32), negative_side="high")


def test_zero_bubbles_and_all_bubbles():
    tree = rf.analyze(_cell(), negative_side="high")
    s = _summary(tree)
    assert s["n_bubbles"] == 0 and s["bubble_volume_fraction"] == 0
    assert "sphericity" in tree["bubbles"] and tree["bubbles"].sizes["bubble"] == 0
    v = _cell()
    v[v == 0] = 1
    s = _summary(rf.analyze(v, negative_side="high"))
    assert s["bubble_volume_fraction"] == 1.0 and s["n_bubbles"] == 1


def test_negative_side_warns_when_unset_and_is_validated():
    with pytest.warns(UserWarning, match="negative_side is not set"):
        rf.analyze(_cell())
    with pytest.raises(InputError, match="negative_side"):
        rf.analyze(_cell(), negative_side="left")
    with pytest.raises(InputError, match="compat"):
        rf.analyze(_cell(), negative_side="high", compat="other")


def test_config_sets_negative_side_and_filters():
    cfg = rf.load_config(overrides={"analyze.negative_side": "low",
                                    "analyze.min_volume_voxels": 1})
    v = _cell()
    v[3:5, 4:6, 3:5] = 1  # 8 voxels: below the default 27-voxel minimum
    assert int(rf.analyze(v, negative_side="low")["summary/n_bubbles"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        tree = rf.analyze(v, config=cfg)
    assert tree.attrs["negative_side"] == "low"
    assert int(tree["summary/n_bubbles"]) == 1


# --- outputs -------------------------------------------------------------------------------------

def test_results_written_atomically_with_provenance(phantom, tmp_path):
    tree = rf.analyze(phantom.classes, spacing=phantom.voxel_size, negative_side="high",
                      out=tmp_path, netcdf=True, csv=True, table=True)
    assert not list(tmp_path.glob(".*"))
    back = xr.open_datatree(tmp_path / "results.zarr", engine="zarr", consolidated=False)
    assert set(back.children) == {"summary", "bubbles", "components", "density", "blockage"}
    assert back.attrs["input_checksum"] == tree.attrs["input_checksum"]
    assert back.attrs["input_checksum"].startswith("blake2b:")
    assert float(back["summary/bubble_volume_fraction"]) == \
        float(tree["summary/bubble_volume_fraction"])
    import pandas as pd

    table = pd.read_csv(tmp_path / "bubbles.csv")
    assert set(table["half"]) <= {"negative", "positive", "membrane", "outside"}
    # one table: every labelled component, its kept rows are the results' bubbles
    assert len(table) == int(tree["summary/n_components"])
    kept = table[table["kept"]]
    assert kept["bubble"].tolist() == tree["bubbles"]["bubble"].values.tolist()
    assert set(table.loc[~table["kept"], "removed_by"]) <= {"min_volume", "degenerate"}
    assert (table["removed_by"] == "kept").sum() == len(kept)
    nc = xr.load_dataset(tmp_path / "bubbles.nc")
    np.testing.assert_array_equal(nc["bubble"].values, table["bubble"].values)
    nc_tree = xr.open_datatree(tmp_path / "results.nc", engine="h5netcdf")
    density = nc_tree["density"].to_dataset()
    for name, var in density.data_vars.items():  # compressed, same values as the Zarr store
        assert var.encoding.get("zlib") or var.encoding.get("compression") == "gzip", name
        np.testing.assert_array_equal(var.values, back["density"][name].values)
    with pytest.raises(StoreExistsError, match="overwrite"):
        rf.analyze(phantom.classes, negative_side="high", out=tmp_path)


def test_analyze_reads_a_store_with_its_voxel_size(phantom, tmp_path):
    rf.ingest(phantom.classes, tmp_path / "c.zarr", kind="classes", voxel_size=phantom.voxel_size)
    tree = rf.analyze(str(tmp_path / "c.zarr"), negative_side="high")
    assert tree.attrs["spacing"] == list(phantom.voxel_size)
    assert tree.attrs["input"].endswith("c.zarr")


# --- 4D series, tracking, watershed -------------------------------------------------------------

def _ball(shape, centre, r):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= r * r


def test_split_touching_separates_two_overlapping_balls():
    from redoxflow.analysis import split_touching

    mask = _ball((30, 30, 40), (15, 15, 13), 7) | _ball((30, 30, 40), (15, 15, 26), 7)
    labels, n = split_touching(mask)
    assert n == 2
    assert labels[15, 15, 13] != labels[15, 15, 26]
    assert labels[15, 15, 13] == 1  # raster order of first voxels
    assert ((labels > 0) == mask).all()
    _, n_merged = rf.label(mask)
    assert n_merged == 1


def test_track_events_move_split_merge_birth_death():
    from redoxflow.analysis import track

    shape = (20, 40, 60)
    t0 = np.zeros(shape, np.uint32)
    t1 = np.zeros(shape, np.uint32)
    t0[_ball(shape, (10, 10, 10), 4)] = 1  # moves by one voxel
    t1[_ball(shape, (10, 10, 11), 4)] = 1
    t0[5:15, 25:35, 5:25] = 2  # splits into two halves
    t1[5:15, 25:35, 5:14] = 2
    t1[5:15, 25:35, 16:25] = 3
    t0[5:15, 5:15, 30:38] = 3  # dies
    t1[5:15, 20:30, 45:55] = 4  # is born
    ds = track([t0, t1])
    ev = dict(zip(zip(ds["source"].values.tolist(), ds["target"].values.tolist()),
                  ds["event"].values.tolist()))
    assert ev == {(1, 1): 0, (2, 2): 1, (2, 3): 1}
    change = dict(zip(zip(ds["source"].values.tolist(), ds["target"].values.tolist()),
                      ds["volume_change"].values.tolist()))
    assert change == {(1, 1): 0, (2, 2): 900 - 2000, (2, 3): 900 - 2000}
    assert ds["births"].values.tolist() == [3, 1] and ds["deaths"].values.tolist() == [0, 1]
    assert ds["track_1"].values[0] == ds["track_0"].values[0]
    assert len(set(ds["track_1"].values.tolist())) == 4


def test_series_gives_time_dims_and_tracks(phantom):
    from scipy import ndimage as ndi

    moved = ndi.shift(phantom.classes, (0, 0, 1), order=0, mode="nearest")
    tree = rf.analyze(np.stack([phantom.classes, moved]), spacing=phantom.voxel_size,
                      negative_side="high")
    assert tree["summary"].sizes["time"] == 2
    assert tree["density/xy_count"].dims[0] == "time"
    links = tree["tracks"].to_dataset()
    n0 = int((tree["bubbles/time"] == 0).sum())
    assert links.sizes["link"] >= n0 - 2  # shifting by one voxel keeps nearly every bubble
    assert float(links["iou"].min()) > 0.3


@pytest.mark.realdata
def test_foam_series_watershed_and_tracking(shared_data):
    import tifffile
    from skimage.filters import threshold_otsu

    steps = []
    for f in sorted((shared_data / "foam_4d").glob("Raw_*.tiff"))[:2]:
        a = tifffile.imread(f)
        steps.append((a < threshold_otsu(a)).astype(np.uint8))
    cfg = rf.load_config(overrides={"analyze.split_touching": True,
                                    "analyze.min_volume_voxels": 1})
    with pytest.warns(RuntimeWarning, match="no membrane"):
        tree = rf.analyze(np.stack(steps), spacing=2.75, negative_side="high", config=cfg)
    counts = tree["summary/n_bubbles_cell"].values
    assert (counts > 400).all() and (counts < 600).all()  # about 450 bubbles per step
    links = tree["tracks"].to_dataset()
    assert (links["event"] == 0).sum() > 0.8 * counts[1]


def test_cli_analyze(phantom, tmp_path):
    from click.testing import CliRunner

    from redoxflow.cli import main

    rf.ingest(phantom.classes, tmp_path / "c.zarr", kind="classes", voxel_size=10)
    res = CliRunner().invoke(main, ["analyze", str(tmp_path / "c.zarr"), str(tmp_path / "out"),
                                    "--negative-side", "high", "--csv"])
    assert res.exit_code == 0, res.output
    assert "bubble_volume_fraction" in res.output
    assert (tmp_path / "out" / "results.zarr").is_dir()
    assert (tmp_path / "out" / "bubbles.csv").is_file()
    again = CliRunner().invoke(main, ["analyze", str(tmp_path / "c.zarr"), str(tmp_path / "out"),
                                      "--negative-side", "high"])
    assert again.exit_code == 2 and "overwrite" in again.output
    assert "Traceback" not in again.output
    bad = CliRunner().invoke(main, ["analyze", str(tmp_path / "nope.zarr"), str(tmp_path / "o2")])
    assert bad.exit_code == 2 and "does not exist" in bad.output
    assert not (tmp_path / "o2" / "results.zarr").exists()


def test_halfcell_map_codes(phantom):
    from redoxflow.analysis import halfcell_map

    hc = halfcell_map(phantom.classes, negative_side="high").values
    first, last, has = oracle.row_extent(phantom.classes)
    z, y = np.argwhere(has & (last - first < 20))[0]
    row = hc[z, y]
    assert (row[:first[z, y]] == 3).all() and (row[last[z, y] + 1:] == 1).all()
    assert (row[first[z, y]:last[z, y] + 1] == 2).all()
    assert (hc[phantom.classes == 3] == 0).all()
    flipped = halfcell_map(phantom.classes, negative_side="low").values
    assert ((hc == 1) == (flipped == 3)).all()
    with pytest.raises(InputError, match="no membrane"):
        halfcell_map(np.zeros((4, 5, 6), np.uint8))


def test_input_checksum_ignores_chunking(phantom):
    import dask.array as da

    from redoxflow.common.provenance import volume_checksum as _checksum

    a = _checksum(da.from_array(phantom.classes, chunks=(7, 13, 80))).compute()
    b = _checksum(da.from_array(phantom.classes, chunks=(48, 80, 80))).compute()
    changed = phantom.classes.copy()
    changed[5, 5, 5] ^= 1
    assert a == b != _checksum(da.from_array(changed, chunks=(48, 80, 80))).compute()


def test_centroid_inside_a_wall_gets_a_finite_distance():
    """A bubble hugging a thick wall can have its centroid inside the wall: the bound from
    the distance transform (0 there) must not hide the wall's boundary voxels."""
    import dask.array as da
    from scipy.spatial import cKDTree

    from redoxflow.analysis.blockage import block_walls
    from redoxflow.analysis.walls import centroid_voxels, default_proximity, wall_contacts

    shape = (3, 14, 30)
    wall = np.zeros(shape, bool)
    wall[:, :10, 10:20] = True                      # a thick block of wall
    labels = np.zeros(shape, np.uint32)
    labels[1, 0:12, 8] = labels[1, 0:12, 21] = 1    # a U around it, closed beyond y = 10
    labels[1, 11, 8:22] = 1
    lab = da.from_array(labels, chunks=(3, 7, 15))
    table = rf.regionprops(lab, spacing=1.0)
    walls = wall_contacts({"membrane": da.from_array(wall, chunks=(3, 7, 15)), "gasket": None},
                          lab, np.array([0, 1], np.uint8), (1.0, 1.0, 1.0),
                          points=centroid_voxels(table, shape))
    centroid = table["centroid"].values[0]
    assert wall[tuple(np.rint(centroid).astype(int))]  # the centroid lies inside the wall
    _, dist = default_proximity(table, walls["distances"], (walls["membrane"][1], None),
                                (1.0, 1.0, 1.0), shape)
    [(_, edge)] = block_walls(np.pad(wall, 1), np.zeros((5, 16, 32), np.uint32), (0, 0, 0),
                              np.zeros(1, np.uint8), (1.0, 1.0, 1.0), 1)
    assert dist[0, 0] == pytest.approx(cKDTree(edge).query(centroid)[0])


def test_analysis_never_replaces_bubble_labels_without_overwrite(tmp_path):
    v = _cell((8, 16, 16), membrane_x=8, thickness=1)
    v[2:5, 4:7, 10:13] = 1
    (tmp_path / "bubble_labels.zarr").mkdir()
    (tmp_path / "bubble_labels.zarr" / "mine.txt").write_text("user data")
    with pytest.raises(StoreExistsError, match="bubble_labels.zarr"):
        rf.analyze(v, negative_side="high", out=tmp_path)
    with pytest.raises(StoreExistsError, match="not a Zarr store"):
        rf.analyze(v, negative_side="high", out=tmp_path, overwrite=True)
    assert (tmp_path / "bubble_labels.zarr" / "mine.txt").read_text() == "user data"
    assert not (tmp_path / "results.zarr").exists()
