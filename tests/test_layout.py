"""The package's shape: every module imports alone, and the layering rule of DESIGN.md holds."""

from __future__ import annotations

import ast
import subprocess
import sys
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


#: Run in one fresh interpreter: the third-party libraries are imported once, then each of our
#: modules is imported in a forked child that has none of ours loaded yet, so a cycle that a warm
#: process would hide still fails, without paying for automerge and cryptography 200 times.
#: ``gc.freeze()`` before forking keeps a child's collections off the libraries' objects, which
#: would otherwise copy most of the parent's heap into every child (copy-on-write).
_ISOLATED_IMPORTS = r"""
import gc, importlib, os, sys, traceback
ours, libraries = sys.argv[1].split(","), sys.argv[2].split(",")
for library in libraries:
    try:
        importlib.import_module(library)
    except Exception:
        pass
gc.freeze()
running, failed = {}, 0

def reap():
    global failed
    pid, status = os.wait()
    name, read = running.pop(pid)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read().decode(errors="replace")
    if status != 0:
        failed += 1
        print(f"== {name}\n{report}")

for name in ours:
    while len(running) >= (os.cpu_count() or 1):
        reap()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc()[-2000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    running[pid] = (name, read)
while running:
    reap()
sys.exit(1 if failed else 0)
"""


def _libraries() -> list[str]:
    """Every module not of ours that ours import (stdlib included), by its full dotted name."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    found.add(node.module)
    return sorted(n for n in found if n.split(".")[0] not in PACKAGES)


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    """Catches import cycles that a warm test process would hide."""
    command = [
        sys.executable,
        "-c",
        _ISOLATED_IMPORTS,
        ",".join(_modules()),
        ",".join(_libraries()),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


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
