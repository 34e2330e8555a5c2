"""The package's shape: layers that only import downwards, no cycles, one definition per name.

The layers, lowest first (README, "Architecture"):

    settings -> datasets -> interactions, features -> evaluation -> models -> book

A module may import from its own layer or the layers below it, never from a layer above.
"""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "recsys_helpers"
LAYERS = {
    "settings": 0,
    "datasets": 1,
    "interactions": 2,
    "features": 2,
    "evaluation": 3,
    "models": 4,
    "book": 5,
}
#: Imports inside functions, allowed only where importing at the top would be wrong.
LOCAL_IMPORTS_ALLOWED = {
    # the lowest layer must not load TensorFlow when a chapter only asks for a path or the seed
    "recsys_helpers.settings": {"tensorflow", "keras", "sys"},
}


def _modules() -> dict[str, ast.Module]:
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(), filename=str(path))
    return out


MODULES = _modules()


def _is_package(name: str) -> bool:
    return (PACKAGE.parent / name.replace(".", "/") / "__init__.py").exists()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    if not _is_package(module):
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, tree: ast.Module):
    """(target module, imported names, inside a function?) of every import of the package."""
    local = set()
    for func in ast.walk(tree):
        if isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            local.update(id(n) for n in ast.walk(func) if isinstance(n, ast.Import | ast.ImportFrom))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, [], id(node) in local
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            names = [a.name for a in node.names]
            # ``from . import metrics`` imports a module, not a name
            submodules = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            if submodules:
                for sub in submodules:
                    yield sub, [], id(node) in local
            else:
                yield target, names, id(node) in local


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS[parts[1]] if len(parts) > 1 else -1


def _package_edges():
    for module, tree in MODULES.items():
        for target, names, _ in _imports(module, tree):
            if target.startswith("recsys_helpers.") and target in MODULES:
                yield module, target, names


def test_every_module_belongs_to_a_layer():
    for module in MODULES:
        if module != "recsys_helpers":
            assert module.split(".")[1] in LAYERS, f"{module} is in no layer"


def test_imports_only_go_down_the_layers():
    upward = [
        f"{module} (layer {_layer(module)}) imports {target} (layer {_layer(target)})"
        for module, target, _ in _package_edges()
        if _layer(target) > _layer(module)
    ]
    assert not upward, upward


def test_no_import_cycles():
    graph = defaultdict(set)
    for module, target, _ in _package_edges():
        if target != module and not module.startswith(target + "."):
            graph[module].add(target)
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in list(graph):
        if node not in state:
            visit(node, [])


def test_no_private_name_is_imported_from_another_module():
    private = [
        f"{module} imports {target}.{name}"
        for module, target, names in _package_edges()
        for name in names
        if name.startswith("_") and target != module
    ]
    assert not private, private


def test_every_public_name_is_defined_once():
    where = defaultdict(list)
    for module, tree in MODULES.items():
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where[node.name].append(module)
            elif isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name) and target.id.isupper():
                        where[target.id].append(module)
    twice = {name: modules for name, modules in where.items() if len(modules) > 1 and name != "main"}
    assert not twice, twice


def test_no_imports_inside_functions():
    local = [
        f"{module}: {target}"
        for module, tree in MODULES.items()
        for target, _, inside in _imports(module, tree)
        if inside and target.split(".")[0] not in LOCAL_IMPORTS_ALLOWED.get(module, set())
    ]
    assert not local, local


#: The most parameters a constructor may take (options beyond that go into small option objects).
MAX_PARAMETERS = 15


def test_no_constructor_takes_more_than_fifteen_parameters():
    wide = []
    for module, tree in MODULES.items():
        for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
            for init in cls.body:
                if isinstance(init, ast.FunctionDef) and init.name == "__init__":
                    a = init.args
                    count = len(a.posonlyargs + a.args + a.kwonlyargs) - 1 + bool(a.vararg) + bool(a.kwarg)
                    if count > MAX_PARAMETERS:
                        wide.append(f"{module}.{cls.name}: {count}")
    assert not wide, wide


def test_the_lstm_module_stays_short_enough_to_show():
    assert len((PACKAGE / "models" / "lstm.py").read_text().splitlines()) < 600
