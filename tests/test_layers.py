"""The import graph of ``src/faceid``, read from the source (nothing is imported): layers one way, no cycles.

Layers, lowest first: the base modules (errors, paths, settings, thresholds) <- models <- vision <- eval <-
store <- train, viz, monitor, integrations, runtime_bench <- server <- cli. A package imports only from lower
layers, whether at the top of a module, inside a function or for type checking alone: a lazy import is still
a dependency, and the one that crosses a layer is the one that makes two packages one.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

BASE = 0
LAYERS: dict[str, int] = {
    "models": 1,
    "vision": 2,
    "eval": 3,
    "store": 4,
    "train": 5,
    "viz": 5,
    "monitor": 5,
    "integrations": 5,
    "runtime_bench": 5,
    "server": 6,
    "cli": 7,
}
# The package itself (``faceid.analyze``) and ``python -m faceid`` sit on top, like the command line.
ENTRY_POINTS = {"faceid", "faceid.__main__"}

# Cycles of type-only imports inside one package that are known and not yet untangled.
KNOWN_CYCLES = [{"faceid.store.camera", "faceid.store.match"}]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "faceid").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, top_level_only: bool) -> Iterator[str]:
    """The faceid modules ``module`` imports; with ``top_level_only``, those imported when it is loaded
    (function bodies left out; ``if TYPE_CHECKING:`` blocks kept, since they state a dependency too)."""
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]

    def walk(node: ast.AST) -> Iterator[str]:
        for child in ast.iter_child_nodes(node):
            if top_level_only and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[: len(package) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    yield f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
            else:
                yield from walk(child)

    for name in walk(ast.parse(path.read_text(encoding="utf-8"))):
        target = _resolve(name) if name.startswith("faceid") else None
        if target is not None and target != module:
            yield target


def _layer(module: str) -> int | None:
    if module in ENTRY_POINTS:
        return None
    package = module.split(".")[1]
    if (SRC / "faceid" / package).is_dir():
        assert package in LAYERS, f"package faceid.{package} has no layer: add it to LAYERS"
        return LAYERS[package]
    return BASE


def test_layers_one_way() -> None:
    wrong = []
    for module, path in MODULES.items():
        here = _layer(module)
        if here is None:
            continue
        for target in set(_imports(module, path, top_level_only=False)):
            if target == "faceid":
                continue  # __version__: the package's top level imports nothing (the rest is lazy)
            there = _layer(target)
            same_package = module.split(".")[:2] == target.split(".")[:2]
            if there is None or (not same_package and there >= here and not (here == there == BASE)):
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the layers:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, targets = work[-1]
            advanced = False
            for target in targets:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(sorted(graph[target]))))
                    advanced = True
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found


def test_no_import_cycles() -> None:
    graph = {module: set(_imports(module, path, top_level_only=True)) for module, path in MODULES.items()}
    cycles = [sorted(c) for c in _cycles(graph) if c not in KNOWN_CYCLES]
    assert not cycles, f"import cycles between faceid modules: {cycles}"


def test_the_check_sees_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [{"a", "b", "c"}]
    assert _cycles({"a": {"b"}, "b": set()}) == []
