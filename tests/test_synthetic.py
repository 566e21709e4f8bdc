"""The phantom's ground truth is exact and deterministic."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from redoxflow.errors import InputError
from redoxflow.synthetic import BUBBLE, GASKET, MEMBRANE, make_phantom


def test_deterministic(phantom):
    again = make_phantom((48, 80, 80), seed=3)
    np.testing.assert_array_equal(again.image, phantom.image)
    np.testing.assert_array_equal(again.classes, phantom.classes)
    assert not np.array_equal(make_phantom((48, 80, 80), seed=4).classes, phantom.classes)


def test_ground_truth_consistency(phantom):
    c, inst = phantom.classes, phantom.instances
    assert set(np.unique(c)) == {0, 1, 2, 3}
    np.testing.assert_array_equal(inst > 0, c == BUBBLE)
    # the membrane is a sheet across x: every (z, y) column inside the cell crosses it once
    g = phantom.gasket_width
    cols = (c[:, g:-g] == MEMBRANE).any(axis=2)
    assert cols.all()
    assert (c[:, :g] == GASKET).all() and (c[:, -g:] == GASKET).all()


def test_bubble_roles_are_realised(phantom):
    c, inst = phantom.classes, phantom.instances
    near_membrane = ndimage.binary_dilation(c == MEMBRANE)
    touching = set(np.unique(inst[near_membrane & (c == BUBBLE)])) - {0}
    membrane_ids = {i + 1 for i, b in enumerate(phantom.bubbles) if b.role == "membrane"}
    present = set(np.unique(inst)) - {0}
    assert membrane_ids & present <= touching
    cut = set(np.unique(np.concatenate([inst[0].ravel(), inst[-1].ravel()]))) - {0}
    assert cut  # some bubbles are cut by the field of view
    # touching pairs merge: fewer 26-components than instances
    _, n = ndimage.label(c == BUBBLE, np.ones((3, 3, 3)))
    assert n < len(present)


def test_grey_levels_separate_classes(phantom):
    img, c = phantom.image.astype(float), phantom.classes
    # small bubbles are brightened by the blur at their rims; cores stay dark
    assert img[c == BUBBLE].mean() + 40 < img[c == 0].mean() < img[c == MEMBRANE].mean() - 40


def test_bad_shape():
    with pytest.raises(InputError, match="at least 16"):
        make_phantom((8, 64, 64))
