"""The package's structure, read from its source (ast): imports run downward through the layers below and never in
a cycle, the run directory's store sits below the tasks and the views above them, and no module outgrows about 400
lines. A new module must be given its layer here."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "zsa_eval"
MAX_LINES = 410  # "about 400"

# Lowest first. A module may import from its own layer and those below, never from one above.
LAYERS = [
    ["zsa_eval.errors", "zsa_eval.text", "zsa_eval.stats", "zsa_eval.provenance", "zsa_eval.interrupts",
     "zsa_eval.hub", "zsa_eval.staging", "zsa_eval.entry_points", "zsa_eval.integrations"],  # (import_mteb)
    ["zsa_eval.audio", "zsa_eval.long_audio", "zsa_eval.cache", "zsa_eval.featurize", "zsa_eval.plots",
     "zsa_eval.answers", "zsa_eval.store", "zsa_eval.results"],  # the store and the types tasks return
    ["zsa_eval.config", "zsa_eval.data"],
    ["zsa_eval.families", "zsa_eval.laion_checkpoint"],  # the public family API and zsa-eval's own families
    ["zsa_eval.random_models", "zsa_eval.clips"],
    ["zsa_eval.models"],
    ["zsa_eval.engine"],
    ["zsa_eval.tasks"],
    ["zsa_eval.report"],  # the views: they read run directories
    ["zsa_eval.distributed", "zsa_eval.processing", "zsa_eval.run"],
    ["zsa_eval", "zsa_eval.api", "zsa_eval.__main__"],  # the faces: the package, its Python API, its CLI
    ["zsa_eval.integrations.mteb"],  # zsa-eval's models as another harness's models, through the Python API
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def resolved(name: str) -> str | None:
    """The package module `name` (or an attribute of it) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(tree: ast.Module) -> list[tuple[str, bool]]:
    """(module, at module level) for each import of a package module, those under `if TYPE_CHECKING:` aside."""
    found = []

    def visit(node: ast.AST, top: bool) -> None:
        if is_type_checking(node):
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, top) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((f"{node.module}.{alias.name}", top) for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child, top and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))

    for statement in tree.body:
        visit(statement, True)
    return found


def import_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Each module's imports of other package modules: (at module level, anywhere)."""
    top, anywhere = defaultdict(set), defaultdict(set)
    for name, path in MODULES.items():
        for target, at_top in imported(ast.parse(path.read_text(encoding="utf-8"))):
            module = resolved(target) if target.startswith("zsa_eval") else None
            if module and module != name:
                anywhere[name].add(module)
                if at_top:
                    top[name].add(module)
    return top, anywhere


def layer_of(module: str) -> int | None:
    """The layer of the longest prefix that names `module` or a package holding it."""
    matches = [(len(prefix), number) for number, prefixes in enumerate(LAYERS) for prefix in prefixes
               if module == prefix or (prefix != "zsa_eval" and module.startswith(prefix + "."))]
    return max(matches)[1] if matches else None


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while not group or group[-1] != module:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for module in sorted(set(graph) | {target for targets in graph.values() for target in targets}):
        if module not in index:
            visit(module)
    return found


def test_every_module_has_a_layer():
    assert [module for module in sorted(MODULES) if layer_of(module) is None] == []


def test_no_import_cycle():
    top, anywhere = import_graph()
    assert cycles(top) == []
    assert cycles(anywhere) == []  # not even through an import inside a function


def test_no_import_runs_upward():
    _, anywhere = import_graph()
    upward = [f"{module} (layer {layer_of(module)}) imports {target} (layer {layer_of(target)})"
              for module, targets in sorted(anywhere.items()) for target in sorted(targets)
              if layer_of(target) > layer_of(module)]
    assert upward == []


def test_tasks_write_through_the_store_and_the_views_know_tasks_only_through_the_registry():
    _, anywhere = import_graph()
    assert {target for module, targets in anywhere.items() if module.startswith("zsa_eval.tasks")
            for target in targets if target.startswith("zsa_eval.report")} == set()
    assert {target for module, targets in anywhere.items() if module.startswith("zsa_eval.report")
            for target in targets if target.startswith("zsa_eval.tasks")} <= {"zsa_eval.tasks.registry"}
    assert {target for module, targets in anywhere.items() if module.startswith("zsa_eval.store")
            for target in targets if layer_of(target) > layer_of("zsa_eval.store")} == set()


def test_no_module_outgrows_about_400_lines():
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in MODULES.items()}
    assert {name: size for name, size in sizes.items() if size > MAX_LINES} == {}


def test_the_checks_catch_what_they_look_for():
    """The checker itself: a cycle, an upward import and a TYPE_CHECKING import it must leave aside."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zsa_eval.run import run\n"
                     "import zsa_eval.audio\ndef f():\n    from zsa_eval.engine import score_clips\n")
    assert imported(tree) == [("typing.TYPE_CHECKING", True), ("zsa_eval.audio", True),
                              ("zsa_eval.engine.score_clips", False)]
    assert layer_of("zsa_eval.report.html") > layer_of("zsa_eval.tasks.labels") > layer_of("zsa_eval.store.skips")
    assert layer_of("zsa_eval") == layer_of("zsa_eval.api") and layer_of("zsa_eval.families.clap") == 3
