"""The package's shape: every module imports alone, and the layering rule of DESIGN.md holds."""

from __future__ import annotations

import ast
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mindood", "protocol", "transports", "store")
# What each layer may not import (DESIGN.md, "moving bytes is separate from reading them").
FORBIDDEN = {
    "store": {"mindood", "protocol", "transports"},
    "protocol": {"mindood", "transports"},
    "transports": {"mindood", "protocol"},
}


def _modules() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__main__":
                continue
            names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layers_import_only_what_design_allows(layer: str) -> None:
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_top_levels(path) & FORBIDDEN[layer])
        for path in (ROOT / layer).rglob("*.py")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Catches import cycles that a warm test process would hide (several interpreters at once)."""
    script = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"

    def attempt(name: str) -> tuple[str, subprocess.CompletedProcess[str]]:
        command = [sys.executable, "-c", script, name]
        return name, subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(attempt, _modules()))
    failures = {name: r.stderr[-2000:] for name, r in results if r.returncode != 0}
    assert failures == {}


def _imported_modules(path: Path, within: str) -> set[str]:
    """Modules of ``within`` that ``path`` imports, at any level (TYPE_CHECKING ones too)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(within):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith(within))
    return found


def test_the_daemon_modules_import_each_other_without_a_cycle() -> None:
    """The sync service takes narrow dependencies: no module of the daemon imports back."""
    package = "mindood.daemon"
    graph = {
        f"{package}.{path.stem}": _imported_modules(path, package)
        for path in (ROOT / "mindood" / "daemon").glob("*.py")
        if path.stem != "__init__"
    }
    state: dict[str, str] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if state.get(name) == "done":
            return
        assert state.get(name) != "open", " -> ".join((*trail, name))
        state[name] = "open"
        for imported in sorted(graph.get(name, set())):
            visit(imported, (*trail, name))
        state[name] = "done"

    for name in sorted(graph):
        visit(name, ())
