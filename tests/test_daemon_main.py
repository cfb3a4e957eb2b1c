"""``mindood run`` as systemd sees it: what READY promises, and the exit code of a bad start.

Exit 2 means "restarting will not help" (the units set ``RestartPreventExitStatus=2``).
"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.daemon_helpers import DaemonProcess


@pytest.fixture
def held_port() -> Iterator[socket.socket]:
    """A loopback port this test listens on, so the daemon cannot."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock


def listening_daemon(root: Path, port: int) -> DaemonProcess:
    config = root / "mindood.toml"
    config.write_text(f'[network]\nlisten = ["tcp://127.0.0.1:{port}"]\n')
    return DaemonProcess(root, args=["--config", str(config)])


def test_a_listen_port_in_use_exits_2_with_one_line_before_ready(
    tmp_path: Path, held_port: socket.socket
) -> None:
    port = held_port.getsockname()[1]
    daemon = listening_daemon(tmp_path, port)
    try:
        run = subprocess.run(
            daemon.command(), env=daemon.env(), capture_output=True, text=True, timeout=60
        )
        assert run.returncode == 2, run.stderr
        errors = [line for line in run.stderr.splitlines() if line.startswith("mindood: ")]
        assert errors == [f"mindood: cannot listen on 127.0.0.1:{port}: address already in use"]
        assert "Traceback" not in run.stderr and "mindood ready" not in run.stderr
        assert daemon.notify.count("READY") == 0
        assert not daemon.socket.exists()  # shut down cleanly: the RPC socket is gone
    finally:
        daemon.close()


def test_ready_means_the_sync_port_accepts(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a free port (released again before the daemon binds it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = listening_daemon(tmp_path, port)
    try:
        daemon.start()  # returns on READY=1
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    finally:
        daemon.close()
