"""The notify protocol without libsystemd: addresses, watchdog intervals, datagrams."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from mindood.daemon.sdnotify import Notifier, notify_address, watchdog_interval


def test_notify_address_forms() -> None:
    assert notify_address({}) is None
    assert notify_address({"NOTIFY_SOCKET": "/run/systemd/notify"}) == "/run/systemd/notify"
    assert notify_address({"NOTIFY_SOCKET": "@abstract/name"}) == b"\0abstract/name"
    assert notify_address({"NOTIFY_SOCKET": "vsock:2:1234"}) is None


def test_watchdog_interval_is_half_the_timeout_for_our_pid() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, pid=2) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "2"}, pid=2) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "junk"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


def _receive(sock: socket.socket) -> dict[str, str]:
    data = sock.recv(4096).decode()
    return dict(line.split("=", 1) for line in data.splitlines())


def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        try:
            assert notifier.enabled
            assert notifier.ready("serving")
            assert _receive(server) == {
                "READY": "1",
                "STATUS": "serving",
                "MAINPID": str(os.getpid()),
            }
            assert notifier.watchdog()
            assert _receive(server) == {"WATCHDOG": "1"}
            assert notifier.reloading()
            reloading = _receive(server)
            assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
            assert notifier.stopping()
            assert _receive(server)["STOPPING"] == "1"
        finally:
            notifier.close()


def test_messages_reach_an_abstract_socket() -> None:
    name = f"mindood-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(b"\0" + name.encode())
        server.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        try:
            assert notifier.status("hello")
            assert _receive(server) == {"STATUS": "hello"}
        finally:
            notifier.close()


def test_without_a_manager_nothing_is_sent(tmp_path: Path) -> None:
    assert Notifier({}).ready("x") is False
    gone = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody")})
    assert gone.watchdog() is False  # logged once, never raised
    assert gone.watchdog() is False
    gone.close()
