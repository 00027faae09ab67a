"""The package's layers: no module imports a package above its own, and the pure packages
(the selection math, model wrappers, data formats, evaluation) never import Ray.

Every ``import`` counts, at module level or inside a function, so a lazy import cannot hide an
upward arrow. Within a layer packages may import each other (evaluation uses the detector).
"""
import ast
from pathlib import Path

import taast_ray

ROOT = Path(taast_ray.__file__).parent
# bottom to top; a module may import its own layer and the ones before it
LAYERS = [
    {"__init__", "_offline", "errors", "io", "versions", "console", "config", "error_records", "lock", "address", "embedder_names"},
    {"data", "models", "selection", "evaluation"},
    {"stages"},
    {"ray_env"},
    {"pipeline", "training"},
    {"loop"},
    {"experiment"},
    {"demo", "bench", "cli"},
]
RAY_FREE = {"selection", "models", "data", "evaluation"}


def _unit(path: Path) -> str:
    rel = path.relative_to(ROOT).parts
    return rel[0].removesuffix(".py")


def _level(unit: str) -> int:
    return next(i for i, layer in enumerate(LAYERS) if unit in layer)


def _imports(path: Path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def _modules():
    return sorted(p for p in ROOT.rglob("*.py"))


def test_every_module_has_a_layer():
    assert {_unit(p) for p in _modules()} <= set().union(*LAYERS)


def test_no_module_imports_a_higher_layer():
    upward = []
    for path in _modules():
        mine = _level(_unit(path))
        for name in _imports(path):
            parts = name.split(".")
            if parts[0] == "taast_ray" and len(parts) > 1 and _level(parts[1]) > mine:
                upward.append(f"{path.relative_to(ROOT)} imports {name}")
    assert upward == []


def test_pure_packages_do_not_import_ray():
    found = [f"{p.relative_to(ROOT)} imports {name}" for p in _modules() if _unit(p) in RAY_FREE
             for name in _imports(p) if name.split(".")[0] == "ray"]
    assert found == []
