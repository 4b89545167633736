"""The package's modules import one another without a cycle (issue 10).

Every `import`/`from ... import` of a generator module is read with `ast`, including imports inside
functions (a lazy import is still a dependency), and the graph must be acyclic: config → render →
samples → plan → config was one, which made loading values compile templates.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "generator"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            graph[name] |= {t for t in targets if t in modules and t != name and t != "generator"}
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle, as a path of modules, or None."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle():
    found = cycle(imports())
    assert found is None, "import cycle: " + " -> ".join(found or [])


def test_the_checker_finds_a_cycle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None


# Which subpackages each subpackage may import (besides itself). Layers point down only: the pod
# engine (inject) never reaches the server or the CLI, values never reaches the engine, the
# Kubernetes layer knows nothing of pods' injection, build tools are not runtime code's concern.
ALLOWED = {
    "base": set(),
    "values": {"base"},
    "kube": {"base"},
    "inject": {"base", "values"},
    "webhook": {"base", "values", "inject", "kube"},
    "tools": {"base", "values", "configentries"},
    # The controllers (issues 11, 12): a Consul HTTP client below them, beside kube.
    "consul": {"base"},
    "controllers": {"base", "values", "kube", "consul", "webhook"},  # the process around a controller
    "endpoints": {"base", "values", "inject", "kube", "consul", "controllers"},
    "entrycontroller": {"base", "values", "kube", "consul", "controllers", "webhook", "configentries"},
    "configentries": {"base"},
    "aclinit": {"base", "values", "kube", "consul"},
    "migrate": {"base", "values", "kube"},  # connect-inject migrate (issue 13): reads and annotates the cluster
}
TOP = {"generator.cli", "generator.__main__"}  # the entry point may use every layer


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and module not in TOP else module


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, deps in graph.items():
        if module in TOP:
            continue
        own = _layer(module)
        for dep in deps:
            target = _layer(dep)
            if target != own and (own not in ALLOWED or target not in ALLOWED[own]):
                found.append(f"{module} imports {dep}")
    return sorted(found)


def test_every_module_sits_in_a_known_layer():
    """A new module goes in a subpackage with declared neighbours (or is the entry point)."""
    strays = [m for m in imports() if m not in TOP and _layer(m) not in ALLOWED and m != "generator"]
    assert not strays, strays


def test_layers_only_point_down():
    assert layer_violations(imports()) == []


def test_the_layer_checker_finds_an_upward_import():
    graph = {"generator.inject.plan": {"generator.webhook.server", "generator.values.config"},
             "generator.values.config": {"generator.inject.render"},
             "generator.cli": {"generator.webhook.server"}}
    assert layer_violations(graph) == ["generator.inject.plan imports generator.webhook.server",
                                       "generator.values.config imports generator.inject.render"]
