"""The house: every import in src/ goes down the layers (or sideways within one), and no module imports itself back
through others. Imports inside functions count as much as those at the top of a file."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"

# Low to high. A module may import from its own layer and the layers below, never from a layer above.
LAYERS: list[tuple[str, ...]] = [
    ("xemogpt", "xemogpt.errors", "xemogpt.configs", "xemogpt.utils"),
    ("xemogpt.registry", "xemogpt.nn"),
    ("xemogpt.component", "xemogpt.checkpointing"),
    ("xemogpt.encoders", "xemogpt.bridges", "xemogpt.projectors", "xemogpt.llm", "xemogpt.cues", "xemogpt.metrics",
     "xemogpt.data"),
    ("xemogpt.models",),
    # recipes are checked against what reads each section (the trainer's strategies, evaluate_model's arguments)
    ("xemogpt.recipe", "xemogpt.describe", "xemogpt.training", "xemogpt.evaluation"),
    ("xemogpt.workflows",),
    ("xemogpt.cli", "xemogpt.__main__"),
]


def modules() -> dict[str, Path]:
    out = {}
    for f in (SRC / "xemogpt").rglob("*.py"):
        parts = f.relative_to(SRC).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The xemogpt modules ``name`` imports anywhere in its file (``from a import b`` counts as module ``a.b`` when
    that is a module, else ``a``)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = package.split(".")
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join(pkg + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        for t in targets:
            while t and t not in known:
                t = t.rpartition(".")[0]
            if t.startswith("xemogpt") and t != name:
                found.add(t)
    return found


def layer_of(name: str) -> int:
    best, rank = -1, -1
    for i, layer in enumerate(LAYERS):
        for prefix in layer:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank >= 0, f"{name} is in no layer of tests/test_architecture.py; add its package there"
    return rank


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, known) for name, path in known.items()}


def test_no_module_imports_from_a_layer_above_it():
    upward = [f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
              for a, deps in sorted(graph().items()) for b in sorted(deps) if layer_of(b) > layer_of(a)]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    g = graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    cycles: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    pkg = tmp_path / "xemogpt" / "sub"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from xemogpt.sub import b\n    from . import c\n")
    known = {"xemogpt.sub": pkg / "__init__.py", "xemogpt.sub.a": pkg / "a.py", "xemogpt.sub.b": pkg / "b.py",
             "xemogpt.sub.c": pkg / "c.py"}
    assert imports("xemogpt.sub.a", pkg / "a.py", known) == {"xemogpt.sub.b", "xemogpt.sub.c"}
    assert layer_of("xemogpt.training.runner") > layer_of("xemogpt.models.xemogpt") > layer_of("xemogpt.nn.layers")
