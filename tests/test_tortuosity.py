"""Tortuosity factor and geodesic tortuosity: validation cases, references, inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from redoxflow.errors import InputError, RedoxflowError
from redoxflow.microstructure.tortuosity import tortuosity
from tests.gpu_standin import cupy_standin  # noqa: F401 - fixture


def blobs(shape, porosity, sigma, seed):
    """A random two-phase volume (thresholded smoothed noise)."""
    rng = np.random.default_rng(seed)
    field = ndi.gaussian_filter(rng.random(shape), sigma, mode="wrap")
    return field > np.quantile(field, 1 - porosity)


def reference_tau(mask, axis, spacing, periodic=(False, False)):
    """Tortuosity factor from an independently assembled sparse system (scipy spsolve).

    Finite volumes on the voxels of the components touching both faces: conductance
    area / distance between face neighbours, 2 area / h to the fixed faces (c = 1, 0).
    """
    m = np.moveaxis(mask, axis, 0)
    h = [spacing[axis]] + [spacing[a] for a in range(3) if a != axis]
    lab, _ = ndi.label(m)  # 6-connected
    if periodic[0] or periodic[1]:  # join labels across periodic sides (small volumes)
        changed = True
        while changed:
            changed = False
            for ax in (1, 2):
                if not periodic[ax - 1]:
                    continue
                a = np.take(lab, 0, axis=ax)
                b = np.take(lab, -1, axis=ax)
                for u, v in zip(a.ravel(), b.ravel()):
                    if u and v and u != v:
                        lab[lab == max(u, v)] = min(u, v)
                        changed = True
    keep = np.intersect1d(lab[0][lab[0] > 0], lab[-1][lab[-1] > 0])
    act = np.isin(lab, keep) & m
    idx = -np.ones(m.shape, int)
    idx[act] = np.arange(act.sum())
    n = int(act.sum())
    rows, cols, vals = [], [], []
    b = np.zeros(n)
    diag = np.zeros(n)
    shape = m.shape
    for a in range(3):
        g = h[0] * h[1] * h[2] / h[a] ** 2
        for p in zip(*np.nonzero(act)):
            q = list(p)
            q[a] += 1
            if q[a] == shape[a]:
                if a == 0 or not periodic[a - 1] or shape[a] == 1:
                    continue
                q[a] = 0
            q = tuple(q)
            if act[q]:
                i, j = idx[p], idx[q]
                rows += [i, j]
                cols += [j, i]
                vals += [-g, -g]
                diag[i] += g
                diag[j] += g
    g0 = 2 * h[1] * h[2] / h[0]
    for p in zip(*np.nonzero(act[0])):
        diag[idx[(0,) + p]] += g0
        b[idx[(0,) + p]] += g0
    for p in zip(*np.nonzero(act[-1])):
        diag[idx[(shape[0] - 1,) + p]] += g0
    a_mat = sp.csr_matrix((vals + list(diag), (rows + list(range(n)), cols + list(range(n)))),
                          shape=(n, n))
    c = spsolve(a_mat, b)
    flux = float(sum(g0 * (1 - c[idx[(0,) + p]]) for p in zip(*np.nonzero(act[0]))))
    area = shape[1] * h[1] * shape[2] * h[2]
    deff = flux * shape[0] * h[0] / area
    return float(m.mean()) / deff


# --- validation cases ---------------------------------------------------------------------

@pytest.mark.parametrize("axis", [0, 1, 2])
def test_straight_channel_is_one(axis):
    m = np.zeros((12, 10, 9), bool)
    sl = [slice(3, 6), slice(2, 5), slice(4, 6)]
    sl[axis] = slice(None)
    m[tuple(sl)] = True
    ds = tortuosity(m, axis, spacing=(1.0, 0.7, 1.9))
    assert abs(float(ds.tortuosity_factor) - 1) < 1e-4
    assert float(ds.effective_diffusivity) == pytest.approx(float(ds.porosity), rel=1e-4)
    assert float(ds.through_porosity) == float(ds.porosity) == m.mean()
    np.testing.assert_allclose(ds.tortuosity_profile, 1, atol=1e-4)
    np.testing.assert_allclose(ds.flux_profile, 1, atol=1e-5)
    assert bool(ds.converged) and float(ds.flux_balance) <= 1e-6


def test_dead_end_pore_is_infinite():
    m = np.zeros((10, 6, 6), bool)
    m[:6, 2, 2] = True                       # open to the inlet, closed before the outlet
    m[7:, 3, 3] = True                       # open to the outlet only
    ds = tortuosity(m, 0)
    assert math.isinf(float(ds.tortuosity_factor)) and float(ds.tortuosity_factor) > 0
    assert float(ds.effective_diffusivity) == 0.0
    assert float(ds.through_porosity) == 0.0 and float(ds.porosity) == m.mean()
    for name in ("effective_diffusivity", "tortuosity_factor", "porosity", "through_porosity"):
        assert float(ds[name]) >= 0
    assert math.isinf(float(tortuosity(np.zeros((4, 4, 4), bool), 0).tortuosity_factor))


def test_parallel_channels_with_dead_end_spurs_analytic():
    """Straight channels of several sizes carry the flux of their area (D_eff = their volume
    fraction, tortuosity 1); one-layer side spurs hang at one concentration and carry
    nothing, so tau = porosity / channel fraction exactly; across the channels: infinite."""
    m = np.zeros((16, 20, 20), bool)
    m[:, 1:3, 1:3] = True
    m[:, 6:11, 5:8] = True
    m[:, 14, 12:19] = True
    channels = m.mean()
    ds = tortuosity(m, 0, tol=1e-9)
    assert float(ds.tortuosity_factor) == pytest.approx(1.0, abs=1e-6)
    m[5, 3:6, 1] = True                      # spurs: one voxel thick along the axis
    m[11, 11:14, 6] = True
    ds = tortuosity(m, 0, tol=1e-9)
    assert float(ds.through_porosity) == float(ds.porosity) == m.mean()
    assert float(ds.effective_diffusivity) == pytest.approx(channels, rel=1e-6)
    assert float(ds.tortuosity_factor) == pytest.approx(m.mean() / channels, rel=1e-6)
    assert math.isinf(float(tortuosity(m, "y").tortuosity_factor))


def _band(length, width, periodic=False):
    """A 45-degree staircase band (one voxel thick in x) crossing the volume along z."""
    ny = length if periodic else length + width
    z, y = np.meshgrid(np.arange(length), np.arange(ny), indexing="ij")
    d = (y - z) % ny if periodic else y - z
    return ((d >= 0) & (d < width))[:, :, None]


def test_inclined_channel_converges_to_two():
    """A 45-degree channel has tau = 1 / cos^2(45) = 2 in the continuum limit. Voxelised as a
    staircase it is above 2 by two effects that vanish with resolution: a narrow staircase
    (1 voxel: tau = 4, the 6-connected path is sqrt 2 too long) and the ends, where the
    fixed-concentration faces cut the band obliquely (relative size width / length). Doubling
    the width and quadrupling the length (ratio 1:16 -> 1:32 ...) the error falls by more
    than 2x per step, from above (measured 3.86, 2.61, 2.25; 2.10 and 2.036 at the next two
    steps, in the slow test)."""
    taus = [float(tortuosity(_band(32 * 2 ** k, 2 * 2 ** k), 0).tortuosity_factor)
            for k in range(3)]
    errors = [t - 2 for t in taus]
    assert all(e > 0 for e in errors)
    assert errors[1] < errors[0] / 2 and errors[2] < errors[1] / 2
    periodic = float(tortuosity(_band(128, 8, True), 0, periodic=True).tortuosity_factor)
    assert periodic == pytest.approx(taus[2], rel=1e-3)


def test_inclined_channel_fine_resolution():
    tau = float(tortuosity(_band(512, 32), 0).tortuosity_factor)
    assert 2 < tau < 2.05


# --- references ---------------------------------------------------------------------------

@pytest.mark.parametrize("axis,spacing,periodic", [
    (0, (1.0, 1.0, 1.0), (False, False)),
    (1, (2.0, 1.0, 0.5), (False, False)),
    (2, (1.0, 1.5, 0.8), (True, False)),
    (0, (0.5, 1.0, 1.0), (True, True)),
])
def test_matches_sparse_direct_solve(axis, spacing, periodic):
    """Anisotropic voxels and periodic sides against an independent spsolve of the system."""
    m = blobs((14, 13, 12), 0.5, 1.2, seed=axis + 7)
    ds = tortuosity(m, axis, spacing=spacing, periodic=periodic, tol=1e-10)
    assert bool(ds.converged)
    assert float(ds.tortuosity_factor) == pytest.approx(
        reference_tau(m, axis, spacing, periodic), rel=1e-7)


def test_axis_permutation_invariance():
    m = blobs((16, 14, 12), 0.45, 1.3, seed=3)
    spacing = (1.0, 0.6, 1.7)
    base = float(tortuosity(m, "z", spacing=spacing).tortuosity_factor)
    moved = np.transpose(m, (2, 0, 1))       # z becomes the middle axis
    same = float(tortuosity(moved, "y", spacing=(1.7, 1.0, 0.6)).tortuosity_factor)
    assert same == pytest.approx(base, rel=1e-6)


@pytest.mark.parametrize("seed", [0, 1])
def test_agrees_with_porespy(seed):
    """PoreSpy's tortuosity_fd fixes the first and last voxel layers (boundary='voxel') and
    divides the percolating porosity; on the same system the two agree to its solver's
    tolerance (well inside 0.5 %)."""
    ps = pytest.importorskip("porespy")
    pytest.importorskip("openpnm")
    m = blobs((28, 26, 24), 0.5, 1.5, seed)
    for axis in (0, 2):
        theirs = ps.simulations.tortuosity_fd(m, axis=axis).tortuosity
        ds = tortuosity(m, axis, boundary="voxel")
        ours = float(ds.through_porosity / ds.effective_diffusivity)
        assert ours == pytest.approx(theirs, rel=5e-3)


def test_gpu_path_matches_cpu(cupy_standin):  # noqa: F811 - fixture
    m = blobs((20, 18, 16), 0.45, 1.3, seed=5)
    cpu = tortuosity(m, 1, device="cpu", periodic=(False, True), spacing=(1.0, 2.0, 1.0))
    gpu = tortuosity(m, 1, device="gpu", periodic=(False, True), spacing=(1.0, 2.0, 1.0))
    assert gpu.attrs["device"] == "cupy" and cpu.attrs["device"] == "numpy"
    assert float(gpu.tortuosity_factor) == pytest.approx(float(cpu.tortuosity_factor),
                                                         rel=1e-5)
    np.testing.assert_allclose(gpu.concentration_profile, cpu.concentration_profile,
                               atol=1e-5)


def test_dataset_has_units_and_names():
    ds = tortuosity(blobs((10, 10, 10), 0.5, 1.0, seed=2), 0)
    for name in list(ds.data_vars) + list(ds.coords):
        assert ds[name].attrs.get("units") and ds[name].attrs.get("long_name"), name
    assert ds.porosity_profile.sizes["position"] == 10
    assert ds.tortuosity_profile.sizes["interface"] == 9
    geo = tortuosity(blobs((10, 10, 10), 0.5, 1.0, seed=2), 0, "geodesic")
    for name in list(geo.data_vars) + list(geo.coords):
        assert geo[name].attrs.get("units") and geo[name].attrs.get("long_name"), name


# --- geodesic -----------------------------------------------------------------------------

def test_geodesic_straight_and_diagonal():
    m = np.zeros((10, 5, 5), bool)
    m[:, 2, 2] = True
    geo = tortuosity(m, 0, "geodesic", spacing=(2.0, 1.0, 1.0))
    assert float(geo.geodesic_tortuosity_mean) == pytest.approx(1.0)
    assert float(geo.reachable_fraction) == 1.0
    assert np.isnan(geo.geodesic_tortuosity.values[0, 0])
    d = np.zeros((8, 8, 1), bool)
    d[np.arange(8), np.arange(8), 0] = True  # a 26-connected diagonal line of voxels
    geo = tortuosity(d, 0, "geodesic")
    # centre to centre 7 sqrt(2), plus half a voxel at each end (one thickness step)
    assert float(geo.geodesic_tortuosity_max) == pytest.approx((7 * math.sqrt(2) + 1) / 8)
    blocked = np.zeros((6, 3, 3), bool)
    blocked[:2, 1, 1] = blocked[3:, 1, 1] = True
    geo = tortuosity(blocked, 0, "geodesic")
    assert math.isinf(float(geo.geodesic_tortuosity_mean))
    assert float(geo.reachable_fraction) == 0.0


def test_geodesic_below_diffusion_on_random_volume():
    m = blobs((20, 20, 20), 0.5, 1.5, seed=4)
    geo = tortuosity(m, 0, "geodesic")
    dif = tortuosity(m, 0)
    values = geo.geodesic_tortuosity.values
    assert np.nanmin(values) >= 1.0
    assert 1.0 <= float(geo.geodesic_tortuosity_mean) < float(dif.tortuosity_factor)


# --- inputs -------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"axis": 3}, "axis"),
    ({"method": "random_walk"}, "method"),
    ({"device": "tpu"}, "device"),
    ({"tol": -1}, "tol"),
    ({"maxiter": 0}, "maxiter"),
    ({"periodic": (True,)}, "periodic"),
    ({"boundary": "centre"}, "boundary"),
    ({"spacing": (1, -1, 1)}, "voxel size"),
    ({"method": "geodesic", "periodic": True}, "periodic"),
    ({"chunks": (2, 2, 2), "scratch": "/proc/redoxflow"}, "folder"),
])
def test_bad_input_one_line(kwargs, match):
    with pytest.raises(InputError, match=match) as info:
        tortuosity(np.ones((4, 4, 4), bool), **kwargs)
    assert "\n" not in str(info.value)


def test_bad_mask_one_line():
    for mask in (np.ones((4, 4)), np.random.default_rng(0).random((4, 4, 4))):
        with pytest.raises(InputError) as info:
            tortuosity(mask, 0)
        assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="boundary='voxel'"):
        tortuosity(np.ones((2, 4, 4), bool), 0, boundary="voxel")


def test_gpu_request_without_gpu():
    from redoxflow._backend import has_gpu

    if has_gpu():
        pytest.skip("a GPU is usable here")
    with pytest.raises(RedoxflowError) as info:  # the missing extra, or no device
        tortuosity(np.ones((4, 4, 4), bool), 0, device="gpu")
    assert "\n" not in str(info.value)


def test_label_volume_with_phase_and_xarray_spacing():
    import xarray as xr

    m = np.zeros((8, 6, 6), np.uint8)
    m[:, 2, 2] = 85
    m[:, 4, 4] = 170
    arr = xr.DataArray(m, dims=("z", "y", "x"), attrs={"voxel_size": (2.0, 1.0, 1.0)})
    ds = tortuosity(arr, "z", phase=85)
    assert ds.attrs["spacing"] == [2.0, 1.0, 1.0]
    assert float(ds.porosity) == pytest.approx(1 / 36)
    assert float(ds.tortuosity_factor) == pytest.approx(1.0, abs=1e-6)


# --- chunked ------------------------------------------------------------------------------

def _chunked_matches(m, chunks, scratch=None, **kwargs):
    import dask.array as da

    ref = tortuosity(m, 0, tol=1e-8, **kwargs)
    got = tortuosity(da.from_array(m, chunks=chunks), 0, tol=1e-8, chunks="auto",
                     scratch=scratch, **kwargs)
    assert got.attrs["chunked"] == 1 and ref.attrs["chunked"] == 0
    assert bool(got.converged)
    assert float(got.tortuosity_factor) == pytest.approx(float(ref.tortuosity_factor),
                                                         rel=1e-7)
    assert float(got.through_porosity) == float(ref.through_porosity)
    np.testing.assert_allclose(got.concentration_profile, ref.concentration_profile,
                               atol=1e-7)


def test_chunked_equals_in_memory():
    """Blockwise (dask, one-voxel halos) = in memory; chunks that do not divide the shape."""
    _chunked_matches(blobs((14, 12, 10), 0.5, 1.3, seed=8), (8, 12, 6))


@pytest.mark.slow
@pytest.mark.parametrize("chunks,kwargs", [
    ((18, 14, 12), {}),                                   # one chunk
    ((6, 5, 12), {"periodic": True}),
    ((8, 14, 5), {"boundary": "voxel", "spacing": (1.0, 2.0, 0.5)}),
])
def test_chunked_equals_in_memory_more(chunks, kwargs):
    _chunked_matches(blobs((18, 14, 12), 0.5, 1.3, seed=9), chunks, **kwargs)


@pytest.mark.parametrize("kwargs", [{"boundary": "voxel", "periodic": True},
                                    {"spacing": (1.0, 0.5, 2.0)}])
def test_chunked_many_slabs_with_a_thin_last_slab(monkeypatch, kwargs):
    """Slabs of 4 layers (chunks of 3 rounded up) and of at most 4 layers (SLAB_VOXELS):
    13 layers give slabs 4, 4, 4, 1 (voxel: 11 inner layers, 4, 4, 3); odd, periodic sides."""
    from redoxflow.microstructure import _tortuosity_chunked as C

    m = blobs((13, 10, 9), 0.6, 1.2, seed=4)
    _chunked_matches(m, (3, 5, 5), **kwargs)
    monkeypatch.setattr(C, "SLAB_VOXELS", 4 * 90)  # one input chunk, slabs of 4 layers
    _chunked_matches(m, (13, 10, 9), **kwargs)


@pytest.mark.parametrize("shape,periodic", [((1, 5, 4), False), ((2, 3, 3), True),
                                            ((5, 1, 7), True), ((6, 2, 2), True),
                                            ((9, 4, 1), False)])
def test_chunked_degenerate_shapes(shape, periodic):
    """One or two voxels along an axis (no aggregation there; periodic axes of 2 couple
    the same pair twice, like the in-memory operator)."""
    m = blobs(shape, 0.8, 0.5, seed=2) if min(shape) > 1 else np.ones(shape, bool)
    m[:, 0, 0] = True  # one straight path at least
    _chunked_matches(m, (2, 2, 2), periodic=periodic)


def test_chunked_without_a_path_and_scratch_removed(tmp_path):
    import dask.array as da

    m = np.ones((8, 4, 4), bool)
    m[4] = False
    ds = tortuosity(da.from_array(m, chunks=4), 0, chunks="auto", scratch=tmp_path)
    assert math.isinf(float(ds.tortuosity_factor)) and float(ds.effective_diffusivity) == 0
    assert float(ds.through_porosity) == 0
    m[4, 1, 1] = True
    ds = tortuosity(da.from_array(m, chunks=4), 0, chunks="auto", scratch=tmp_path)
    assert 0 < float(ds.effective_diffusivity) < 1
    assert list(tmp_path.iterdir()) == []  # the temporary store is gone


def test_chunked_on_a_distributed_cluster(client, tmp_path):
    """Worker processes: every pass a task per slab reading and writing the shared store."""
    _chunked_matches(blobs((20, 12, 14), 0.5, 1.3, seed=3), (7, 12, 5), periodic=(False, True),
                     scratch=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_row_stencil_equals_the_dense_operator():
    """The row-cursor stencil on the active voxels (one slab, halo layers of zeros) gives
    the same A v as the dense in-memory operator, with periodic sides and Dirichlet faces."""
    from redoxflow.microstructure import _tortuosity_rows as R
    from redoxflow.microstructure import _tortuosity_solver as S

    rng = np.random.default_rng(0)
    for shape, sides in [((6, 5, 7), (False, False)), ((5, 4, 6), (True, True)),
                         ((3, 2, 5), (True, False)), ((4, 1, 2), (False, True))]:
        m = rng.random(shape) < 0.6
        lv = S.fine_level(np, m, (1.0, 2.0, 0.5), sides, np.float64)
        dense = np.where(m, rng.random(shape), 0.0)
        want = -S._xp_apply(np, dense, lv.g, lv.diag)
        want[0] += lv.d_in
        halo = np.zeros((shape[0] + 2,) + shape[1:], np.uint8)
        halo[1:-1] = m
        counts = halo.sum(axis=2).ravel()
        rs = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        v = dense[m]
        out = np.zeros_like(v)
        R.walk(R.RESIDUAL0, halo, rs, 0, 0, shape[0], sides[1] and shape[2] > 1,
               sides[0] and shape[1] > 1, *lv.cond, lv.d_in.astype(np.float32),
               lv.d_out.astype(np.float32), v, v, v, v, out, np.zeros((1, 1, 1), np.float32),
               np.zeros(3, np.int64), 0.0, 0.8, np.zeros(1))
        np.testing.assert_allclose(out, want[m], rtol=1e-6, atol=1e-6)


def test_chunked_option_errors():
    with pytest.raises(InputError, match="chunks"):
        tortuosity(np.ones((4, 4, 4), bool), 0, chunks=(2, 2))


@pytest.mark.parametrize("chunks,axis,spacing", [
    ((7, 9, 5), 0, (1.0, 1.0, 1.0)),       # chunks that do not divide the shape
    ((30, 26, 22), 1, (1.0, 2.0, 0.5)),    # one chunk
    ((11, 26, 4), 2, (0.7, 1.0, 1.3)),     # thin slabs across the transport axis
])
def test_geodesic_chunked_equals_in_memory(chunks, axis, spacing):
    """Per-block Dijkstra sweeps with halo exchange reach dijkstra3d's distances (float32
    there: 1e-5 absolute) on every chunking, including paths that wind across blocks."""
    import dask.array as da

    m = blobs((30, 26, 22), 0.45, 1.5, seed=12)
    ref = tortuosity(m, axis, "geodesic", spacing=spacing)
    got = tortuosity(da.from_array(m, chunks=chunks), axis, "geodesic", spacing=spacing,
                     chunks="auto")
    assert got.attrs["chunked"] == 1 and ref.attrs["chunked"] == 0
    assert got.attrs["sweeps"] >= 2          # the last sweep changes nothing
    np.testing.assert_array_equal(np.isnan(got.geodesic_tortuosity),
                                  np.isnan(ref.geodesic_tortuosity))
    np.testing.assert_allclose(got.geodesic_tortuosity, ref.geodesic_tortuosity, rtol=1e-6,
                               atol=1e-6)
    assert float(ref.reachable_fraction) > 0.5
    for name in ("reachable_fraction", "porosity", "through_porosity"):
        assert float(got[name]) == float(ref[name]), name


def test_geodesic_chunked_detour_across_blocks():
    """A serpentine channel crosses every block boundary back and forth: the sweeps go on
    until the detour (down, up and down again: about three thicknesses) is exact."""
    import dask.array as da

    m = np.zeros((12, 1, 12), bool)
    m[:, 0, 1] = True                         # down the first leg ...
    m[11, 0, 1:6] = True                      # ... across at the bottom ...
    m[1:12, 0, 5] = True                      # ... back up ...
    m[1, 0, 5:10] = True                      # ... across at the top ...
    m[1:, 0, 9] = True                        # ... and down to the outlet
    m[0, 0, 1] = True
    m[11, 0, 1:5] = True
    ref = tortuosity(m, 0, "geodesic")
    got = tortuosity(da.from_array(m, chunks=(3, 1, 3)), 0, "geodesic", chunks="auto")
    assert got.attrs["sweeps"] > 4
    np.testing.assert_allclose(got.geodesic_tortuosity, ref.geodesic_tortuosity, rtol=1e-6)
    assert float(got.geodesic_tortuosity_max) > 3


@pytest.mark.gpu
def test_real_gpu_matches_cpu():
    m = blobs((48, 40, 36), 0.4, 1.5, seed=11)
    cpu = tortuosity(m, 0, device="cpu")
    gpu = tortuosity(m, 0, device="gpu")
    assert float(gpu.tortuosity_factor) == pytest.approx(float(cpu.tortuosity_factor),
                                                         rel=1e-5)


@pytest.mark.parametrize("links", [False, True])
def test_cycle_with_reused_arrays_equals_array_path(cupy_standin, links):  # noqa: F811
    """The CPU cycle (compiled kernels, work arrays reused between calls, K-cycle slots) is
    the array-module cycle (fresh arrays, the GPU path's code) to float32 rounding, and a
    cycle in between does not change the next one's result (no work array shared wrongly)."""
    from redoxflow.microstructure import _tortuosity_solver as S

    active = blobs((23, 18, 17), 0.55, 1.2, seed=3)  # odd sides: padded aggregates
    rng = np.random.default_rng(1)
    r1, r2 = (rng.standard_normal(active.shape) * active for _ in range(2))

    def level(xp):
        return S.fine_level(xp, xp.asarray(active), (1.0, 1.5, 1.0), (False, True),
                            np.float32)

    cpu_fine = level(np)
    cpu = S.Hierarchy(np, cpu_fine, "numpy", coarsest=64)
    if links:  # the solver's finest level on the CPU: link bits, no conductance arrays
        cpu_fine.links, cpu_fine.g = S.links_of(cpu_fine.g), None
    cp = cupy_standin
    ref = S.Hierarchy(cp, level(cp), "cupy", coarsest=64)
    assert len(cpu.levels) >= 3  # the K-cycle runs on at least one level

    first = cpu.vcycle(r1).copy()
    cpu.vcycle(r2)
    again = cpu.vcycle(r1)
    np.testing.assert_array_equal(again, first)
    expected = cp.asnumpy(ref.vcycle(cp.asarray(r1.astype(np.float32))))
    # on the coupled voxels (the link sweep leaves the others 0, the array path its values)
    coupled = cp.asnumpy(ref.levels[0].diag) > 0
    assert coupled.sum() > 0.5 * active.sum()
    np.testing.assert_allclose(first[coupled], expected[coupled], rtol=2e-4,
                               atol=2e-4 * float(np.abs(expected).max()))
