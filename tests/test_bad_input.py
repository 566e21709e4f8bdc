"""Issue 18's adversarial inputs: each is refused in one line naming the problem."""

from __future__ import annotations

import numpy as np
import pytest

import redoxflow as rf
from redoxflow.errors import InputError


@pytest.mark.parametrize("kwargs, message", [({"overlap": -3}, "overlap -3"),
                                             ({"overlap": 1.0}, "outside"),
                                             ({"batch_size": 0}, "positive")])
def test_segment_refuses_tiling_that_leaves_gaps(kwargs, message):
    with pytest.raises(InputError, match=message):
        rf.segment(np.zeros((4, 32, 32), np.float32), "builtin", **kwargs)


def test_regionprops_refuses_negative_labels():
    labels = np.zeros((3, 4, 5), np.int32)
    labels[1, 1, 1] = -5
    with pytest.raises(InputError, match="negative values"):
        rf.regionprops(labels)


def test_vti_with_an_impossible_extent_is_refused(tmp_path):
    from redoxflow.io import open_source

    (tmp_path / "v.vti").write_text(
        '<VTKFile type="ImageData"><ImageData WholeExtent="0 -3 0 1 0 0"><Piece><PointData>'
        '<DataArray type="UInt8" format="ascii">0 1</DataArray></PointData></Piece>'
        '</ImageData></VTKFile>')
    with pytest.raises(InputError, match="WholeExtent"):
        open_source(tmp_path / "v.vti")


def test_negative_class_ids_are_refused():
    classes = np.zeros((4, 8, 8), np.int8)
    classes[:, :, 4] = 2
    classes[1, 1, 1] = -1
    with pytest.raises(InputError, match="from -1"):
        rf.analyze(classes, negative_side="high")
