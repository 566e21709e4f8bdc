"""The tracker scored against the 4D phantom's true identities, controls, and out-of-core
inputs (:func:`redoxflow.track`, :func:`redoxflow.make_phantom_series`)."""

from __future__ import annotations

import numpy as np
import pytest

import redoxflow as rf
from redoxflow.analysis.tracking import EVENTS, estimate_drift, track
from redoxflow.errors import InputError
from redoxflow.synthetic import make_phantom_series


def score(ds, series) -> dict:
    """Continuations kept (same track id), false links, merges and splits found."""
    kept = total = false = links = 0
    merges = [0, 0]
    splits = [0, 0]
    for t in range(1, len(series.identity)):
        truth = series.true_links(t)
        sel = (ds["time"].values == t) & (ds["gap"].values == 0)
        pairs = dict(zip(zip(ds["source"].values[sel].tolist(),
                             ds["target"].values[sel].tolist()),
                         ds["event"].values[sel].tolist()))
        links += len(pairs)
        before = dict(zip(ds[f"label_{t - 1}"].values.tolist(),
                          ds[f"track_{t - 1}"].values.tolist()))
        after = dict(zip(ds[f"label_{t}"].values.tolist(), ds[f"track_{t}"].values.tolist()))
        for a, b in truth["continue"]:
            total += 1
            kept += before[a] == after[b]
        allowed = truth["continue"] | truth["merge"] | truth["split"]
        false += sum(p not in allowed for p in pairs)
        for kind, flag, counter in (("merge", 2, merges), ("split", 1, splits)):
            groups: dict[int, list[tuple[int, int]]] = {}
            for a, b in truth[kind]:
                groups.setdefault(b if kind == "merge" else a, []).append((a, b))
            for members in groups.values():
                counter[1] += 1
                counter[0] += all(pairs.get(p, 0) & flag for p in members)
    return {"kept": kept / max(total, 1), "total": total, "false": false, "links": links,
            "merges": tuple(merges), "splits": tuple(splits)}


@pytest.mark.parametrize("seed", [0, 1])
def test_slow_drift_keeps_every_continuation_and_finds_events(seed):
    s = make_phantom_series(speed=1.0, seed=seed)
    sc = score(track(list(s.labels)), s)
    assert sc["total"] > 200
    assert sc["kept"] >= 0.99
    assert sc["false"] <= 0.01 * sc["links"]
    assert sc["merges"][0] == sc["merges"][1] > 0  # merges reported as merges
    assert sc["splits"][0] >= sc["splits"][1] - 1 and sc["splits"][1] > 0


@pytest.mark.parametrize("seed", [0, 1])
def test_motion_larger_than_a_diameter_is_followed(seed):
    s = make_phantom_series(speed=13.0, seed=seed)
    assert s.velocity[2] > 1.4 * s.mean_diameter
    ds = track(s.labels)  # one (t, z, y, x) array
    sc = score(ds, s)
    assert sc["kept"] >= 0.95
    assert sc["false"] <= 0.02 * sc["links"]
    assert sc["merges"][0] >= sc["merges"][1] - 1 and sc["splits"][0] >= sc["splits"][1] - 1
    assert abs(ds["drift"].values[1, 2] - 13.0) < 0.5  # phase correlation found the drift


def test_overlap_alone_would_lose_fast_bubbles():
    """What motivates prediction: few true continuations of fast bubbles overlap at all."""
    s = make_phantom_series(speed=13.0, seed=0)
    rows = rf.analysis.tracking.overlaps(s.labels[0], s.labels[1])
    truth = s.true_links(1)["continue"]
    overlapping = {(int(a), int(b)) for a, b, _ in rows.tolist()}
    assert len(truth & overlapping) < 0.2 * len(truth)


def test_unrelated_volumes_give_almost_no_links():
    a = make_phantom_series(seed=0, n_steps=1).labels[0]
    b = make_phantom_series(seed=7, n_steps=1).labels[0]
    ds = track([a, b])
    n = int(ds["n_bubbles"].values[0])
    assert len(np.unique(ds["source"].values)) <= 0.1 * n
    assert ds["births"].values[1] >= 0.9 * ds["n_bubbles"].values[1]
    assert ds["deaths"].values[1] >= 0.9 * n


def test_gap_closing_over_one_missed_step():
    s = make_phantom_series(seed=1, n_dropouts=4)
    ds = track(list(s.labels))
    for t in range(2, len(s.identity)):
        sel = (ds["gap"].values == 1) & (ds["time"].values == t)
        found = set(zip(ds["source"].values[sel].tolist(), ds["target"].values[sel].tolist()))
        assert found == s.true_gaps(t)
        assert (ds["source_time"].values[sel] == t - 2).all()
    assert ds["gaps"].values.sum() == 4
    off = track(list(s.labels), gap_closing=False)
    assert off["gaps"].values.sum() == 0 and (off["gap"].values == 0).all()
    assert off["deaths"].values.sum() == ds["deaths"].values.sum() + 4


def test_output_contract():
    s = make_phantom_series((24, 32, 48), n_steps=3, seed=2)
    ds = track(list(s.labels), spacing=2.0)
    for t in range(3):
        assert ds[f"label_{t}"].dims == ds[f"track_{t}"].dims == (f"bubble_{t}",)
        assert ds[f"label_{t}"].values.tolist() == list(range(1, len(s.identity[t]) + 1))
        assert ds[f"centroid_{t}"].shape == (len(s.identity[t]), 3)
    for name in ("time", "source", "target", "event", "volume_change", "shared_voxels", "iou",
                 "source_time", "gap", "primary", "distance", "residual", "cost"):
        assert ds[name].dims == ("link",)
    assert ds["event"].attrs["flag_meanings"] == " ".join(EVENTS)
    # every bubble without a link into it is a birth, without a link out of it a death
    for t in range(1, 3):
        sel = ds["time"].values == t
        direct = sel & (ds["gap"].values == 0)
        n = ds["n_bubbles"].values
        assert ds["births"].values[t] == n[t] - len(np.unique(ds["target"].values[sel]))
        assert ds["deaths"].values[t] >= n[t - 1] - len(np.unique(ds["source"].values[direct]))
    # a track id continues only along primary links
    prim = ds["primary"].values
    assert prim.sum() <= sum(len(s.identity[t]) for t in range(1, 3))
    assert ds.attrs["spacing"] == [2.0, 2.0, 2.0]
    np.testing.assert_allclose(ds["drift"].values[0], 0)


def test_top_level_api():
    assert rf.track is track
    assert rf.make_phantom_series is make_phantom_series


def test_series_from_stores_two_steps_at_a_time(tmp_path):
    s = make_phantom_series((24, 32, 48), n_steps=3, speed=4.0, seed=3)
    paths = []
    for t, lab in enumerate(s.labels):
        rf.ingest(lab, tmp_path / f"t{t}.zarr", kind="labels", voxel_size=2.0)
        paths.append(str(tmp_path / f"t{t}.zarr"))
    from_stores = track(paths)
    in_memory = track(list(s.labels), spacing=2.0)
    for name in ("source", "target", "event", "gap"):
        np.testing.assert_array_equal(from_stores[name].values, in_memory[name].values)
    for t in range(3):
        np.testing.assert_array_equal(from_stores[f"track_{t}"].values,
                                      in_memory[f"track_{t}"].values)
    assert from_stores.attrs["spacing"] == [2.0, 2.0, 2.0]  # read from the stores


def test_dask_series_is_read_lazily():
    import dask.array as da

    s = make_phantom_series((24, 32, 48), n_steps=3, seed=4)
    lazy = da.from_array(s.labels, chunks=(1, 10, 17, 20))  # chunks that do not divide
    a, b = track(lazy), track(s.labels)
    np.testing.assert_array_equal(a["target"].values, b["target"].values)
    np.testing.assert_array_equal(a["track_2"].values, b["track_2"].values)


def test_drift_by_phase_correlation_with_anisotropic_spacing():
    s = make_phantom_series((24, 32, 64), n_steps=2, speed=6.0, seed=5)
    drift = estimate_drift(s.labels[0], s.labels[1], spacing=(2.0, 1.0, 0.5))
    np.testing.assert_allclose(drift, [0, 0, 3.0], atol=0.3)


def test_switches_and_errors():
    s = make_phantom_series((24, 32, 48), n_steps=2, seed=6)
    plain = track(list(s.labels), merges_splits=False, drift_correction=False)
    assert (plain["event"].values == 0).all()
    assert plain.attrs["drift_correction"] == 0
    with pytest.raises(InputError, match="max_volume_ratio"):
        track(list(s.labels), max_volume_ratio=0.9)
    with pytest.raises(InputError, match="same field of view"):
        track([s.labels[0], s.labels[1][:, :, :40]])
    with pytest.raises(InputError, match="expected 4"):
        track(s.labels[0])
    with pytest.raises(InputError, match="dtype"):
        track([s.labels[0].astype(float)] * 2)
    capped = track(list(s.labels), max_displacement=1e-3)  # nothing can move: no links
    assert capped.sizes["link"] <= plain.sizes["link"]


def test_phantom_series_ground_truth_is_exact():
    s = make_phantom_series(seed=8, n_dropouts=2)
    again = make_phantom_series(seed=8, n_dropouts=2)
    np.testing.assert_array_equal(s.labels, again.labels)
    for t, ids in enumerate(s.identity):
        assert int(s.labels[t].max()) == len(ids) == len(set(ids.tolist()))
        # ids in the raster order of first voxels, as scipy.ndimage.label numbers them
        flat = s.labels[t].ravel()
        present, first = np.unique(flat, return_index=True)
        assert (np.diff(first[present > 0]) > 0).all()
    kinds = {e[1] for e in s.events}
    assert kinds == {"merge", "split", "nucleation", "dropout"}
    for t, kind, before, after in s.events:
        if kind == "merge":  # the parents vanish and the merged bubble appears at t
            assert set(before) <= set(s.identity[t - 1].tolist())
            assert not set(before) & set(s.identity[t].tolist())
            assert set(after) <= set(s.identity[t].tolist())
    with pytest.raises(InputError, match="at least 16"):
        make_phantom_series((8, 32, 32))


def test_one_4d_store(tmp_path):
    s = make_phantom_series((24, 32, 48), n_steps=3, seed=3)
    rf.ingest(s.labels, tmp_path / "series.zarr", kind="labels", voxel_size=2.0)
    ds = track(str(tmp_path / "series.zarr"))  # (t, z, y, x): one step read at a time
    ref = track(s.labels, spacing=2.0)
    np.testing.assert_array_equal(ds["target"].values, ref["target"].values)
    np.testing.assert_array_equal(ds["track_2"].values, ref["track_2"].values)


@pytest.mark.realdata
@pytest.mark.slow
def test_foam_series_successor_and_mirrored_control(shared_data):
    import tifffile
    from skimage.filters import threshold_otsu

    from redoxflow.analysis import split_touching

    labels = []
    for f in sorted((shared_data / "foam_4d").glob("Raw_*.tiff"))[:3]:
        raw = tifffile.imread(f)
        labels.append(split_touching(raw < threshold_otsu(raw))[0])
    ds = track(labels, spacing=2.75)
    n = ds["n_bubbles"].values
    assert (ds["one_to_one"].values[1:] >= 0.9 * n[:-1]).all()  # real successors
    mirrored = np.ascontiguousarray(labels[0][::-1, ::-1, ::-1])  # an unrelated foam
    control = track([labels[0], mirrored], spacing=2.75)
    assert len(np.unique(control["source"].values)) <= 0.1 * n[0]


def test_track_table_feeds_the_tracks_plot():
    from redoxflow.analysis.tracking import track_table

    s = make_phantom_series((24, 32, 48), n_steps=3, seed=0)
    ds = track(s.labels)
    tab = track_table(ds)
    assert tab.sizes["bubble"] == sum(len(i) for i in s.identity)
    assert tab["centroid"].shape == (tab.sizes["bubble"], 3)
    np.testing.assert_array_equal(tab["track"].values[tab["time"].values == 2],
                                  ds["track_2"].values)
