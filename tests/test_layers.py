"""tlf's modules form layers, and every import points down (or within its layer); no import cycles.

The layers, lowest first (a module belongs to the layer of its longest matching name):

1. foundation: ``tlf`` (the package), ``_version``, ``errors``, ``resources``, ``messages``, ``safe_files``, ``config_files``, ``task``, ``task_outputs``, ``augment_chain``, ``paths``, ``address_space``,
   ``heap``, ``arguments``, ``specs``, ``hookspecs``, ``setting_checks``, ``preprocessing``
2. plugin system: ``pluginmanager``, ``registry``, ``tracking``
3. settings: ``config``
4. data and files: ``augment``, ``data``, ``runtime``, ``rundir``, ``plots``
5. models: ``models``, ``policies``, ``inspection``
6. plan: ``plan``, ``plan_checks``, ``adaptive_defaults``, ``task_choice``
7. export: ``export``
8. serving: ``serve``
9. engine: ``features``, ``engine``
10. search and comparison: ``tuning``, ``experiments``
11. reports: ``insight``, ``audit``, ``bench``
12. built-in plugins: ``tlf.plugins``
13. commands: ``commands``
14. command line: ``cli``, ``cli_reference``, ``__main__``

Every import counts: at module level, inside a function (a lazy import hides an edge, it
does not remove it) and under ``TYPE_CHECKING``. The graph is read from the source with
``ast``; nothing is imported, so the test needs no torch.
"""
from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"framework": "tlf", "plugins": "tlf.plugins"}

LAYERS = [
    ("foundation", ("tlf", "tlf._version", "tlf.errors", "tlf.resources", "tlf.messages", "tlf.safe_files", "tlf.config_files", "tlf.task", "tlf.task_outputs", "tlf.augment_chain", "tlf.paths", "tlf.address_space", "tlf.heap", "tlf.arguments",
                    "tlf.specs", "tlf.hookspecs", "tlf.setting_checks", "tlf.preprocessing")),
    ("plugin system", ("tlf.pluginmanager", "tlf.registry", "tlf.tracking")),
    ("settings", ("tlf.config",)),
    ("data and files", ("tlf.augment", "tlf.data", "tlf.runtime", "tlf.rundir", "tlf.plots")),
    ("models", ("tlf.models", "tlf.policies", "tlf.inspection")),
    ("plan", ("tlf.plan", "tlf.plan_checks", "tlf.adaptive_defaults", "tlf.task_choice")),
    ("export", ("tlf.export",)),
    ("serving", ("tlf.serve",)),
    ("engine", ("tlf.features", "tlf.engine")),
    ("search and comparison", ("tlf.tuning", "tlf.experiments")),
    ("reports", ("tlf.insight", "tlf.audit", "tlf.bench")),
    ("built-in plugins", ("tlf.plugins",)),
    ("commands", ("tlf.commands",)),
    ("command line", ("tlf.cli", "tlf.cli_reference", "tlf.__main__")),
]

# imports that pointed up a layer once; the order above must keep ranking them as wrong
ONCE_UPWARD = [("tlf.config", "tlf.engine.schedules"), ("tlf.engine.api", "tlf.insight.evaluation"),
               ("tlf.insight.report", "tlf.commands.inspect"), ("tlf.export.run", "tlf.engine.assembly"),
               ("tlf.rundir", "tlf.models")]


def modules(roots: dict[Path, str]) -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package ``__init__``) of every module under ``roots`` (folder -> package name)."""
    found = {}
    for folder, package in roots.items():
        for path in folder.rglob("*.py"):
            parts = [package, *path.relative_to(folder).with_suffix("").parts]
            is_package = parts[-1] == "__init__"
            found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def _known(name: str, known: dict) -> str | None:
    """``name`` or its closest enclosing module in ``known`` (``tlf.config.RunConfig`` -> ``tlf.config``)."""
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name or None


def imports(name: str, known: dict[str, tuple[Path, bool]]) -> list[tuple[str, int]]:
    """(imported module, line) of every import of a known module in module ``name``, wherever it stands."""
    path, is_package = known[name]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                here = name.split(".") if is_package else name.split(".")[:-1]
                base = ".".join([*here[:len(here) - node.level + 1], *([node.module] if node.module else [])])
            targets = [f"{base}.{a.name}" for a in node.names]  # a submodule, else an attribute of base
        else:
            continue
        found += [(target, node.lineno) for target in map(lambda t: _known(t, known), targets)
                  if target is not None and target != name]
    return found


def import_graph(roots: dict[Path, str]) -> nx.DiGraph:
    known = modules(roots)
    graph = nx.DiGraph()
    graph.add_nodes_from(known)
    for name in known:
        for target, line in imports(name, known):
            graph.add_edge(name, target, line=line)
    return graph


def layer_of(module: str) -> int | None:
    """The index in LAYERS of ``module``'s longest matching name (``tlf`` alone matches only itself)."""
    best = None
    for index, (_, names) in enumerate(LAYERS):
        for prefix in names:
            if (module == prefix or (prefix != "tlf" and module.startswith(prefix + "."))) and \
                    (best is None or len(prefix) > len(best[1])):
                best = (index, prefix)
    return best[0] if best else None


def cycles(graph: nx.DiGraph) -> list[list[str]]:
    """Each group of modules that import each other (directly or around a loop), sorted."""
    return sorted(sorted(group) for group in nx.strongly_connected_components(graph) if len(group) > 1)


def upward(graph: nx.DiGraph) -> list[str]:
    """Every import of a module in a higher layer, as ``module:line -> module (layer -> layer)``."""
    found = []
    for source, target, data in graph.edges(data=True):
        low, high = layer_of(source), layer_of(target)
        if low is not None and high is not None and high > low:
            found.append(f"{source}:{data['line']} -> {target} ({LAYERS[low][0]} -> {LAYERS[high][0]})")
    return sorted(found)


@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph({ROOT / folder: package for folder, package in PACKAGES.items()})


def test_every_module_is_in_a_layer(graph) -> None:
    missing = sorted(m for m in graph if layer_of(m) is None)
    assert missing == [], f"modules in no layer: {missing}; add them to LAYERS here and in docs/architecture.md"


def test_no_import_cycles(graph) -> None:
    assert cycles(graph) == [], "modules that import each other; move what they share into a lower module"


def test_no_import_points_up_a_layer(graph) -> None:
    assert upward(graph) == [], "move the shared fact down to the lower layer (a lazy import does not count as a fix)"


@pytest.mark.parametrize("source, target", ONCE_UPWARD)
def test_the_layer_order_forbids_the_imports_that_once_pointed_up(source, target) -> None:
    assert layer_of(source) < layer_of(target), f"LAYERS would let {source} import {target} again"


def test_the_guards_see_what_they_forbid(tmp_path) -> None:
    """A lazy cycle and an upward import under TYPE_CHECKING are found in a made-up package."""
    package = tmp_path / "framework"
    (package / "engine").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "engine" / "__init__.py").write_text("")
    (package / "config.py").write_text("from typing import TYPE_CHECKING\n"
                                       "if TYPE_CHECKING:\n    from .engine.loop import Loop\n")
    (package / "engine" / "loop.py").write_text("def run():\n    from . import steps\n")
    (package / "engine" / "steps.py").write_text("from tlf.engine.loop import run\n")
    found = import_graph({package: "tlf"})
    assert cycles(found) == [["tlf.engine.loop", "tlf.engine.steps"]]
    assert upward(found) == ["tlf.config:3 -> tlf.engine.loop (settings -> engine)"]
