"""The package layers hold: no import cycle among ``cotal_tui`` modules, and the endpoint side
(``cotal_tui.mesh``) never pulls in the server-side delivery daemon (``cotal_tui.delivery``).

The cycle check reads every ``import`` statement with ``ast``, wherever it sits: at module top,
inside a function, and under ``if TYPE_CHECKING:``. Type-only back-edges count too (stricter):
a type that can only be named by importing upward is the same circle, just hidden from the
interpreter.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import cotal_tui

PACKAGE_ROOT = Path(cotal_tui.__file__).parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every ``cotal_tui`` module ``name`` imports (``from pkg import mod`` counts as ``mod``)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [
                f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module
                for alias in node.names
            ]
        else:
            continue
        out.update(t for t in targets if t in known and t != name)
    return out


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path (first module repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_the_graph_walk_sees_the_modules_and_their_edges():
    graph = import_graph()
    assert "cotal_tui.mesh.endpoint" in graph and "cotal_tui.delivery.daemon" in graph
    assert "cotal_tui.mesh.connection" in graph["cotal_tui.delivery.daemon"]
    assert "cotal_tui.mesh.durable" in graph["cotal_tui.mesh.plane3_agent"]


def test_the_cycle_finder_names_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_cotal_tui_modules():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_mesh_never_imports_delivery_statically():
    graph = import_graph()
    upward = sorted(
        f"{src} -> {dst}"
        for src, dsts in graph.items()
        if src.startswith("cotal_tui.mesh")
        for dst in dsts
        if dst.startswith("cotal_tui.delivery")
    )
    assert not upward, upward


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sorted(sys.modules)))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    return set(done.stdout.split())


@pytest.mark.parametrize(
    "statement",
    [
        "import cotal_tui.mesh",
        "import cotal_tui.mesh.endpoint",
        "import cotal_tui.mesh.plane3_agent",
        "import cotal_tui.mesh.lease",
    ]
    + [f"import cotal_tui.mesh.{p.stem}" for p in sorted((PACKAGE_ROOT / "mesh").glob("[!_]*.py"))],
)
def test_importing_mesh_does_not_import_delivery(statement):
    loaded = _loaded_after(statement)
    assert statement.split()[-1] in loaded  # the import ran
    assert not {m for m in loaded if m.startswith("cotal_tui.delivery")}, statement


def test_importing_delivery_does_import_it():
    """The check above can fail: the same probe sees the daemon when it is imported."""
    loaded = _loaded_after("import cotal_tui.delivery.daemon")
    assert "cotal_tui.delivery.daemon" in loaded and "cotal_tui.mesh.connection" in loaded


# Top to bottom; a module may import its own package or any package below it, never above.
# `agent` (the headless agent and a cred's identity) sits under the console, which runs as one.
LAYERS = ("commands", "demo", "tui", "console", "agent", "server", "delivery", "mesh", "protocol")


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_import_runs_up_the_layers():
    upward = sorted(
        f"{src} -> {dst}"
        for src, dsts in import_graph().items()
        for dst in dsts
        if (a := _layer(src)) is not None and (b := _layer(dst)) is not None and b < a
    )
    assert not upward, "\n".join(upward)
