"""The package's structure: every module imports, the import graph has no cycles, the
public namespaces own their code, and solvers never import entry points."""

import ast
import importlib
from pathlib import Path

import pytest


ROOT = Path(__file__).resolve().parents[1] / "jaxgeo"
# Entry points (verbs) of the geodesic package, and `_repair` (pairwise_distances' own
# second pass, which calls geodesic_bvp); its solvers must not import them.
ENTRY_POINT_MODULES = {"_bvp", "_distance", "_ensemble", "_graph", "_ivp", "_repair"}
# Public functions that live with their solver: the history of EnergyDescent's iteration.
SOLVER_FUNCTIONS = {"energy_descent_trace"}
PUBLIC_NAMESPACES = ("data", "families", "nn", "plot", "sampling", "scores", "stats", "train")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_package(name: str) -> bool:
    return MODULES.get(name, Path()).name == "__init__.py"


def _imports(name: str) -> set[str]:
    """The jaxgeo modules that `name` imports at module level (resolved, absolute)."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(MODULES[name].read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if candidate in MODULES else base)
    return {m for m in found if m in MODULES}


def _ancestors(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts))}


def _graph() -> dict[str, set[str]]:
    """Module -> the modules its import runs: the imported modules and the packages
    above them (whose `__init__` runs first), except packages above the importer,
    which are already being imported."""
    graph = {}
    for name in MODULES:
        edges = set()
        for target in _imports(name):
            edges |= {target} | _ancestors(target)
        graph[name] = edges - _ancestors(name) - {name}
    return graph


def test_every_module_imports():
    for name in MODULES:
        importlib.import_module(name)


def test_import_graph_has_no_cycles():
    graph = _graph()
    done, on_path = set(), []

    def visit(name):
        if name in on_path:
            cycle = on_path[on_path.index(name) :] + [name]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if name in done:
            return
        on_path.append(name)
        for target in sorted(graph[name]):
            visit(target)
        on_path.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)


def test_nothing_imports_the_top_level_package():
    for name in MODULES:
        if name != "jaxgeo":
            assert "jaxgeo" not in _imports(name), f"{name} imports the top-level package"


@pytest.mark.parametrize("namespace", PUBLIC_NAMESPACES)
def test_public_namespaces_own_their_code(namespace):
    package = f"jaxgeo.{namespace}"
    for target in _imports(package):
        assert target.startswith(package + "."), f"{package} re-exports {target}"


def test_every_entry_point_module_is_listed():
    """Every module of the geodesic package that defines a public verb (a function
    re-exported by `jaxgeo._geodesic`) is in `ENTRY_POINT_MODULES`."""
    import jaxgeo._geodesic as geodesic

    for name in sorted(set(dir(geodesic)) - SOLVER_FUNCTIONS):
        obj = getattr(geodesic, name)
        if callable(obj) and not isinstance(obj, type) and not name.startswith("_"):
            module = getattr(obj, "__module__", "").rpartition(".")[2]
            assert module in ENTRY_POINT_MODULES, f"{name} ({module}) is an entry point"


def test_solvers_do_not_import_entry_points():
    for name in MODULES:
        package, _, module = name.rpartition(".")
        if package == "jaxgeo._geodesic" and module not in ENTRY_POINT_MODULES:
            for target in _imports(name):
                entry = target.rpartition(".")[2]
                assert entry not in ENTRY_POINT_MODULES, f"{name} imports {target}"


def test_no_private_names_imported_across_modules():
    """Helpers shared between modules are public within the package (no leading
    underscore); only a package's own private submodules may be imported by name."""
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                submodule = node.module is None  # `from . import _bessel`
                assert not private or submodule, f"{name} imports {node.module}.{alias.name}"
