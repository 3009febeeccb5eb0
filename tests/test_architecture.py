"""The import rules of docs/architecture.md: layers import downward only, transports not each other, no circles."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.toolkit.files import ROOT

# Bottom to top: a package may import its own layer's modules and any layer below, never above.
LAYERS: list[tuple[str, ...]] = [
    ("mlrm", "mlrm.errors"),
    ("mlrm.algorithms",),
    ("mlrm.config",),
    ("mlrm.storage",),
    ("mlrm.core",),
    ("mlrm.training",),
    ("mlrm.rest", "mlrm.mqtt"),  # transports
    ("training_service", "mlrm.tools"),
    ("mlrm.gateway",),
    ("mlrm.dashboard",),  # run by the gateway as a child process, never imported by it
    ("mlrm.cli", "mlrm.__main__"),
]
RANK = {package: rank for rank, group in enumerate(LAYERS) for package in group}
# Transports sit side by side and never call each other: both call the core.
APART = [("mlrm.rest", "mlrm.mqtt")]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package(module: str) -> str:
    """The layer entry a module belongs to (the longest listed prefix)."""
    return max((p for p in RANK if module == p or module.startswith(p + ".")), key=len)


def imports(path: Path, modules: set[str]) -> set[str]:
    """The mlrm and training_service modules path imports, lazily or not (TYPE_CHECKING too).

    `from pkg import sub` depends on the module sub, `from pkg import name` on pkg itself."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in modules else node.module)
    return found & modules


def graph() -> dict[str, set[str]]:
    files = [*(ROOT / "mlrm").rglob("*.py"), *(ROOT / "training_service").rglob("*.py")]
    modules = {module_name(f): f for f in files}
    return {name: imports(f, set(modules)) for name, f in modules.items()}


def test_every_import_goes_down_the_layers() -> None:
    upward = []
    for module, targets in graph().items():
        for target in targets:
            a, b = package(module), package(target)
            if RANK[b] > RANK[a] or (a, b) in APART or (b, a) in APART:
                upward.append(f"{module} imports {target} ({a} may not import {b})")
    assert not upward, "\n".join(sorted(upward))


def test_no_import_circle() -> None:
    edges = graph()
    circles: list[list[str]] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in list(edges):
        if v not in index:
            visit(v)
    assert not circles, circles


def test_every_package_has_a_layer() -> None:
    assert {package(m) for m in graph()} <= set(RANK)
    folders = {p.name for p in (ROOT / "mlrm").iterdir() if (p / "__init__.py").is_file()}
    assert {f"mlrm.{f}" for f in folders} <= set(RANK), (
        "a new folder needs its place in LAYERS and docs/architecture.md"
    )


# Below the transports nothing knows HTTP or MQTT: the same core serves both.
TRANSPORT_FREE = ("mlrm.algorithms", "mlrm.config", "mlrm.storage", "mlrm.core", "mlrm.training")
TRANSPORT_LIBRARIES = ("flask", "werkzeug", "gunicorn", "paho")


def third_party(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_models_training_and_storage_never_import_flask_or_paho() -> None:
    files = [f for f in (ROOT / "mlrm").rglob("*.py") if package(module_name(f)) in TRANSPORT_FREE]
    assert files
    leaks = {f"{module_name(f)} imports {lib}" for f in files for lib in third_party(f) & set(TRANSPORT_LIBRARIES)}
    assert not leaks, sorted(leaks)
