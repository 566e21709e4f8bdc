"""The compiled walls pass against a voxel-by-voxel reference."""

from __future__ import annotations

import numpy as np

from redoxflow.analysis.blockage import block_walls

STEPS = [(-1, 0, 0), (1, 0, 0), (0, -1, 0), (0, 1, 0), (0, 0, -1), (0, 0, 1)]


def _reference(codes, labels, side_lut, spacing, code):
    face = [spacing[1] * spacing[2], spacing[0] * spacing[2], spacing[0] * spacing[1]]
    bz, by = codes.shape[0] - 2, codes.shape[1] - 2
    blocked, row_map, area, pts, any_ = np.zeros(4, int), np.zeros((4, bz, by), int), {}, [], 0
    for k, j, i in np.argwhere(codes[1:-1, 1:-1, 1:-1] == code) + 1:
        sides = set()
        for s, (dk, dj, di) in enumerate(STEPS):
            n = (k + dk, j + dj, i + di)
            lab = int(labels[n])
            if lab:
                sides.add(int(side_lut[lab]))
                area[lab] = area.get(lab, 0.0) + face[s // 2]
        if any(codes[k + dk, j + dj, i + di] != code for dk, dj, di in STEPS):
            pts.append((k - 1, j - 1, i - 1))
        any_ += bool(sides)
        for b in sides:
            blocked[b] += 1
            row_map[b, k - 1, j - 1] += 1
    return blocked, any_, row_map, area, sorted(pts)


def test_block_walls_equals_voxel_by_voxel(rng):
    shape = (9, 10, 11)
    codes = np.zeros(shape, np.uint8)
    codes[rng.random(shape) < 0.2] = 1
    codes[:, :2][rng.random((9, 2, 11)) < 0.8] = 2
    labels = np.where(rng.random(shape) < 0.3, rng.integers(1, 6, shape), 0).astype(np.uint32)
    labels[codes > 0] = 0
    side_lut = np.array([0, 1, 3, 2, 1, 3], np.uint8)
    spacing = (2.0, 1.0, 0.5)
    got = block_walls(codes, labels, (0, 0, 0), side_lut, spacing, 2)
    for code, (contacts, pts) in enumerate(got, start=1):
        blocked, any_, row_map, area, ref_pts = _reference(codes, labels, side_lut, spacing, code)
        np.testing.assert_array_equal(contacts["blocked"], blocked)
        assert contacts["blocked_any"] == any_
        np.testing.assert_array_equal(contacts["row_map"], row_map)
        assert contacts["ids"].tolist() == sorted(area)
        np.testing.assert_allclose(contacts["area"], [area[i] for i in sorted(area)])
        assert sorted(map(tuple, pts.tolist())) == ref_pts


def test_a_missing_halo_is_the_outside_of_the_volume(rng):
    shape = (6, 7, 8)
    codes = (rng.random(shape) < 0.4).astype(np.uint8)
    labels = np.where((codes == 0) & (rng.random(shape) < 0.5), 3, 0).astype(np.uint32)
    args = (np.zeros(4, np.uint8), (1.0, 2.0, 3.0), 1)
    [(padded, pts_padded)] = block_walls(np.pad(codes, 1), np.pad(labels, 1), (0, 0, 0), *args)
    [(bare, pts_bare)] = block_walls(codes, labels, (0, 0, 0), *args, halo=(0,) * 6)
    for key in padded:
        np.testing.assert_array_equal(bare[key], padded[key])
    np.testing.assert_array_equal(pts_bare, pts_padded)
