"""The shipped model: offline, small, and accurate on a phantom it never saw."""

from __future__ import annotations

import pytest

from redoxflow.segment import evaluate, read_checkpoint, segment
from redoxflow.segment.builtin import TEST_SEEDS, TRAIN_SEEDS
from redoxflow.segment.models import builtin_checkpoint
from redoxflow.synthetic import make_phantom


def test_builtin_checkpoint_is_small_and_documents_itself():
    path = builtin_checkpoint()
    assert path.is_file() and path.stat().st_size < 5 * 2**20
    spec, _ = read_checkpoint(path)
    assert spec.architecture == "small-unet" and spec.classes[1] == "bubble"
    assert "python -m redoxflow.segment.builtin" in spec.training["script"]
    assert spec.training["recipe"]["loss"].startswith("categorical focal")


def test_builtin_model_reaches_f1_095_on_an_unseen_phantom():
    seed = 0  # the demo's seed: not among the training (or validation) seeds
    assert seed in TEST_SEEDS and seed not in TRAIN_SEEDS
    ph = make_phantom((96, 160, 160), seed=seed)
    f1 = evaluate(segment(ph.image, "builtin", progress=False).compute(), ph.classes)["f1"]
    assert float(f1.sel({"class": "bubble"})) >= 0.95
    assert float(f1.sel({"class": "membrane"})) >= 0.95
    assert float(f1.sel({"class": "gasket"})) >= 0.95


@pytest.mark.slow
def test_builtin_model_holds_on_a_larger_differently_shaped_phantom():
    ph = make_phantom((64, 256, 224), seed=12345, noise=12.0)
    f1 = evaluate(segment(ph.image, "builtin", progress=False).compute(), ph.classes)["f1"]
    assert float(f1.sel({"class": "bubble"})) >= 0.9
    assert float(f1.sel({"class": "membrane"})) >= 0.9
