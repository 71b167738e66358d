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
    {"errors", "params", "utils", "__init__"},
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


# -- public seams ----------------------------------------------------------------------------------------------

# obj._name reaches allowed where the object is, in effect, the method's own instance.
REACH_IN_ALLOWED = {
    ("strategies/base.py", "obj._restore"): "Strategy.load restores the instance it has just built",
}


def _reach_ins(path: Path) -> list[tuple[int, str]]:
    """``x._name`` and ``getattr(x, "_name")`` on anything but ``self``, ``super()`` or a classmethod's ``cls``."""
    found = []

    def own(value, owners) -> bool:
        if isinstance(value, ast.Name):
            return value.id in owners
        return isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id == "super"

    def private(name) -> bool:
        return isinstance(name, str) and name.startswith("_") and not (name.startswith("__") and name.endswith("__"))

    def visit(node, owners):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args.posonlyargs + node.args.args
            first = args[0].arg if args else None
            owners = {"self"} | ({"cls"} if first == "cls" else set())
        if isinstance(node, ast.Attribute) and private(node.attr) and not own(node.value, owners):
            found.append((node.lineno, ast.unparse(node)))
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "setattr", "hasattr")
                and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and private(node.args[1].value)
                and not own(node.args[0], owners)):
            found.append((node.lineno, ast.unparse(node)))
        for child in ast.iter_child_nodes(node):
            visit(child, owners)

    visit(ast.parse(path.read_text()), {"self"})
    return found


def test_no_reach_in_to_another_objects_private_state():
    """Objects talk through public methods: a private name of another object or library is a reach-in."""
    bad = [f"{path.relative_to(ROOT)}:{line}: {text}" for path in sorted(MODULES.values())
           for line, text in _reach_ins(path)
           if (str(path.relative_to(ROOT)), text.split("(")[0]) not in REACH_IN_ALLOWED]
    assert not bad, "reach-ins (add a public method instead):\n" + "\n".join(bad)
