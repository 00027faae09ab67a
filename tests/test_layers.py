"""The package's layers: the README's table is this test's table, no module imports a package on a
floor above its own, no two modules import each other (directly or round a loop), and the pure
packages (the selection math, model wrappers, data formats, evaluation) never import Ray.

Every ``import`` counts, at module level or inside a function, so a lazy import cannot hide an
upward arrow or a loop.
"""
import ast
import re
from pathlib import Path

import taast_ray

ROOT = Path(taast_ray.__file__).parent
README = ROOT.parent / "README.md"
# bottom to top, one floor per row of the README's "How the code is laid out" table; a module may
# import its own floor and the ones below it
LAYERS = [
    {"errors", "io", "versions", "console", "error_records", "address", "lock", "embedder_names"},
    {"schemas"},
    {"selection"},
    {"config"},
    {"data"},
    {"models"},
    {"evaluation"},
    {"contracts"},
    {"outputs"},
    {"stages"},
    {"ray_env"},
    {"pipeline"},
    {"training"},
    {"loop"},
    {"experiment"},
    {"demo"},
    {"bench"},
    {"api"},
    {"cli"},
]
PACKAGE_FILES = {"__init__", "_offline"}  # the package's own start-up (offline switches), below all
RAY_FREE = {"schemas", "selection", "models", "data", "evaluation"}
# the one import down from the package's start-up: its __getattr__ re-exports the Python API
# (taast_ray.select, taast_ray.run) on first use
PUBLIC_API = "taast_ray.api"


def _unit(path: Path) -> str:
    return path.relative_to(ROOT).parts[0].removesuffix(".py")


def _level(unit: str) -> int:
    if unit in PACKAGE_FILES:
        return -1
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _imports(path: Path):
    """Every module ``path`` imports, as a dotted name; ``from pkg import mod`` names the module."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                yield sub if _file_of(sub) is not None else node.module


def _file_of(dotted: str) -> Path | None:
    parts = dotted.split(".")
    if parts[0] != "taast_ray":
        return None
    base = ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _modules():
    return sorted(p for p in ROOT.rglob("*.py"))


def _readme_layers() -> list[set[str]]:
    text = README.read_text()
    section = text[text.index("## How the code is laid out"):]
    rows = [line for line in section.splitlines()[1:] if line.startswith("| `")]
    return [{name.rstrip("/") for name in re.findall(r"`([a-z_]+/?)`", row.split("|")[1])} for row in rows]


def test_the_readme_table_is_this_tests_table():
    assert _readme_layers() == LAYERS


def test_every_module_has_a_layer():
    assert {_unit(p) for p in _modules()} <= set().union(*LAYERS, PACKAGE_FILES)


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in _modules():
        mine = _level(_unit(path))
        for name in _imports(path):
            parts = name.split(".")
            if path == ROOT / "__init__.py" and name == PUBLIC_API:
                continue
            if parts[0] == "taast_ray" and len(parts) > 1 and _level(parts[1]) > mine:
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_no_import_cycle_between_files():
    graph = {}
    for path in _modules():
        targets = {_file_of(n) for n in _imports(path)} - {None, path}
        # a package's __init__ is imported on the way to every module under it: not an edge back
        graph[path] = {t for t in targets if not (t.name == "__init__.py" and path.is_relative_to(t.parent))}
    cycles = [sorted(str(p.relative_to(ROOT)) for p in component)
              for component in _strongly_connected(graph) if len(component) > 1]
    assert cycles == []


def _strongly_connected(graph: dict) -> list[set]:
    """Tarjan's components of a graph {node: successors}."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, ()):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            out.append(component)

    for node in graph:
        if node not in index:
            visit(node)
    return out


def test_pure_packages_do_not_import_ray():
    found = [f"{p.relative_to(ROOT)} imports {name}" for p in _modules() if _unit(p) in RAY_FREE
             for name in _imports(p) if name.split(".")[0] == "ray"]
    assert found == []
