"""Config precedence: defaults < YAML < environment < explicit arguments."""

from __future__ import annotations

import pytest

from redoxflow.config import load_config
from redoxflow.errors import InputError


def test_precedence(tmp_path):
    assert load_config().cluster.workers is None
    f = tmp_path / "c.yaml"
    f.write_text("cluster:\n  workers: 3\n  memory_limit: 1GB\nio:\n  chunk_mib: 32\n")
    cfg = load_config(f, environ={})
    assert (cfg.cluster.workers, cfg.io.chunk_mib) == (3, 32.0)
    env = {"REDOXFLOW_CLUSTER__WORKERS": "5", "REDOXFLOW_OUTPUT__OVERWRITE": "yes"}
    cfg = load_config(f, environ=env)
    assert cfg.cluster.workers == 5 and cfg.output.overwrite is True
    assert cfg.cluster.memory_limit == "1GB"
    cfg = load_config(f, {"cluster.workers": 7, "io.chunk_mib": None}, environ=env)
    assert cfg.cluster.workers == 7 and cfg.io.chunk_mib == 32.0


def test_list_from_env_and_json_roundtrip():
    cfg = load_config(environ={"REDOXFLOW_INPUT__SHAPE": "[16, 32, 32]"})
    assert cfg.input.shape == [16, 32, 32]
    assert '"shape": [16, 32, 32]' in cfg.to_json()


def test_bad_config(tmp_path):
    with pytest.raises(InputError, match="unknown config key"):
        load_config(None, {"cluster.wrkers": 2}, environ={})
    with pytest.raises(InputError, match="cannot read"):
        load_config(None, environ={"REDOXFLOW_CLUSTER__WORKERS": "many"})
    bad = tmp_path / "bad.yaml"
    bad.write_text("cluster: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(InputError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    unsafe = tmp_path / "unsafe.yaml"
    unsafe.write_text("cluster: !!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(InputError):
        load_config(unsafe)


def test_literal_options_are_validated_at_load():
    for value, expected in (("6", 6), ("18", 18), ("26", 26)):
        cfg = load_config(None, environ={"REDOXFLOW_LABEL__CONNECTIVITY": value})
        assert cfg.label.connectivity == expected
    with pytest.raises(InputError, match="label.backend='gpu' is not allowed"):
        load_config(None, {"label.backend": "gpu"}, environ={})
    with pytest.raises(InputError, match="analyze.negative_side"):
        load_config(None, {"analyze.negative_side": "left"}, environ={})
