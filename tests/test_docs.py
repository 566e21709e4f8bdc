"""Docstrings: every public function documents itself with an Examples section, and the
examples run (doctest)."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import inspect
import pkgutil

import pytest

import redoxflow

# modules whose import needs an optional extra that CI may lack are skipped, not failed
MODULES = sorted(m.name for m in pkgutil.walk_packages(redoxflow.__path__, "redoxflow.")
                 if not m.name.endswith("__main__"))


def _public_functions(module):
    for name, obj in vars(module).items():
        if name.startswith("_") or getattr(obj, "__module__", None) != module.__name__:
            continue
        if inspect.isfunction(obj) or inspect.isclass(obj):
            yield name, obj


@pytest.mark.parametrize("name", MODULES)
def test_public_functions_have_examples(name):
    module = importlib.import_module(name)
    if name == "redoxflow.cli":  # click commands document themselves in --help
        return
    missing = [f"{name}.{fn}" for fn, obj in _public_functions(module)
               if "Examples" not in (inspect.getdoc(obj) or "")]
    assert not missing, "no Examples section: " + ", ".join(missing)


# examples of these packages need their extra (ml: torch; viz: matplotlib, pyvista)
EXTRAS = {"redoxflow.segment": ("torch",), "redoxflow.viz": ("matplotlib", "pyvista")}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    for prefix, needs in EXTRAS.items():
        missing = [m for m in needs if importlib.util.find_spec(m) is None]
        if name.startswith(prefix) and missing:
            pytest.skip(f"examples need {missing}")
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in doctest.DocTestFinder().find(module, name):
        runner.run(test)
    assert runner.failures == 0, f"{runner.failures} failing example(s) in {name}"
