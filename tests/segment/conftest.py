"""Fixtures for segmentation tests: small checkpoints trained for a few seconds on a phantom,
so their predictions are varied (a random net predicts one class everywhere)."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")


def _quick_model(path, **kwargs):
    from redoxflow.segment import train
    from redoxflow.synthetic import make_phantom

    ph = make_phantom((24, 80, 80), seed=11)
    result = train(ph.image, ph.classes, out=path, options={"width": 8, "depth": 2}, tile=64,
                   epochs=1, steps_per_epoch=60, lr=3e-3, batch_size=4, progress=False,
                   **kwargs)
    return result.checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A 2D small U-Net (width 8, depth 2), 4 classes, uint8 input."""
    return _quick_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def context_checkpoint(tmp_path_factory):
    """The same with 2.5D input: one neighbouring slice on each side (3 channels)."""
    return _quick_model(tmp_path_factory.mktemp("ctx"), context=1)


@pytest.fixture(scope="session")
def percentile_checkpoint(tmp_path_factory):
    """A checkpoint that normalises by percentiles (16-bit and float data)."""
    return _quick_model(tmp_path_factory.mktemp("pct"),
                        normalization={"method": "percentile", "low": 1.0, "high": 99.0})
