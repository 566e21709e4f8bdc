"""Model registry and checkpoints: every family builds offline; checkpoints load safely."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from redoxflow.errors import InputError
from redoxflow.segment import (
    ARCHITECTURES,
    ModelSpec,
    build_model,
    load_model,
    read_checkpoint,
    save_checkpoint,
)


@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_every_architecture_builds_offline_with_any_channels_and_classes(name):
    options = {"width": 4} if name in ("attention-unet", "unet3plus", "small-unet") else {}
    model = build_model(name, in_channels=3, classes=2, input_size=64, **options).eval()
    with torch.inference_mode():
        y = model(torch.rand(2, 3, 64, 64))
    assert y.shape == (2, 2, 64, 64)
    assert torch.isfinite(y).all()


def test_unet3plus_deep_supervision_returns_one_output_per_scale_when_training():
    model = build_model("unet3plus", classes=3, width=4, depth=3).train()
    outputs = model(torch.rand(2, 1, 64, 64))
    assert isinstance(outputs, list) and len(outputs) == 4
    assert all(o.shape == (2, 3, 64, 64) for o in outputs)


def test_attention_gates_change_the_network():
    plain = build_model("small-unet", width=4, depth=2)
    gated = build_model("attention-unet", width=4, depth=2)
    assert sum(p.numel() for p in gated.parameters()) > sum(p.numel() for p in plain.parameters())
    assert any("gates" in k for k in gated.state_dict())


def test_unknown_architecture_lists_the_known_ones():
    with pytest.raises(InputError, match="known ones are .*unet-resnext101.*small-unet"):
        build_model("segformer")


def test_checkpoint_roundtrip_gives_identical_predictions(tmp_path):
    spec = ModelSpec("small-unet", input_size=64, options={"width": 4, "depth": 2},
                     training={"note": "test"})
    model = build_model(spec).eval()
    path = save_checkpoint(model, spec, tmp_path / "m.pt")
    loaded, spec2 = load_model(path)
    x = torch.rand(1, 1, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), loaded(x))
    assert spec2 == spec
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left


def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch):
    spec = ModelSpec("small-unet", options={"width": 4, "depth": 2})
    path = save_checkpoint(build_model(spec), spec, tmp_path / "m.pt")
    before = path.read_bytes()

    def half_written(obj, f, *args, **kwargs):
        with open(f, "wb") as fh:
            fh.write(b"truncated")
        raise OSError("disk went away")

    monkeypatch.setattr(torch, "save", half_written)
    with pytest.raises(OSError, match="disk went away"):
        save_checkpoint(build_model(spec), spec, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "redoxflow-checkpoint", "metadata": "{}", "payload": Evil()}, path)
    with pytest.raises(InputError, match="pickled Python objects"):
        read_checkpoint(path)


def test_corrupt_and_foreign_checkpoints_are_refused(tmp_path):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(InputError, match="not a readable torch file"):
        read_checkpoint(corrupt)
    bare = tmp_path / "bare.pt"
    torch.save(build_model("small-unet", width=4, depth=2).state_dict(), bare)
    with pytest.raises(InputError, match="not a redoxflow checkpoint"):
        read_checkpoint(bare)
    pickled = tmp_path / "plain.pkl"
    pickled.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(InputError, match="cannot load checkpoint"):
        read_checkpoint(pickled)
    with pytest.raises(InputError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_mismatched_request_and_weights_are_clear_errors(tiny_checkpoint, tmp_path):
    with pytest.raises(InputError, match="predicts 4 classes .* but 2 were requested"):
        load_model(tiny_checkpoint, classes=2)
    with pytest.raises(InputError, match="takes 1 input channel"):
        load_model(tiny_checkpoint, in_channels=3)
    spec, state = read_checkpoint(tiny_checkpoint)
    spec.options = {"width": 16, "depth": 2}  # metadata that does not fit the weights
    torch.save({"format": "redoxflow-checkpoint", "metadata": spec.to_json(),
                "state_dict": state}, tmp_path / "wrong.pt")
    with pytest.raises(InputError, match="do not fit architecture"):
        load_model(tmp_path / "wrong.pt")
