"""Test-wide setup: every async test runs on uvloop, as the daemon does; leaked threads fail."""

from __future__ import annotations

import compileall
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import uvloop

from mindood.crypto.kdf import apply_test_pbkdf2_iterations_from_env
from store.ondisk.workers import THREAD_PREFIX as ONDISK_THREAD_PREFIX
from store.verify import VERIFY_THREAD_PREFIX
from tests.daemon_helpers import daemons  # noqa: F401  (the shared fixture)
from tests.http_helpers import servers, session  # noqa: F401  (shared fixtures)

#: Process-lifetime pools that are shared on purpose and never count as leaks.
_SHARED_POOLS = (VERIFY_THREAD_PREFIX, ONDISK_THREAD_PREFIX)

# Explicit test switch for cheap key derivation (see mindood.crypto.kdf); production never sets it.
os.environ.setdefault("MINDOOD_TEST_PBKDF2_ITERATIONS", "1000")
apply_test_pbkdf2_iterations_from_env()


#: Packages whose modules the tests' subprocesses (daemons, CLI runs, workers) import.
_IMPORTED_BY_SUBPROCESSES = ("mindood", "protocol", "transports", "store", "tests")


def pytest_configure(config: pytest.Config) -> None:
    """Byte-compile our packages once, so that every subprocess reuses the cached bytecode.

    Without ``__pycache__`` (``PYTHONDONTWRITEBYTECODE`` set, or a fresh checkout) each of the
    hundreds of interpreters the tests start would compile all our modules again (~0.3 s of CPU
    each). Python still reads bytecode under ``PYTHONDONTWRITEBYTECODE``; only writing is off,
    and a stale file is ignored by its source timestamp. Done once (not in xdist workers).
    """
    if hasattr(config, "workerinput"):
        return
    root = Path(__file__).resolve().parent.parent
    for package in _IMPORTED_BY_SUBPROCESSES:
        compileall.compile_dir(root / package, quiet=1)


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], object]]:
    return {"uvloop": uvloop.new_event_loop}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Stress and soak suites are opt-in: they run only when their variable is set."""
    switches = {"stress": "MINDOOD_STRESS", "soak": "MINDOOD_SOAK"}
    for item in items:
        for marker, variable in switches.items():
            if marker in item.keywords and os.environ.get(variable) != "1":
                item.add_marker(pytest.mark.skip(reason=f"opt-in: set {variable}=1 to run"))


@pytest.fixture(autouse=True)
def _no_leaked_threads() -> Iterator[None]:
    """A test must not leave non-daemon threads running: they would outlive the daemon too."""
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leaked = [
            t
            for t in threading.enumerate()
            if t not in before
            and t.is_alive()
            and not t.daemon
            and not t.name.startswith(_SHARED_POOLS)
        ]
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leaked, f"test leaked threads: {[t.name for t in leaked]}"
