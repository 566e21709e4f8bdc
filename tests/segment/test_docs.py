"""Every public function of ``redoxflow.segment`` documents itself with a runnable example."""

from __future__ import annotations

import doctest
import importlib
import inspect

import pytest

MODULES = ["builtin", "classical", "inference", "metrics", "models", "nets", "training"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"redoxflow.segment.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result


@pytest.mark.parametrize("name", MODULES)
def test_every_public_function_has_a_numpydoc_examples_section(name):
    module = importlib.import_module(f"redoxflow.segment.{name}")
    missing = [f for f, obj in vars(module).items()
               if inspect.isfunction(obj) and obj.__module__ == module.__name__
               and not f.startswith("_") and "Examples\n    --------" not in (obj.__doc__ or "")]
    assert not missing, f"{name}: no Examples section in {missing}"
