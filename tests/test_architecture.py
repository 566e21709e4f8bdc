"""The house rules, checked on the source: no import circles, no upward imports, our own
modules imported at module level, no private helper imported across packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "redoxflow"

# Lower layers never import higher ones; a component may import its own layer's peers only
# where listed in the same tuple (none today).
LAYERS = [
    ("redoxflow", "errors"),          # the lazy top-level __init__ (imports nothing) and errors
    ("common",),                      # the leaf helpers
    ("_backend",),                    # the one backend switch
    ("config", "synthetic"),
    ("io",),
    ("labeling", "distance"),
    ("measure",),
    ("microstructure",),              # electrode metrics and tortuosity (issues 15, 16)
    ("segment",),
    ("analysis",),
    ("viz",),
    ("cluster",),
    ("pipeline",),
    ("cli",),
]
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield ".".join(parts), path


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> list[str]:
    """Absolute names a ``from ... import`` refers to (module or module.attribute)."""
    if node.level:
        base = module.split(".")
        base = base[: len(base) - node.level + (1 if is_package else 0)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    return [f"{target}.{a.name}" for a in node.names] + [target]


def _imports():
    """(module, target, is_module_level, imported names) for every import of ours."""
    names = {m for m, _ in _modules()}
    out = []
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        top_level = set(map(id, tree.body))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                candidates = _resolve(module, is_package, node)
                attrs = [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
                attrs = []
            else:
                continue
            ours = [c for c in candidates if c in names]
            if ours and candidates[-1].startswith("redoxflow"):
                target = ours[0] if ours[0] != candidates[-1] else candidates[-1]
                out.append((module, target, id(node) in top_level, attrs))
    return out


def _component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "redoxflow"


HEAVY = {"torch", "pyvista", "matplotlib", "cupy", "cupyx", "dask_jobqueue", "dask_cuda"}


def _needs_heavy_extra(module: str) -> bool:
    """A module of ours that imports a heavy optional extra at module level (segment/nets
    is torch code): importing it inside a function is the lazy import of that extra."""
    path = dict(_modules())[module]
    for node in ast.parse(path.read_text()).body:
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        if any(n.split(".")[0] in HEAVY for n in names):
            return True
    return False


def test_own_modules_are_imported_at_module_level():
    local = [f"{m} imports {t} inside a function" for m, t, top, _ in _imports()
             if not top and not _needs_heavy_extra(t)]
    assert not local, "\n".join(local)


def test_no_upward_imports():
    upward = []
    for module, target, _, _ in _imports():
        a, b = _component(module), _component(target)
        if a != b and LAYER[b] >= LAYER[a] and b != "redoxflow":
            upward.append(f"{module} ({a}) imports {target} ({b})")
    assert not upward, "\n".join(upward)


def test_no_import_circles():
    graph: dict[str, set[str]] = {}
    for module, target, _, _ in _imports():
        if target != module:
            graph.setdefault(module, set()).add(target)
    state: dict[str, int] = {}
    cycles = []

    def visit(node, stack):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if nxt.startswith(node + "."):  # a package importing its own submodules
                continue
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt])
                              if nxt in stack else f"{node} -> {nxt}")
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


def test_no_private_helper_crosses_a_package():
    crossing = [f"{m} imports {name} from {t}" for m, t, _, attrs in _imports()
                for name in attrs if name.startswith("_") and name != "__version__"
                and _component(m) != _component(t)]
    assert not crossing, "\n".join(crossing)


@pytest.mark.parametrize("module", ["cupy", "cupyx", "cucim"])
def test_only_the_backend_imports_cupy(module):
    offenders = []
    for name, path in _modules():
        if name == "redoxflow._backend":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{name} imports {m}" for m in mods if m.split(".")[0] == module]
    assert not offenders, "\n".join(offenders)
