"""No import cycles among tlf's modules: every ``import`` of the package counts, the ones inside
functions too (they hide a cycle from Python, not from the design); ``if TYPE_CHECKING:`` blocks
do not. The graph is read from the sources with ``ast``, so the check imports nothing."""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[1] / "framework"


def module_name(path: Path) -> str:
    parts = ("tlf", *path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.Module, name: str, is_package: bool) -> set[str]:
    """The tlf modules ``name``'s code imports, outside ``if TYPE_CHECKING:``."""
    found, package = set(), name if is_package else name.rpartition(".")[0]
    skip = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
            for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return {m for m in found if m.startswith("tlf.") and not m.startswith("tlf.plugins")}


def import_graph() -> nx.DiGraph:
    modules = {module_name(p): p for p in ROOT.rglob("*.py")}
    graph = nx.DiGraph()
    for name, path in modules.items():
        for target in imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            if target in modules and target != name and not name.startswith(target + "."):
                graph.add_edge(name, target)
    return graph


def cycles() -> list[list[str]]:
    return [sorted(c) for c in nx.strongly_connected_components(import_graph()) if len(c) > 1]


def test_framework_has_no_import_cycles():
    assert cycles() == []
