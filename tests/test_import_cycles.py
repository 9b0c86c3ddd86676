"""No import cycles among the modules of src/llmcf, counting imports inside functions."""

from __future__ import annotations

import ast
from pathlib import Path

import llmcf

SRC = Path(llmcf.__file__).resolve().parent.parent


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for p in sorted((SRC / "llmcf").rglob("*.py*")):
        if p.suffix not in (".py", ".pyi"):
            continue
        parts = list(p.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods.setdefault(".".join(parts), p)
    return mods


def _resolve(name: str, mods: dict[str, Path]) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """Module -> the llmcf modules it imports anywhere in its body (TYPE_CHECKING excluded)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        if path.suffix == ".pyi":
            graph[mod] = set()
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                for sub in node.body:
                    typing_only.update(id(n) for n in ast.walk(sub))
        pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        deps: set[str | None] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                deps.update(
                    _resolve(a.name, mods) for a in node.names if a.name.startswith("llmcf")
                )
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target != "llmcf" and not target.startswith("llmcf."):
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    deps.add(_resolve(full, mods) if full in mods else _resolve(target, mods))
        deps.discard(None)
        deps.discard(mod)
        graph[mod] = {d for d in deps if d is not None}
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            advanced = False
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    advanced = True
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    cycles.append(sorted(comp))
    return cycles


def test_finder_sees_a_cycle() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_lazy_imports() -> None:
    graph = import_graph()
    assert "llmcf.persist" in graph["llmcf.base"]  # imported inside Model.save


def test_no_import_cycles() -> None:
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles among llmcf modules:\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_one_registry() -> None:
    from llmcf import models, registry

    assert set(models.model_names()) >= {
        "item-knn",
        "user-knn",
        "t-item-knn",
        "t-user-knn",
        "baseline",
        "global-mean",
    }
    for name in registry.names():
        cls = registry.by_name(name)
        assert registry.by_class(cls.__name__) is cls
