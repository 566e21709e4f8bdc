"""redoxflow.microstructure: analytic cases, brute-force references, chunked == in-memory."""

from __future__ import annotations

import itertools

import dask.array as da
import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from redoxflow.errors import InputError
from redoxflow.microstructure import (
    constrictivity,
    distance_transform,
    fraction_profile,
    interfacial_area,
    intrusion,
    local_thickness,
    microstructure,
    percolation,
    pore_size_distribution,
    rev,
    specific_surface_area,
    triple_phase_boundary,
    two_point_correlation,
    volume_fractions,
)

CHUNKINGS = [(7, 9, 5), (3, 22, 10), (11, 4, 19)]  # none divides (20, 22, 19) everywhere


def chunked(x, chunks):
    return da.from_array(x, chunks=chunks)


@pytest.fixture(scope="module")
def three_phase():
    rng = np.random.default_rng(7)
    field = ndimage.gaussian_filter(rng.random((20, 22, 19)), 1.2)
    return np.digitize(field, np.quantile(field, [0.4, 0.75])).astype(np.uint8) * 85


@pytest.fixture(scope="module")
def pore():
    rng = np.random.default_rng(0)
    return ndimage.gaussian_filter(rng.random((20, 22, 19)), 1.5) > 0.49


def ball(shape, centre, radius):
    grid = np.indices(shape)
    return ((grid - np.reshape(centre, (3, 1, 1, 1))) ** 2).sum(0) < radius ** 2


# ---------------------------------------------------------------- fractions
def test_volume_fractions_and_profile(three_phase):
    ph = {"pore": 0, "NMC": 85, "CBD": 170}
    got = volume_fractions(three_phase, phases=ph)
    assert got.phase.values.tolist() == list(ph)
    assert got.values.tolist() == [float((three_phase == v).mean()) for v in ph.values()]
    prof = fraction_profile(three_phase, "x", phases=ph, spacing=(1, 1, 2))
    assert np.allclose(prof.values, [(three_phase == v).mean(axis=(0, 1)) for v in ph.values()])
    assert prof.depth.values[:2].tolist() == [1.0, 3.0]
    for ch in CHUNKINGS:
        assert got.equals(volume_fractions(chunked(three_phase, ch), phases=ph))
        assert np.array_equal(prof.values, fraction_profile(
            chunked(three_phase, ch), "x", phases=ph, spacing=(1, 1, 2)).values)


def test_xarray_input_carries_its_voxel_size(three_phase):
    arr = xr.DataArray(three_phase, dims=("z", "y", "x"), attrs={"voxel_size": (2.0, 1.0, 1.0)})
    assert fraction_profile(arr, "z", phases=[0]).depth.values[:2].tolist() == [1.0, 3.0]
    ssa = specific_surface_area(arr, method="face_counting")
    assert np.allclose(ssa, specific_surface_area(three_phase, spacing=(2, 1, 1),
                                                  method="face_counting"))


def test_fractions_per_time_step(three_phase):
    series = np.stack([three_phase, np.zeros_like(three_phase)])
    got = volume_fractions(series, phases="pore=0,NMC=85")
    assert got.dims == ("t", "phase")
    assert got.sel(t=1).values.tolist() == [1.0, 0.0]
    assert fraction_profile(series, "z", phases=[0]).dims == ("t", "phase", "depth")


# ---------------------------------------------------------------- surfaces
def face_reference(vol, values, spacing):
    """Brute force: every pair of neighbouring voxels along each axis."""
    area = {}
    for axis in range(3):
        face = np.prod([spacing[d] for d in range(3) if d != axis])
        a = np.moveaxis(vol, axis, 0)
        for p, q in zip(a[:-1].ravel(), a[1:].ravel()):
            if p != q:
                key = tuple(sorted((int(p), int(q))))
                area[key] = area.get(key, 0.0) + face
    return area


def test_face_counting_exact_on_a_cube():
    vol = np.zeros((12, 13, 14), np.uint8)
    vol[2:7, 3:9, 4:11] = 1  # 5 x 6 x 7 voxels
    sp = (0.5, 2.0, 1.0)
    got = specific_surface_area(vol, phases={"solid": 1}, spacing=sp, method="face_counting")
    expected = 2 * (6 * 7 * sp[1] * sp[2] + 5 * 7 * sp[0] * sp[2] + 5 * 6 * sp[0] * sp[1])
    assert float(got[0]) == pytest.approx(expected / (vol.size * np.prod(sp)), rel=1e-12)
    assert got.attrs["units"] == "um-1" and got.attrs["long_name"]


def test_face_counting_matches_brute_force_on_every_chunking(three_phase):
    sp = (1.0, 0.5, 2.0)
    ref = face_reference(three_phase, [0, 85, 170], sp)
    total = three_phase.size * np.prod(sp)
    got = interfacial_area(three_phase, spacing=sp, method="face_counting")
    assert got.pair.values.tolist() == ["0-85", "0-170", "85-170"]
    assert np.allclose(got.values, [ref.get(k, 0) / total for k in [(0, 85), (0, 170),
                                                                       (85, 170)]])
    ssa = specific_surface_area(three_phase, spacing=sp, method="face_counting")
    assert np.allclose(ssa.values, [sum(v for k, v in ref.items() if p in k) / total
                                    for p in (0, 85, 170)])
    for ch in CHUNKINGS:
        c = chunked(three_phase, ch)
        assert np.allclose(interfacial_area(c, spacing=sp, method="face_counting").values,
                           got.values, rtol=1e-12)
        assert np.allclose(specific_surface_area(c, spacing=sp, method="face_counting"),
                           ssa.values, rtol=1e-12)


def test_marching_cubes_sphere_within_one_percent_and_chunked():
    sphere = ball((50, 50, 50), (24.5, 24.3, 24.7), 20).astype(np.uint8)
    exact = 4 * np.pi * 20 ** 2 / sphere.size
    got = float(specific_surface_area(sphere, phases={"s": 1})[0])
    assert abs(got / exact - 1) < 0.01
    binary = float(specific_surface_area(sphere, phases={"s": 1}, sigma=0)[0])
    faces = float(specific_surface_area(sphere, phases={"s": 1}, method="face_counting")[0])
    assert 1.05 < binary / exact < 1.12 and 1.4 < faces / exact < 1.6
    for ch in [(17, 23, 50), (7, 50, 13)]:
        assert float(specific_surface_area(chunked(sphere, ch), phases={"s": 1})[0]) == \
            pytest.approx(got, rel=1e-6)


def test_marching_cubes_matches_skimage_on_the_whole_volume(three_phase):
    from skimage.measure import marching_cubes, mesh_surface_area

    sp = (1.0, 0.5, 2.0)
    field = ndimage.gaussian_filter((three_phase == 85).astype(np.float32), 0.8, truncate=4.0)
    verts, faces, _, _ = marching_cubes(field, 0.5, spacing=sp)
    expected = mesh_surface_area(verts, faces) / (three_phase.size * np.prod(sp))
    got = specific_surface_area(three_phase, phases={"NMC": 85}, spacing=sp)
    assert float(got[0]) == pytest.approx(expected, rel=1e-6)
    pairs = interfacial_area(three_phase, spacing=sp)
    ssa = specific_surface_area(three_phase, spacing=sp)
    # every interface is counted once per side
    assert np.allclose([pairs.values[0] + pairs.values[1], pairs.values[0] + pairs.values[2]],
                       ssa.values[:2], rtol=0.05)
    for ch in CHUNKINGS:
        assert np.allclose(interfacial_area(chunked(three_phase, ch), spacing=sp).values,
                           pairs.values, rtol=1e-6)


def test_marching_cubes_pairs_with_and_without_a_complete_phase_set(three_phase):
    short = interfacial_area(three_phase)  # the three phases fill the volume
    unions = interfacial_area(three_phase, phases=[0, 85, 170, 255])  # explicit unions
    # the complement is the same iso-surface; only ambiguous cells triangulate differently
    assert np.allclose(unions.values[[0, 1, 3]], short.values, rtol=5e-3)
    assert np.allclose(unions.values[[2, 4, 5]], 0)


def tpb_reference(vol, values):
    count = 0
    for axis in range(3):
        a = np.moveaxis(vol, axis, 2)
        for i, j in itertools.product(range(a.shape[0] - 1), range(a.shape[1] - 1)):
            quad = a[i:i + 2, j:j + 2, :].reshape(4, -1)
            count += sum(len(set(quad[:, k]) & set(values)) >= 3 for k in range(quad.shape[1]))
    return count


def test_triple_phase_boundary_brute_force(three_phase):
    small = three_phase[:8, :9, :7]
    got = triple_phase_boundary(small, spacing=2.0)
    assert got.attrs["edges"] == tpb_reference(small, {0, 85, 170})
    assert float(got) == pytest.approx(got.attrs["edges"] * 2.0 / (small.size * 8.0))
    full = triple_phase_boundary(three_phase)
    for ch in CHUNKINGS:
        assert triple_phase_boundary(chunked(three_phase, ch)).attrs["edges"] == \
            full.attrs["edges"]


# ---------------------------------------------------------------- distances and sizes
def test_distance_transform_equals_scipy(three_phase):
    sp = (2.0, 1.0, 0.5)
    ref = ndimage.distance_transform_edt(three_phase == 0, sampling=sp)
    assert np.allclose(distance_transform(three_phase, phase=0, spacing=sp), ref)
    lazy = distance_transform(chunked(three_phase, (7, 9, 5)), phase=0, spacing=sp)
    assert isinstance(lazy, da.Array) and np.allclose(lazy.compute(), ref)


def thickness_reference(m, spacing):
    """Draw the open ball of every phase voxel; squared radii from scipy's nearest
    background voxel (exact), voxel units for isotropic spacing."""
    iso = len(set(spacing)) == 1
    sp = np.ones(3) if iso else np.array(spacing, float)
    _, ind = ndimage.distance_transform_edt(m, sampling=sp, return_indices=True)
    r2 = (((np.indices(m.shape) - ind) * sp[:, None, None, None]) ** 2).sum(0)
    grid = np.indices(m.shape).reshape(3, -1).T * sp
    out = np.zeros(m.shape)
    for c in np.argwhere(m):
        d2 = ((grid - c * sp) ** 2).sum(1).reshape(m.shape)
        np.maximum(out, np.where(d2 < r2[tuple(c)], np.sqrt(r2[tuple(c)]), 0), out=out)
    return (2 * out * (spacing[0] if iso else 1)).astype(np.float32)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5), (0.642,) * 3])
def test_local_thickness_equals_brute_force_on_every_chunking(pore, spacing):
    ref = thickness_reference(pore, spacing)
    got = local_thickness(pore, spacing=spacing)
    assert got.dtype == np.float32 and np.allclose(got, ref, rtol=1e-6, atol=0)
    for ch in CHUNKINGS + [pore.shape]:
        lazy = local_thickness(chunked(pore, ch), spacing=spacing)
        assert isinstance(lazy, da.Array) and np.array_equal(lazy.compute(), got)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.0, 1.0, 0.5)])
def test_out_of_core_path_equals_brute_force_on_every_chunking(pore, spacing, monkeypatch):
    from redoxflow.microstructure import thickness

    ref = thickness_reference(pore, spacing)
    monkeypatch.setattr(thickness, "IN_MEMORY_BYTES", 0)  # distances never held in memory
    for ch in [(6, 22, 19)] + CHUNKINGS:
        lazy = local_thickness(chunked(pore, ch), spacing=spacing)
        assert np.allclose(lazy.compute(), ref, rtol=1e-6, atol=0)


@pytest.mark.parametrize("workers", [1, 3, 7])
def test_painting_threads_do_not_change_the_result(pore, workers):
    """Each thread paints its own slab of planes: any count gives the brute force."""
    ref = thickness_reference(pore, (1.0, 1.0, 1.0))
    assert np.array_equal(local_thickness(pore, workers=workers), ref)
    anisotropic = thickness_reference(pore, (2.0, 1.0, 0.5))
    got = local_thickness(pore, spacing=(2.0, 1.0, 0.5), workers=workers)
    assert np.allclose(got, anisotropic, rtol=1e-6, atol=0)


def test_one_task_holds_the_volume_only_where_a_worker_can(monkeypatch):
    """On a dask.distributed cluster the whole-volume task gets a fifth of the smallest
    worker's memory limit; without one, IN_MEMORY_BYTES."""
    import distributed

    from redoxflow.microstructure import thickness

    class Client:
        def scheduler_info(self):
            return {"workers": {"a": {"memory_limit": 4 * 10**9},
                                "b": {"memory_limit": 10**9}, "c": {"memory_limit": None}}}

    monkeypatch.setattr(distributed, "get_client", lambda: Client())
    assert thickness._in_memory_bytes() == 10**9 // 5

    def no_client():
        raise ValueError("No clients found")

    monkeypatch.setattr(distributed, "get_client", no_client)
    assert thickness._in_memory_bytes() == thickness.IN_MEMORY_BYTES


def test_a_phase_filling_the_volume_is_refused_in_one_line():
    with pytest.raises(InputError, match="voxels outside the phase") as err:
        local_thickness(np.ones((4, 5, 6), bool))
    assert "\n" not in str(err.value)


def test_local_thickness_sphere_and_slab():
    sphere = ball((31, 31, 31), (15, 15, 15), 9)
    lt = local_thickness(sphere, spacing=0.5)
    assert np.all(lt[sphere] == 9.0) and np.all(lt[~sphere] == 0)  # 2R everywhere
    slab = np.zeros((12, 12, 12), bool)
    slab[:, :, 3:7] = True  # 4 voxels thick
    assert np.all(local_thickness(slab)[slab] == 4.0)
    tube = np.zeros((9, 21, 21), bool)
    tube[:, 3:18, 3:18] = ball((9, 21, 21), (4, 10, 10), 7)[:, 3:18, 3:18]
    assert np.all(local_thickness(tube, workers=3)[tube] <= 14.0)


def test_local_thickness_label_volume_and_integer_radii(three_phase, pore):
    assert np.array_equal(local_thickness(three_phase, phase=85),
                          local_thickness(three_phase == 85))
    integer = local_thickness(pore, radii="integer")
    assert np.all(np.mod(integer, 2) == 0) and np.all(integer <= local_thickness(pore))


def test_integer_radii_reproduce_porespy(pore):
    ps = pytest.importorskip("porespy")
    assert np.array_equal(local_thickness(pore, radii="integer") / 2,
                          ps.filters.local_thickness(pore))
    inlet = np.zeros(pore.shape, bool)
    inlet[:, :, 0] = True
    assert np.array_equal(intrusion(pore, inlet="x-", radii="integer") / 2,
                          ps.filters.porosimetry(pore, inlets=inlet))


def intrusion_reference(m, axis, high):
    """For every distinct radius (descending): seeds whose ball fits, kept where connected
    to the inlet face through seeds (6-connected), their open balls intruded at r."""
    _, ind = ndimage.distance_transform_edt(m, return_indices=True)
    r2 = ((np.indices(m.shape) - ind) ** 2).sum(0)
    out = np.zeros(m.shape)
    grid = np.indices(m.shape).reshape(3, -1).T
    for level in np.unique(r2[m])[::-1]:
        labels, _ = ndimage.label(r2 >= level)
        face = np.take(labels, -1 if high else 0, axis=axis)
        seeds = np.isin(labels, face[face > 0])
        for c in np.argwhere(seeds):
            d2 = ((grid - c) ** 2).sum(1).reshape(m.shape)
            hit = (d2 < level) & (out == 0)
            out[hit] = np.sqrt(level)
    return (2 * out).astype(np.float32)


@pytest.mark.parametrize("inlet", ["x-", "z+"])
def test_intrusion_equals_brute_force(pore, inlet):
    small = pore[:12, :12, :12]
    axis, high = "zyx".index(inlet[0]), inlet[1] == "+"
    ref = intrusion_reference(small, axis, high)
    got = intrusion(small, inlet=inlet)
    assert np.allclose(got, ref, rtol=1e-6, atol=0)
    lazy = intrusion(chunked(small, (5, 7, 12)), inlet=inlet)
    assert np.array_equal(lazy.compute(), got)


def test_intrusion_through_a_bottleneck():
    pore = np.zeros((9, 9, 24), bool)
    pore[1:8, 1:8, :10] = True
    pore[4, 4, 10:14] = True  # a one-voxel throat
    pore[1:8, 1:8, 14:] = True
    d = intrusion(pore, inlet="x-")
    assert d[4, 4, 5] == 8.0 and d[4, 4, 18] == 2.0
    assert intrusion(pore, inlet="x+")[4, 4, 5] == 2.0
    beta = constrictivity(pore, inlet="x-")
    assert 0 < float(beta) < 1 and beta.attrs["r_min"] < beta.attrs["r_max"]
    tube = np.zeros((9, 9, 20), bool)
    tube[1:8, 1:8] = True
    assert float(constrictivity(tube)) == 1.0


def test_pore_size_distribution(pore):
    psd = pore_size_distribution(pore)
    assert psd.values[0] == 1.0 and np.all(np.diff(psd.values) <= 0)
    lt = local_thickness(pore)
    r = psd.attrs["r_max"]
    assert (lt[pore] / 2 >= r).mean() >= 0.5 > (lt[pore] / 2 > r).mean()
    lazy = pore_size_distribution(chunked(pore, (7, 9, 5)))
    assert lazy.equals(psd)


# ---------------------------------------------------------------- connectivity, correlation
def test_percolation_through_channel_and_dead_end():
    m = np.zeros((10, 9, 9), bool)
    m[:, 2, 2] = True  # through-channel along z
    m[:6, 6, 6] = True  # dead end from the bottom
    m[3:5, 6, 2] = True  # isolated
    got = percolation(m, "z")
    assert got.values.tolist() == pytest.approx([10 / 18, 6 / 18, 2 / 18])
    assert got.attrs["percolates"]
    assert percolation(m, "x").sel(connection="percolating") == 0
    for ch in CHUNKINGS:
        assert np.array_equal(percolation(chunked(m, ch[:1] + (4, 5)), "z").values,
                              got.values)


def test_two_point_correlation_limits_and_brute_force():
    rng = np.random.default_rng(3)
    m = rng.random((40, 40, 40)) < 0.3
    s2 = two_point_correlation(m, 6, spacing=(1, 1, 0.5))
    phi = m.mean()
    assert np.allclose(s2.sel(lag=0), phi)
    assert np.allclose(s2.sel(lag=6), phi ** 2, atol=0.01)
    assert s2.distance.sel(axis="x", lag=4) == 2.0
    for axis in range(3):
        a = np.moveaxis(m, axis, 0)
        ref = [(a[:-k] & a[k:]).mean() if k else a.mean() for k in range(7)]
        assert np.allclose(s2.isel(axis=axis), ref)
    assert np.allclose(two_point_correlation(chunked(m, (13, 40, 17)), 6).values,
                       two_point_correlation(m, 6).values)


def test_rev_curve(three_phase):
    curve = rev(lambda s: float((s == 0).mean()), three_phase, [4, 10, 30])
    assert curve.values[-1] == pytest.approx((three_phase == 0).mean())


# ---------------------------------------------------------------- the Dataset
def test_microstructure_dataset(three_phase):
    ph = "pore=0,NMC=85,CBD=170"
    ds = microstructure(three_phase, phases=ph, spacing=0.5, r_max=4, axes=("z", "x"))
    assert isinstance(ds, xr.Dataset)
    for name in ds.data_vars:
        assert ds[name].attrs.get("units") and ds[name].attrs.get("long_name"), name
    assert ds.phase.values.tolist() == ["pore", "NMC", "CBD"]
    assert np.all(ds.constrictivity <= 1) and np.all(ds.r_min <= ds.r_max)
    lazy = microstructure(chunked(three_phase, (11, 9, 19)), phases=ph, spacing=0.5, r_max=4,
                          axes=("z", "x"))
    assert ds.percolation.dims == ("phase", "axis", "connection")
    xr.testing.assert_allclose(lazy, ds, rtol=1e-6)


@pytest.mark.parametrize("call, message", [
    (lambda v: volume_fractions(v.astype(float)), "dtype float64"),
    (lambda v: volume_fractions(v, phases="pore:0"), "malformed"),
    (lambda v: volume_fractions(v, phases={"pore": 300}), "does not fit"),
    (lambda v: volume_fractions(v, phases={"a": 0, "b": 0}), "repeats a value"),
    (lambda v: specific_surface_area(v, method="gradient"), "method='gradient'"),
    (lambda v: fraction_profile(v, "w"), "axis='w'"),
    (lambda v: intrusion(v, phase=0, inlet="left"), "inlet='left'"),
    (lambda v: local_thickness(v, phase=0, radii="binned"), "radii='binned'"),
    (lambda v: local_thickness(v.astype(np.float32)), "boolean mask"),
    (lambda v: percolation(v[0], "z"), "2 dimensions"),
    (lambda v: microstructure(v, metrics=("pores",)), "unknown"),
    (lambda v: specific_surface_area(v, spacing=-1), "positive"),
])
def test_bad_input_is_one_line(three_phase, call, message):
    with pytest.raises(InputError) as info:
        call(three_phase)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---------------------------------------------------------------- real data
@pytest.mark.realdata
def test_real_electrode_matches_taufactor_published_figures(shared_data):
    tifffile = pytest.importorskip("tifffile")
    vol = tifffile.imread(shared_data / "electrode_3phase" / "electrode.tiff")
    ssa = specific_surface_area(da.from_array(vol, chunks=(100, 256, 90)),
                                phases="pore=0,NMC=85,CBD=170", method="face_counting")
    assert np.allclose(ssa.values, [0.30684, 0.14610, 0.34223], atol=5e-6)
