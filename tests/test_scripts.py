"""``scripts/setup`` installs only when needed, so ``scripts/run`` starts the daemon offline.

The offline start uses this checkout's real ``.venv`` (``./scripts/test`` sets it up before
pytest runs) with pip pointed at an unreachable index and logging every invocation, and, where
we may create one, inside a network namespace with no network at all. The reinstall decisions
are tested on a throwaway project: installing mindood itself needs the package index, while a
project whose build backend uses only the standard library installs with none.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.daemon_helpers import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
SETUP_TIMEOUT = 120
log = logging.getLogger(__name__)


def _without_pip_settings(env: dict[str, str]) -> dict[str, str]:
    """The environment minus the developer's pip configuration (a local mirror would answer)."""
    clean = {k: v for k, v in env.items() if not k.startswith("PIP_")}
    clean["PIP_CONFIG_FILE"] = os.devnull
    return clean


def _network_namespace_prefix() -> list[str]:
    """``unshare --net`` when this process may create a network namespace, else nothing."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return []
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    return ["unshare", "--net", "--"] if probe.returncode == 0 else []


class ScriptRunDaemon(DaemonProcess):
    """The daemon as ``./scripts/run`` starts it, with no package index reachable."""

    def __init__(self, root: Path, prefix: Sequence[str]) -> None:
        super().__init__(root, name="run")
        self.prefix = list(prefix)
        self.pip_log = root / "pip.log"

    def command(self, *extra: str) -> list[str]:
        run = [str(ROOT / "scripts" / "run"), "--data-dir", str(self.data_dir)]
        return [*self.prefix, *run, "--socket", str(self.socket), *extra]

    def env(self) -> dict[str, str]:
        env = _without_pip_settings(super().env())
        env["PIP_INDEX_URL"] = "http://127.0.0.1:9/simple"  # discard port: nothing listens
        env["PIP_RETRIES"] = "0"
        env["PIP_TIMEOUT"] = "2"
        env["PIP_LOG"] = str(self.pip_log)  # pip appends here on every run, even a failed one
        return env


def test_run_starts_the_daemon_offline_once_set_up(tmp_path: Path) -> None:
    check = subprocess.run(
        [str(ROOT / "scripts" / "setup"), "--check"],
        capture_output=True,
        text=True,
        timeout=SETUP_TIMEOUT,
    )
    if check.returncode != 0:
        pytest.skip(f"this checkout's .venv is not set up: {check.stderr.strip()}")
    prefix = _network_namespace_prefix()
    daemon = ScriptRunDaemon(tmp_path, prefix)
    started = time.monotonic()
    try:
        daemon.start()
        ready = time.monotonic() - started
        status = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "mindood"), "status", "--json"],
            env={**daemon.env(), "MINDOOD_SOCKET": str(daemon.socket)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["pid"] == daemon.pid  # run exec'd the daemon
        log.info(
            "./scripts/run ready in %.2fs (%s)",
            ready,
            "in a network namespace with no network" if prefix else "package index unreachable",
        )
    finally:
        code = daemon.stop()
        daemon.notify.close()
    assert code == 0, daemon.log()
    assert not daemon.pip_log.exists(), daemon.pip_log.read_text()


# -- install decisions, on a throwaway project ---------------------------------------------------
STDLIB_BACKEND = '''\
"""A build backend using only the standard library, so pip builds this project with no index."""
import os
import tomllib
import zipfile


def _wheel(directory, files):
    with open("pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    name, version = project["name"], project["version"]
    info = f"{name}-{version}.dist-info"
    metadata = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    metadata += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    metadata += [f"Provides-Extra: {e}" for e in project.get("optional-dependencies", {})]
    files = {
        **files,
        f"{info}/METADATA": "\\n".join(metadata) + "\\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
    }
    files[f"{info}/RECORD"] = "".join(f"{path},,\\n" for path in [*files, f"{info}/RECORD"])
    filename = f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(os.path.join(directory, filename), "w") as wheel:
        for path, text in files.items():
            wheel.writestr(path, text)
    return filename


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"tinyapp/__init__.py": ""})


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _wheel(wheel_directory, {"tinyapp.pth": os.getcwd() + "\\n"})
'''


PYPROJECT = """\
[build-system]
requires = []
build-backend = "stdlib_backend"
backend-path = ["."]

[project]
name = "tinyapp"
version = "0"
dependencies = {dependencies}

[project.optional-dependencies]
dev = []

[tool.ruff]
line-length = {line_length}
"""


class TinyProject:
    """A project laid out as this one (scripts/setup, pyproject.toml) that installs offline."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "scripts").mkdir(parents=True)
        for name in ("setup", "find-python"):
            shutil.copy2(ROOT / "scripts" / name, root / "scripts" / name)
        (root / "tinyapp").mkdir()
        (root / "tinyapp" / "__init__.py").write_text("")
        (root / "stdlib_backend.py").write_text(STDLIB_BACKEND)
        self.pip_log = root / "pip.log"
        self.stamp = root / ".venv" / ".mindood-setup"

    def write_pyproject(self, dependencies: Sequence[str], *, line_length: int = 100) -> None:
        listed = json.dumps(list(dependencies))
        text = PYPROJECT.format(dependencies=listed, line_length=line_length)
        (self.root / "pyproject.toml").write_text(text)

    def make_venv(self) -> None:
        """A venv borrowing the base interpreter's pip: ``venv`` with pip costs seconds more."""
        subprocess.run(
            [sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", ".venv"],
            cwd=self.root,
            check=True,
            timeout=60,
        )

    def setup(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = _without_pip_settings(dict(os.environ))
        env["PIP_NO_INDEX"] = "1"
        env["PIP_LOG"] = str(self.pip_log)
        return subprocess.run(
            [str(self.root / "scripts" / "setup"), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=SETUP_TIMEOUT,
        )

    def pip_runs(self) -> int:
        """How many pip commands have run so far: each one's log opens with ``Using pip``."""
        if not self.pip_log.exists():
            return 0
        return self.pip_log.read_text().count(" Using pip ")

    def installed_requires(self) -> list[str]:
        probe = subprocess.run(
            [
                str(self.root / ".venv" / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print('\\n'.join(m.requires('tinyapp') or []))",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        return probe.stdout.split()


@pytest.fixture
def tiny(tmp_path: Path) -> TinyProject:
    project = TinyProject(tmp_path / "tiny")
    project.make_venv()
    probe = subprocess.run(
        [str(project.root / ".venv" / "bin" / "python"), "-m", "pip", "--version"],
        capture_output=True,
        timeout=30,
    )
    if probe.returncode != 0:
        pytest.skip("the base interpreter has no pip to lend the throwaway venv")
    return project


def test_setup_installs_only_when_the_install_inputs_change(tiny: TinyProject) -> None:
    tiny.write_pyproject(["pip"])  # present offline: the base interpreter lends it
    assert tiny.setup("--check").returncode == 1  # a venv but no stamp: never installed
    first = tiny.setup()
    assert first.returncode == 0, first.stderr
    assert tiny.stamp.exists() and tiny.installed_requires() == ["pip"]
    assert tiny.pip_runs() == 1

    assert tiny.setup().returncode == 0
    tiny.write_pyproject(["pip"], line_length=88)  # a [tool.*] setting shapes no install
    assert tiny.setup().returncode == 0
    assert tiny.setup("--check").returncode == 0
    assert tiny.pip_runs() == 1

    missing = "tinyapp-dependency-on-no-index"
    tiny.write_pyproject(["pip", missing])
    stale = tiny.setup("--check")
    assert stale.returncode == 1 and "out of date" in stale.stderr
    assert tiny.stamp.exists()  # --check changes nothing
    failed = tiny.setup()
    assert tiny.pip_runs() == 2
    assert failed.returncode == 1 and "installing into .venv failed" in failed.stderr
    assert missing in failed.stderr  # pip was asked for the new dependency list
    assert not tiny.stamp.exists()  # so the next run tries again instead of trusting it
    assert tiny.setup("--check").returncode == 1
