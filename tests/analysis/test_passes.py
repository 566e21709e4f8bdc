"""The compiled passes over the class volume against the lazy masks that define them."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from redoxflow.analysis.masks import counts_and_density, masks, row_maps

SHAPE = (13, 29, 31)
CHUNKS = [SHAPE, (4, 29, 31), (5, 7, 9)]  # one block; slabs; blocks that do not divide


def _classes(rng) -> np.ndarray:
    c = (rng.random(SHAPE) < 0.15).astype(np.uint8)       # bubbles
    c[:, :, 14:16] = 2                                     # a membrane sheet ...
    c[4:6, 10:20, 14:16] = 0                               # ... with a hole
    c[:, :3] = 3                                           # gaskets at the y edges
    c[:, -2:] = 3
    c[rng.random(SHAPE) < 0.02] = 5                        # a few removed-half voxels
    return c


def _reference(arr, maps, compat, negative, clean):
    """The counts as sums of the lazy masks (the definition)."""
    lazy = masks(arr, maps, compat, negative, clean)
    out = {"unmasked": [(arr == 1).sum(axis=a) for a in range(3)]}
    for name, region in lazy["regions"].items():
        b = lazy["bubbles"] & region
        e = lazy["electrolyte"] & region
        out[name] = {"bubble": b.sum(), "electrolyte": e.sum(),
                     "density": [b.sum(axis=a) for a in range(3)],
                     "electrode": [(b | e).sum(axis=a) for a in range(3)]}
    (out,) = dask.compute(out)
    return out.pop("unmasked"), out


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("compat,negative", [(None, "high"), (None, "low"), ("utile", "high"),
                                             ("utile", "low")])
@pytest.mark.parametrize("clean", [True, False])
def test_region_counts_equal_the_masks(rng, chunks, compat, negative, clean):
    arr = da.from_array(_classes(rng), chunks=chunks)
    maps = row_maps(arr)
    raw, counts = counts_and_density(arr, maps, compat, negative, clean)
    ref_raw, ref = _reference(arr, maps, compat, negative, clean)
    for got, want in zip(raw, ref_raw):
        np.testing.assert_array_equal(got, want)
    assert counts.keys() == ref.keys()
    for name in ref:
        assert counts[name]["bubble"] == ref[name]["bubble"]
        assert counts[name]["electrolyte"] == ref[name]["electrolyte"]
        for kind in ("density", "electrode"):
            for got, want in zip(counts[name][kind], ref[name][kind]):
                np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("chunks", CHUNKS)
def test_row_maps_equal_numpy(rng, chunks):
    c = _classes(rng)
    maps = row_maps(da.from_array(c, chunks=chunks))
    xs = np.arange(SHAPE[2])
    mem = c == 2
    np.testing.assert_array_equal(maps["counts"], np.bincount(c.ravel(), minlength=6))
    np.testing.assert_array_equal(maps["first"], np.where(mem, xs, SHAPE[2]).min(axis=2))
    np.testing.assert_array_equal(maps["last"], np.where(mem, xs, -1).max(axis=2))
    np.testing.assert_array_equal(maps["xsum"], np.where(mem, xs, 0).sum(axis=2))
    ys = np.arange(SHAPE[1])[None, :, None]
    gas = c == 3
    np.testing.assert_array_equal(maps["gasket_low"],
                                  np.where(gas & (ys < SHAPE[1] // 2), ys, -1).max(axis=1))
    np.testing.assert_array_equal(maps["gasket_high"],
                                  np.where(gas & (ys >= SHAPE[1] // 2), ys, SHAPE[1]).min(axis=1))


def test_values_outside_a_byte_are_refused():
    from redoxflow.errors import InputError

    c = np.zeros((3, 4, 5), np.int8)
    c[1, 1, 1] = -1
    with pytest.raises(InputError, match="from -1 to 0"):
        row_maps(da.from_array(c))
