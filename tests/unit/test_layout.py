"""The package's layers import one way only, and no two modules import each other.

Every ``import`` in ``assay/`` (at module level or inside a function; type-only imports under
``TYPE_CHECKING`` aside) is checked against the table below, which is the architecture the
README draws: a new import that points up the flow fails here.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "assay"
SHARED = {"config", "fastjson", "filestore", "ids", "timestamps"}
STORES = {"notify", "params", "safelist", "users"}
EVERYTHING = {"*"}

# layer -> the layers it may import (besides itself). A layer is a sub-package or top-level module.
ALLOWED: dict[str, set[str]] = {
    "__main__": {"cli"},
    "__init__": {"client", "intel"},
    "cli": EVERYTHING,
    "api": {
        "access",
        "__init__",
        "intake",
        "iotinsight",
        "execution",
        "results",
        "intel",
        "services",
        "db",
        *STORES,
        *SHARED,
    },
    "iotinsight": {"access", "intake", "results", "iot", "db", *STORES, *SHARED},
    "intake": {"access", "notify", "params", "db", *SHARED},
    "execution": {"access", "dispatch", "intel", "services", "db", *SHARED},
    "dispatch": {"access", "services", "db", "notify", "params", "safelist", *SHARED},
    "intel": {"access", "db", "notify", *SHARED},
    "results": {"access", "services", "db", "notify", *SHARED},
    "safelist": {"services", "db"},
    "users": {"db", "access"},
    "notify": {"db", "timestamps"},
    "params": {"db"},
    "services": {"iot"},
    "iot": set(),
    "access": {"config"},  # classification and roles: data and pure functions, built from the settings
    "db": {"config", "fastjson"},
    "db.migrations": {"db", "intel", "iotinsight"},  # it must see every table
    "client": set(),
    **{name: set() for name in SHARED - {"filestore"}},
    "filestore": set(),
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts[1:3] == ["db", "migrations"]:
        return "db.migrations"
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The modules of ``assay`` this file imports (``from pkg import mod`` names ``pkg.mod``, not ``pkg``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(inner) for inner in ast.walk(node))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            found.update(submodules or {node.module})
    return found & modules


def graph() -> dict[str, set[str]]:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        for target in imports_of(path, set(modules)):
            if target != name:
                edges[name].add(target)
    return edges


def test_every_layer_imports_only_what_it_may() -> None:
    wrong = []
    for module, targets in graph().items():
        source = layer_of(module)
        allowed = ALLOWED[source]
        for target in targets:
            if layer_of(target) != source and allowed != EVERYTHING and layer_of(target) not in allowed:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_two_modules_import_each_other() -> None:
    edges = graph()
    cycles = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges.get(node, ())):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*trail[trail.index(target) :], target]))
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = 2

    for start in sorted(edges):
        if start not in state:
            visit(start, [start])
    assert cycles == []


def test_every_layer_is_in_the_table() -> None:
    layers = {layer_of(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert layers - set(ALLOWED) == set()
