"""The shape of ``ci_sidecar/``: no import cycles, no import against the layers, no module over 500 lines.

The layers (an arrow: "may import"; everything may import the base)::

    entry points: cli, __main__, daemon_main, env_cmd, exec_cmd (+ exec_delivery, exec_stream), merge_cmd, doctor_check,
                  demo_suite, units, call_cmd, exec_signals, unit_reach, history_cmd
        │  (composition roots: they may import any unit; no unit imports them)
        ├──► rpc ──► transport
        │     └──► config
        │      (rpc reads frames from the transport's streams; it sees the service layer only
        │       through the handler table the composition root hands it)
        └──► service ──► delivery ──► providers ──► credentials ──► config ──► config_schema
                │           │             └──► reports                    │              │
                │           │                                             └──────────────┴──► provider facts
                └───────────┴──► state  (only service and delivery keep state)     (providers/catalog.py,
             service ──► cienv ──► credentials, config, provider facts               providers/settings.py)

    base, importable from anywhere: protocol, atomic, logs, paths, ci_sidecar/__init__ (versions)

Every import counts: module-level, inside functions and under ``TYPE_CHECKING`` (a type-only
import is still a dependency, and a deferred import is still a cycle). Importing a submodule is not
counted as importing its parent package, whose ``__init__`` Python runs first: keep those light.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ci_sidecar"
MAX_LINES = 500

#: Units importable from any module (they import nothing outside this set).
BASE = frozenset({"protocol", "atomic", "logs", "paths", "__init__"})

#: Modules that are a unit of their own inside another package: the provider catalog and the settings types
#: are plain data about providers that the configuration, the credential lookup and CI detection read.
SUB_UNITS = {"providers.catalog": "provider_facts", "providers.settings": "provider_facts"}

#: Unit → the units it may import besides itself and the base (the drawing in the module docstring).
MAY_IMPORT: dict[str, frozenset[str]] = {
    "rpc": frozenset({"transport", "config"}),
    "transport": frozenset(),
    "service": frozenset({"delivery", "providers", "state", "cienv", "reports", "credentials", "config",
                          "provider_facts"}),
    "delivery": frozenset({"providers", "state"}),
    "providers": frozenset({"credentials", "reports", "provider_facts"}),
    "state": frozenset(),
    "cienv": frozenset({"credentials", "config", "provider_facts"}),
    "credentials": frozenset({"config", "provider_facts"}),
    "config": frozenset({"config_schema", "provider_facts"}),
    "config_schema": frozenset({"provider_facts"}),
    "reports": frozenset(),
    "provider_facts": frozenset(),
    **{unit: frozenset() for unit in BASE},
}

#: Composition roots and commands: they may import any layer; only these few import another entry point.
_LAYERS = frozenset(MAY_IMPORT)
MAY_IMPORT |= {
    "__main__": frozenset({"cli"}),
    "cli": _LAYERS | {"daemon_main", "env_cmd", "exec_cmd", "merge_cmd", "units", "call_cmd", "unit_reach", "history_cmd"},
    "exec_cmd": _LAYERS | {"exec_signals", "exec_delivery", "exec_stream"},
    "exec_stream": _LAYERS | {"exec_delivery"},
    "merge_cmd": _LAYERS | {"exec_cmd", "exec_signals", "exec_delivery"},
    "env_cmd": _LAYERS | {"doctor_check"},
    **{unit: _LAYERS for unit in ("daemon_main", "exec_delivery", "doctor_check", "demo_suite", "units", "call_cmd",
                                  "exec_signals", "unit_reach", "history_cmd")},
}

#: Modules still over MAX_LINES, each with its line count when listed. This list only shrinks: a module
#: that gets under the limit must leave it (a test says so), and none may grow.
#: None left: keep it that way.
OVERSIZED: dict[str, int] = {}


def module_name(root: Path, path: Path) -> str:
    """``root/a/b.py`` → ``<root>.a.b``; a package's ``__init__.py`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, dict[str, int]]:
    """Module → {imported module of the same package → line of the first such import}.

    ``from X import n`` depends on ``X.n`` when that is a module, else on ``X``; importing a submodule
    does not count as importing its parent package (Python runs the parent's ``__init__`` anyway).
    """
    files = {module_name(root, p): p for p in sorted(root.rglob("*.py"))}
    top = root.name
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    prefix = ".".join(base + ([node.module] if node.module else []))
                else:
                    prefix = node.module or ""
                targets = [f"{prefix}.{a.name}" if f"{prefix}.{a.name}" in files else prefix for a in node.names]
            else:
                continue
            for target in targets:
                if target != top and not target.startswith(top + "."):
                    continue
                while target not in files and "." in target:
                    target = target.rsplit(".", 1)[0]
                if target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Every strongly connected group of modules that import each other (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def unit_of(module: str) -> str:
    """The layer unit of a module: its first component under the package (``__init__`` for the root), or
    its :data:`SUB_UNITS` entry."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in SUB_UNITS:
            return SUB_UNITS[".".join(parts[:n])]
    return parts[0] if parts else "__init__"


def layer_violations(graph: dict[str, dict[str, int]], may_import: dict[str, frozenset[str]],
                     base: Iterable[str]) -> list[str]:
    """Imports the layer table does not allow, as ``importer:line -> imported`` lines."""
    base = frozenset(base)
    out = []
    for module, edges in sorted(graph.items()):
        unit = unit_of(module)
        for target, line in sorted(edges.items()):
            other = unit_of(target)
            if other != unit and other not in base and other not in may_import.get(unit, frozenset()):
                out.append(f"{module}:{line} -> {target}")
    return out


def test_ci_sidecar_has_no_import_cycles() -> None:
    """No group of ci_sidecar modules imports each other, counting deferred and type-only imports."""
    assert [] == find_cycles(import_graph(PACKAGE))


def test_ci_sidecar_imports_follow_the_layers() -> None:
    """Every import in ci_sidecar goes down the layers drawn in this module's docstring."""
    assert [] == layer_violations(import_graph(PACKAGE), MAY_IMPORT, BASE)


def test_every_unit_has_a_place_in_the_layers() -> None:
    """A new top-level module or package must be placed in the layer table before it is used."""
    units = {unit_of(m) for m in import_graph(PACKAGE)}
    assert set() == units - set(MAY_IMPORT)


def _line_counts() -> dict[str, int]:
    return {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}


def test_no_module_exceeds_500_lines() -> None:
    """Modules in ci_sidecar stay under 500 lines; the few listed in OVERSIZED may only shrink."""
    too_long = {path: n for path, n in _line_counts().items()
                if n > MAX_LINES and n > OVERSIZED.get(path, MAX_LINES)}
    assert {} == too_long


def test_the_oversized_list_only_holds_oversized_modules() -> None:
    """A module that got under 500 lines (or went away) leaves OVERSIZED, so the list shrinks."""
    counts = _line_counts()
    assert [] == [path for path in sorted(OVERSIZED) if counts.get(path, 0) <= MAX_LINES]


_THREAD_STARTERS = frozenset({"Thread", "Timer", "ThreadPoolExecutor", "start_new_thread", "_thread"})


def test_ci_sidecar_starts_no_threads_of_its_own() -> None:
    """Concurrency lives in trio nurseries: no module starts a thread (blocking work goes through trio.to_thread)."""
    starts = [f"{path.relative_to(PACKAGE).as_posix()}:{node.lineno}"
              for path in sorted(PACKAGE.rglob("*.py")) for node in ast.walk(ast.parse(path.read_text()))
              if (isinstance(node, ast.Attribute) and node.attr in _THREAD_STARTERS)
              or (isinstance(node, ast.alias) and node.name in _THREAD_STARTERS)]
    assert [] == starts


def test_only_the_cli_entry_point_calls_print() -> None:
    """A daemon spawned over stdio carries the protocol on stdout: outside cli.py, output goes to a named stream.

    The one exception is the debug method whose stray print() proves such output never reaches the protocol."""
    calls = [path.relative_to(PACKAGE).as_posix()
             for path in sorted(PACKAGE.rglob("*.py")) if path != PACKAGE / "cli.py"
             for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"]
    assert ["rpc/lifecycle.py"] == calls


def _write_package(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / "pkg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_checker_sees_deferred_cycles_and_upward_imports(tmp_path: Path) -> None:
    """A cycle closed by a function-level import and a type-only upward import are both reported."""
    pkg = _write_package(tmp_path, {
        "__init__.py": "",
        "low/__init__.py": "",
        "low/a.py": "def f():\n    from pkg.low import b\n",
        "low/b.py": "from . import a\n",
        "high/__init__.py": "",
        "high/c.py": "from ..low.a import f\n",
        "low/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.high.c import f\n",
    })
    graph = import_graph(pkg)
    assert [["pkg.low.a", "pkg.low.b"]] == find_cycles(graph)
    table = {"high": frozenset({"low"}), "low": frozenset()}
    assert ["pkg.low.d:3 -> pkg.high.c"] == layer_violations(graph, table, ())


def test_the_layer_table_has_no_cycle_of_its_own() -> None:
    """No unit may (through other units) import a unit that may import it."""
    assert [] == find_cycles({unit: dict.fromkeys(allowed, 0) for unit, allowed in MAY_IMPORT.items()})
