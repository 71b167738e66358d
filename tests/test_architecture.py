"""The import picture of DESIGN.md: data flows one way, each layer imports only its own package and the layers
below, and no module imports itself back through others. Imports inside functions count: a lazy import is
still an arrow."""
from __future__ import annotations

import ast
from pathlib import Path

import transferkit

ROOT = Path(transferkit.__file__).parent
# Lowest first. A package may import its own modules and any package of a lower layer (or its own layer's
# siblings: engine and robustness sit side by side).
LAYERS = [
    {"errors", "utils", "__init__"},
    {"backbones", "data"},
    {"engine", "robustness"},
    {"strategies", "export"},
    {"pretrain", "advisor", "report"},
    {"tour", "cli", "__main__"},
]
LAYER_OF = {pkg: i for i, layer in enumerate(LAYERS) for pkg in layer}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in ROOT.rglob("*.py")}


def _imports(name: str, path: Path) -> set[str]:
    """The transferkit modules ``name`` imports (``from . import x`` counts as module ``x`` when it is one)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "transferkit")
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[:len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            if target.split(".")[0] != "transferkit":
                continue
            out.update(f"{target}.{a.name}" if f"{target}.{a.name}" in MODULES else target for a in node.names)
    return out


GRAPH = {name: _imports(name, path) & set(MODULES) for name, path in MODULES.items()}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def test_every_package_has_a_layer():
    assert {_package(m) for m in MODULES} <= set(LAYER_OF)


def test_no_upward_import():
    upward = sorted(f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets
                    if _package(a) != _package(b) and LAYER_OF[_package(b)] > LAYER_OF[_package(a)])
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)


def test_no_import_circle():
    """Tarjan's strongly connected components over the module graph: every component is one module."""
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"
